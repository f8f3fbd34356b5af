//! Identifiers that satisfy the tools' naming rules.

/// A DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63
/// characters): lowercased, other characters replaced by `-`, runs collapsed.
pub fn dns_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut label: String = out.trim_matches('-').chars().take(63).collect();
    while label.ends_with('-') {
        label.pop();
    }
    if label.is_empty() {
        "resource".into()
    } else {
        label
    }
}

/// A Terraform/HCL identifier: letters, digits, `_` and `-`, starting with
/// a letter or `_`.
pub fn identifier(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// `snake_case` or `kebab-case` → `camelCase`.
pub fn camel_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut upper = false;
    for c in text.chars() {
        if c == '_' || c == '-' {
            upper = !out.is_empty();
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `snake_case`, `kebab-case` or `camelCase` → `PascalCase`.
pub fn pascal_case(text: &str) -> String {
    let camel = camel_case(text);
    let mut chars = camel.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// `camelCase` → `snake_case`.
pub fn snake_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for (i, c) in text.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '-' {
            out.push('_');
        } else {
            out.push(c);
        }
    }
    out
}

/// A key with case and separators removed, for lenient matching
/// (`repoURL` = `repo_url`).
pub fn loose_key(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(dns_label("Checkout_DB--main-"), "checkout-db-main");
        assert_eq!(camel_case("module_source"), "moduleSource");
        assert_eq!(pascal_case("mysql_instance"), "MysqlInstance");
        assert_eq!(snake_case("repoURL"), "repo_u_r_l");
        assert_eq!(loose_key("repoURL"), loose_key("repo_url"));
        assert_eq!(identifier("9lives"), "_9lives");
    }
}
