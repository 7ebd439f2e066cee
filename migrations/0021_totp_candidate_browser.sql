-- An unconfirmed authenticator key belongs to the browser that asked for it (the HMAC of its
-- session token, as sessions.token_hmac holds it): another browser of the same account, such as
-- a stranger signed in with only the password, gets a key of its own, which replaces it, and
-- can never see or confirm the owner's. NULL for a confirmed key.
ALTER TABLE staff_totp ADD COLUMN begun_by bytea;
