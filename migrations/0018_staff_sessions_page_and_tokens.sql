-- Issue 15: the "Your sessions" page and personal access tokens (docs/staff-sign-in.md).
--
-- `public_id` names a session on the sessions page and in its forms, so that neither the page
-- nor a form ever carries the token's HMAC. A personal access token is a staff session with a
-- `token_name`: issued by `confide tokens issue`, usable as a Bearer token on the staff API only,
-- expiring at `expires_at` with no idle timeout (its idle_seconds is its whole lifetime).
ALTER TABLE sessions
    ADD COLUMN public_id uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN token_name text CHECK (token_name IS NULL OR length(token_name) BETWEEN 1 AND 100),
    ADD CONSTRAINT sessions_token_is_full_staff
        CHECK (token_name IS NULL OR (kind = 'staff' AND pending_step IS NULL));
CREATE UNIQUE INDEX sessions_public_id ON sessions (public_id);
CREATE INDEX sessions_staff ON sessions (staff_id) WHERE staff_id IS NOT NULL;
