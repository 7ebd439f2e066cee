-- Issue 15, first part: a second factor for staff (docs/staff-sign-in.md).
--
-- An authenticator (TOTP, RFC 6238) per account: its secret sealed with the keyring under the
-- AAD `staff_totp.secret:<staff id>`, unconfirmed until the first code is entered. `last_step`
-- is the last time-step accepted: a code is taken only by an UPDATE that raises it, so a code
-- (or an older one) is never accepted twice, whichever process sees it.
CREATE TABLE staff_totp (
    staff_id        integer PRIMARY KEY REFERENCES staff (id) ON DELETE CASCADE,
    secret          bytea NOT NULL,
    confirmed_at    timestamptz,
    last_step       bigint,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Ten single-use recovery codes per account, each kept only as an HMAC (a key derived with HKDF,
-- docs/security.md "Staff second factor"): a check is one lookup on the primary key.
CREATE TABLE staff_recovery_codes (
    staff_id        integer NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    code_hmac       bytea NOT NULL,
    used_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (staff_id, code_hmac)
);

-- Wrong second-factor codes, per account (the attacker already has the password): attempts in
-- the current window, claimed before a code is checked and given back when it is right.
ALTER TABLE staff
    ADD COLUMN second_factor_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN second_factor_window_start timestamptz;

-- How a session signed in (e.g. {password,totp}; later passkeys and SSO), and the half-signed-in
-- state after a right password: `pending_step` is 'second_factor' or 'enrol', and such a session
-- opens no staff page or API call (only sql.sessions.touch_pending finds it).
ALTER TABLE sessions
    ADD COLUMN methods text[] NOT NULL DEFAULT '{}',
    ADD COLUMN pending_step text CHECK (pending_step IN ('second_factor', 'enrol')),
    ADD CONSTRAINT sessions_pending_is_staff CHECK (pending_step IS NULL OR kind = 'staff');
