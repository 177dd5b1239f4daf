//! OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
//! as the MCP authorization spec uses them): an interactive client's
//! `client_id` is an https URL, and the document at that URL says its name
//! and redirect URIs. Bridle fetches it when an authorization request
//! arrives.
//!
//! The fetch is a request the server makes to a URL anyone may choose, so
//! it is fenced (server-side request forgery):
//!
//! - `https` only, with a path, in canonical form, without user info,
//!   fragment or dot segments; plain `http` only to a loopback host, and
//!   only when `[oauth] client_metadata_allow_loopback_http` is on
//!   (development);
//! - every address the host is, literally or as resolved, must be public
//!   (not loopback, private, link-local, shared, unspecified, multicast,
//!   documentation or reserved), checked by the resolver the connection
//!   itself uses, so a name cannot resolve to a public address for the
//!   check and an inner one for the connection; loopback is allowed only
//!   with the switch on;
//! - no proxy, no redirect followed, a 5 s timeout, a 10 KiB cap on the
//!   body, a 200 with JSON content only.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bridle_core::id::ClientId;
use reqwest::Url;
use serde_json::Value;

use crate::config::OAuthConfig;

/// The largest document read.
pub const MAX_BYTES: usize = 10 * 1024;
/// How long a fetch may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `client_name` shown (longer ones are cut).
const NAME_MAX: usize = 80;

/// What the document says about the client, checked.
#[derive(Debug, Clone)]
pub struct ClientMetadata {
    /// The document's URL, equal to its `client_id`.
    pub client_id: ClientId,
    /// `client_name`, or the URL's host when it has none.
    pub client_name: String,
    pub redirect_uris: Vec<String>,
}

/// Why a client id cannot be used. Shown on the authorization endpoint's
/// error page (never sent to a redirect URI, which is not trusted yet).
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("client_id `{0}` is not a URL")]
    NotUrl(String),
    #[error(
        "client_id `{0}` must be an https URL (plain http only to a loopback host, in development)"
    )]
    Scheme(String),
    #[error(
        "client_id `{0}` must be a canonical URL with a path and without user info, fragment or dot segments"
    )]
    Shape(String),
    #[error("client_id `{0}` names a host that is not public")]
    Host(String),
    #[error("client metadata document `{url}` cannot be fetched: {why}")]
    Fetch { url: String, why: String },
    #[error("client metadata document `{url}` is not acceptable: {why}")]
    Document { url: String, why: String },
}

/// Whether `ip` is an address on the public internet.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                // Shared address space (RFC 6598) and reserved (240/4).
                || (a == 100 && (64..128).contains(&b))
                || a >= 240
                // IETF protocol assignments (192.0.0.0/24).
                || (a == 192 && b == 0 && v4.octets()[2] == 0))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local (fc00::/7), link-local (fe80::/10),
                // documentation (2001:db8::/32).
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8))
        }
    }
}

/// Whether the switch lets `ip` be fetched from, or it is public.
fn allowed(ip: IpAddr, loopback: bool) -> bool {
    is_public(ip) || (loopback && ip.is_loopback())
}

/// The resolver of every document fetch: the host's addresses, with every
/// address that is not allowed dropped; none left is an error.
#[derive(Debug)]
struct PublicOnly {
    loopback: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let loopback = self.loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept: Vec<SocketAddr> = found.filter(|a| allowed(a.ip(), loopback)).collect();
            if kept.is_empty() {
                return Err(format!("`{host}` resolves to no public address").into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// `raw` as a URL the server may fetch, by the rules of the module.
pub fn check_url(config: &OAuthConfig, raw: &str) -> Result<Url, MetadataError> {
    let url = Url::parse(raw).map_err(|_| MetadataError::NotUrl(raw.to_owned()))?;
    let loopback = config.client_metadata_allow_loopback_http;
    let Some(host) = url.host_str() else {
        return Err(MetadataError::Shape(raw.to_owned()));
    };
    // An IP literal (IPv6 in brackets), or `None` for a name.
    let literal: Option<IpAddr> = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok();
    let loopback_host =
        host.eq_ignore_ascii_case("localhost") || literal.is_some_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback && loopback_host => {}
        _ => return Err(MetadataError::Scheme(raw.to_owned())),
    }
    let dot_segment = url
        .path_segments()
        .is_some_and(|mut s| s.any(|seg| seg == "." || seg == ".."));
    if url.as_str() != raw
        || url.path() == "/"
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
        || dot_segment
    {
        return Err(MetadataError::Shape(raw.to_owned()));
    }
    if literal.is_some_and(|ip| !allowed(ip, loopback)) {
        return Err(MetadataError::Host(raw.to_owned()));
    }
    Ok(url)
}

/// Fetch and check the document `client_id` names.
pub async fn fetch(config: &OAuthConfig, client_id: &str) -> Result<ClientMetadata, MetadataError> {
    let url = check_url(config, client_id)?;
    let id: ClientId = client_id
        .parse()
        .map_err(|_| MetadataError::Shape(client_id.to_owned()))?;
    let fetch_error = |why: String| MetadataError::Fetch {
        url: client_id.to_owned(),
        why,
    };
    // reqwest has no TLS provider of its own; `start` installs ring, and
    // so does this (idempotent), so building the client never panics.
    bridle_tls::install_provider();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .dns_resolver(Arc::new(PublicOnly {
            loopback: config.client_metadata_allow_loopback_http,
        }))
        .build()
        .map_err(|e| fetch_error(format!("no HTTP client: {e}")))?;
    let mut response = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fetch_error(without_url(&e)))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(fetch_error(format!(
            "answered {} (redirects are not followed)",
            response.status().as_u16()
        )));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if content_type != "application/json" && !content_type.ends_with("+json") {
        return Err(fetch_error(format!(
            "content type `{content_type}` is not JSON"
        )));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BYTES as u64)
    {
        return Err(fetch_error(format!("larger than {MAX_BYTES} bytes")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fetch_error(without_url(&e)))?
    {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(fetch_error(format!("larger than {MAX_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    parse(id, &url, &body)
}

/// A reqwest error's text without the URL (the caller names it).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    text
}

/// Check a fetched document against the URL it came from.
fn parse(id: ClientId, url: &Url, body: &[u8]) -> Result<ClientMetadata, MetadataError> {
    let bad = |why: &str| MetadataError::Document {
        url: id.to_string(),
        why: why.to_owned(),
    };
    let doc: Value = serde_json::from_slice(body).map_err(|_| bad("not a JSON document"))?;
    let Some(fields) = doc.as_object() else {
        return Err(bad("not a JSON object"));
    };
    if fields.get("client_id").and_then(Value::as_str) != Some(id.as_str()) {
        return Err(bad("its `client_id` is not the URL it was fetched from"));
    }
    if fields.contains_key("client_secret") || fields.contains_key("client_secret_expires_at") {
        return Err(bad("a client metadata document may not carry a secret"));
    }
    match fields.get("token_endpoint_auth_method") {
        None => {}
        Some(Value::String(m)) if m == "none" => {}
        Some(_) => {
            return Err(bad(
                "only public clients (`token_endpoint_auth_method: none`) are supported",
            ));
        }
    }
    let redirect_uris: Vec<String> = match fields.get("redirect_uris") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("`redirect_uris` must be a list of strings"))?,
        _ => return Err(bad("`redirect_uris` is missing")),
    };
    if redirect_uris.is_empty() {
        return Err(bad("`redirect_uris` is empty"));
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let client_name = fields
        .get("client_name")
        .and_then(Value::as_str)
        .map(|n| {
            n.chars()
                .filter(|c| !c.is_control())
                .take(NAME_MAX)
                .collect::<String>()
        })
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or(host);
    Ok(ClientMetadata {
        client_id: id,
        client_name,
        redirect_uris,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(loopback: bool) -> OAuthConfig {
        OAuthConfig {
            client_metadata_allow_loopback_http: loopback,
        }
    }

    #[test]
    fn only_https_and_canonical_urls_unless_loopback_is_allowed() {
        let off = config(false);
        assert!(check_url(&off, "https://client.example/oauth.json").is_ok());
        for bad in [
            "http://client.example/oauth.json",
            "http://127.0.0.1:9000/oauth.json",
            "https://client.example",
            "https://client.example/",
            "https://user@client.example/a",
            "https://client.example/a/../b",
            "https://CLIENT.example/a",
            "https://client.example/a#f",
            "https://127.0.0.1/a",
            "https://10.0.0.1/a",
            "https://169.254.169.254/latest",
            "https://[::1]/a",
            "https://[fd00::1]/a",
            "ftp://client.example/a",
            "not a url",
        ] {
            assert!(check_url(&off, bad).is_err(), "{bad} accepted");
        }
        let on = config(true);
        assert!(check_url(&on, "http://127.0.0.1:9000/oauth.json").is_ok());
        assert!(check_url(&on, "http://localhost:9000/oauth.json").is_ok());
        assert!(check_url(&on, "http://[::1]:9000/oauth.json").is_ok());
        // The switch is about loopback, nothing else.
        assert!(check_url(&on, "http://client.example/oauth.json").is_err());
        assert!(check_url(&on, "https://10.0.0.1/a").is_err());
        assert!(check_url(&on, "http://192.168.1.1/a").is_err());
    }

    #[tokio::test]
    async fn a_name_that_resolves_inward_is_not_fetched() {
        // `localhost` passes the URL rules (a name, https) but resolves to
        // loopback: the connection's resolver refuses it, switch off.
        let e = fetch(&config(false), "https://localhost:9/client.json")
            .await
            .unwrap_err();
        let text = format!("{e}: {:?}", e);
        assert!(text.contains("no public address"), "{text}");
    }

    #[test]
    fn inner_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "240.0.0.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        assert!(is_public("93.184.216.34".parse().unwrap()));
        assert!(is_public("2606:4700::1111".parse().unwrap()));
    }

    #[test]
    fn the_document_must_name_its_own_url() {
        let url = Url::parse("https://c.example/m.json").unwrap();
        let id: ClientId = "https://c.example/m.json".parse().unwrap();
        let ok = br#"{"client_id":"https://c.example/m.json","client_name":"Inspector","redirect_uris":["http://127.0.0.1:6274/cb"]}"#;
        let m = parse(id.clone(), &url, ok).unwrap();
        assert_eq!(m.client_name, "Inspector");
        for bad in [
            &br#"{"client_id":"https://other.example/m.json","redirect_uris":["http://127.0.0.1/cb"]}"#[..],
            br#"{"client_id":"https://c.example/m.json"}"#,
            br#"{"client_id":"https://c.example/m.json","redirect_uris":[]}"#,
            br#"{"client_id":"https://c.example/m.json","redirect_uris":["x"],"token_endpoint_auth_method":"client_secret_basic"}"#,
            br#"{"client_id":"https://c.example/m.json","redirect_uris":["x"],"client_secret":"s"}"#,
            b"[]",
        ] {
            assert!(parse(id.clone(), &url, bad).is_err());
        }
        let unnamed = br#"{"client_id":"https://c.example/m.json","redirect_uris":["x"]}"#;
        assert_eq!(parse(id, &url, unnamed).unwrap().client_name, "c.example");
    }
}
