//! The authorization code grant's state: pending authorization requests
//! (waiting for the owner's consent in the console) and authorization
//! codes. Both are keyed by the SHA-256 of a random value the caller made
//! and hashed; the value itself is never stored. Deciding a request and
//! redeeming a code are conditional writes, so each happens at most once
//! across replicas.

use bridle_core::id::{AgentId, ClientId, Jti, PrincipalId};
use jiff::Timestamp;
use sqlx::Row;

use crate::time::{Stamp, stored};
use crate::{Store, StoreError, with_pool};

/// An authorization request waiting for consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequestRow {
    /// SHA-256 (hex) of the request's random id.
    pub id_hash: String,
    /// The URL of the client's metadata document.
    pub client_id: ClientId,
    /// `client_name` of the document when it was fetched.
    pub client_name: String,
    /// Checked against the document's `redirect_uris`.
    pub redirect_uri: String,
    /// The client's `state`, echoed on the redirect.
    pub state: Option<String>,
    /// The PKCE S256 challenge (base64url of a SHA-256).
    pub code_challenge: String,
    /// RFC 8707 `resource`: the token's `aud`.
    pub resource: Option<String>,
    pub scope: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// An authorization code as stored, with what it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCodeRow {
    /// SHA-256 (hex) of the code.
    pub code_hash: String,
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub code_challenge: String,
    /// The agent the owner consented for: the token's `sub`.
    pub agent: AgentId,
    /// The owner who consented.
    pub principal: PrincipalId,
    pub resource: Option<String>,
    pub scope: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The code was unused and is now consumed: the caller checks it.
    Fresh(AuthorizationCodeRow),
    /// The code was already consumed: the token issued from it (if one
    /// was, yet) and its agent.
    Reused { agent: AgentId, jti: Option<Jti> },
    /// No such code.
    Unknown,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait AuthorizationStore {
    /// Keep a new pending request.
    async fn create_authorization_request(
        &self,
        r: &AuthorizationRequestRow,
    ) -> Result<(), StoreError>;
    /// The pending request whose id hashes to `id_hash`, if stored and not
    /// expired at `now`.
    async fn authorization_request(
        &self,
        id_hash: &str,
        now: Timestamp,
    ) -> Result<Option<AuthorizationRequestRow>, StoreError>;
    /// Take (delete and answer) the pending request, if stored and not
    /// expired at `now`: of several callers exactly one gets it.
    async fn take_authorization_request(
        &self,
        id_hash: &str,
        now: Timestamp,
    ) -> Result<Option<AuthorizationRequestRow>, StoreError>;
    /// Keep a new authorization code.
    async fn create_authorization_code(&self, c: &AuthorizationCodeRow) -> Result<(), StoreError>;
    /// Consume the code at `now`: `Fresh` for exactly one caller, `Reused`
    /// for every later one (which marks the code as reused).
    async fn redeem_authorization_code(
        &self,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<Redeemed, StoreError>;
    /// Note the token issued from a redeemed code; `true` when the code
    /// was presented again in the meantime (the token must be revoked).
    async fn authorization_code_issued(
        &self,
        code_hash: &str,
        jti: &Jti,
    ) -> Result<bool, StoreError>;
    /// Drop requests expired at `now` and codes that expired before
    /// `codes_before`; how many rows were dropped.
    async fn purge_authorizations(
        &self,
        now: Timestamp,
        codes_before: Timestamp,
    ) -> Result<u64, StoreError>;
}

/// The columns [`request_row`] reads, as a literal for `concat!`.
macro_rules! request_columns {
    () => {
        "id_hash, client_id, client_name, redirect_uri, state, code_challenge, resource, scope, created_at, expires_at"
    };
}

/// The columns [`code_row`] reads, as a literal for `concat!`.
macro_rules! code_columns {
    () => {
        "code_hash, client_id, redirect_uri, code_challenge, agent_id, principal_id, resource, scope, created_at, expires_at"
    };
}

fn stamp<R>(row: &R, table: &str, col: &str) -> Result<Timestamp, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> Stamp: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let s: Stamp = row
        .try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("{table}.{col}: {e}")))?;
    Ok(s.into())
}

fn corrupt(table: &str, col: &str) -> impl Fn(sqlx::Error) -> StoreError {
    let what = format!("{table}.{col}");
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn request_row<R>(row: &R) -> Result<AuthorizationRequestRow, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> ClientId: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Stamp: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    const T: &str = "oauth_requests";
    Ok(AuthorizationRequestRow {
        id_hash: row.try_get("id_hash")?,
        client_id: row.try_get("client_id").map_err(corrupt(T, "client_id"))?,
        client_name: row.try_get("client_name")?,
        redirect_uri: row.try_get("redirect_uri")?,
        state: row.try_get("state")?,
        code_challenge: row.try_get("code_challenge")?,
        resource: row.try_get("resource")?,
        scope: row.try_get("scope")?,
        created_at: stamp(row, T, "created_at")?,
        expires_at: stamp(row, T, "expires_at")?,
    })
}

fn code_row<R>(row: &R) -> Result<AuthorizationCodeRow, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> ClientId: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> AgentId: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> PrincipalId: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Stamp: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    const T: &str = "oauth_codes";
    Ok(AuthorizationCodeRow {
        code_hash: row.try_get("code_hash")?,
        client_id: row.try_get("client_id").map_err(corrupt(T, "client_id"))?,
        redirect_uri: row.try_get("redirect_uri")?,
        code_challenge: row.try_get("code_challenge")?,
        agent: row.try_get("agent_id").map_err(corrupt(T, "agent_id"))?,
        principal: row
            .try_get("principal_id")
            .map_err(corrupt(T, "principal_id"))?,
        resource: row.try_get("resource")?,
        scope: row.try_get("scope")?,
        created_at: stamp(row, T, "created_at")?,
        expires_at: stamp(row, T, "expires_at")?,
    })
}

impl Store {
    /// The unexpired request `sql` (binding the id hash and now) answers.
    async fn request_by(
        &self,
        sql: &'static str,
        id_hash: &str,
        now: Timestamp,
    ) -> Result<Option<AuthorizationRequestRow>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(sql)
                .bind(id_hash)
                .bind(Stamp(stored(now)))
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(request_row).transpose()
        })
    }
}

impl AuthorizationStore for Store {
    async fn create_authorization_request(
        &self,
        r: &AuthorizationRequestRow,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO oauth_requests \
                 (id_hash, client_id, client_name, redirect_uri, state, code_challenge, \
                  resource, scope, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&r.id_hash)
            .bind(&r.client_id)
            .bind(&r.client_name)
            .bind(&r.redirect_uri)
            .bind(&r.state)
            .bind(&r.code_challenge)
            .bind(&r.resource)
            .bind(&r.scope)
            .bind(Stamp(stored(r.created_at)))
            .bind(Stamp(stored(r.expires_at)))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn authorization_request(
        &self,
        id_hash: &str,
        now: Timestamp,
    ) -> Result<Option<AuthorizationRequestRow>, StoreError> {
        self.request_by(
            concat!(
                "SELECT ",
                request_columns!(),
                " FROM oauth_requests WHERE id_hash = $1 AND expires_at > $2"
            ),
            id_hash,
            now,
        )
        .await
    }

    async fn take_authorization_request(
        &self,
        id_hash: &str,
        now: Timestamp,
    ) -> Result<Option<AuthorizationRequestRow>, StoreError> {
        self.request_by(
            concat!(
                "DELETE FROM oauth_requests WHERE id_hash = $1 AND expires_at > $2 RETURNING ",
                request_columns!()
            ),
            id_hash,
            now,
        )
        .await
    }

    async fn create_authorization_code(&self, c: &AuthorizationCodeRow) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO oauth_codes \
                 (code_hash, client_id, redirect_uri, code_challenge, agent_id, principal_id, \
                  resource, scope, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&c.code_hash)
            .bind(&c.client_id)
            .bind(&c.redirect_uri)
            .bind(&c.code_challenge)
            .bind(&c.agent)
            .bind(&c.principal)
            .bind(&c.resource)
            .bind(&c.scope)
            .bind(Stamp(stored(c.created_at)))
            .bind(Stamp(stored(c.expires_at)))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn redeem_authorization_code(
        &self,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<Redeemed, StoreError> {
        with_pool!(self, |pool| {
            let fresh = sqlx::query(concat!(
                "UPDATE oauth_codes SET consumed_at = $2 \
                 WHERE code_hash = $1 AND consumed_at IS NULL RETURNING ",
                code_columns!()
            ))
            .bind(code_hash)
            .bind(Stamp(stored(now)))
            .fetch_optional(pool)
            .await?;
            if let Some(row) = fresh {
                return Ok(Redeemed::Fresh(code_row(&row)?));
            }
            let reused = sqlx::query(
                "UPDATE oauth_codes SET reused_at = $2 WHERE code_hash = $1 \
                 RETURNING agent_id, jti",
            )
            .bind(code_hash)
            .bind(Stamp(stored(now)))
            .fetch_optional(pool)
            .await?;
            match reused {
                None => Ok(Redeemed::Unknown),
                Some(row) => Ok(Redeemed::Reused {
                    agent: row
                        .try_get("agent_id")
                        .map_err(corrupt("oauth_codes", "agent_id"))?,
                    jti: row.try_get("jti").map_err(corrupt("oauth_codes", "jti"))?,
                }),
            }
        })
    }

    async fn authorization_code_issued(
        &self,
        code_hash: &str,
        jti: &Jti,
    ) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "UPDATE oauth_codes SET jti = $2 WHERE code_hash = $1 RETURNING reused_at",
            )
            .bind(code_hash)
            .bind(jti)
            .fetch_optional(pool)
            .await?;
            let reused: Option<String> = match &row {
                Some(r) => r.try_get("reused_at")?,
                None => None,
            };
            Ok(reused.is_some())
        })
    }

    async fn purge_authorizations(
        &self,
        now: Timestamp,
        codes_before: Timestamp,
    ) -> Result<u64, StoreError> {
        with_pool!(self, |pool| {
            let requests = sqlx::query("DELETE FROM oauth_requests WHERE expires_at <= $1")
                .bind(Stamp(stored(now)))
                .execute(pool)
                .await?;
            let codes = sqlx::query("DELETE FROM oauth_codes WHERE expires_at < $1")
                .bind(Stamp(stored(codes_before)))
                .execute(pool)
                .await?;
            Ok(requests.rows_affected() + codes.rows_affected())
        })
    }
}
