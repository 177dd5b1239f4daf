//! A real `bridle serve` for the CLI's end-to-end tests: on a free port, on
//! a fresh SQLite file in the test's directory, with none of the caller's
//! `BRIDLE_*` settings, and stopped when the handle is dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server process; killed and reaped on drop.
pub struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `bridle serve EXTRA…` with `admin` as its admin token; once it listens,
/// the log line that says so and its port.
pub fn serve(dir: &Path, admin: &str, extra: &[&std::ffi::OsStr]) -> (Killed, String, String) {
    let log = dir.join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_bridle"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--db")
        .arg(format!("sqlite://{}", dir.join("b.db").display()))
        .args(extra)
        .env_remove("BRIDLE_DB")
        .env_remove("BRIDLE_LISTEN")
        .env_remove("BRIDLE_TLS_CERT_FILE")
        .env_remove("BRIDLE_TLS_KEY_FILE")
        .env("BRIDLE_ADMIN_TOKEN", admin)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("serve.out")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The log line names the bound address (`--listen` has port 0).
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("bridle listening"))
            && let Some((_, after)) = line.split_once("127.0.0.1:")
        {
            let port: String = after.chars().take_while(char::is_ascii_digit).collect();
            return (child, line.to_owned(), port);
        }
        assert!(
            Instant::now() < deadline,
            "bridle serve did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
