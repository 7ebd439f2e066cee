-- Stripping leases are fenced (docs/attachments.md "Stripping, exactly once"). Each claim of a
-- preparing attachment takes a fresh random `lease_id`; renewing the lease, finishing,
-- quarantining and scheduling a retry all name it, so a run whose lease ran out and was taken
-- by another run changes nothing. NULL: no run holds it.
ALTER TABLE attachments ADD COLUMN lease_id uuid;
