//! Versioning rules: every change kind is classified as docs/src/reference/versioning.md says, and the
//! required bump follows.

use nestor_core::{
    check_bump, classify_changes, parse_definition_yaml, ChangeKind, ErrorCode, ResourceDefinition,
};

const BASE: &str = include_str!("data/canonical.yaml");

fn base() -> ResourceDefinition {
    parse_definition_yaml(BASE).unwrap()
}

fn edited(edit: impl FnOnce(&mut ResourceDefinition)) -> ResourceDefinition {
    let mut d = base();
    edit(&mut d);
    d
}

/// The strongest change kind between base and the edit.
fn strongest(edit: impl FnOnce(&mut ResourceDefinition)) -> ChangeKind {
    let changes = classify_changes(&base(), &edited(edit));
    changes
        .iter()
        .map(|c| c.kind)
        .max()
        .expect("the edit is detected")
}

fn input(name: &str, t: &str) -> nestor_core::Input {
    serde_json::from_value(serde_json::json!({"name": name, "type": t})).unwrap()
}

#[test]
fn breaking_changes() {
    use ChangeKind::Breaking;
    assert_eq!(
        strongest(|d| d.spec.required_inputs.push(input("region", "string"))),
        Breaking,
        "required input added"
    );
    assert_eq!(
        strongest(|d| {
            d.spec.optional_inputs.pop();
        }),
        Breaking,
        "input removed"
    );
    assert_eq!(
        strongest(|d| d.spec.optional_inputs[1].value_type = nestor_core::ValueType::String),
        Breaking,
        "type changed"
    );
    assert_eq!(
        strongest(|d| {
            let mut i = d.spec.optional_inputs.remove(1);
            i.default = None;
            d.spec.required_inputs.push(i);
        }),
        Breaking,
        "optional made required"
    );
    assert_eq!(
        strongest(|d| d.spec.required_inputs[0].validation.pattern = Some("^db".into())),
        Breaking,
        "pattern changed"
    );
    assert_eq!(
        strongest(|d| d.spec.optional_inputs[1].validation.pattern = Some("x".into())),
        Breaking,
        "pattern added"
    );
    assert_eq!(
        strongest(|d| d.spec.optional_inputs[0].validation.min = Some(2.into())),
        Breaking,
        "min raised"
    );
    assert_eq!(
        strongest(|d| d.spec.optional_inputs[0].validation.max = Some(30.into())),
        Breaking,
        "max lowered"
    );
    assert_eq!(
        strongest(|d| d.spec.required_inputs[0].validation.min_length = Some(3)),
        Breaking,
        "min_length added"
    );
    assert_eq!(
        strongest(|d| d.spec.required_inputs[0].validation.max_length = Some(30)),
        Breaking,
        "max_length added"
    );
    assert_eq!(
        strongest(
            |d| d.spec.required_inputs[0].validation.allowed = Some(vec!["db.t3.micro".into()])
        ),
        Breaking,
        "enum added"
    );
    assert_eq!(
        strongest(|d| {
            d.spec.outputs.clear();
        }),
        Breaking,
        "output removed"
    );
    assert_eq!(
        strongest(|d| d.spec.outputs[0].value_type = nestor_core::ValueType::Object),
        Breaking,
        "output type"
    );
    assert_eq!(
        strongest(|d| d.spec.supported_engines.retain(|e| e != "crossplane")),
        Breaking,
        "engine removed"
    );
    assert_eq!(
        strongest(|d| d.metadata.provider = "gcp".into()),
        Breaking,
        "provider changed"
    );
    assert_eq!(
        strongest(|d| d.metadata.resource_type = "postgres".into()),
        Breaking,
        "resource_type changed"
    );
}

#[test]
fn additive_changes() {
    use ChangeKind::Additive;
    assert_eq!(
        strongest(|d| d.spec.optional_inputs.push(input("multi_az", "boolean"))),
        Additive,
        "optional input added"
    );
    assert_eq!(
        strongest(|d| d.spec.outputs.push(input("port", "integer").into_output())),
        Additive,
        "output added"
    );
    assert_eq!(
        strongest(|d| d.spec.supported_engines.push("pulumi".into())),
        Additive,
        "engine added"
    );
    assert_eq!(
        strongest(|d| d.spec.optional_inputs[0].validation.max = Some(40.into())),
        Additive,
        "max raised"
    );
    assert_eq!(
        strongest(|d| d.spec.optional_inputs[0].validation.min = None),
        Additive,
        "min removed"
    );
    assert_eq!(
        strongest(|d| d.spec.required_inputs[0].validation.pattern = None),
        Additive,
        "pattern removed"
    );
    assert_eq!(
        strongest(|d| d.spec.optional_inputs[0].default = Some(14.into())),
        Additive,
        "default changed"
    );
}

#[test]
fn enum_values_added_are_additive_and_removed_are_breaking() {
    let with = |values: &[&str]| {
        let mut d = base();
        d.spec.required_inputs[0].validation.allowed =
            Some(values.iter().map(|v| (*v).into()).collect());
        d
    };
    let strongest = |a: &ResourceDefinition, b: &ResourceDefinition| {
        classify_changes(a, b).iter().map(|c| c.kind).max()
    };
    assert_eq!(
        strongest(&with(&["a"]), &with(&["a", "b"])),
        Some(ChangeKind::Additive)
    );
    assert_eq!(
        strongest(&with(&["a", "b"]), &with(&["a"])),
        Some(ChangeKind::Breaking)
    );
}

#[test]
fn cosmetic_changes() {
    use ChangeKind::Cosmetic;
    assert_eq!(
        strongest(|d| d.metadata.description = "better words".into()),
        Cosmetic
    );
    assert_eq!(
        strongest(|d| {
            d.metadata.labels.insert("tier".into(), "data".into());
        }),
        Cosmetic
    );
    assert_eq!(strongest(|d| d.metadata.deprecated = true), Cosmetic);
    assert_eq!(
        strongest(|d| d.spec.required_inputs[0].description = "class".into()),
        Cosmetic
    );
    assert_eq!(strongest(|d| d.spec.engine_configs.clear()), Cosmetic);
    assert!(
        classify_changes(&base(), &base()).is_empty(),
        "no change, no entry"
    );
}

#[test]
fn the_bump_must_match_the_strongest_change() {
    let at = |v: &str, edit: fn(&mut ResourceDefinition)| {
        let mut d = base();
        edit(&mut d);
        d.metadata.version = v.parse().unwrap();
        d
    };
    let breaking: fn(&mut ResourceDefinition) =
        |d| d.spec.required_inputs.push(input("region", "string"));
    let additive: fn(&mut ResourceDefinition) = |d| d.spec.supported_engines.push("pulumi".into());
    let cosmetic: fn(&mut ResourceDefinition) = |d| d.metadata.description = "x".into();
    let old = base(); // 1.2.0

    let err = check_bump(&old, &at("1.3.0", breaking)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::BreakingChange);
    assert_eq!(err.details()["minimum_version"], "2.0.0");
    assert_eq!(err.details()["predecessor"], "1.2.0");
    assert!(check_bump(&old, &at("2.0.0", breaking)).is_ok());
    assert!(
        check_bump(&old, &at("2.0.0-rc.1", breaking)).is_ok(),
        "a pre-release of the next major is enough"
    );
    assert_eq!(
        check_bump(&old, &at("1.2.1", additive))
            .unwrap_err()
            .details()["minimum_version"],
        "1.3.0"
    );
    assert!(check_bump(&old, &at("1.3.0", additive)).is_ok());
    assert!(check_bump(&old, &at("1.2.1", cosmetic)).is_ok());

    let mut zero = base();
    zero.metadata.version = "0.3.1".parse().unwrap();
    let mut next = zero.clone();
    breaking(&mut next);
    next.metadata.version = "0.3.2".parse().unwrap();
    assert_eq!(
        check_bump(&zero, &next).unwrap_err().details()["minimum_version"],
        "0.4.0",
        "below 1.0: breaking → minor"
    );
    let mut add = zero.clone();
    additive(&mut add);
    add.metadata.version = "0.3.2".parse().unwrap();
    assert!(
        check_bump(&zero, &add).is_ok(),
        "below 1.0: additive → patch"
    );
}

trait IntoOutput {
    fn into_output(self) -> nestor_core::Output;
}

impl IntoOutput for nestor_core::Input {
    fn into_output(self) -> nestor_core::Output {
        nestor_core::Output {
            name: self.name,
            value_type: self.value_type,
            description: String::new(),
            sensitive: false,
        }
    }
}
