//! The key-encryption key (KEK). Private keys kept in the store are sealed
//! with it (XChaCha20-Poly1305, a random nonce per sealing, the key's `kid`
//! as associated data so sealed values cannot be moved between rows), so a
//! copy of the database alone cannot sign tokens.
//!
//! The KEK comes from `BRIDLE_KEY_ENCRYPTION_KEY` or `key_encryption_key_file`
//! and is never stored in the database: the store keeps only a check value
//! (the KEK's id and a known text sealed with it). An embedded SQLite
//! database without a configured KEK gets a generated key file beside it
//! (`<database>.kek`, mode 0600) on its first start; PostgreSQL needs one
//! configured. A missing or wrong KEK is a start-up error, never a new key.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bridle_store::{CredentialStore, KekCheck, SealedKey, SigningKeyRow, Store, StoreError};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::ApiError;

/// The environment variable holding the KEK.
pub const ENV: &str = "BRIDLE_KEY_ENCRYPTION_KEY";

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Prefix of a sealed value (format version 1): `kek1:<kek id>:<base64url
/// of nonce ‖ ciphertext ‖ tag>`.
const SEALED: &str = "kek1";
const CHECK_TEXT: &[u8] = b"bridle key-encryption check v1";
const CHECK_AAD: &str = "bridle key-encryption check";

/// A key-encryption key. It never prints.
pub struct Kek {
    key: Zeroizing<[u8; KEY_LEN]>,
    id: String,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error(
        "{origin} is not a key-encryption key: expected 32 random bytes in base64 (for example the output of `openssl rand -base64 32`)"
    )]
    Malformed { origin: String },
    #[error("cannot read the key-encryption key file `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write a new key-encryption key file `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no key-encryption key is configured, and a PostgreSQL database needs one: set `BRIDLE_KEY_ENCRYPTION_KEY` or `key_encryption_key_file` (make one with `openssl rand -base64 32` and keep it apart from the database backups)"
    )]
    Required,
    #[error(
        "the private keys in this database are sealed with key-encryption key `{stored}`, but no key-encryption key is configured and `{}` does not exist: set `BRIDLE_KEY_ENCRYPTION_KEY` or `key_encryption_key_file` to that key", path.display()
    )]
    Missing { path: PathBuf, stored: String },
    #[error(
        "the configured key-encryption key (id `{configured}`) is not the one this database is sealed with (id `{stored}`): set `BRIDLE_KEY_ENCRYPTION_KEY` or `key_encryption_key_file` to that key"
    )]
    Wrong { configured: String, stored: String },
    #[error(
        "the sealed private key `{kid}` does not open with the key-encryption key: it was altered or copied from another row"
    )]
    Unsealable { kid: String },
    #[error("cannot seal a private key")]
    Seal,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<KekError> for ApiError {
    fn from(e: KekError) -> Self {
        match e {
            KekError::Store(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Why a sealed value did not open.
enum OpenError {
    /// Not in the sealed format at all.
    NotSealed,
    /// Sealed with another KEK (its id).
    OtherKek(String),
    /// Right KEK id, but the ciphertext or its associated data was changed.
    Altered,
}

impl Kek {
    /// Parse a KEK: 32 bytes in base64 (standard or URL-safe, padded or
    /// not). `origin` names where it came from, for the error.
    pub fn parse(text: &str, origin: &str) -> Result<Self, KekError> {
        let text = text.trim();
        let malformed = || KekError::Malformed {
            origin: origin.to_owned(),
        };
        let bytes = [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .map(Zeroizing::new)
            .ok_or_else(malformed)?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(malformed());
        }
        key.copy_from_slice(&bytes);
        Ok(Self::from_key(key))
    }

    /// A new random KEK.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(key.as_mut());
        Self::from_key(key)
    }

    fn from_key(key: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let id = match <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_ref()) {
            Ok(mut mac) => {
                mac.update(b"bridle key-encryption key id");
                let digest: Vec<u8> = mac.finalize().into_bytes().into_iter().take(8).collect();
                hex(&digest)
            }
            // HMAC takes keys of any length.
            Err(_) => String::new(),
        };
        Self { key, id }
    }

    /// Read a KEK from a file (its first line; surrounding space ignored).
    pub fn read(path: &Path) -> Result<Self, KekError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KekError::Read {
                    path: path.to_owned(),
                    source,
                })?,
            );
        warn_if_shared(path);
        Self::parse(&text, &format!("the file `{}`", path.display()))
    }

    /// The KEK's id: the first 8 bytes of an HMAC keyed with it, in hex.
    /// It names the key in errors and in sealed values without revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The KEK in standard base64, the form written to a generated file.
    fn encoded(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.key.as_ref()))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(*self.key))
    }

    /// Seal the private key `plain` of signing key `kid`.
    pub fn seal(&self, kid: &str, plain: &[u8]) -> Result<String, KekError> {
        self.seal_with(&key_aad(kid), plain)
    }

    /// Open the sealed private key of signing key `kid`.
    pub fn open(&self, kid: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, KekError> {
        self.open_with(&key_aad(kid), sealed)
            .map_err(|e| self.open_error(e, kid))
    }

    fn seal_with(&self, aad: &str, plain: &[u8]) -> Result<String, KekError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| KekError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{SEALED}:{}:{}",
            self.id,
            URL_SAFE_NO_PAD.encode(out)
        ))
    }

    fn open_with(&self, aad: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(SEALED), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(OpenError::NotSealed);
        };
        if id != self.id {
            return Err(OpenError::OtherKek(id.to_owned()));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| OpenError::Altered)?;
        let (nonce, ciphertext) = bytes
            .split_at_checked(NONCE_LEN)
            .ok_or(OpenError::Altered)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError::Altered)?;
        self.cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Altered)
    }

    fn open_error(&self, e: OpenError, kid: &str) -> KekError {
        match e {
            OpenError::OtherKek(stored) => KekError::Wrong {
                configured: self.id.clone(),
                stored,
            },
            OpenError::NotSealed | OpenError::Altered => KekError::Unsealable {
                kid: kid.to_owned(),
            },
        }
    }

    /// Whether this is the KEK the check value was made with.
    fn verify(&self, check: &KekCheck) -> Result<(), KekError> {
        let wrong = || KekError::Wrong {
            configured: self.id.clone(),
            stored: check.kek_id.clone(),
        };
        if check.kek_id != self.id {
            return Err(wrong());
        }
        match self.open_with(CHECK_AAD, &check.check_value) {
            Ok(text) if text.as_slice() == CHECK_TEXT => Ok(()),
            _ => Err(wrong()),
        }
    }

    fn check_value(&self) -> Result<KekCheck, KekError> {
        Ok(KekCheck {
            kek_id: self.id.clone(),
            check_value: self.seal_with(CHECK_AAD, CHECK_TEXT)?,
            created_at: jiff::Timestamp::now(),
        })
    }
}

fn key_aad(kid: &str) -> String {
    format!("bridle signing key\n{kid}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a stored private key is in the sealed format.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(&format!("{SEALED}:"))
}

/// The KEK id a sealed value names, if it is sealed.
fn sealed_by(stored: &str) -> Option<&str> {
    let mut parts = stored.splitn(3, ':');
    match (parts.next(), parts.next()) {
        (Some(SEALED), Some(id)) => Some(id),
        _ => None,
    }
}

/// Find this configuration's KEK, check it against the database, and seal
/// the plain private keys an earlier release wrote (with the check value,
/// in one transaction). Called at start, before anything else is written.
pub async fn open_store(config: &Config, store: &Store) -> Result<Kek, KekError> {
    let check = store.kek_check().await?;
    let rows = store.signing_keys().await?;
    let stored = match &check {
        Some(c) => Some(c.kek_id.clone()),
        None => rows
            .iter()
            .find_map(|r| sealed_by(&r.private_der))
            .map(String::from),
    };
    let kek = resolve(config, stored.as_deref())?;
    match check {
        Some(check) => {
            kek.verify(&check)?;
            seal_plain(&kek, store, None, &rows).await?;
        }
        None => {
            let check = kek.check_value()?;
            if !seal_plain(&kek, store, Some(&check), &rows).await? {
                // Another replica recorded its check value first.
                let check = store.kek_check().await?.ok_or_else(|| {
                    StoreError::Corrupt("the key-encryption check value vanished".into())
                })?;
                kek.verify(&check)?;
            }
        }
    }
    Ok(kek)
}

/// Seal every plain private key of `rows` in place (and record `check`, if
/// given, in the same transaction); sealed rows must open with `kek`. False
/// when `check` was given and one was already recorded.
pub(crate) async fn seal_plain(
    kek: &Kek,
    store: &Store,
    check: Option<&KekCheck>,
    rows: &[SigningKeyRow],
) -> Result<bool, KekError> {
    let mut sealed = Vec::new();
    for row in rows {
        if is_sealed(&row.private_der) {
            kek.open(row.kid.as_str(), &row.private_der)?;
            continue;
        }
        let der = Zeroizing::new(STANDARD.decode(&row.private_der).map_err(|_| {
            StoreError::Corrupt(format!("signing key `{}`: private key encoding", row.kid))
        })?);
        sealed.push((row, kek.seal(row.kid.as_str(), &der)?));
    }
    if check.is_none() && sealed.is_empty() {
        return Ok(true);
    }
    let keys: Vec<SealedKey<'_>> = sealed
        .iter()
        .map(|(row, s)| SealedKey {
            kid: &row.kid,
            plain: &row.private_der,
            sealed: s,
        })
        .collect();
    let done = store.seal_signing_keys(check, &keys).await?;
    if done && !keys.is_empty() {
        tracing::info!(
            keys = keys.len(),
            kek = %kek.id(),
            "sealed the plain signing keys of an earlier release with the key-encryption key"
        );
    }
    Ok(done)
}

/// Where a KEK comes from when none is configured.
enum Fallback {
    /// An in-memory database: nothing outlives the process, nor need its KEK.
    Memory,
    /// The key file beside an embedded database.
    File(PathBuf),
}

fn default_for(db: &str) -> Option<Fallback> {
    let path = db.strip_prefix("sqlite://")?;
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path.is_empty() || path == ":memory:" {
        return Some(Fallback::Memory);
    }
    Some(Fallback::File(PathBuf::from(format!("{path}.kek"))))
}

/// The configured KEK (`BRIDLE_KEY_ENCRYPTION_KEY` over
/// `key_encryption_key_file`), else the key file beside an embedded
/// database, generated when the database has nothing sealed yet.
fn resolve(config: &Config, stored: Option<&str>) -> Result<Kek, KekError> {
    if let Some(key) = &config.key_encryption_key {
        return Kek::parse(key.expose(), &format!("`{ENV}`"));
    }
    if let Some(path) = &config.key_encryption_key_file {
        return Kek::read(path);
    }
    let path = match default_for(&config.db) {
        None => return Err(KekError::Required),
        Some(Fallback::Memory) => return Ok(Kek::generate()),
        Some(Fallback::File(path)) => path,
    };
    match Kek::read(&path) {
        Err(KekError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    if let Some(stored) = stored {
        return Err(KekError::Missing {
            path,
            stored: stored.to_owned(),
        });
    }
    let kek = Kek::generate();
    match write_new(&path, &kek) {
        Ok(()) => {}
        // Another process starting on the same database wrote one first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Kek::read(&path),
        Err(source) => return Err(KekError::Write { path, source }),
    }
    tracing::warn!(
        path = %path.display(),
        kek = %kek.id(),
        "generated a key-encryption key for the embedded database; back this file up apart from the database, which cannot sign without it"
    );
    Ok(kek)
}

/// Write a new key file readable by its owner only; fails if one exists.
fn write_new(path: &Path, kek: &Kek) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let mut text = kek.encoded();
    text.push('\n');
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the key-encryption key file is readable by other users; make it mode 0600"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kek_never_prints_its_key() {
        let kek = Kek::parse(&STANDARD.encode([0xa5u8; KEY_LEN]), "test").unwrap();
        let shown = format!("{kek:?}");
        assert!(!shown.contains("165, 165"), "{shown}");
        assert!(!shown.contains("a5a5"), "{shown}");
        assert!(
            !shown.contains(&STANDARD.encode([0xa5u8; KEY_LEN])),
            "{shown}"
        );
        assert!(shown.contains(kek.id()), "{shown}");
    }

    #[test]
    fn sealed_keys_open_only_for_their_kid_and_kek() {
        let kek = Kek::generate();
        let sealed = kek.seal("k1", b"private").unwrap();
        assert!(is_sealed(&sealed));
        assert_eq!(kek.open("k1", &sealed).unwrap().as_slice(), b"private");
        assert!(matches!(
            kek.open("k2", &sealed),
            Err(KekError::Unsealable { .. })
        ));
        let other = Kek::generate();
        assert!(matches!(
            other.open("k1", &sealed),
            Err(KekError::Wrong { .. })
        ));
        // A fresh nonce each time.
        assert_ne!(sealed, kek.seal("k1", b"private").unwrap());
    }

    #[test]
    fn keys_parse_in_any_base64_and_never_print() {
        let kek = Kek::generate();
        let text = kek.encoded();
        let again = Kek::parse(&format!(" {}\n", text.as_str()), "test").unwrap();
        assert_eq!(again.id(), kek.id());
        let url = URL_SAFE_NO_PAD.encode(kek.key.as_ref());
        assert_eq!(Kek::parse(&url, "test").unwrap().id(), kek.id());
        assert!(!format!("{kek:?}").contains(text.as_str()));
        assert!(matches!(
            Kek::parse("c2hvcnQ=", "test"),
            Err(KekError::Malformed { .. })
        ));
    }

    #[test]
    fn the_check_value_tells_the_right_kek() {
        let kek = Kek::generate();
        let check = kek.check_value().unwrap();
        kek.verify(&check).unwrap();
        assert!(matches!(
            Kek::generate().verify(&check),
            Err(KekError::Wrong { .. })
        ));
    }
}
