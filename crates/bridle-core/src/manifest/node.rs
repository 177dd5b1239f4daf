//! A small owned YAML tree where every node knows its line and column. The
//! manifest parser walks this tree so that every error can point into the file.
//! JSON manifests go through the same path: JSON is a subset of YAML 1.2.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

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
    pub message: String,
}

/// The deepest nesting a manifest may have. Real manifests need five or six
/// levels; the bound keeps hostile input from exhausting the stack.
const MAX_DEPTH: usize = 32;

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

fn pos_of(marker: &saphyr::Marker) -> Pos {
    Pos {
        line: marker.line(),
        column: marker.col() + 1,
    }
}

/// Parse exactly one YAML (or JSON) document.
pub(crate) fn parse_document(source: &str) -> Result<Node, SyntaxError> {
    let docs = MarkedYaml::load_from_str(source).map_err(|e| SyntaxError {
        pos: pos_of(e.marker()),
        message: e.info().to_owned(),
    })?;
    let mut docs = docs.into_iter();
    let Some(doc) = docs.next() else {
        return Err(SyntaxError {
            pos: Pos { line: 1, column: 1 },
            message: "the file is empty: expected a manifest mapping".into(),
        });
    };
    if let Some(extra) = docs.next() {
        return Err(SyntaxError {
            pos: pos_of(&extra.span.start),
            message: "expected one manifest per file, found a second YAML document".into(),
        });
    }
    convert(&doc, 0)
}

fn convert(node: &MarkedYaml<'_>, depth: usize) -> Result<Node, SyntaxError> {
    let pos = pos_of(&node.span.start);
    if depth > MAX_DEPTH {
        return Err(SyntaxError {
            pos,
            message: format!("nesting deeper than {MAX_DEPTH} levels"),
        });
    }
    let value = match &node.data {
        YamlData::Value(scalar) => match scalar {
            Scalar::Null => Value::Null,
            Scalar::Boolean(b) => Value::Bool(*b),
            Scalar::Integer(i) => Value::Int(*i),
            Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
            Scalar::String(s) => Value::Str(s.to_string()),
        },
        YamlData::Representation(raw, _, _) => Value::Str(raw.to_string()),
        YamlData::Sequence(items) => Value::Seq(
            items
                .iter()
                .map(|n| convert(n, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key_pos = pos_of(&k.span.start);
                let key = match &k.data {
                    YamlData::Value(Scalar::String(s)) => s.to_string(),
                    YamlData::Value(Scalar::Integer(i)) => i.to_string(),
                    YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
                    _ => {
                        return Err(SyntaxError {
                            pos: key_pos,
                            message: "mapping keys must be plain strings".into(),
                        });
                    }
                };
                entries.push((key, key_pos, convert(v, depth + 1)?));
            }
            Value::Map(entries)
        }
        YamlData::Alias(_) => {
            return Err(SyntaxError {
                pos,
                message: "unresolved YAML alias".into(),
            });
        }
        YamlData::Tagged(_, _) => {
            return Err(SyntaxError {
                pos,
                message: "YAML tags are not allowed in a manifest".into(),
            });
        }
        YamlData::BadValue => {
            return Err(SyntaxError {
                pos,
                message: "invalid YAML value".into(),
            });
        }
    };
    Ok(Node { pos, value })
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
