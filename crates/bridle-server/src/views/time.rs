//! Instants as the API writes them: fixed-width UTC with microseconds
//! (`2026-11-28T10:47:44.123456Z`), in every body and audit detail. jiff's
//! own `Display` trims the fraction, so views never use it for an instant.

use jiff::Timestamp;

/// The API's text of `t`.
pub fn instant(t: Timestamp) -> String {
    format!(
        "{}.{:06}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fraction always has six digits, so a body's instants have one
    /// width and sort as text the way they sort as times.
    #[test]
    fn instants_are_fixed_width() {
        let t: Timestamp = "2026-11-28T10:47:44.12Z".parse().unwrap_or_default();
        assert_eq!(instant(t), "2026-11-28T10:47:44.120000Z");
        let whole: Timestamp = "2026-11-28T10:47:44Z".parse().unwrap_or_default();
        assert_eq!(instant(whole), "2026-11-28T10:47:44.000000Z");
    }
}
