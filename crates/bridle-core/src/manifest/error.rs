//! Manifest errors: every one names the field path, the line and column, and
//! what was expected. A file's errors are collected, not stopped at the first.

use std::fmt;

use serde::Serialize;

use super::node::Pos;

/// One problem in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestError {
    /// Field path such as `tools[1].args.amount.max`; empty for the document.
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ManifestError {
    pub(crate) fn new(path: impl Into<String>, pos: Pos, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "line {}:{}: {}", self.line, self.column, self.message)
        } else {
            write!(
                f,
                "line {}:{}: `{}`: {}",
                self.line, self.column, self.path, self.message
            )
        }
    }
}

/// All the problems found in one manifest, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ManifestErrors {
    pub errors: Vec<ManifestError>,
}

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "invalid manifest: {n} error{}",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// The closest of `candidates` to `word`, if it is plausibly a typo of it.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // One row of the Levenshtein table: `row[j]` is the distance between the
    // prefix of `a` read so far and the first `j` characters of `b`.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = i;
        let mut left = i + 1;
        let mut next = Vec::with_capacity(row.len());
        next.push(left);
        for (cb, up) in b.iter().zip(row.iter().skip(1)) {
            let cur = (diagonal + usize::from(ca != *cb))
                .min(left + 1)
                .min(up + 1);
            diagonal = *up;
            left = cur;
            next.push(cur);
        }
        row = next;
    }
    row.last().copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(did_you_mean("ownr", &["owner", "team"]), Some("owner"));
        assert_eq!(did_you_mean("tols", &["tools", "team"]), Some("tools"));
        assert_eq!(did_you_mean("zzzzzz", &["owner", "team"]), None);
    }
}
