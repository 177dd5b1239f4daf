//! Delegation rules for RFC 8693 token chains: who may hand a token to whom,
//! how deep a chain may grow, and how a token's scope may be narrowed. The
//! token endpoint applies them when it exchanges a token; the decision path
//! applies them again to every presented token, so a manifest change ends
//! the chains it no longer allows.

use crate::glob::Glob;
use crate::manifest::Manifest;

/// Why a chain or a scope is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelegationError {
    #[error(
        "`{from}` may not delegate to `{to}` (its manifest's `delegation.to` does not list it)"
    )]
    NotListed { from: String, to: String },
    #[error("the chain is {depth} deep, beyond `{from}`'s `delegation.max_depth` of {max}")]
    TooDeep {
        from: String,
        depth: usize,
        max: u32,
    },
    #[error("scope `{0}` is not within the token being exchanged")]
    Widens(String),
    #[error("`{0}` is not a tool name or glob")]
    BadScope(String),
}

/// Check a delegation path: the original delegator first, the current actor
/// last. Each agent must list the next in `delegation.to`, and no agent may
/// have more hops after it than its own `delegation.max_depth`.
pub fn check_path(path: &[&Manifest]) -> Result<(), DelegationError> {
    for (i, (from, to)) in path.iter().zip(path.iter().skip(1)).enumerate() {
        if !from.delegation.to.contains(&to.agent) {
            return Err(DelegationError::NotListed {
                from: from.agent.to_string(),
                to: to.agent.to_string(),
            });
        }
        let depth = path.len() - 1 - i;
        if depth > from.delegation.max_depth as usize {
            return Err(DelegationError::TooDeep {
                from: from.agent.to_string(),
                depth,
                max: from.delegation.max_depth,
            });
        }
    }
    Ok(())
}

/// Whether every name matched by glob `inner` is matched by glob `outer`.
/// Exact for literal names and for `prefix*` outers; otherwise only equal
/// globs count (never a false yes).
fn within(inner: &Glob, outer: &Glob) -> bool {
    let (i, o) = (inner.as_str(), outer.as_str());
    if !i.contains('*') {
        return outer.matches(i);
    }
    match o.strip_suffix('*') {
        Some(prefix) if !prefix.contains('*') => i.starts_with(prefix),
        _ => i == o,
    }
}

/// The scope of an exchanged token: `requested` (space-separated) narrowed
/// within `parent`; the parent's scope when nothing is requested. `None`
/// means unscoped (the manifests alone bound the token).
pub fn narrow(
    parent: Option<&str>,
    requested: Option<&str>,
) -> Result<Option<String>, DelegationError> {
    let parse = |s: &str| -> Result<Vec<Glob>, DelegationError> {
        s.split_whitespace()
            .map(|t| Glob::tool(t).map_err(|_| DelegationError::BadScope(t.to_owned())))
            .collect()
    };
    let requested = requested.map(str::trim).filter(|s| !s.is_empty());
    let Some(requested) = requested else {
        return Ok(parent.map(str::to_owned));
    };
    let wanted = parse(requested)?;
    if let Some(parent) = parent {
        let allowed = parse(parent)?;
        if let Some(g) = wanted
            .iter()
            .find(|g| !allowed.iter().any(|a| within(g, a)))
        {
            return Err(DelegationError::Widens(g.as_str().to_owned()));
        }
    }
    Ok(Some(
        wanted
            .iter()
            .map(Glob::as_str)
            .collect::<Vec<_>>()
            .join(" "),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(agent: &str, to: &[&str], max_depth: u32) -> Manifest {
        let to: Vec<String> = to.iter().map(|s| format!("\"{s}\"")).collect();
        let src = format!(
            "agent: {agent}\nowner: alice\npurpose: test\nenvironment: dev\nexpires: 2099-01-01\n\
             delegation: {{ to: [{}], max_depth: {max_depth} }}\n",
            to.join(", ")
        );
        Manifest::from_source(&src).unwrap()
    }

    #[test]
    fn each_hop_must_be_listed_and_depth_is_bounded_per_delegator() {
        let a = manifest("a", &["b"], 2);
        let b = manifest("b", &["c"], 1);
        let c = manifest("c", &["d"], 1);
        let d = manifest("d", &[], 1);
        assert_eq!(check_path(&[&a]), Ok(()));
        assert_eq!(check_path(&[&a, &b]), Ok(()));
        assert_eq!(check_path(&[&a, &b, &c]), Ok(()));
        assert!(matches!(
            check_path(&[&a, &b, &c, &d]),
            Err(DelegationError::TooDeep { ref from, depth: 3, max: 2 }) if from == "a"
        ));
        assert!(matches!(
            check_path(&[&b, &a]),
            Err(DelegationError::NotListed { .. })
        ));
        let a1 = manifest("a", &["b"], 1);
        assert!(matches!(
            check_path(&[&a1, &b, &c]),
            Err(DelegationError::TooDeep {
                depth: 2,
                max: 1,
                ..
            })
        ));
    }

    #[test]
    fn scope_only_narrows() {
        assert_eq!(narrow(None, None), Ok(None));
        assert_eq!(narrow(Some("a.x"), None), Ok(Some("a.x".into())));
        assert_eq!(narrow(None, Some("ci.*")), Ok(Some("ci.*".into())));
        assert_eq!(
            narrow(Some("ci.*"), Some("ci.run ci.t*")),
            Ok(Some("ci.run ci.t*".into()))
        );
        assert_eq!(
            narrow(Some("ci.run"), Some("ci.*")),
            Err(DelegationError::Widens("ci.*".into()))
        );
        assert_eq!(
            narrow(Some("ci.r*n"), Some("ci.r*")),
            Err(DelegationError::Widens("ci.r*".into()))
        );
        assert_eq!(
            narrow(Some("ci.run"), Some("gh.merge")),
            Err(DelegationError::Widens("gh.merge".into()))
        );
        assert!(matches!(
            narrow(None, Some("bad name!")),
            Err(DelegationError::BadScope(_))
        ));
    }
}
