//! Hostile input meets the core's rules: deep flow YAML is refused before
//! the YAML library scans it and deep block YAML as its tree is built,
//! templates draw on one budget per request,
//! values are never echoed whole (sensitive ones not at all), and search
//! queries, filters and cursors are bounded (issue 11).

use nestor_core::{
    check_search_query, check_value, parse_file, render_value, Document, ListFilter, PageRequest,
    TemplateBudget, TemplateContext, TemplateLimits, Validation, ValueType, MAX_DEPTH,
};
use serde_json::json;

#[test]
fn deep_yaml_is_a_document_error_not_a_stall() {
    let deep = format!("{}1{}", "{a: ".repeat(50_000), "}".repeat(50_000));
    let docs = parse_file(deep.as_bytes()).unwrap();
    let [doc] = docs.as_slice() else {
        panic!("one document: {docs:?}")
    };
    let Document::Invalid(errors) = &doc.document else {
        panic!("refused: {doc:?}")
    };
    assert!(
        errors[0]
            .message
            .contains(&format!("deeper than {MAX_DEPTH}")),
        "{errors:?}"
    );
    // A git sync reads files through the same parser: a deep document is
    // refused, and the file's other documents still parse.
    let mixed = format!("a: 1\n---\n{}\n---\nb: 2\n", "[".repeat(1000));
    let docs = parse_file(mixed.as_bytes()).unwrap();
    assert_eq!(docs.len(), 3);
    assert!(matches!(docs[1].document, Document::Invalid(_)));
    assert!(!matches!(docs[2].document, Document::Invalid(_)));
}

fn ctx(limits: TemplateLimits) -> TemplateContext {
    TemplateContext {
        budget: TemplateBudget::new(limits),
        ..TemplateContext::default()
    }
}

#[test]
fn many_templates_share_one_budget() {
    // Each of these stays within one template's fuel; together they would
    // ask for a gigabyte (the 200 × 5 MB).
    let c = ctx(TemplateLimits::default());
    let template = json!("{{ 'x' * 5000000 }}");
    let mut refused = Vec::new();
    for _ in 0..200 {
        refused.push(render_value(&template, &c).unwrap_err());
    }
    assert!(
        refused[0].contains("string of 5000000 bytes"),
        "{}",
        refused[0]
    );
    assert!(c.budget.is_exhausted(), "the request's fuel is spent");
    assert!(c.budget.fuel_used() <= TemplateLimits::default().fuel);
    assert!(
        refused[199].contains("exceed their budget"),
        "{}",
        refused[199]
    );
    // Once spent, even a trivial template is refused.
    assert!(render_value(&json!("{{ 1 + 1 }}"), &c).is_err());
    // Clones share the budget: it is the request's, not the context's.
    let clone = c.clone();
    assert!(clone.budget.is_exhausted());
    // A fresh request has its own.
    assert_eq!(
        render_value(&json!("{{ 1 + 1 }}"), &ctx(TemplateLimits::default())).unwrap(),
        json!(2)
    );
}

#[test]
fn rendered_bytes_and_string_length_are_bounded() {
    let limits = TemplateLimits {
        rendered_bytes: 10_000,
        max_string_bytes: 4_000,
        ..TemplateLimits::default()
    };
    let c = ctx(limits);
    let e = render_value(&json!("{{ 'y' * 5000 }}"), &c).unwrap_err();
    assert!(e.contains("limit is 4000"), "{e}");
    // One string over the limit puts the whole request over budget.
    assert!(c.budget.is_exhausted());
    let e = render_value(&json!("{{ 1 }}"), &c).unwrap_err();
    assert!(
        e.contains("exceed their budget: a template produced"),
        "{e}"
    );
    // Mixed text is cut off while it renders, not after.
    let c = ctx(limits);
    let e = render_value(&json!("head {{ 'y' * 5000 }} tail"), &c).unwrap_err();
    assert!(e.contains("renders more than"), "{e}");
    let c = ctx(limits);
    for _ in 0..3 {
        render_value(&json!("{{ 'z' * 3000 }}"), &c).unwrap();
    }
    let e = render_value(&json!("{{ 'z' * 3000 }}"), &c).unwrap_err();
    assert!(e.contains("exceed their budget"), "{e}");
    // Typed values still come back typed.
    let c = ctx(TemplateLimits::default());
    assert_eq!(
        render_value(&json!("{{ [1, 2] }}"), &c).unwrap(),
        json!([1, 2])
    );
}

#[test]
fn values_are_never_echoed_whole_and_sensitive_ones_not_at_all() {
    let strict = Validation {
        pattern: Some("^[a-z]+$".into()),
        min_length: Some(12),
        ..Validation::default()
    };
    let secret = "Hunter2-Secret";
    let errors = check_value(ValueType::String, &strict, &json!(secret), "password", true);
    assert!(!errors.is_empty());
    for e in &errors {
        assert!(!e.message.contains("Hunter2"), "echoed: {e}");
    }
    let errors = check_value(
        ValueType::Integer,
        &strict,
        &json!(secret),
        "password",
        true,
    );
    assert!(!errors[0].message.contains("Hunter2"), "{}", errors[0]);
    let huge = "q".repeat(900_000);
    let errors = check_value(ValueType::Integer, &strict, &json!(huge), "size", false);
    assert!(
        errors[0].message.len() < 200,
        "{} bytes",
        errors[0].message.len()
    );
    assert!(errors[0].message.contains("900000 bytes"), "{}", errors[0]);
    let allowed = Validation {
        allowed: Some(vec![json!("small")]),
        ..Validation::default()
    };
    let errors = check_value(ValueType::String, &allowed, &json!(huge), "size", false);
    assert!(errors[0].message.len() < 200, "{}", errors[0]);
}

#[test]
fn search_queries_filters_and_cursors_are_bounded() {
    assert!(check_search_query("mysql database aws").is_ok());
    let long = vec!["word"; 1000].join(" ");
    let e = check_search_query(&long).unwrap_err();
    assert_eq!(e.code().as_str(), "BAD_REQUEST");
    assert!(check_search_query(&"x".repeat(600)).is_err());
    let filter = ListFilter {
        q: Some(long),
        ..ListFilter::default()
    };
    assert!(filter.check().is_err());
    let mut filter = ListFilter::default();
    for i in 0..20 {
        filter.labels.insert(format!("k{i}"), "v".into());
    }
    assert!(filter.check().is_err());
    let page = |c: &str| PageRequest {
        limit: 10,
        cursor: Some(c.to_string()),
    };
    assert!(page("aws-rds-mysql").check().is_ok());
    for garbage in ["%%%", "../x", "AAAA", "", "a"] {
        assert!(page(garbage).check().is_err(), "{garbage:?}");
    }
}
