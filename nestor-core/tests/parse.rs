//! Parsing: aliases normalise to the canonical form; every violation is
//! reported at once with its field path and line.

use nestor_core::{parse_definition_yaml, parse_file, Document, ErrorCode, FieldError, ValueType};

const ALIASES: &str = include_str!("data/aliases.yaml");
const CANONICAL: &str = include_str!("data/canonical.yaml");
const WRONG: &str = include_str!("data/everything-wrong.yaml");

#[test]
fn every_alias_normalises_to_the_canonical_form() {
    let aliased = parse_definition_yaml(ALIASES).expect("aliases are accepted");
    let canonical = parse_definition_yaml(CANONICAL).expect("canonical form is valid");
    assert_eq!(aliased, canonical);
    assert_eq!(
        aliased.content_hash(),
        canonical.content_hash(),
        "same content, same hash"
    );
    assert_eq!(aliased.kind, "ResourceDefinition");
    assert_eq!(
        aliased.metadata.version.to_string(),
        "1.2.0",
        "a leading v is dropped"
    );
    assert_eq!(
        aliased.metadata.resource_type, "mysql",
        "classification moves from spec to metadata"
    );
    assert_eq!(aliased.spec.required_inputs.len(), 1);
    assert_eq!(
        aliased.spec.optional_inputs.len(),
        2,
        "spec.inputs splits on required/default"
    );
    assert_eq!(
        aliased.spec.optional_inputs[0].value_type,
        ValueType::Integer
    );
    assert_eq!(
        aliased.spec.engine_configs["terraform"]["moduleVersion"], "~> 5.0",
        "engine_configs are free-form: their keys are kept as written"
    );
    let yaml = serde_yaml::to_string(&aliased).unwrap();
    assert!(
        yaml.contains("resource_type: mysql") && yaml.contains("supported_engines:"),
        "{yaml}"
    );
    assert_eq!(
        parse_definition_yaml(&yaml).unwrap(),
        aliased,
        "the canonical form round-trips"
    );
}

fn errors_of(text: &str) -> Vec<FieldError> {
    let docs = parse_file(text.as_bytes()).unwrap();
    match &docs[0].document {
        Document::Invalid(errors) => errors.clone(),
        other => panic!("expected an invalid document, got {other:?}"),
    }
}

fn has(errors: &[FieldError], field: &str, needle: &str) -> bool {
    errors
        .iter()
        .any(|e| e.field == field && e.message.contains(needle))
}

/// A key written in both spellings (snake_case and camelCase) is one key
/// given twice: reported once, naming both spellings, whichever the file
/// has first.
#[test]
fn a_key_in_both_spellings_is_given_twice() {
    for (first, second) in [
        ("resource_type", "resourceType"),
        ("resourceType", "resource_type"),
    ] {
        let text = CANONICAL.replace(
            "  resource_type: mysql\n",
            &format!("  {first}: mysql\n  {second}: postgres\n"),
        );
        let errors = errors_of(&text);
        let twice: Vec<_> = errors
            .iter()
            .filter(|e| e.message.starts_with("given twice"))
            .collect();
        assert_eq!(twice.len(), 1, "{errors:?}");
        assert_eq!(twice[0].field, "metadata.resource_type");
        assert!(twice[0].message.contains("\"resource_type\""), "{errors:?}");
        assert!(twice[0].message.contains("\"resourceType\""), "{errors:?}");
    }
}

#[test]
fn every_violation_is_reported_at_once_with_its_field_path() {
    let errors = errors_of(WRONG);
    let expect = [
        ("metadata.name", "not a valid name"),
        ("metadata.version", "invalid version"),
        ("metadata.provider", "must match"),
        ("metadata.resource_type", "is required"),
        ("metadata.maturity", "alpha, beta or stable"),
        ("spec.supported_engines", "at least one engine"),
        ("spec.requried_inputs", "did you mean \"required_inputs\""),
        ("spec.required_inputs[0].name", "snake_case"),
        ("spec.required_inputs[0].type", "unknown type \"strng\""),
        (
            "spec.required_inputs[1].validation.pattern",
            "does not apply to type integer",
        ),
        ("spec.required_inputs[1].validation.min", "greater than max"),
        ("spec.required_inputs[1].default", "cannot have a default"),
        ("spec.optional_inputs[0].name", "declared twice"),
        (
            "spec.optional_inputs[0].validation.min_length",
            "greater than max_length",
        ),
        ("spec.optional_inputs[0].default", "expected string"),
        (
            "spec.optional_inputs[1].validation.enum",
            "does not apply to type array",
        ),
        ("spec.optional_inputs[2].default", "above max 10"),
        ("spec.outputs[1].name", "declared twice"),
        ("spec.dependencies[0].name", "cannot depend on itself"),
        (
            "spec.dependencies[0].version",
            "invalid version requirement",
        ),
        ("spec.engine_configs.helm", "not a supported engine"),
    ];
    for (field, needle) in expect {
        assert!(
            has(&errors, field, needle),
            "missing {field}: {needle}\nall errors: {errors:#?}"
        );
    }
    let typo = errors
        .iter()
        .find(|e| e.field == "spec.requried_inputs")
        .unwrap();
    assert_eq!(typo.line, Some(11), "errors carry the line of the field");
    let retries = errors
        .iter()
        .find(|e| e.field == "spec.optional_inputs[2].default")
        .unwrap();
    assert_eq!(retries.line, Some(29));
}

#[test]
fn an_enum_value_of_the_wrong_type_and_a_default_outside_the_enum_are_errors() {
    let text = CANONICAL.replace(
        "    - name: tags\n      type: object\n",
        "    - name: tier\n      type: string\n      default: gold\n      validation: {enum: [silver, 3]}\n",
    );
    let errors = errors_of(&text);
    assert!(
        has(
            &errors,
            "spec.optional_inputs[1].validation.enum[1]",
            "not of type string"
        ),
        "{errors:#?}"
    );
    assert!(
        has(&errors, "spec.optional_inputs[1].default", "not one of"),
        "{errors:#?}"
    );
}

#[test]
fn foreign_documents_are_skipped_and_line_numbers_follow_document_markers() {
    let text = format!(
        "# leading comment\n---\napiVersion: v1\nkind: ConfigMap\n---\n{}",
        WRONG
    );
    let docs = parse_file(text.as_bytes()).unwrap();
    assert_eq!(docs.len(), 2);
    assert!(matches!(&docs[0].document, Document::Foreign { kind, .. } if kind == "ConfigMap"));
    assert_eq!(docs[1].line, 6);
    let Document::Invalid(errors) = &docs[1].document else {
        panic!("second document is invalid")
    };
    let typo = errors
        .iter()
        .find(|e| e.field == "spec.requried_inputs")
        .unwrap();
    assert_eq!(typo.line, Some(16));
}

#[test]
fn hostile_yaml_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "{a: ".repeat(5000), "}".repeat(5000));
    for text in [
        deep.as_str(),
        "a: &a [*a]",
        "key: [unclosed",
        "\t\tbad: indentation:\n: x",
    ] {
        let docs = parse_file(text.as_bytes()).unwrap();
        assert!(
            matches!(&docs[0].document, Document::Invalid(_)),
            "{text:.40}: {docs:?}"
        );
    }
    let err = parse_definition_yaml("a: 1\n---\nb: 2\n").unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
    assert!(parse_file(&[0xff, 0xfe, 0x00])
        .unwrap_err()
        .message
        .contains("UTF-8"));
}

#[test]
fn a_version_written_as_a_number_asks_for_quotes() {
    let errors = errors_of(&CANONICAL.replace("version: \"1.2.0\"", "version: 1.2"));
    assert!(
        has(&errors, "metadata.version", "quoted string"),
        "{errors:#?}"
    );
}
