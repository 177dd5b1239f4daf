//! A small owned YAML tree where every node knows its line and column. The
//! manifest parser walks this tree so that every error can point into the file.
//! JSON manifests go through the same path: JSON is a subset of YAML 1.2.
//!
//! The tree is built straight from the parser's events, without recursion,
//! so hostile input is refused at the first event past a bound: nesting
//! deeper than [`MAX_DEPTH`], aliases expanding past [`MAX_ALIAS_NODES`], a
//! key repeated in one mapping (named by its path and line).

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr::{Scalar, Yaml};
use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use super::limits::{MAX_ALIAS_NODES, MAX_DEPTH};

/// 1-based line and column in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Pos, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// A syntax error in the file itself (before any field is looked at).
#[derive(Debug, Clone)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    /// Field path of the offending node (`tools[0].name`); empty for the
    /// document.
    pub path: String,
    pub message: String,
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number with a fraction",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node as JSON (for arguments and for storing the manifest).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => s.clone().into(),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, _, v)| (k.clone(), v.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

/// A node serialises as the YAML value it holds, mappings in source order
/// (a least-privilege suggestion is written back this way).
impl serde::Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.value {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(x) => s.serialize_str(x),
            Value::Seq(items) => s.collect_seq(items),
            Value::Map(entries) => s.collect_map(entries.iter().map(|(k, _, v)| (k, v))),
        }
    }
}

fn pos_of(marker: &saphyr_parser::Marker) -> Pos {
    Pos {
        line: marker.line(),
        column: marker.col() + 1,
    }
}

/// A mapping or list being built.
struct Frame {
    pos: Pos,
    anchor: usize,
    /// Nodes in this subtree so far (itself included).
    size: usize,
    /// Levels below this node so far.
    height: usize,
    kind: FrameKind,
}

enum FrameKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(String, Pos, Node)>,
        /// The key read, waiting for its value.
        key: Option<(String, Pos)>,
        /// Keys so far, with their lines.
        seen: HashMap<String, usize>,
    },
}

/// A finished node with its measures (for alias expansion).
#[derive(Clone)]
struct Built {
    node: Node,
    size: usize,
    height: usize,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Built>,
    alias_nodes: usize,
    root: Option<Node>,
    documents: usize,
}

impl Builder {
    /// The field path where the next node goes.
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match &frame.kind {
                FrameKind::Seq(items) => path.push_str(&format!("[{}]", items.len())),
                FrameKind::Map {
                    key: Some((key, _)),
                    ..
                } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                FrameKind::Map { key: None, .. } => {}
            }
        }
        path
    }

    fn error(&self, pos: Pos, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos,
            path: self.path(),
            message: message.into(),
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                kind: FrameKind::Map { key: None, .. },
                ..
            })
        )
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), SyntaxError> {
        let pos = pos_of(&span.start);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(self.error(
                        pos,
                        "expected one manifest per file, found a second YAML document",
                    ));
                }
            }
            Event::SequenceStart(anchor, tag) => {
                self.open(pos, anchor, tag.as_ref(), FrameKind::Seq(Vec::new()))?;
            }
            Event::MappingStart(anchor, tag) => {
                let kind = FrameKind::Map {
                    entries: Vec::new(),
                    key: None,
                    seen: HashMap::new(),
                };
                self.open(pos, anchor, tag.as_ref(), kind)?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Err(self.error(pos, "unbalanced YAML collection"));
                };
                let value = match frame.kind {
                    FrameKind::Seq(items) => Value::Seq(items),
                    FrameKind::Map { entries, .. } => Value::Map(entries),
                };
                let built = Built {
                    node: Node {
                        pos: frame.pos,
                        value,
                    },
                    size: frame.size,
                    height: frame.height + 1,
                };
                self.finish(built, frame.anchor, pos)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(text, style, tag.as_ref()).map_err(|m| self.error(pos, m))?;
                let built = Built {
                    node: Node { pos, value },
                    size: 1,
                    height: 0,
                };
                self.finish(built, anchor, pos)?;
            }
            Event::Alias(id) => {
                let Some(anchored) = self.anchors.get(&id) else {
                    return Err(self.error(pos, "unknown YAML alias"));
                };
                let mut built = anchored.clone();
                self.alias_nodes = self.alias_nodes.saturating_add(built.size);
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(self.error(
                        pos,
                        format!("YAML aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                    ));
                }
                if self.stack.len() + built.height > MAX_DEPTH {
                    return Err(self.error(pos, format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                built.node.pos = pos;
                self.finish(built, 0, pos)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn open(
        &mut self,
        pos: Pos,
        anchor: usize,
        tag: Option<&Cow<'_, Tag>>,
        kind: FrameKind,
    ) -> Result<(), SyntaxError> {
        if self.expecting_key() {
            return Err(self.error(pos, "mapping keys must be plain strings"));
        }
        if tag.is_some_and(|t| !t.is_yaml_core_schema()) {
            return Err(self.error(pos, "YAML tags are not allowed in a manifest"));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(pos, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.stack.push(Frame {
            pos,
            anchor,
            size: 1,
            height: 0,
            kind,
        });
        Ok(())
    }

    /// Put a finished node where it belongs: into its parent (as a list
    /// item, a key or a value) or as the document.
    fn finish(&mut self, built: Built, anchor: usize, pos: Pos) -> Result<(), SyntaxError> {
        if anchor > 0 {
            self.anchors.insert(anchor, built.clone());
        }
        let path = self.path();
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(built.node);
            return Ok(());
        };
        parent.size = parent.size.saturating_add(built.size);
        parent.height = parent.height.max(built.height);
        match &mut parent.kind {
            FrameKind::Seq(items) => items.push(built.node),
            FrameKind::Map { entries, key, seen } => match key.take() {
                Some((k, key_pos)) => entries.push((k, key_pos, built.node)),
                None => {
                    let k = match built.node.value {
                        Value::Str(s) => s,
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(SyntaxError {
                                pos,
                                path,
                                message: "mapping keys must be plain strings".into(),
                            });
                        }
                    };
                    if let Some(first) = seen.get(&k) {
                        let path = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        return Err(SyntaxError {
                            pos: built.node.pos,
                            path,
                            message: format!(
                                "duplicate key `{k}` (first at line {}); a key may appear once per mapping",
                                first
                            ),
                        });
                    }
                    seen.insert(k.clone(), built.node.pos.line);
                    *key = Some((k, built.node.pos));
                }
            },
        }
        Ok(())
    }
}

/// A scalar as the YAML 1.2 core schema reads it.
fn scalar(
    text: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&Cow<'_, Tag>>,
) -> Result<Value, &'static str> {
    match Yaml::value_from_cow_and_metadata(text, style, tag) {
        Yaml::Value(s) => Ok(match s {
            Scalar::Null => Value::Null,
            Scalar::Boolean(b) => Value::Bool(b),
            Scalar::Integer(i) => Value::Int(i),
            Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
            Scalar::String(s) => Value::Str(s.into_owned()),
        }),
        Yaml::Representation(raw, _, _) => Ok(Value::Str(raw.into_owned())),
        Yaml::Tagged(_, _) => Err("YAML tags are not allowed in a manifest"),
        _ => Err("invalid YAML value"),
    }
}

/// Parse exactly one YAML (or JSON) document.
pub(crate) fn parse_document(source: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(source) {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: pos_of(e.marker()),
            path: builder.path(),
            message: format!("invalid YAML: {}", e.info()),
        })?;
        builder.event(event, span)?;
    }
    builder.root.ok_or_else(|| SyntaxError {
        pos: Pos { line: 1, column: 1 },
        path: String::new(),
        message: "the file is empty: expected a manifest mapping".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let doc = parse_document("a: 1\nb:\n  - x\n").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].1, Pos { line: 1, column: 1 });
        let Value::Seq(items) = &entries[1].2.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0].pos, Pos { line: 3, column: 5 });
    }

    #[test]
    fn json_parses_through_the_same_path() {
        let doc = parse_document(r#"{"agent": "x", "n": [1, 2]}"#).unwrap();
        assert_eq!(
            doc.to_json(),
            serde_json::json!({"agent": "x", "n": [1, 2]})
        );
    }

    #[test]
    fn duplicate_keys_and_second_documents_are_errors() {
        assert!(parse_document("a: 1\na: 2\n").is_err());
        assert!(parse_document("a: 1\n---\nb: 2\n").is_err());
        assert!(parse_document("").is_err());
    }

    #[test]
    fn aliases_resolve_but_cannot_explode() {
        let doc = parse_document("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(doc.to_json(), serde_json::json!({"a": [1, 2], "b": [1, 2]}));
        let mut laughs = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            laughs.push_str(&format!("l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"));
        }
        assert!(parse_document(&laughs).is_err());
    }
}
