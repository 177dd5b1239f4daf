//! Where an attempt comes from: the peer address (or the client a trusted
//! proxy names) and the route it reached.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::ThrottleConfig;
use crate::state::AppState;

/// Where attempts come from: an IPv4 address, or an IPv6 /64 network (one
/// host usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    pub fn new(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !u128::from(u64::MAX);
                Self(IpAddr::V6(Ipv6Addr::from(network)))
            }
            v4 => Self(v4),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The source and the endpoint of a request.
#[derive(Debug, Clone)]
pub struct Origin {
    pub source: Source,
    /// The route template (`/v1/agents/{id}`), not the raw path.
    pub endpoint: String,
}

impl Origin {
    pub fn of(parts: &Parts, config: &ThrottleConfig) -> Self {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let ip = client_address(peer, &parts.headers, &config.trusted_proxies);
        let endpoint = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("unknown", MatchedPath::as_str)
            .to_owned();
        Self {
            source: Source::new(ip),
            endpoint,
        }
    }
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Self::of(parts, &state.config.auth_throttle))
    }
}

/// The peer, or when the peer is a trusted proxy, the nearest address in
/// `X-Forwarded-For` that is not one (right to left: each proxy appends).
pub(super) fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.contains(&ip.to_canonical());
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => nearest = ip,
            Ok(ip) => return ip,
            // Garbage from beyond the last trusted hop: that hop is the source.
            Err(_) => return nearest,
        }
    }
    nearest
}
