//! Secrets held in memory (API keys, key-encryption keys, key material):
//! no `Debug` or `Display` prints them, and they are wiped when dropped.

use std::fmt;

use serde::{Deserialize, Deserializer};
use zeroize::{Zeroize, Zeroizing};

/// A secret value. Reading it takes an explicit [`Secret::expose`].
#[derive(Clone)]
pub struct Secret<T: Zeroize>(Zeroizing<T>);

impl<T: Zeroize> Secret<T> {
    pub fn new(value: impl Into<T>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret itself; for the one place that uses it, never for output.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize + Default> Default for Secret<T> {
    fn default() -> Self {
        Self(Zeroizing::new(T::default()))
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de, T: Zeroize + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|v| Self(Zeroizing::new(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let text: Secret<String> = Secret::new("bk_hunter2");
        let bytes: Secret<Vec<u8>> = Secret::new(b"\x13\x37key".to_vec());
        for shown in [
            format!("{text:?}"),
            format!("{bytes:?}"),
            format!("{:#?}", Some(&text)),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("19, 55"), "{shown}");
            assert!(shown.contains("Secret(***)"), "{shown}");
        }
        assert_eq!(text.expose(), "bk_hunter2");
    }

    #[test]
    fn deserialises_transparently() {
        let s: Secret<String> = serde_json::from_str("\"k\"").unwrap();
        assert_eq!(s.expose(), "k");
    }
}
