//! Signing keys, agent client credentials and issued tokens.

use sqlx::Row;

use crate::{Store, StoreError, now_text, with_pool};

#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    /// Base64 PKCS#8 DER of the Ed25519 private key.
    pub private_der: String,
    /// Base64url raw public key (JWK `x`).
    pub public_x: String,
    pub created_at: String,
    pub retired_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub jti: String,
    pub agent_id: String,
    pub client_id: String,
    pub expires_at: String,
    pub revoked: bool,
}

#[allow(async_fn_in_trait)]
pub trait CredentialStore {
    /// Keys not retired, newest first; and retired keys still needed for
    /// verification (retired after `keep_since`).
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError>;
    async fn add_signing_key(&self, key: &SigningKeyRow) -> Result<(), StoreError>;
    async fn add_credential(
        &self,
        agent: &str,
        client_id: &str,
        secret_hash: &str,
    ) -> Result<(), StoreError>;
    /// The agent owning a credential, its secret hash, and whether it is revoked.
    async fn credential(
        &self,
        client_id: &str,
    ) -> Result<Option<(String, String, bool)>, StoreError>;
    async fn record_token(
        &self,
        jti: &str,
        agent: &str,
        client_id: &str,
        expires_at: &str,
    ) -> Result<(), StoreError>;
    async fn token(&self, jti: &str) -> Result<Option<TokenRow>, StoreError>;
    /// Revoke one token; false when unknown.
    async fn revoke_token(&self, jti: &str) -> Result<bool, StoreError>;
    /// Revoke every credential and token of an agent (retirement).
    async fn revoke_agent_credentials(&self, agent: &str) -> Result<(u64, u64), StoreError>;
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
                        created_at: r.try_get("created_at")?,
                        retired_at: r.try_get("retired_at")?,
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
            .bind(&key.created_at)
            .bind(&key.retired_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn add_credential(
        &self,
        agent: &str,
        client_id: &str,
        secret_hash: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO agent_credentials (client_id, agent_id, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(client_id)
            .bind(agent)
            .bind(secret_hash)
            .bind(now_text())
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn credential(
        &self,
        client_id: &str,
    ) -> Result<Option<(String, String, bool)>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT agent_id, secret_hash, revoked_at FROM agent_credentials WHERE client_id = $1",
            )
            .bind(client_id)
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                let revoked: Option<String> = r.try_get("revoked_at")?;
                Ok((
                    r.try_get("agent_id")?,
                    r.try_get("secret_hash")?,
                    revoked.is_some(),
                ))
            })
            .transpose()
        })
    }

    async fn record_token(
        &self,
        jti: &str,
        agent: &str,
        client_id: &str,
        expires_at: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO tokens (jti, agent_id, client_id, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(jti)
            .bind(agent)
            .bind(client_id)
            .bind(now_text())
            .bind(expires_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn token(&self, jti: &str) -> Result<Option<TokenRow>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query("SELECT jti, agent_id, client_id, expires_at, revoked_at FROM tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(pool)
                .await?;
            row.map(|r| {
                let revoked: Option<String> = r.try_get("revoked_at")?;
                Ok(TokenRow {
                    jti: r.try_get("jti")?,
                    agent_id: r.try_get("agent_id")?,
                    client_id: r.try_get("client_id")?,
                    expires_at: r.try_get("expires_at")?,
                    revoked: revoked.is_some(),
                })
            })
            .transpose()
        })
    }

    async fn revoke_token(&self, jti: &str) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE jti = $2 AND revoked_at IS NULL",
            )
            .bind(now_text())
            .bind(jti)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    async fn revoke_agent_credentials(&self, agent: &str) -> Result<(u64, u64), StoreError> {
        with_pool!(self, |pool| {
            let now = now_text();
            let mut tx = pool.begin().await?;
            let creds = sqlx::query("UPDATE agent_credentials SET revoked_at = $1 WHERE agent_id = $2 AND revoked_at IS NULL")
                .bind(&now)
                .bind(agent)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let tokens = sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE agent_id = $2 AND revoked_at IS NULL",
            )
            .bind(&now)
            .bind(agent)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok((creds, tokens))
        })
    }
}
