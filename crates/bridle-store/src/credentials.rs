//! Signing keys, agent client credentials, issued tokens and one-time JWT ids.

use bridle_core::id::{AgentId, ClientId, Jti, Kid};
use jiff::Timestamp;
use sqlx::Row;

use crate::BeginWrite as _;
use crate::time::{Stamp, now};
use crate::{Store, StoreError, with_pool};

#[derive(Clone)]
pub struct SigningKeyRow {
    pub kid: Kid,
    /// The Ed25519 private key (PKCS#8 DER) sealed with the key-encryption
    /// key: `kek1:…`. Rows written before key encryption hold the plain
    /// base64 DER until the first start with a key-encryption key seals them.
    pub private_der: String,
    /// Base64url raw public key (JWK `x`).
    pub public_x: String,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("public_x", &self.public_x)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Which key-encryption key seals this database's private keys, and a
/// known text sealed with it (the key itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekCheck {
    /// A truncated HMAC of the key-encryption key.
    pub kek_id: String,
    pub check_value: String,
    pub created_at: Timestamp,
}

/// A signing key's private half as stored before key encryption, and the
/// sealed text that replaces it.
#[derive(Clone, Copy)]
pub struct SealedKey<'a> {
    pub kid: &'a Kid,
    pub plain: &'a str,
    pub sealed: &'a str,
}

impl std::fmt::Debug for SealedKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// How a client proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic` / `client_secret_post`: the SHA-256 of the
    /// secret, and during a rotation overlap the previous one with the
    /// instant it stops working.
    Secret {
        hash: String,
        previous: Option<(String, Timestamp)>,
    },
    /// `private_key_jwt` (RFC 7523): the registered public JWK, as JSON.
    PublicJwk(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    pub client_id: ClientId,
    pub agent_id: AgentId,
    pub auth: ClientAuth,
    pub created_at: Timestamp,
    pub rotated_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub jti: Jti,
    pub agent_id: AgentId,
    pub client_id: ClientId,
    pub expires_at: Timestamp,
    pub revoked: bool,
    /// The token this one was exchanged from (RFC 8693).
    pub parent_jti: Option<Jti>,
}

/// What the token endpoint records of each token it issues.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    pub jti: &'a Jti,
    /// The token's `sub`.
    pub agent: &'a AgentId,
    pub client_id: &'a ClientId,
    pub expires_at: Timestamp,
    pub parent_jti: Option<&'a Jti>,
}

/// What revoking all of an agent's credentials revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Revoked {
    pub credentials: u64,
    pub tokens: u64,
}

/// What [`CredentialStore::purge_expired`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    pub tokens: u64,
    pub jtis: u64,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait CredentialStore {
    /// Every signing key, newest first (retired ones too: the caller decides
    /// which are still needed for verification).
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError>;
    async fn add_signing_key(&self, key: &SigningKeyRow) -> Result<(), StoreError>;
    /// In one transaction: retire every current key at `key.created_at` and
    /// make `key` the current one.
    async fn rotate_signing_key(&self, key: &SigningKeyRow) -> Result<(), StoreError>;
    /// The key-encryption check value, once one was recorded.
    async fn kek_check(&self) -> Result<Option<KekCheck>, StoreError>;
    /// In one transaction: record `check` (when given) and replace each
    /// key's plain private half with its sealed one (only where it still
    /// holds `plain`). False, with nothing changed, when `check` was given
    /// and one was already recorded (another replica got there first).
    async fn seal_signing_keys(
        &self,
        check: Option<&KekCheck>,
        keys: &[SealedKey<'_>],
    ) -> Result<bool, StoreError>;
    async fn add_credential(
        &self,
        agent: &AgentId,
        client_id: &ClientId,
        auth: &ClientAuth,
    ) -> Result<(), StoreError>;
    async fn credential(&self, client_id: &ClientId) -> Result<Option<CredentialRow>, StoreError>;
    /// An agent's credentials, oldest first.
    async fn credentials(&self, agent: &AgentId) -> Result<Vec<CredentialRow>, StoreError>;
    /// Replace a secret credential's secret; the old one keeps working until
    /// `previous_expires_at` (or stops at once when `None`). False when the
    /// credential is unknown, revoked, or not a secret.
    async fn rotate_secret(
        &self,
        client_id: &ClientId,
        new_hash: &str,
        previous_expires_at: Option<Timestamp>,
    ) -> Result<bool, StoreError>;
    /// Revoke one credential, every token issued to it and every token
    /// exchanged from those, in one transaction. `None` when the credential
    /// is unknown or already revoked; else how many tokens were revoked.
    async fn revoke_credential(&self, client_id: &ClientId) -> Result<Option<u64>, StoreError>;
    async fn record_token(&self, token: &NewToken<'_>) -> Result<(), StoreError>;
    async fn token(&self, jti: &Jti) -> Result<Option<TokenRow>, StoreError>;
    /// Revoke a token and every token exchanged from it, transitively.
    /// Returns how many were newly revoked.
    async fn revoke_token(&self, jti: &Jti) -> Result<u64, StoreError>;
    /// Revoke every credential and token of an agent.
    async fn revoke_agent_credentials(&self, agent: &AgentId) -> Result<Revoked, StoreError>;
    /// Record a one-time JWT id of `kind` (`dpop`, `client_assertion`) until
    /// `expires_at`; false when it was already used.
    async fn use_jti(
        &self,
        kind: &str,
        jti: &Jti,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Whether a one-time JWT id of `kind` is recorded and not expired at
    /// `now` (recorded by [`Self::use_jti`]).
    async fn jti_used(&self, kind: &str, jti: &Jti, now: Timestamp) -> Result<bool, StoreError>;
    /// Forget tokens and one-time ids that expired before `before` (nothing
    /// can present them any more).
    async fn purge_expired(&self, before: Timestamp) -> Result<Purged, StoreError>;
}

fn credential_row<R>(r: &R) -> Result<CredentialRow, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let secret: Option<String> = r.try_get("secret_hash")?;
    let jwk: Option<String> = r.try_get("public_jwk")?;
    let previous_hash: Option<String> = r.try_get("previous_secret_hash")?;
    let previous_until = optional_time(r, "previous_expires_at")?;
    let auth = match (secret, jwk) {
        (Some(hash), None) => ClientAuth::Secret {
            hash,
            previous: previous_hash.zip(previous_until),
        },
        (None, Some(jwk)) => ClientAuth::PublicJwk(jwk),
        _ => {
            return Err(StoreError::Corrupt(
                "a credential must have exactly one of a secret and a public key".into(),
            ));
        }
    };
    Ok(CredentialRow {
        client_id: r.try_get("client_id")?,
        agent_id: r.try_get("agent_id")?,
        auth,
        created_at: r.try_get::<Stamp, _>("created_at")?.into(),
        rotated_at: optional_time(r, "rotated_at")?,
        revoked_at: optional_time(r, "revoked_at")?,
    })
}

fn optional_time<R>(r: &R, col: &str) -> Result<Option<Timestamp>, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(r.try_get::<Option<Stamp>, _>(col)?.map(Timestamp::from))
}

/// The columns [`credential_row`] reads, as a literal for `concat!`.
macro_rules! credential_columns {
    () => {
        "client_id, agent_id, secret_hash, public_jwk, previous_secret_hash, previous_expires_at, created_at, rotated_at, revoked_at"
    };
}

impl CredentialStore for Store {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT kid, private_der, public_x, created_at, retired_at FROM signing_keys ORDER BY created_at DESC",
            )
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(SigningKeyRow {
                        kid: r.try_get("kid")?,
                        private_der: r.try_get("private_der")?,
                        public_x: r.try_get("public_x")?,
                        created_at: r.try_get::<Stamp, _>("created_at")?.into(),
                        retired_at: optional_time(r, "retired_at")?,
                    })
                })
                .collect()
        })
    }

    async fn add_signing_key(&self, key: &SigningKeyRow) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO signing_keys (kid, private_der, public_x, created_at, retired_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.kid)
            .bind(&key.private_der)
            .bind(&key.public_x)
            .bind(Stamp(key.created_at))
            .bind(key.retired_at.map(Stamp))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn rotate_signing_key(&self, key: &SigningKeyRow) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(Stamp(key.created_at))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO signing_keys (kid, private_der, public_x, created_at, retired_at) VALUES ($1, $2, $3, $4, NULL)",
            )
            .bind(&key.kid)
            .bind(&key.private_der)
            .bind(&key.public_x)
            .bind(Stamp(key.created_at))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    async fn kek_check(&self) -> Result<Option<KekCheck>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT kek_id, check_value, created_at FROM key_encryption WHERE id = 1",
            )
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                Ok(KekCheck {
                    kek_id: r.try_get("kek_id")?,
                    check_value: r.try_get("check_value")?,
                    created_at: r.try_get::<Stamp, _>("created_at")?.into(),
                })
            })
            .transpose()
        })
    }

    async fn seal_signing_keys(
        &self,
        check: Option<&KekCheck>,
        keys: &[SealedKey<'_>],
    ) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if let Some(check) = check {
                let recorded = sqlx::query(
                    "INSERT INTO key_encryption (id, kek_id, check_value, created_at) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&check.kek_id)
                .bind(&check.check_value)
                .bind(Stamp(check.created_at))
                .execute(&mut *tx)
                .await?;
                if recorded.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
            }
            for key in keys {
                let done = sqlx::query(
                    "UPDATE signing_keys SET private_der = $1 WHERE kid = $2 AND private_der = $3",
                )
                .bind(key.sealed)
                .bind(key.kid)
                .bind(key.plain)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Err(StoreError::Corrupt(format!(
                        "signing key `{}` changed while it was being sealed",
                        key.kid
                    )));
                }
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    async fn add_credential(
        &self,
        agent: &AgentId,
        client_id: &ClientId,
        auth: &ClientAuth,
    ) -> Result<(), StoreError> {
        let (secret, jwk) = match auth {
            ClientAuth::Secret { hash, .. } => (Some(hash.as_str()), None),
            ClientAuth::PublicJwk(jwk) => (None, Some(jwk.as_str())),
        };
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO agent_credentials (client_id, agent_id, secret_hash, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(client_id)
            .bind(agent)
            .bind(secret)
            .bind(jwk)
            .bind(Stamp(now()))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn credential(&self, client_id: &ClientId) -> Result<Option<CredentialRow>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                credential_columns!(),
                " FROM agent_credentials WHERE client_id = $1"
            ))
            .bind(client_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(credential_row).transpose()
        })
    }

    async fn credentials(&self, agent: &AgentId) -> Result<Vec<CredentialRow>, StoreError> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                credential_columns!(),
                " FROM agent_credentials WHERE agent_id = $1 ORDER BY created_at, client_id"
            ))
            .bind(agent)
            .fetch_all(pool)
            .await?;
            rows.iter().map(credential_row).collect()
        })
    }

    async fn rotate_secret(
        &self,
        client_id: &ClientId,
        new_hash: &str,
        previous_expires_at: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE agent_credentials SET \
                   previous_secret_hash = CASE WHEN $1 IS NULL THEN NULL ELSE secret_hash END, \
                   previous_expires_at = $1, secret_hash = $2, rotated_at = $3 \
                 WHERE client_id = $4 AND revoked_at IS NULL AND secret_hash IS NOT NULL",
            )
            .bind(previous_expires_at.map(Stamp))
            .bind(new_hash)
            .bind(Stamp(now()))
            .bind(client_id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    async fn revoke_credential(&self, client_id: &ClientId) -> Result<Option<u64>, StoreError> {
        with_pool!(self, |pool| {
            let now = Stamp(now());
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE agent_credentials SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(None);
            }
            let tokens = sqlx::query(
                "WITH RECURSIVE lineage(jti) AS ( \
                     SELECT jti FROM tokens WHERE client_id = $1 \
                     UNION SELECT t.jti FROM tokens t JOIN lineage l ON t.parent_jti = l.jti \
                 ) \
                 UPDATE tokens SET revoked_at = $2 \
                 WHERE jti IN (SELECT jti FROM lineage) AND revoked_at IS NULL",
            )
            .bind(client_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(Some(tokens))
        })
    }

    async fn record_token(&self, token: &NewToken<'_>) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO tokens (jti, agent_id, client_id, issued_at, expires_at, parent_jti) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token.jti)
            .bind(token.agent)
            .bind(token.client_id)
            .bind(Stamp(now()))
            .bind(Stamp(token.expires_at))
            .bind(token.parent_jti)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn token(&self, jti: &Jti) -> Result<Option<TokenRow>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT jti, agent_id, client_id, expires_at, revoked_at, parent_jti FROM tokens WHERE jti = $1",
            )
            .bind(jti)
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                let revoked: Option<String> = r.try_get("revoked_at")?;
                Ok(TokenRow {
                    jti: r.try_get("jti")?,
                    agent_id: r.try_get("agent_id")?,
                    client_id: r.try_get("client_id")?,
                    expires_at: r.try_get::<Stamp, _>("expires_at")?.into(),
                    revoked: revoked.is_some(),
                    parent_jti: r.try_get("parent_jti")?,
                })
            })
            .transpose()
        })
    }

    async fn revoke_token(&self, jti: &Jti) -> Result<u64, StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query(
                "WITH RECURSIVE lineage(jti) AS ( \
                     SELECT jti FROM tokens WHERE jti = $1 \
                     UNION SELECT t.jti FROM tokens t JOIN lineage l ON t.parent_jti = l.jti \
                 ) \
                 UPDATE tokens SET revoked_at = $2 \
                 WHERE jti IN (SELECT jti FROM lineage) AND revoked_at IS NULL",
            )
            .bind(jti)
            .bind(Stamp(now()))
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    async fn revoke_agent_credentials(&self, agent: &AgentId) -> Result<Revoked, StoreError> {
        with_pool!(self, |pool| {
            let now = Stamp(now());
            let mut tx = pool.begin_write().await?;
            let creds = sqlx::query("UPDATE agent_credentials SET revoked_at = $1 WHERE agent_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(agent)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let tokens = sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE agent_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(agent)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(Revoked {
                credentials: creds,
                tokens,
            })
        })
    }

    async fn use_jti(
        &self,
        kind: &str,
        jti: &Jti,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query(
                "INSERT INTO used_jtis (kind, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(kind)
            .bind(jti)
            .bind(Stamp(expires_at))
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn jti_used(&self, kind: &str, jti: &Jti, now: Timestamp) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT 1 FROM used_jtis WHERE kind = $1 AND jti = $2 AND expires_at >= $3",
            )
            .bind(kind)
            .bind(jti)
            .bind(Stamp(now))
            .fetch_optional(pool)
            .await?;
            Ok(row.is_some())
        })
    }

    async fn purge_expired(&self, before: Timestamp) -> Result<Purged, StoreError> {
        let before = Stamp(before);
        with_pool!(self, |pool| {
            let tokens = sqlx::query("DELETE FROM tokens WHERE expires_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected();
            let jtis = sqlx::query("DELETE FROM used_jtis WHERE expires_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(Purged { tokens, jtis })
        })
    }
}
