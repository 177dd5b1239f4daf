//! The most specific grant governs: a tool matched by several grants is
//! governed by the most specific one alone (a literal name beats any glob;
//! between globs, the longer literal prefix wins). Two grants of equal
//! specificity that match one name are a load error, so the governing grant
//! is always unique. The same holds for elevation tools among themselves.
//!
//! `compile.rs` turns this into Cedar: each glob's permit excludes the names
//! of every more specific grant that overlaps it, so Cedar still decides.

use crate::glob::{Glob, Specificity};
use crate::manifest::Manifest;

/// Two globs of equal specificity that both match `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    pub first: usize,
    pub second: usize,
    pub name: String,
}

/// Every pair of equal specificity that matches a common name.
pub fn equal_overlaps(globs: &[&Glob]) -> Vec<Overlap> {
    let mut out = Vec::new();
    for (i, a) in globs.iter().enumerate() {
        for (j, b) in globs.iter().enumerate().skip(i + 1) {
            if a.specificity() == b.specificity()
                && a.overlaps(b)
                && let Some(name) = a.common_name(b)
            {
                out.push(Overlap {
                    first: i,
                    second: j,
                    name,
                });
            }
        }
    }
    out
}

/// The globs more specific than `globs[i]` that share a name with it: the
/// names `globs[i]` must leave to them.
pub fn more_specific(globs: &[&Glob], i: usize) -> Vec<usize> {
    let Some(g) = globs.get(i) else {
        return Vec::new();
    };
    if g.is_literal() {
        return Vec::new();
    }
    let s = g.specificity();
    globs
        .iter()
        .enumerate()
        .filter(|(j, o)| *j != i && o.specificity() > s && o.overlaps(g))
        .map(|(j, _)| j)
        .collect()
}

/// The index of the glob that governs `tool`: the most specific that
/// matches (the first, should a manifest that failed to load be asked).
pub fn governing(globs: &[&Glob], tool: &str) -> Option<usize> {
    let mut best: Option<(usize, Specificity)> = None;
    for (i, g) in globs.iter().enumerate() {
        if g.matches(tool) && best.is_none_or(|(_, s)| g.specificity() > s) {
            best = Some((i, g.specificity()));
        }
    }
    best.map(|(i, _)| i)
}

/// Why `winner` governs where `loser` also matches.
pub fn why(winner: &Glob, loser: &Glob) -> String {
    match (winner.specificity(), loser.specificity()) {
        (Specificity::Literal, _) => format!("a literal name beats `{loser}`"),
        (Specificity::Glob { prefix: w }, Specificity::Glob { prefix: l }) => {
            format!("its literal prefix ({w} characters) is longer than that of `{loser}` ({l})")
        }
        _ => format!("it is more specific than `{loser}`"),
    }
}

/// Which tool grant governs `tool`, and over which other matching grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Governance {
    pub grant: usize,
    pub over: Vec<usize>,
}

pub fn governance(m: &Manifest, tool: &str) -> Option<Governance> {
    let globs: Vec<&Glob> = m.tools.iter().map(|g| &g.name).collect();
    let grant = governing(&globs, tool)?;
    let over = globs
        .iter()
        .enumerate()
        .filter(|(j, g)| *j != grant && g.matches(tool))
        .map(|(j, _)| j)
        .collect();
    Some(Governance { grant, over })
}

/// A sentence for `check` and decision reasons when several grants match
/// `tool`: "governed by `invoices.pay_invoice` (a literal name beats
/// `invoices.*`)". `None` when only one grant (or none) matches.
pub fn explain(m: &Manifest, tool: &str) -> Option<String> {
    let g = governance(m, tool)?;
    if g.over.is_empty() {
        return None;
    }
    let winner = &m.tools.get(g.grant)?.name;
    let reasons: Vec<String> = g
        .over
        .iter()
        .filter_map(|j| m.tools.get(*j))
        .map(|l| why(winner, &l.name))
        .collect();
    Some(format!("governed by `{winner}` ({})", reasons.join("; ")))
}
