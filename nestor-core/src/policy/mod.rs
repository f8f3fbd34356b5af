//! Policies as code: Rego modules (evaluated in-process by `regorus`) that
//! refuse or warn about definitions at publish, compositions at publish and
//! deployments at plan and apply (docs/src/platform/policies.md).
//!
//! Conftest's conventions, which platform teams already know: a module's
//! package selects where it runs (`nestor.definition`, `nestor.composition`,
//! `nestor.deployment`, or a package below one of them); its rules named
//! `deny`, `violation` (or starting with `deny_`, `violation_`) refuse, its
//! rules named `warn` (or `warn_...`) warn. A module in any other package
//! is a library the entry modules may import.
//!
//! # Precedence
//! Every module whose scope matches is evaluated, and the verdict is the
//! union of their messages: one `deny` anywhere refuses. There is no
//! `allow` that overrides, so a team's or an environment's policy can add
//! rules but never lift a global denial.
//!
//! # Layout
//! - `mod.rs`: the types (files, scopes, messages, verdicts) and
//!   [`Policies`], the shared, replaceable set the services read.
//! - `compile`: a [`PolicySet`] compiled once from files, a broken file
//!   reported with its name; evaluation of one hook.
//! - `evaluator`: how one entry file evaluates: regorus' bytecode VM, or
//!   its interpreter for what the bytecode could read differently.
//! - `input`: the input documents each hook evaluates, whose names policy
//!   authors depend on.
//! - `documents`: each pinned version's part of them, kept across inputs.
//! - `large`: a large plan's input built on the CPU pool's lanes.
//! - `testing`: `test_*` rules run like `opa test` does.
//!
//! # Design decisions
//! - One compiled program per entry file (with the libraries), so every
//!   message names the file and rule it came from; each is compiled once,
//!   and no evaluation keeps its input alive once it is done.
//! - The program is regorus' bytecode (the `rvm` feature): on a plan of
//!   10,000 resources it evaluates in 60 % of the interpreter's
//!   instructions (benches/README.md, "Policies"). A file the bytecode
//!   compiler refuses, or whose rules could conflict (where the VM and
//!   the interpreter disagree), is interpreted as before.
//! - A large plan's input is built, and its policies evaluated, on the
//!   CPU pool's lanes (each lane takes the next policy when done with
//!   one: they cost unevenly); each pinned version's document is converted
//!   once and kept by content hash, since a version's content never
//!   changes (benches/README.md, "Policies", session 10).
//! - A policy that fails while it evaluates refuses (fails closed), with
//!   the error as its message: a broken guard never waves anything through.

mod compile;
mod documents;
mod evaluator;
mod input;
mod large;
mod testing;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

pub use compile::PolicySet;
pub use documents::DefinitionDocuments;
pub use input::{
    composition_input, deployment_input, DeploymentFields, PolicyInput, PolicyResource,
    ResourceInputs,
};
pub use large::{deployment_input_on, ResourceList};
pub use testing::{run_policy_tests, PolicyTestOutcome, PolicyTestReport};

/// Where a policy runs, chosen by its package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyHook {
    /// `package nestor.definition`: every new definition version, at publish.
    Definition,
    /// `package nestor.composition`: every new composition version, at publish.
    Composition,
    /// `package nestor.deployment`: every plan and apply.
    Deployment,
}

impl PolicyHook {
    /// The package that selects the hook.
    pub fn package(self) -> &'static str {
        match self {
            PolicyHook::Definition => "nestor.definition",
            PolicyHook::Composition => "nestor.composition",
            PolicyHook::Deployment => "nestor.deployment",
        }
    }

    /// Every hook.
    pub const ALL: [PolicyHook; 3] = [
        PolicyHook::Definition,
        PolicyHook::Composition,
        PolicyHook::Deployment,
    ];
}

/// Where a policy file came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOrigin {
    /// Its path (in its source, or on disk for a configured file).
    pub file: String,
    /// The source it was synced from; `None` for a configured file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The commit it was read at; `None` outside git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// To whom a policy applies: every unset field matches everything, so the
/// default scope is global. A scope with a team applies to that team's
/// compositions and deployments; with an environment, to deployments in
/// it; with both, to that team's deployments in that environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PolicyScope {
    /// Only this team's compositions and deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Only deployments in this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl PolicyScope {
    /// Every definition, composition and deployment.
    pub fn global() -> Self {
        PolicyScope::default()
    }

    /// Whether the scope covers a subject of `team` in `environment`
    /// (`None`: the subject has none, as a definition has no team).
    pub fn covers(&self, team: Option<&str>, environment: Option<&str>) -> bool {
        let fits = |want: &Option<String>, have: Option<&str>| match want {
            None => true,
            Some(w) => have == Some(w.as_str()),
        };
        fits(&self.team, team) && fits(&self.environment, environment)
    }

    /// `global`, `team alpha`, `environment production`, or both.
    pub fn describe(&self) -> String {
        match (&self.team, &self.environment) {
            (None, None) => "global".into(),
            (Some(t), None) => format!("team {t}"),
            (None, Some(e)) => format!("environment {e}"),
            (Some(t), Some(e)) => format!("team {t} in environment {e}"),
        }
    }
}

/// One Rego file to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    /// Where it came from.
    pub origin: PolicyOrigin,
    /// Whom it applies to.
    pub scope: PolicyScope,
    /// The Rego text.
    pub text: String,
}

/// One message a policy produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PolicyMessage {
    /// The policy file.
    pub policy: String,
    /// The rule that produced it (`deny`, `warn_public_bucket`...).
    pub rule: String,
    /// What it says.
    pub message: String,
    /// The source the file was synced from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl std::fmt::Display for PolicyMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.policy, self.rule, self.message)
    }
}

/// What the policies said about one subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVerdict {
    /// Messages of `deny` and `violation` rules: the subject is refused.
    pub denials: Vec<PolicyMessage>,
    /// Messages of `warn` rules: shown, nothing refused.
    pub warnings: Vec<PolicyMessage>,
}

impl PolicyVerdict {
    /// `POLICY_VIOLATION` for `subject` when anything denied, else the warnings.
    pub fn into_result(self, subject: &str) -> crate::Result<Vec<PolicyMessage>> {
        if self.denials.is_empty() {
            Ok(self.warnings)
        } else {
            Err(crate::Error::PolicyViolation {
                subject: subject.into(),
                violations: self.denials,
            })
        }
    }
}

/// A file that could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyProblem {
    /// Where the file came from.
    pub origin: PolicyOrigin,
    /// What is wrong (the parser's message, with line and column).
    pub message: String,
}

/// The policy set the services read, shared by every clone and replaced
/// as a whole when its files change: configured files and each synced
/// source's files are layers, recompiled together on every change.
#[derive(Clone, Default)]
pub struct Policies {
    inner: Arc<RwLock<State>>,
}

#[derive(Default)]
struct State {
    layers: BTreeMap<String, Layer>,
    compiled: Arc<PolicySet>,
}

/// One layer's files and those of them that did not compile.
#[derive(Default)]
struct Layer {
    files: Vec<PolicyFile>,
    problems: Vec<PolicyProblem>,
}

impl Policies {
    /// No policy: every hook passes.
    pub fn none() -> Self {
        Policies::default()
    }

    /// The set as it is now (cheap: a shared handle).
    pub fn current(&self) -> Arc<PolicySet> {
        self.read().compiled.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the files of layer `layer` (`config`, `source:NAME`) and
    /// recompiles; the files that do not compile are left out and returned.
    /// The same files as before recompile nothing.
    pub fn set_layer(&self, layer: &str, files: Vec<PolicyFile>) -> Vec<PolicyProblem> {
        let mut state = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = state.layers.get(layer) {
            if old.files == files {
                return old.problems.clone();
            }
        } else if files.is_empty() {
            return Vec::new();
        }
        if files.is_empty() {
            state.layers.remove(layer);
        } else {
            state.layers.insert(
                layer.to_string(),
                Layer {
                    files,
                    problems: Vec::new(),
                },
            );
        }
        let all: Vec<PolicyFile> = state
            .layers
            .values()
            .flat_map(|l| l.files.iter().cloned())
            .collect();
        let (set, problems) = PolicySet::build(all);
        state.compiled = Arc::new(set);
        for l in state.layers.values_mut() {
            l.problems = problems
                .iter()
                .filter(|p| l.files.iter().any(|f| f.origin == p.origin))
                .cloned()
                .collect();
        }
        state
            .layers
            .get(layer)
            .map(|l| l.problems.clone())
            .unwrap_or_default()
    }

    /// Whether layer `layer` holds files.
    pub fn has_layer(&self, layer: &str) -> bool {
        self.read().layers.contains_key(layer)
    }

    /// Every layer's name with its files and the files that did not compile.
    pub fn layers(&self) -> Vec<(String, Vec<PolicyOrigin>, Vec<PolicyProblem>)> {
        self.read()
            .layers
            .iter()
            .map(|(name, l)| {
                let origins = l.files.iter().map(|f| f.origin.clone()).collect();
                (name.clone(), origins, l.problems.clone())
            })
            .collect()
    }
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("files", &self.current().len())
            .finish()
    }
}
