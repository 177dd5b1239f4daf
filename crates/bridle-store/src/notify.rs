//! Changes that every replica must see at once, over PostgreSQL's
//! `LISTEN`/`NOTIFY`: what a replica caches (verified tokens, signing keys)
//! and what waits on the record (approval long-polls) is told when another
//! replica changes it. SQLite serves one process, which needs no telling.
//!
//! A notification is a hint, never the record: a replica that misses one
//! (its listening connection dropped) is told to drop everything
//! ([`Change::Resync`]), and its caches are bounded in time regardless.

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use crate::{Pool, Store, StoreError};

/// The channel every replica listens on.
const CHANNEL: &str = "bridle_changes";

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// An agent's state, manifest, credentials or tokens: verified tokens
    /// cached anywhere must be checked again.
    Tokens,
    /// The signing keys were rotated.
    Keys,
    /// An approval was decided: its waiters re-read it.
    Approval,
    /// Notifications may have been missed: drop every cache.
    Resync,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Self::Tokens => "tokens",
            Self::Keys => "keys",
            Self::Approval => "approval",
            Self::Resync => "resync",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "tokens" => Self::Tokens,
            "keys" => Self::Keys,
            "approval" => Self::Approval,
            // Unknown (a newer replica's): safest to drop everything.
            _ => Self::Resync,
        }
    }
}

impl Store {
    /// Tell every replica (this one included) that `change` happened. On
    /// SQLite nothing is sent.
    pub async fn publish(&self, change: Change) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(_) => Ok(()),
            Pool::Postgres(pool) => {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(change.as_str())
                    .execute(pool)
                    .await?;
                Ok(())
            }
        }
    }

    /// The changes other replicas publish, as they arrive (PostgreSQL), or
    /// `None` on SQLite. The listening connection reconnects by itself; a
    /// [`Change::Resync`] follows every reconnection.
    pub async fn changes(&self) -> Result<Option<mpsc::Receiver<Change>>, StoreError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let change = match listener.try_recv().await {
                    Ok(Some(n)) => Change::parse(n.payload()),
                    // The connection was lost (and is re-made on the next
                    // call): what was sent meanwhile is gone.
                    Ok(None) => Change::Resync,
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the change notifications; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        Change::Resync
                    }
                };
                // Several queued changes of one kind act as one.
                if tx.try_send(change).is_err() && tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Some(rx))
    }
}
