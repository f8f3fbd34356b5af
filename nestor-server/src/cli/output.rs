//! How the CLI prints: `-o table` for people, `-o json|yaml` for programs.
//! Every command builds one serialisable value and one table from it, so
//! the machine formats carry exactly what the table shows and more.

use std::fmt::Write as _;

use clap::ValueEnum;
use serde::Serialize;

/// The output formats of `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// JSON, one document.
    Json,
    /// YAML, one document.
    Yaml,
}

/// A table of text cells.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders with two spaces between columns and no trailing blanks.
    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().take(cols).enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |cells: Vec<&str>, out: &mut String| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<w$}  ", w = widths[i]);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(self.headers.clone(), &mut out);
        for row in &self.rows {
            let cells: Vec<&str> = (0..cols)
                .map(|i| row.get(i).map(String::as_str).unwrap_or(""))
                .collect();
            line(cells, &mut out);
        }
        out
    }
}

/// Prints `value` in the machine formats, or `table()` for people.
pub fn emit<T: Serialize>(
    format: Format,
    value: &T,
    table: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    match format {
        Format::Table => print!("{}", table()),
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_yaml::to_string(value)?),
    }
    Ok(())
}

/// Shortens text for a table cell.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Formats a Unix timestamp as RFC 3339 (UTC, seconds).
pub fn timestamp(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&["NAME", "VERSION"]);
        t.row(vec!["aws-rds-mysql".into(), "1.2.0".into()]);
        t.row(vec!["s3".into(), "10.0.0".into()]);
        assert_eq!(
            t.render(),
            "NAME           VERSION\naws-rds-mysql  1.2.0\ns3             10.0.0\n"
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
    }
}
