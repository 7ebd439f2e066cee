-- Issue 15: passkeys (WebAuthn) for staff (docs/staff-sign-in.md "Passkeys").
--
-- A staff member's passkeys: the credential id is unique across all accounts, so a credential
-- is bound to one account only. `public_key` is the COSE key the authenticator gave at
-- registration (public, not a secret); `sign_count` is the authenticator's counter, which must
-- go up at each use when it is not 0 (a cloned authenticator is refused). `public_id` names a
-- passkey in forms, never its credential id.
CREATE TABLE staff_passkeys (
    public_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    staff_id        integer NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    credential_id   bytea NOT NULL UNIQUE,
    public_key      bytea NOT NULL,
    sign_count      bigint NOT NULL DEFAULT 0,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    transports      text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz
);
CREATE INDEX staff_passkeys_staff ON staff_passkeys (staff_id);

-- WebAuthn challenges: issued with a ceremony's options, stored only as an HMAC, bound to the
-- browser that asked (its staff session, half-signed-in session, or login cookie, as an HMAC)
-- and to the ceremony, short-lived, and spent by one DELETE … RETURNING: single-use.
CREATE TABLE webauthn_challenges (
    challenge_hmac  bytea PRIMARY KEY,
    ceremony        text NOT NULL CHECK (ceremony IN ('register', 'second_factor', 'sign_in')),
    binding_hmac    bytea NOT NULL,
    staff_id        integer REFERENCES staff (id) ON DELETE CASCADE,
    expires_at      timestamptz NOT NULL
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges (expires_at);
