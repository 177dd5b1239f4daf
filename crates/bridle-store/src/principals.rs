//! Human principals (and service principals such as PEPs) and their API keys.
//! Keys are stored only as hashes; the caller hashes.

use bridle_core::id::{GroupName, PrincipalId};
use jiff::Timestamp;
use serde::Serialize;
use sqlx::Row;

use crate::BeginWrite as _;
use crate::time::{Stamp, now};
use crate::{Store, StoreError, with_pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Auditor,
    Pep,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Auditor, Role::Pep];

    /// The role's name, as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Auditor => "auditor",
            Self::Pep => "pep",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: PrincipalId,
    pub name: String,
    pub roles: Vec<Role>,
    pub groups: Vec<GroupName>,
    pub active: bool,
    pub created_at: Timestamp,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[derive(Debug, Clone)]
pub struct NewPrincipal {
    pub id: PrincipalId,
    pub name: String,
    pub roles: Vec<Role>,
    pub groups: Vec<GroupName>,
}

#[expect(
    async_fn_in_trait,
    reason = "implemented by `Store` alone and called on it directly, so its futures' `Send` is known"
)]
pub trait PrincipalStore {
    /// Create a principal with one API key. `Conflict` if the id exists.
    async fn create_principal(
        &self,
        p: &NewPrincipal,
        key_hash: &str,
    ) -> Result<Principal, StoreError>;
    /// Create or refresh the bootstrap admin so that `key_hash` is its key.
    async fn ensure_admin(&self, id: &PrincipalId, key_hash: &str)
    -> Result<Principal, StoreError>;
    /// Create or refresh a principal the server runs itself (the bootstrap
    /// admin, the in-process gateway's `pep`): active, with exactly `roles`,
    /// and `key_hash` as its one key.
    async fn ensure_builtin(
        &self,
        id: &PrincipalId,
        name: &str,
        roles: &[Role],
        key_hash: &str,
    ) -> Result<Principal, StoreError>;
    /// The active principal holding this key.
    async fn principal_by_key(&self, key_hash: &str) -> Result<Option<Principal>, StoreError>;
    async fn principal(&self, id: &PrincipalId) -> Result<Option<Principal>, StoreError>;
    async fn principals(&self) -> Result<Vec<Principal>, StoreError>;
    /// Deactivate: the principal's keys stop working. `NotFound` if absent.
    async fn deactivate_principal(&self, id: &PrincipalId) -> Result<Principal, StoreError>;
}

macro_rules! columns {
    () => {
        "id, name, roles, groups_json, active, created_at"
    };
}

fn from_row<R>(row: &R) -> Result<Principal, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("principal {what}: {e}"))
    };
    let roles: String = row.try_get("roles")?;
    let groups: String = row.try_get("groups_json")?;
    Ok(Principal {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        roles: parse_roles(&roles)?,
        groups: serde_json::from_str(&groups).map_err(|e| corrupt("groups", &e))?,
        active: row.try_get("active")?,
        created_at: row.try_get::<Stamp, _>("created_at")?.into(),
    })
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

/// Roles are stored as a JSON array of their names (`["admin"]`).
fn roles_json(roles: &[Role]) -> String {
    json(&roles.iter().map(|r| r.as_str()).collect::<Vec<_>>())
}

fn parse_roles(text: &str) -> Result<Vec<Role>, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("principal roles: {e}"));
    let names: Vec<String> = serde_json::from_str(text).map_err(|e| corrupt(&e))?;
    names
        .iter()
        .map(|n| Role::parse(n).ok_or_else(|| corrupt(&format_args!("unknown role `{n}`"))))
        .collect()
}

impl PrincipalStore for Store {
    async fn create_principal(
        &self,
        p: &NewPrincipal,
        key_hash: &str,
    ) -> Result<Principal, StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let exists = sqlx::query("SELECT id FROM principals WHERE id = $1")
                .bind(p.id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_some() {
                return Err(StoreError::Conflict(p.id.to_string()));
            }
            let now = now();
            sqlx::query(
                "INSERT INTO principals (id, name, roles, groups_json, active, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(p.id.as_str())
            .bind(&p.name)
            .bind(roles_json(&p.roles))
            .bind(json(&p.groups))
            .bind(true)
            .bind(Stamp(now))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO api_keys (key_hash, principal_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(key_hash)
            .bind(p.id.as_str())
            .bind(Stamp(now))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Principal {
                id: p.id.clone(),
                name: p.name.clone(),
                roles: p.roles.clone(),
                groups: p.groups.clone(),
                active: true,
                created_at: now,
            })
        })
    }

    async fn ensure_admin(
        &self,
        id: &PrincipalId,
        key_hash: &str,
    ) -> Result<Principal, StoreError> {
        self.ensure_builtin(id, "Bootstrap administrator", &[Role::Admin], key_hash)
            .await
    }

    async fn ensure_builtin(
        &self,
        id: &PrincipalId,
        name: &str,
        roles: &[Role],
        key_hash: &str,
    ) -> Result<Principal, StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let now = now();
            let exists = sqlx::query("SELECT id FROM principals WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if exists {
                sqlx::query("UPDATE principals SET active = $1, roles = $2 WHERE id = $3")
                    .bind(true)
                    .bind(roles_json(roles))
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query(
                    "INSERT INTO principals (id, name, roles, groups_json, active, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id.as_str())
                .bind(name)
                .bind(roles_json(roles))
                .bind("[]")
                .bind(true)
                .bind(Stamp(now))
                .execute(&mut *tx)
                .await?;
            }
            // The given key replaces any earlier one.
            sqlx::query("DELETE FROM api_keys WHERE principal_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO api_keys (key_hash, principal_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(key_hash)
            .bind(id.as_str())
            .bind(Stamp(now))
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM principals WHERE id = $1"
            ))
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            from_row(&row)
        })
    }

    async fn principal_by_key(&self, key_hash: &str) -> Result<Option<Principal>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT p.id, p.name, p.roles, p.groups_json, p.active, p.created_at \
                 FROM principals p JOIN api_keys k ON k.principal_id = p.id \
                 WHERE k.key_hash = $1 AND p.active = $2",
            )
            .bind(key_hash)
            .bind(true)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(from_row).transpose()
        })
    }

    async fn principal(&self, id: &PrincipalId) -> Result<Option<Principal>, StoreError> {
        with_pool!(self, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM principals WHERE id = $1"
            ))
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(from_row).transpose()
        })
    }

    async fn principals(&self) -> Result<Vec<Principal>, StoreError> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM principals ORDER BY id"
            ))
            .fetch_all(pool)
            .await?;
            rows.iter().map(from_row).collect()
        })
    }

    async fn deactivate_principal(&self, id: &PrincipalId) -> Result<Principal, StoreError> {
        with_pool!(self, |pool| {
            let done = sqlx::query("UPDATE principals SET active = $1 WHERE id = $2")
                .bind(false)
                .bind(id.as_str())
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(id.to_string()));
            }
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM principals WHERE id = $1"
            ))
            .bind(id.as_str())
            .fetch_one(pool)
            .await?;
            from_row(&row)
        })
    }
}
