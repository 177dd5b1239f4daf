-- Private keys at rest are sealed with the key-encryption key (KEK), which
-- is never stored here. This one row says which KEK seals this database
-- (`kek_id`, a truncated HMAC of the KEK) and holds a known text sealed with
-- it, so a wrong KEK is refused at start instead of a new key being made.
-- `signing_keys.private_der` holds `kek1:<kek_id>:<sealed PKCS#8>` from now
-- on; plain base64 PKCS#8 rows of earlier releases are sealed in place at the
-- first start with a KEK.
CREATE TABLE key_encryption (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    kek_id      TEXT NOT NULL,
    check_value TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
