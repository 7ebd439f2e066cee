-- Issue 15: staff single sign-on through OpenID Connect (docs/staff-sign-in.md "Single sign-on").
--
-- A staff account is bound to its identity at the provider (`iss` + `sub`) at its first SSO
-- sign-in, through a verified e-mail address; every later sign-in matches on `iss` + `sub`
-- only, never on the e-mail again. One identity per account and provider.
CREATE TABLE staff_identities (
    issuer          text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 2000),
    subject         text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    staff_id        integer NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject),
    UNIQUE (staff_id, issuer)
);

-- A sign-in on its way through the provider: bound to the browser by a short-lived cookie that
-- holds a random id (only its HMAC is kept here), used once. `state_hmac` is the HMAC of the
-- `state` sent to the provider; the PKCE verifier is sealed with the keyring. Rows older than
-- `expires_at` are refused and swept.
CREATE TABLE sso_attempts (
    id_hmac         bytea PRIMARY KEY,
    state_hmac      bytea NOT NULL,
    nonce           text NOT NULL,
    code_verifier   bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX sso_attempts_expiry ON sso_attempts (expires_at);
