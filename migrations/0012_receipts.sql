-- Receipts a reporter can prove (issue 14, item 8; docs/security.md "Receipts").
--
-- receipt_salt: 32 random bytes, base64url, sealed with the keyring like the report's other
--   fields (AAD "threads.receipt_salt:<id>", "messages.receipt_salt:<id>"). It never leaves the
--   server, so a receipt cannot be used to test a guessed text.
-- commitment: SHA-256(salt || canonical report or message), as signed into the receipt. Kept so
--   that a receipt can be downloaded again later without opening the report; the tamper check
--   never trusts it, it recomputes from the salt and the stored text.
-- Both are NULL for reports and messages made before receipts existed, and for case workers'
-- messages (only a reporter's own words get a receipt). Nullable columns without a default:
-- adding them rewrites nothing.
ALTER TABLE threads ADD COLUMN receipt_salt bytea, ADD COLUMN commitment bytea;
ALTER TABLE messages ADD COLUMN receipt_salt bytea, ADD COLUMN commitment bytea;
