//! The baseline arm of `bench/http.sh` (P4): a bare axum "hello" endpoint on
//! the same runtime settings as `bridle serve`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an example: a failure should stop it loudly"
)]

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    let app = Router::new().route("/", get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
