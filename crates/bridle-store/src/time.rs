//! Instants at the store boundary. Callers pass and receive
//! [`jiff::Timestamp`]; only this module knows the text they are stored as:
//! fixed-width UTC with microseconds (`2026-11-28T10:47:44.123456Z`), so that
//! text order is time order on both backends and SQL compares them directly.

use jiff::Timestamp;

/// A [`Timestamp`] as a column: encoded as the stored text, parsed (and so
/// validated) on decode. A stored value that does not parse is a decode
/// error, which [`crate::StoreError`] reports as corrupt data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(pub(crate) Timestamp);

impl From<Stamp> for Timestamp {
    fn from(s: Stamp) -> Self {
        s.0
    }
}

/// Now, at the precision the store keeps, so a row returned from a write
/// equals the row read back.
pub(crate) fn now() -> Timestamp {
    stored(Timestamp::now())
}

/// `t` at the store's precision (microseconds, truncated as [`ts`] does).
pub(crate) fn stored(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

/// The stored text of `t`.
pub(crate) fn ts(t: Timestamp) -> String {
    format!(
        "{}.{:06}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_microsecond()
    )
}

impl<DB: sqlx::Database> sqlx::Type<DB> for Stamp
where
    String: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for Stamp
where
    String: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, DB>>::encode(ts(self.0), buf)
    }
}

/// Why a stored instant did not decode.
#[derive(Debug, thiserror::Error)]
#[error("`{value}` is not a stored instant: {source}")]
struct BadInstant {
    value: String,
    source: jiff::Error,
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for Stamp
where
    String: sqlx::Decode<'r, DB>,
{
    fn decode(
        value: <DB as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <String as sqlx::Decode<'r, DB>>::decode(value)?;
        match text.parse::<Timestamp>() {
            Ok(t) => Ok(Self(t)),
            Err(source) => Err(Box::new(BadInstant {
                value: text,
                source,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_is_fixed_width_and_reads_back() {
        let t: Timestamp = "2026-11-28T10:47:44.12Z".parse().unwrap();
        assert_eq!(ts(t), "2026-11-28T10:47:44.120000Z");
        let whole: Timestamp = "2026-11-28T10:47:44Z".parse().unwrap();
        assert_eq!(ts(whole), "2026-11-28T10:47:44.000000Z");
        assert_eq!(ts(t).parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn now_is_kept_at_microseconds() {
        let n = now();
        assert_eq!(n.subsec_nanosecond() % 1_000, 0);
        assert_eq!(ts(n).parse::<Timestamp>().unwrap(), n);
    }
}
