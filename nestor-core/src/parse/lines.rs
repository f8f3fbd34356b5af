//! Points field errors at lines of the YAML text.

use crate::error::FieldError;

/// Fills in `line` for each error by finding its field path in the document
/// text: each key of the path is searched for below the previous one, and
/// list indices count `- ` items. Falls back to the document's first line.
pub fn locate_lines(text: &str, first_line: usize, errors: &mut [FieldError]) {
    let lines: Vec<&str> = text.lines().collect();
    for e in errors.iter_mut() {
        e.line = Some(first_line + locate(&lines, &e.field).unwrap_or(0));
    }
}

fn locate(lines: &[&str], field: &str) -> Option<usize> {
    let mut pos = 0usize;
    let mut found = None;
    let mut min_indent = 0usize;
    for segment in field.split('.').filter(|s| !s.is_empty()) {
        let (key, indices) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        let camel = super::camel_case(key);
        let hit = lines.iter().enumerate().skip(pos).find(|(_, l)| {
            let indent = l.len() - l.trim_start().len();
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            indent >= min_indent
                && (t.starts_with(&format!("{key}:"))
                    || t.starts_with(&format!("{camel}:"))
                    || t.starts_with(&format!("\"{key}\":")))
        });
        let Some((i, l)) = hit else { return found };
        pos = i + 1;
        found = Some(i);
        min_indent = l.len() - l.trim_start().len();
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            let n: usize = idx.parse().ok()?;
            let items: Vec<usize> = lines
                .iter()
                .enumerate()
                .skip(pos)
                .take_while(|(_, l)| {
                    l.trim().is_empty() || l.len() - l.trim_start().len() >= min_indent
                })
                .filter(|(_, l)| l.trim_start().starts_with("- ") || l.trim() == "-")
                .map(|(i, _)| i)
                .collect();
            let item_indent = items
                .first()
                .map(|&i| lines[i].len() - lines[i].trim_start().len())?;
            let same_level: Vec<usize> = items
                .into_iter()
                .filter(|&i| lines[i].len() - lines[i].trim_start().len() == item_indent)
                .collect();
            let at = *same_level.get(n)?;
            found = Some(at);
            pos = at;
            min_indent = item_indent;
        }
    }
    found
}
