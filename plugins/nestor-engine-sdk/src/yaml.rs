//! A small block-style YAML writer for [`serde_json::Value`].
//!
//! Strings that could read as anything but a string under YAML 1.1 or 1.2
//! (`yes`, `0755`, `1e3`, `null`, `key: value`, ...) are written
//! double-quoted with JSON escapes, which every YAML parser reads back as the
//! same string; everything else is written plain, as a person would.

use serde_json::Value;

/// The document for `value`, ending with a newline.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_block(&mut out, value, 0),
        Value::Array(items) if !items.is_empty() => write_block(&mut out, value, 0),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

/// Several documents separated by `---`.
pub fn to_multi_document_string(values: &[Value]) -> String {
    values
        .iter()
        .map(to_string)
        .collect::<Vec<_>>()
        .join("---\n")
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

fn write_block(out: &mut String, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                out.push_str(&pad);
                out.push_str(&string_text(key));
                if is_block(child) {
                    out.push_str(":\n");
                    write_block(out, child, indent + 2);
                } else {
                    out.push_str(": ");
                    out.push_str(&scalar_text(child));
                    out.push('\n');
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if is_block(item) {
                    // Render the child two columns deeper, then put the dash
                    // where its first line's indentation was.
                    let mut child = String::new();
                    write_block(&mut child, item, indent + 2);
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(&child[indent + 2..]);
                } else {
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(&scalar_text(item));
                    out.push('\n');
                }
            }
        }
        scalar => {
            out.push_str(&pad);
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_text(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn string_text(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string serialises")
    }
}

const RESERVED: &[&str] = &[
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
];

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '_' || first == '/') {
        return false;
    }
    if s.ends_with(' ') || s.ends_with(':') || RESERVED.contains(&s.to_ascii_lowercase().as_str()) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") {
        return false;
    }
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./@+=: ".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_block_yaml() {
        let doc = json!({
            "apiVersion": "v1",
            "list": [{"a": 1, "b": [true, "yes"]}, "x: y", []],
            "empty": {},
            "mode": "0755",
            "nested": {"deep": {"k": null}},
        });
        let text = to_string(&doc);
        assert_eq!(
            text,
            "apiVersion: v1\nempty: {}\nlist:\n  - a: 1\n    b:\n      - true\n      - \"yes\"\n  - \"x: y\"\n  - []\n\
             mode: \"0755\"\nnested:\n  deep:\n    k: null\n"
        );
    }
}
