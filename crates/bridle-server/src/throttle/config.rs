//! `[auth_throttle]`: the limits of failed authentication.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

/// `[auth_throttle]` in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Failures of one credential from one source, within `window_secs`,
    /// that lock that pair.
    pub max_failures: u32,
    /// Failures from one source (any credential), within `window_secs`,
    /// that lock the source.
    pub source_max_failures: u32,
    /// The counting window, and the interval of summary audit events.
    pub window_secs: u64,
    /// The first lock's length; each further lock doubles it.
    pub lockout_secs: u64,
    /// The longest lock.
    pub max_lockout_secs: u64,
    /// Entries kept per table (pairs, sources, pending audit summaries).
    pub max_entries: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed. Empty (the
    /// default): the source is the TCP peer, whatever the headers say.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures: 10,
            source_max_failures: 100,
            window_secs: 60,
            lockout_secs: 60,
            max_lockout_secs: 900,
            max_entries: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThrottleConfigError {
    #[error("auth_throttle.{0} must be at least 1")]
    Zero(&'static str),
    #[error("auth_throttle.max_lockout_secs must not be below lockout_secs")]
    LockoutRange,
}

impl ThrottleConfig {
    pub fn validate(&self) -> Result<(), ThrottleConfigError> {
        let zero = [
            ("max_failures", u64::from(self.max_failures)),
            ("source_max_failures", u64::from(self.source_max_failures)),
            ("window_secs", self.window_secs),
            ("lockout_secs", self.lockout_secs),
            ("max_entries", self.max_entries as u64),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, v)| *v == 0) {
            return Err(ThrottleConfigError::Zero(name));
        }
        if self.max_lockout_secs < self.lockout_secs {
            return Err(ThrottleConfigError::LockoutRange);
        }
        Ok(())
    }

    pub(super) fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }

    /// The length of lock number `n` (0 for the first).
    pub(super) fn lockout(&self, n: u32) -> Duration {
        let secs = self
            .lockout_secs
            .saturating_mul(1u64.checked_shl(n.min(32)).unwrap_or(u64::MAX))
            .min(self.max_lockout_secs);
        Duration::from_secs(secs)
    }
}
