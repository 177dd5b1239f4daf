//! Name globs for tools and data resources. `*` matches any run of characters
//! (dots and slashes included); there is no other wildcard. This is exactly
//! Cedar's `like` semantics, so a glob compiles to `like` unchanged and the Rust
//! matcher below (used only where Cedar is not, e.g. to list matching names)
//! agrees with the policy by construction.

use std::fmt;

use serde::Serialize;

use crate::id::is_tool_name;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Glob(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("empty pattern")]
    Empty,
    #[error("`{0}` is not a tool name or glob: use letters, digits, `_.:/-` and `*`")]
    BadToolChar(String),
    #[error("`{0}` contains a quote, backslash or control character")]
    BadResourceChar(String),
    #[error("`{0}` is too long (at most 512 characters)")]
    TooLong(String),
}

impl Glob {
    /// A tool-name glob: tool-name characters plus `*`.
    pub fn tool(s: &str) -> Result<Self, GlobError> {
        Self::check_len(s)?;
        let stripped: String = s.chars().filter(|c| *c != '*').collect();
        if !stripped.is_empty() && !is_tool_name(&stripped) {
            return Err(GlobError::BadToolChar(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    /// A data-resource glob such as `crm:cases/*`.
    pub fn resource(s: &str) -> Result<Self, GlobError> {
        Self::check_len(s)?;
        if s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            return Err(GlobError::BadResourceChar(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    fn check_len(s: &str) -> Result<(), GlobError> {
        if s.is_empty() {
            return Err(GlobError::Empty);
        }
        if s.len() > 512 {
            return Err(GlobError::TooLong(s.to_owned()));
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_literal(&self) -> bool {
        !self.0.contains('*')
    }

    /// The pattern as a Cedar `like` literal body. Tool and resource globs
    /// never hold `"` or `\`, so `*` is the only character with meaning.
    pub fn cedar_like(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches (the same answer Cedar's `like` gives).
    pub fn matches(&self, name: &str) -> bool {
        wildcard_match(self.0.as_bytes(), name.as_bytes())
    }

    /// Whether every name this glob matches is also matched by `other`
    /// (conservative: may say no for exotic pairs where the answer is yes).
    pub fn is_within(&self, other: &Glob) -> bool {
        if other.0 == "*" || self.0 == other.0 {
            return true;
        }
        if self.is_literal() {
            return other.matches(&self.0);
        }
        // `a.b*` is within `a.*`: other is a prefix glob and self starts with
        // other's literal prefix.
        match other.0.strip_suffix('*') {
            Some(prefix) if !prefix.contains('*') => self.0.starts_with(prefix),
            _ => false,
        }
    }
}

/// How specific a tool glob is, for "the most specific grant governs": a
/// literal name beats any glob; between globs, the longer literal prefix
/// (the text before the first `*`) wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Specificity {
    Glob { prefix: usize },
    Literal,
}

impl Glob {
    pub fn specificity(&self) -> Specificity {
        match self.0.find('*') {
            None => Specificity::Literal,
            Some(prefix) => Specificity::Glob { prefix },
        }
    }

    /// A name both globs match, if there is one. Exact: two patterns whose
    /// literal prefixes (before the first `*`) and literal suffixes (after
    /// the last `*`) are compatible both match the longer prefix, followed by
    /// every inner literal part of each, then the longer suffix.
    pub fn common_name(&self, other: &Glob) -> Option<String> {
        let witness = match (self.is_literal(), other.is_literal()) {
            (true, _) => self.0.clone(),
            (false, true) => other.0.clone(),
            (false, false) => {
                let parts = |g: &Glob| -> (String, String, String) {
                    let s = g.0.as_str();
                    let first = s.split('*').next().unwrap_or("").to_owned();
                    let last = s.rsplit('*').next().unwrap_or("").to_owned();
                    let inner = s
                        .get(first.len()..s.len() - last.len())
                        .unwrap_or("")
                        .replace('*', "");
                    (first, inner, last)
                };
                let (pa, ia, sa) = parts(self);
                let (pb, ib, sb) = parts(other);
                let prefix = if pa.len() >= pb.len() { pa } else { pb };
                let suffix = if sa.len() >= sb.len() { sa } else { sb };
                format!("{prefix}{ia}{ib}{suffix}")
            }
        };
        (self.matches(&witness) && other.matches(&witness)).then_some(witness)
    }

    /// Whether some name matches both globs (the test of [`Self::common_name`],
    /// without building the name: compilation asks it for every pair).
    pub fn overlaps(&self, other: &Glob) -> bool {
        match (self.is_literal(), other.is_literal()) {
            (true, true) => self.0 == other.0,
            (true, false) => other.matches(&self.0),
            (false, true) => self.matches(&other.0),
            (false, false) => {
                let prefix = |s: &'_ str| -> usize { s.find('*').unwrap_or(s.len()) };
                let suffix = |s: &'_ str| -> usize { s.rfind('*').map_or(0, |i| i + 1) };
                let (a, b) = (self.0.as_str(), other.0.as_str());
                let (pa, pb) = (
                    a.get(..prefix(a)).unwrap_or(""),
                    b.get(..prefix(b)).unwrap_or(""),
                );
                let (sa, sb) = (
                    a.get(suffix(a)..).unwrap_or(""),
                    b.get(suffix(b)..).unwrap_or(""),
                );
                (pa.starts_with(pb) || pb.starts_with(pa)) && (sa.ends_with(sb) || sb.ends_with(sa))
            }
        }
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Iterative `*`-only matcher with single backtrack point: linear in practice,
/// never exponential.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        let here = pattern.get(p).copied();
        if here == Some(b'*') {
            star = Some((p, t));
            p += 1;
        } else if here == Some(c) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|b| *b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn star_spans_dots_and_slashes() {
        let g = Glob::tool("github.*").unwrap();
        assert!(g.matches("github.create_pull_request"));
        assert!(g.matches("github.a.b/c"));
        assert!(!g.matches("gitlab.x"));
        assert!(Glob::tool("*").unwrap().matches("anything"));
        assert!(
            Glob::tool("procurement.approve_*")
                .unwrap()
                .matches("procurement.approve_po")
        );
        assert!(Glob::tool("a*b*c").unwrap().matches("aXXbYYc"));
        assert!(!Glob::tool("a*b*c").unwrap().matches("aXXbYY"));
    }

    #[test]
    fn rejects_bad_characters() {
        assert!(Glob::tool("github.[a]").is_err());
        assert!(Glob::tool("a b").is_err());
        assert!(Glob::tool("").is_err());
        assert!(Glob::resource("crm:\"x").is_err());
        assert!(Glob::resource("crm:cases/*").is_ok());
    }

    #[test]
    fn within_is_sound_on_examples() {
        let g = |s| Glob::tool(s).unwrap();
        assert!(g("github.create").is_within(&g("github.*")));
        assert!(g("github.pr.*").is_within(&g("github.*")));
        assert!(!g("github.*").is_within(&g("github.pr.*")));
        assert!(g("x").is_within(&g("*")));
    }

    #[test]
    fn specificity_orders_literals_then_longer_prefixes() {
        let g = |s| Glob::tool(s).unwrap();
        assert!(g("invoices.pay_invoice").specificity() > g("invoices.pay_*").specificity());
        assert!(g("invoices.pay_*").specificity() > g("invoices.*").specificity());
        assert!(g("invoices.*").specificity() > g("*").specificity());
        assert_eq!(g("a.*").specificity(), g("b.*x").specificity());
    }

    #[test]
    fn common_names_are_found_and_checked() {
        let g = |s| Glob::tool(s).unwrap();
        assert_eq!(
            g("a.*").common_name(&g("*.read")).as_deref(),
            Some("a..read")
        );
        assert_eq!(g("a.*").common_name(&g("a.b")).as_deref(), Some("a.b"));
        assert_eq!(g("a.*").common_name(&g("b.*")), None);
        assert_eq!(g("*.read").common_name(&g("*.write")), None);
        assert_eq!(g("x").common_name(&g("y")), None);
    }

    proptest! {
        /// `common_name` finds a shared name whenever a brute-force search
        /// over short names does (and only then, by construction).
        #[test]
        fn overlap_is_exact(a in "[ab*]{1,4}", b in "[ab*]{1,4}") {
            let (ga, gb) = (Glob::tool(&a).unwrap(), Glob::tool(&b).unwrap());
            let mut names = vec![String::new()];
            for _ in 0..8 {
                let next: Vec<String> = names.iter().flat_map(|n| [format!("{n}a"), format!("{n}b")]).collect();
                names.extend(next);
                names.sort();
                names.dedup();
            }
            let brute = names.iter().any(|n| ga.matches(n) && gb.matches(n));
            if brute {
                prop_assert!(ga.overlaps(&gb), "{} and {} share a name", a, b);
            }
            prop_assert_eq!(ga.overlaps(&gb), ga.common_name(&gb).is_some(), "{} {}", a, b);
        }

        #[test]
        fn matcher_agrees_with_a_regex(pat in "[ab.*]{0,6}", text in "[ab.]{0,8}") {
            prop_assume!(!pat.is_empty());
            let re = regex::Regex::new(&format!(
                "^{}$",
                pat.split('*').map(regex::escape).collect::<Vec<_>>().join(".*")
            )).unwrap();
            prop_assert_eq!(Glob::tool(&pat).unwrap().matches(&text), re.is_match(&text));
        }

        #[test]
        fn within_implies_every_match_matches(a in "[ab.*]{1,5}", b in "[ab.*]{1,5}", text in "[ab.]{0,8}") {
            let (ga, gb) = (Glob::tool(&a).unwrap(), Glob::tool(&b).unwrap());
            if ga.is_within(&gb) && ga.matches(&text) {
                prop_assert!(gb.matches(&text));
            }
        }
    }
}
