//! `nestor policy test DIR`: every `test_*` rule of the files given, run
//! like `opa test` runs them — all files in one engine (so a test file
//! imports the policy it tests), a test passes when its rule is true.

use serde::{Deserialize, Serialize};

use super::PolicyFile;

/// One test's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyTestOutcome {
    /// The file declaring the test.
    pub file: String,
    /// `data.package.test_name`.
    pub test: String,
    /// Whether the rule was true.
    pub passed: bool,
    /// Why it failed: undefined, false, or the evaluation error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every test's outcome, and the files that did not compile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyTestReport {
    /// In file order, then declaration order.
    pub tests: Vec<PolicyTestOutcome>,
    /// `file: message` for each file that did not compile.
    pub errors: Vec<String>,
}

impl PolicyTestReport {
    /// How many tests passed.
    pub fn passed(&self) -> usize {
        self.tests.iter().filter(|t| t.passed).count()
    }

    /// How many tests failed.
    pub fn failed(&self) -> usize {
        self.tests.len() - self.passed()
    }

    /// True when every test passed, at least one ran and every file compiled.
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && !self.tests.is_empty() && self.failed() == 0
    }
}

/// The rule names starting with `test_` declared at the start of a line.
fn declared_tests(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("test_") else {
            continue;
        };
        let tail: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let name = format!("test_{tail}");
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Runs every `test_*` rule of `files`.
pub fn run_policy_tests(files: &[PolicyFile]) -> PolicyTestReport {
    let mut report = PolicyTestReport::default();
    let mut engine = regorus::Engine::new();
    let mut packages = Vec::new();
    for f in files {
        match engine.add_policy(f.origin.file.clone(), f.text.clone()) {
            Ok(package) => packages.push((f, package)),
            Err(e) => report.errors.push(format!("{}: {e}", f.origin.file)),
        }
    }
    for (file, package) in packages {
        for name in declared_tests(&file.text) {
            let test = format!("{package}.{name}");
            let (passed, error) = match engine.eval_rule(test.clone()) {
                Ok(regorus::Value::Bool(true)) => (true, None),
                Ok(regorus::Value::Undefined) => (false, Some("undefined".to_string())),
                Ok(other) => (
                    false,
                    Some(serde_json::to_string(&other).unwrap_or_default()),
                ),
                Err(e) => (false, Some(e.to_string())),
            };
            report.tests.push(PolicyTestOutcome {
                file: file.origin.file.clone(),
                test,
                passed,
                error,
            });
        }
    }
    report
}
