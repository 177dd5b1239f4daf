//! TLS for Bridle's listeners, shared by the HTTP server and the MCP
//! gateway: [`TlsFiles`] (a PEM certificate chain and its private key),
//! [`server_config`] (rustls with the ring provider, TLS 1.3 preferred and
//! 1.2 accepted, ALPN `h2` and `http/1.1`) and [`TlsListener`], an
//! [`axum::serve::Listener`] that completes each handshake off the accept
//! path, so a slow or failed handshake neither blocks nor stops the server.
//! The peer's `SocketAddr` is kept for `ConnectInfo` ([`serve`]).

pub use rustls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Where a listener's certificate and key are: PEM files, the certificate
/// file holding the chain (leaf first), the key file one PKCS#8, PKCS#1
/// (RSA) or SEC1 (EC) private key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Why TLS cannot be set up; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("`{}` holds no PEM private key (PKCS#8, RSA or EC): {why}", path.display())]
    NoKey { path: PathBuf, why: String },
    #[error("`{}`: not valid PEM: {why}", path.display())]
    BadPem { path: PathBuf, why: String },
    #[error("the key in `{}` does not suit the certificate in `{}`: {error}", key.display(), cert.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        error: rustls::Error,
    },
}

/// The crypto provider of every TLS configuration Bridle builds.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Install ring as the process's default rustls provider, for HTTP clients
/// (reqwest is built without a provider of its own, so that no C build of
/// aws-lc is needed). Idempotent; a provider installed already stays.
pub fn install_provider() {
    // An `Err` only says that a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of a PEM file (a chain, or a CA bundle), in order.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::NoKey {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// The rustls server configuration of a listener: the files' chain and
/// key, TLS 1.3 preferred and 1.2 accepted (nothing older), ALPN `h2` then
/// `http/1.1`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certs(&files.cert_file)?;
    let key = load_key(&files.key_file)?;
    let mismatch = |error| TlsError::Mismatch {
        cert: files.cert_file.clone(),
        key: files.key_file.clone(),
        error,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(mismatch)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(mismatch)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration trusting exactly the certificates of `ca_file`
/// (for a gateway reaching a server whose certificate a private CA signed).
pub fn client_config(ca_file: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(ca_file)? {
        roots.add(cert).map_err(|e| TlsError::BadPem {
            path: ca_file.to_owned(),
            why: e.to_string(),
        })?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::BadPem {
            path: ca_file.to_owned(),
            why: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// How long a client has to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes waiting to be served; past this the accept loop waits.
const BACKLOG: usize = 128;

/// A TCP listener whose connections are TLS: a background task accepts
/// each connection and completes its handshake in a task of its own (at
/// most [`HANDSHAKE_TIMEOUT`]); a failed or abandoned handshake is logged
/// at debug and the listener goes on. Dropping the listener stops the task.
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(BACKLOG);
        let accepting = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), tx));
        Ok(Self {
            local,
            ready,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait, as axum does.
                tracing::error!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if ready.is_closed() {
            return;
        }
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::trace!(error = %e, "cannot set TCP_NODELAY");
            }
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    // The listener is gone when this fails: the server stopped.
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serve `router` on `tcp`, over TLS when `tls` is given, with each
/// request's peer address as `ConnectInfo<SocketAddr>` either way.
pub async fn serve(
    tcp: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => axum::serve(tcp, app).await,
        // `tap_io` (a no-op) carries the peer address through to
        // `ConnectInfo`: axum implements that for its own listener and for
        // a tapped one.
        Some(config) => {
            let listener = TlsListener::new(tcp, config)?.tap_io(|_| {});
            axum::serve(listener, app).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn pair() -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (cert.cert.pem(), cert.signing_key.serialize_pem())
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair();
        let files = TlsFiles {
            cert_file: write(dir.path(), "c.pem", &cert),
            key_file: write(dir.path(), "k.pem", &key),
        };
        let config = server_config(&files).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn each_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair();
        let (other_cert, _) = pair();
        let c = write(dir.path(), "c.pem", &cert);
        let k = write(dir.path(), "k.pem", &key);
        let other = write(dir.path(), "other.pem", &other_cert);
        let junk = write(dir.path(), "junk.pem", "not pem at all\n");
        let missing = dir.path().join("missing.pem");
        let err = |cert_file: &PathBuf, key_file: &PathBuf| {
            server_config(&TlsFiles {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
            })
            .unwrap_err()
            .to_string()
        };
        let e = err(&missing, &k);
        assert!(
            e.starts_with("cannot read `") && e.contains("missing.pem"),
            "{e}"
        );
        let e = err(&junk, &k);
        assert!(
            e.contains("junk.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = err(&c, &junk);
        assert!(
            e.contains("junk.pem") && e.contains("no PEM private key"),
            "{e}"
        );
        // A certificate given as the key.
        let e = err(&c, &c);
        assert!(
            e.contains("c.pem") && e.contains("no PEM private key"),
            "{e}"
        );
        let e = err(&other, &k);
        assert!(
            e.contains("does not suit") && e.contains("other.pem"),
            "{e}"
        );
    }
}
