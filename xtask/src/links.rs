//! The book's own link check: every relative link in `docs/src` and in the
//! README must name a file that exists (and, with `#anchor`, a heading in
//! it), and none may leave the repository; every page must be in
//! `SUMMARY.md`. mdbook itself only warns about some of these, and the
//! link-check plugins do not follow mdbook's releases.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

/// Every problem found, as `file: message`.
pub fn check(root: &Path) -> anyhow::Result<Vec<String>> {
    let src = root.join("docs/src");
    let mut problems = Vec::new();
    let mut pages = Vec::new();
    collect(&src, &mut pages)?;
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap_or_default();
    let listed: HashSet<PathBuf> = links(&summary)
        .into_iter()
        .map(|l| normalize(&src.join(l.split('#').next().unwrap_or(""))))
        .collect();
    for page in &pages {
        let rel = page
            .strip_prefix(root)
            .unwrap_or(page)
            .display()
            .to_string();
        if page.file_name().is_some_and(|n| n != "SUMMARY.md") && !listed.contains(page) {
            problems.push(format!("{rel}: not listed in docs/src/SUMMARY.md"));
        }
        let text = std::fs::read_to_string(page)?;
        check_page(root, page, &text, &mut problems);
    }
    let readme = root.join("README.md");
    if let Ok(text) = std::fs::read_to_string(&readme) {
        check_page(root, &readme, &text, &mut problems);
    }
    Ok(problems)
}

fn check_page(root: &Path, page: &Path, text: &str, problems: &mut Vec<String>) {
    let rel = page
        .strip_prefix(root)
        .unwrap_or(page)
        .display()
        .to_string();
    for (n, line) in text.lines().enumerate() {
        for needle in ["SPEC.md", "SPEC §", "../shared", "/work/"] {
            if line.contains(needle) {
                problems.push(format!(
                    "{rel}:{}: points outside the repository ({needle})",
                    n + 1
                ));
            }
        }
    }
    for link in links(text) {
        if link.contains("://") || link.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) = match link.split_once('#') {
            Some((f, a)) => (f, Some(a)),
            None => (link.as_str(), None),
        };
        let target = if file.is_empty() {
            page.to_path_buf()
        } else {
            normalize(&page.parent().unwrap_or(root).join(file))
        };
        if !target.starts_with(root) {
            problems.push(format!("{rel}: link {link} leaves the repository"));
            continue;
        }
        if !target.exists() {
            problems.push(format!("{rel}: link {link}: no such file"));
            continue;
        }
        if let (Some(anchor), true) = (anchor, target.extension().is_some_and(|e| e == "md")) {
            let body = std::fs::read_to_string(&target).unwrap_or_default();
            if !anchors(&body).contains(anchor) {
                problems.push(format!("{rel}: link {link}: no heading #{anchor}"));
            }
        }
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The targets of the inline links `[text](target)` outside code.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut rest = strip_code_spans(line);
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or("");
            if !target.is_empty() {
                out.push(target.to_string());
            }
            rest = after[end..].to_string();
        }
    }
    out
}

fn strip_code_spans(line: &str) -> String {
    let mut out = String::new();
    for (i, part) in line.split('`').enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        }
    }
    out
}

/// The anchors mdbook gives a page's headings: lower case, punctuation
/// dropped, spaces to `-`.
fn anchors(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#').trim();
        let slug: String = heading
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        out.insert(slug);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_skip_code_and_anchors_follow_mdbook() {
        let text =
            "see [a](x.md#two-words) and `[b](no.md)`\n```\n[c](no.md)\n```\n## Two words!\n";
        assert_eq!(links(text), vec!["x.md#two-words".to_string()]);
        assert!(anchors(text).contains("two-words"));
    }
}
