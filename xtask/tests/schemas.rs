//! The published JSON Schemas (docs/src/schemas/) against the real thing:
//! every YAML file of examples/ validates against the schema its
//! `# yaml-language-server: $schema=…` line names, checked by a real JSON
//! Schema validator (Python's `jsonschema`, Draft 2020-12, installed by
//! `.ci/engine-checkers.sh`); and on a corpus of valid and invalid
//! documents (tests/data/corpus) the schema and Nestor's own parser give
//! the same verdict — a typo'd key fails both.
//!
//! With `NESTOR_REQUIRE_CHECKERS` or `CI` set, a missing validator fails
//! the test instead of skipping it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python with `jsonschema` and `yaml`, or `None` when checkers are
/// optional here and it is missing.
fn python() -> Option<String> {
    let candidate = std::env::var("NESTOR_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&candidate)
        .args(["-c", "import jsonschema, yaml"])
        .status()
        .is_ok_and(|s| s.success());
    let required =
        std::env::var_os("NESTOR_REQUIRE_CHECKERS").is_some() || std::env::var_os("CI").is_some();
    match (ok, required) {
        (true, _) => Some(candidate),
        (false, true) => panic!(
            "{candidate} cannot import jsonschema and yaml: run eval \"$(.ci/engine-checkers.sh)\""
        ),
        (false, false) => {
            eprintln!("skipped: no Python with jsonschema (eval \"$(.ci/engine-checkers.sh)\")");
            None
        }
    }
}

/// Validates each `(schema file, YAML file)` pair with the real validator;
/// the answer per pair is the list of problems, one per document that
/// fails (empty when every document of the file passes).
fn validate(python: &str, pairs: &[(PathBuf, PathBuf)]) -> Vec<Vec<String>> {
    const SCRIPT: &str = r#"
import json, sys, yaml, jsonschema
out = []
for schema_path, yaml_path in json.load(sys.stdin):
    schema = json.load(open(schema_path))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for i, doc in enumerate(yaml.safe_load_all(open(yaml_path))):
        if doc is None:
            continue
        for e in validator.iter_errors(doc):
            problems.append(f"document {i}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
    out.append(problems)
json.dump(out, sys.stdout)
"#;
    let input: Vec<Value> = pairs.iter().map(|(s, y)| json!([s, y])).collect();
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    serde_json::to_writer(child.stdin.take().unwrap(), &input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the validator failed");
    serde_json::from_slice(&output.stdout).expect("the validator answers JSON")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out.sort();
}

/// Which schema a document of this text is for.
fn schema_of(path: &Path, text: &str) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with("config-") {
        Some("config")
    } else if text.contains("catalog.nestor.io/v1") {
        Some("definition")
    } else if text.contains("composer.nestor.io/v1") {
        Some("composition")
    } else if text.contains("deploy.nestor.io/v1") {
        Some("deployment")
    } else {
        None
    }
}

#[test]
fn every_example_validates_against_the_schema_it_names() {
    let Some(python) = python() else { return };
    let mut files = Vec::new();
    yaml_files(&root().join("examples"), &mut files);
    let mut pairs = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let Some(kind) = schema_of(file, &text) else {
            continue; // not a Nestor file (Crossplane's XRDs)
        };
        let first = text.lines().next().unwrap_or("");
        let named = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{} has no $schema line", file.display()));
        let schema = file.parent().unwrap().join(named);
        assert!(
            schema.ends_with(format!("{kind}.schema.json")),
            "{} names {named}, not the {kind} schema",
            file.display()
        );
        assert!(
            schema.exists(),
            "{}: {named} does not exist",
            file.display()
        );
        pairs.push((schema, file.clone()));
    }
    assert!(
        pairs.len() >= 25,
        "only {} example files found",
        pairs.len()
    );
    let results = validate(&python, &pairs);
    let failures: Vec<String> = pairs
        .iter()
        .zip(&results)
        .filter(|(_, problems)| !problems.is_empty())
        .map(|((_, file), problems)| format!("{}: {}", file.display(), problems.join("; ")))
        .collect();
    assert!(
        failures.is_empty(),
        "examples the schemas refuse:\n{}",
        failures.join("\n")
    );
}

/// Nestor's own verdict on a corpus file.
fn parser_accepts(kind: &str, path: &Path, text: &str) -> Result<(), String> {
    match kind {
        "definition" => nestor_core::parse_definition_yaml(text)
            .map(|_| ())
            .map_err(|e| format!("{e}: {:?}", e.field_errors())),
        "composition" => nestor_core::parse_composition_yaml(text)
            .map(|_| ())
            .map_err(|e| format!("{e}: {:?}", e.field_errors())),
        "deployment" => nestor_core::DeploymentSet::parse(text)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "config" => nestor_server::Config::load(Some(path), Vec::new())
            .map(|_| ())
            .map_err(|e| format!("{e:#}")),
        other => unreachable!("no parser for {other}"),
    }
}

#[test]
fn schema_and_parser_agree_on_the_corpus() {
    let Some(python) = python() else { return };
    let mut files = Vec::new();
    yaml_files(&root().join("xtask/tests/data/corpus"), &mut files);
    let schemas = root().join("docs/src/schemas");
    let mut cases = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expect_valid = match text.lines().next() {
            Some("# expect: valid") => true,
            Some("# expect: invalid") => false,
            _ => panic!(
                "{} does not start with # expect: valid|invalid",
                file.display()
            ),
        };
        let kind = schema_of(file, &text).expect("a corpus file is a Nestor file");
        cases.push((file.clone(), text, kind, expect_valid));
    }
    assert!(cases.len() >= 20, "only {} corpus files", cases.len());
    let pairs: Vec<(PathBuf, PathBuf)> = cases
        .iter()
        .map(|(file, _, kind, _)| (schemas.join(format!("{kind}.schema.json")), file.clone()))
        .collect();
    let verdicts = validate(&python, &pairs);
    let mut disagreements = Vec::new();
    for ((file, text, kind, expect_valid), schema_problems) in cases.iter().zip(&verdicts) {
        let name = file.file_name().unwrap().to_string_lossy();
        let parser = parser_accepts(kind, file, text);
        if parser.is_ok() != *expect_valid {
            disagreements.push(format!(
                "{name}: the parser says {parser:?}, expected {}",
                if *expect_valid { "valid" } else { "invalid" }
            ));
        }
        if schema_problems.is_empty() != *expect_valid {
            disagreements.push(format!(
                "{name}: the schema says {schema_problems:?}, expected {}",
                if *expect_valid { "valid" } else { "invalid" }
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
