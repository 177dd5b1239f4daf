//! The PostgreSQL server the storage and API suites run their PostgreSQL
//! half on. `BRIDLE_TEST_POSTGRES_URL` names one (`scripts/test.sh` starts a
//! throwaway cluster and sets it); without it, the first test that asks
//! starts a throwaway cluster of its own (`scripts/pg-cluster.sh`: initdb,
//! trust auth, a free loopback port, a temp dir), shared by every test of
//! the process and stopped and removed when the process exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The variable naming an existing server's admin URL.
pub const ENV: &str = "BRIDLE_TEST_POSTGRES_URL";

/// Why no PostgreSQL server could be had.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL is not installed, and the PostgreSQL half of these tests needs it: \
         install it (Debian: `apt-get install postgresql`), or set {ENV} to the admin URL of a \
         running server, or run ./scripts/test.sh, which installs and starts one"
    )]
    NotInstalled,
    #[error("cannot start a throwaway PostgreSQL cluster in `{}`: {detail}", dir.display())]
    Start { dir: PathBuf, detail: String },
    #[error("cannot {what}: {error}")]
    Io {
        what: &'static str,
        error: std::io::Error,
    },
}

/// The admin URL (`postgres://postgres@127.0.0.1:PORT/postgres`) of the
/// server to create test databases on.
pub fn url() -> Result<&'static str, &'static ClusterError> {
    static URL: OnceLock<Result<String, ClusterError>> = OnceLock::new();
    URL.get_or_init(|| match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => start(),
    })
    .as_ref()
    .map(String::as_str)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-cluster.sh")
}

fn start() -> Result<String, ClusterError> {
    let installed = Command::new(script())
        .arg("bin")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|error| ClusterError::Io {
            what: "run scripts/pg-cluster.sh",
            error,
        })?;
    if !installed.success() {
        return Err(ClusterError::NotInstalled);
    }
    let dir = tempdir()?;
    let port = free_port()?;
    let out = Command::new(script())
        .arg("start")
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|error| ClusterError::Io {
            what: "run scripts/pg-cluster.sh",
            error,
        })?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(ClusterError::Start {
            dir,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    watch(&dir)?;
    eprintln!("throwaway PostgreSQL on 127.0.0.1:{port} (this test process only)");
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// A detached watcher that stops the cluster and removes its directory once
/// this process has exited (however it exits: the statics of a test binary
/// are never dropped).
fn watch(dir: &Path) -> Result<(), ClusterError> {
    let watcher = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; exec \"$0\" stop \"$1\"",
        pid = std::process::id()
    );
    Command::new("setsid")
        .arg("sh")
        .arg("-c")
        .arg(watcher)
        .arg(script())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|error| ClusterError::Io {
            what: "start the cluster's watcher (setsid)",
            error,
        })
}

fn tempdir() -> Result<PathBuf, ClusterError> {
    let dir = std::env::temp_dir().join(format!("bridle-pg-test.{}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|error| ClusterError::Io {
        what: "create the cluster's directory",
        error,
    })?;
    Ok(dir)
}

fn free_port() -> Result<u16, ClusterError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|error| ClusterError::Io {
            what: "find a free loopback port",
            error,
        })
}
