//! A call held while it waits for a person's approval, and what it needs
//! from its request: whether the agent still waits (cancelled by
//! `notifications/cancelled` or a closed connection), where keep-alive
//! progress goes, and the errors of a call that did not go through.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rmcp::model::{ErrorCode, ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::json;
use tokio::sync::watch;

use crate::proxy::{ABANDONED, APPROVAL_PENDING};
use crate::upstream::Listener;

pub(crate) fn still_pending(approval: &str, waited: Duration) -> McpError {
    McpError::new(
        ErrorCode(APPROVAL_PENDING),
        format!(
            "approval `{approval}` was not granted within {}s; call again once it is approved",
            waited.as_secs()
        ),
        Some(json!({"reason": "approval_required", "approval_id": approval})),
    )
}

/// A held call the agent gave up on while it waited for `approval`, which
/// stays unused.
pub(crate) fn abandoned(approval: &str) -> McpError {
    McpError::new(
        ErrorCode(ABANDONED),
        format!(
            "the call was cancelled while it waited for approval `{approval}`; it was not forwarded and the approval was not used"
        ),
        Some(json!({"reason": "cancelled", "approval_id": approval})),
    )
}

/// A call the agent gave up on after its decision, before the forward.
fn cancelled() -> McpError {
    McpError::new(
        ErrorCode(ABANDONED),
        "the call was cancelled before it was forwarded; it was not forwarded",
        Some(json!({"reason": "cancelled"})),
    )
}

/// A forwarded call the agent gave up on while the upstream ran it.
fn cancelled_upstream() -> McpError {
    McpError::new(
        ErrorCode(ABANDONED),
        "the call was cancelled while the upstream ran it; the upstream was told to stop",
        Some(json!({"reason": "cancelled"})),
    )
}

/// Whether the HTTP request a message came on is still open: its response
/// body holds the sender, which goes when the body is dropped (the answer
/// was sent, or the connection closed before it was).
#[derive(Debug, Clone)]
pub(crate) struct Connection(watch::Receiver<()>);

impl Connection {
    fn closed(&self) -> bool {
        self.0.has_changed().is_err()
    }

    async fn wait_closed(&self) {
        let mut rx = self.0.clone();
        // Nothing is ever sent: `changed` returns once the sender is gone.
        while rx.changed().await.is_ok() {}
    }
}

/// A response body that tells its request's [`Connection`] when it is
/// dropped.
pub(crate) struct Watched {
    inner: axum::body::Body,
    _open: watch::Sender<()>,
}

impl Watched {
    /// A [`Connection`] for a request, and the wrapper its response body
    /// must go into.
    pub(crate) fn pair() -> (Connection, impl FnOnce(axum::body::Body) -> Self) {
        let (tx, rx) = watch::channel(());
        (Connection(rx), move |inner| Self { inner, _open: tx })
    }
}

impl http_body::Body for Watched {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// What a held call needs from its request: whether the agent still waits
/// (cancelled by `notifications/cancelled` or by a closed connection), and
/// where to send keep-alive progress.
pub(crate) struct Held {
    pub(crate) ctx: RequestContext<RoleServer>,
    progress: Option<(Peer<RoleServer>, ProgressToken)>,
    /// The last keep-alive progress sent on the agent's token.
    sent: AtomicU32,
    /// The HTTP request the call came on. In a 2025-11-25 session the
    /// session outlives it, so its closing is the agent giving up too.
    connection: Option<Connection>,
}

impl Held {
    pub(crate) fn of(ctx: &RequestContext<RoleServer>) -> Self {
        let connection = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Connection>())
            .cloned();
        Self {
            ctx: ctx.clone(),
            progress: ctx.meta.get_progress_token().map(|t| (ctx.peer.clone(), t)),
            sent: AtomicU32::new(0),
            connection,
        }
    }

    /// Whether the agent gave up: `notifications/cancelled`, or the
    /// connection the call came on closed.
    pub(crate) fn gone(&self) -> bool {
        self.ctx.ct.is_cancelled() || self.connection.as_ref().is_some_and(Connection::closed)
    }

    /// Returns once the agent gives up.
    pub(crate) async fn wait_gone(&self) {
        let closed = async {
            match &self.connection {
                Some(c) => c.wait_closed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.ctx.ct.cancelled() => {}
            () = closed => {}
        }
    }

    /// Where the upstream's progress on the forwarded request goes: the
    /// agent's token, counted on from the keep-alives already sent on it;
    /// none when the agent asked for no progress.
    pub(crate) fn listener(&self) -> Option<Listener> {
        let (peer, token) = self.progress.clone()?;
        Some(Listener::new(
            peer,
            token,
            self.sent.load(Ordering::Relaxed),
        ))
    }

    pub(crate) async fn still_waiting(&self, approval: &str, n: u32) {
        if let Some((peer, token)) = &self.progress {
            self.sent.fetch_max(n, Ordering::Relaxed);
            let p = ProgressNotificationParam::new(token.clone(), f64::from(n))
                .with_message(format!("waiting for approval `{approval}`"));
            if let Err(e) = peer.notify_progress(p).await {
                tracing::debug!(error = %e, "progress not delivered");
            }
        }
    }

    /// Refuse to go on for an agent that gave up.
    pub(crate) fn check(&self) -> Result<(), McpError> {
        if self.gone() {
            return Err(cancelled());
        }
        Ok(())
    }

    /// The forwarded request, unless the agent gives up first: then it is
    /// dropped, which cancels it upstream (`notifications/cancelled`). Only
    /// `notifications/cancelled` (or the session's end) counts here: a
    /// call already forwarded has acted upstream, and the connection it
    /// came on closing does not undo that.
    pub(crate) async fn unless_abandoned<T>(
        &self,
        forwarded: impl Future<Output = Result<T, McpError>>,
    ) -> Result<T, McpError> {
        tokio::select! {
            r = forwarded => r,
            () = self.ctx.ct.cancelled() => Err(cancelled_upstream()),
        }
    }
}
