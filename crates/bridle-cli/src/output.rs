//! Rendering answers for people (aligned tables, `key: value` blocks) or for
//! programs (`--output json`), and turning a command's result into its exit
//! code.

use std::io::Write as _;
use std::process::ExitCode;

use serde_json::Value;

use crate::Output;
use crate::client::ClientError;

/// Writes `text` to stdout. A reader that went away (`bridle … | head`)
/// ends the process quietly with 141, as a shell reports a process its
/// closed pipe stopped; any other failure to write (a full disk under
/// `> FILE`) is an error on stderr and exit 1, never a panic and never a
/// silently short output.
pub(crate) fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            std::process::exit(1);
        }
    }
}

/// `print!` through [`out`].
macro_rules! say {
    ($($t:tt)*) => { $crate::output::out(&format!($($t)*)) };
}

/// `println!` through [`out`].
macro_rules! sayln {
    ($($t:tt)*) => {{
        let mut line = format!($($t)*);
        line.push('\n');
        $crate::output::out(&line)
    }};
}

/// Print what a command rendered; on error print `error: …` to stderr.
/// Exit code 0 or 1.
pub(crate) fn finish(result: Result<String, ClientError>) -> ExitCode {
    match result {
        Ok(text) => {
            out(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The answer as pretty JSON (with `--output json`) or as `text(value)`.
pub(crate) fn render(output: Output, value: &Value, text: impl FnOnce(&Value) -> String) -> String {
    match output {
        Output::Json => json(value),
        Output::Text => text(value),
    }
}

pub(crate) fn json(value: &Value) -> String {
    // A `Value`'s alternate `Display` is `to_string_pretty`, and cannot fail.
    format!("{value:#}\n")
}

/// A scalar for a table cell: strings bare, `null`/missing as `-`, arrays
/// joined with commas (`-` when empty), anything else as JSON.
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Columns padded to their widest cell; the last column is not padded.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, c) in cells.enumerate() {
            match widths.get(i) {
                Some(w) if i + 1 < widths.len() => out.push_str(&format!("{c:<w$}  ")),
                _ => out.push_str(c),
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// `key: value` lines with the values aligned.
pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    pairs
        .iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:")))
        .collect()
}

/// The array under `key`, or nothing.
pub(crate) fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_and_show_missing_values_as_dashes() {
        let rows = vec![
            vec!["procurement-bot".into(), cell(&json!(3)), cell(&json!([]))],
            vec![
                "ir".into(),
                cell(&json!(null)),
                cell(&json!(["expired", "orphaned"])),
            ],
        ];
        assert_eq!(
            table(&["ID", "VERSION", "FLAGS"], &rows),
            "ID               VERSION  FLAGS\n\
             procurement-bot  3        -\n\
             ir               -        expired,orphaned\n"
        );
    }

    #[test]
    fn fields_align_values() {
        assert_eq!(
            fields(&[("id", "x".into()), ("version", "2".into())]),
            "id:      x\nversion: 2\n"
        );
    }
}
