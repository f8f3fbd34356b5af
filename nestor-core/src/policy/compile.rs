//! A [`PolicySet`]: Rego files compiled once, one evaluator per entry file
//! (with every library module), evaluated hook by hook.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use regorus::Engine;
use serde_json::Value;

use super::evaluator::{new_engine, Evaluator};
use super::{
    PolicyFile, PolicyHook, PolicyInput, PolicyMessage, PolicyOrigin, PolicyProblem, PolicyScope,
    PolicyVerdict,
};
use crate::cpu::{self, Offload};
use crate::error::{Error, FieldError, Result};

/// From how many resources an input's policies are spread over the
/// offload's lanes: below it, an evaluation takes less than handing it
/// off costs, and the policies evaluate one after the other on the
/// calling task.
const PARALLEL_FROM: usize = 32;

/// Compiled policies, ready to evaluate.
#[derive(Default)]
pub struct PolicySet {
    entries: Vec<Entry>,
    /// Every file that compiled, entry or library.
    files: Vec<(PolicyOrigin, PolicyScope, Option<PolicyHook>)>,
}

/// One entry file: its hook and how it evaluates.
struct Entry {
    origin: PolicyOrigin,
    scope: PolicyScope,
    hook: PolicyHook,
    /// Its message rules, compiled.
    evaluator: Evaluator,
    /// How long its last evaluation on a lane took, in nanoseconds (0:
    /// never): the costliest policies are handed out first, so that no
    /// lane is left with a long one while the other idles.
    cost: AtomicU64,
}

/// The package a module declares, read with the engine.
fn package_of(file: &PolicyFile) -> std::result::Result<String, String> {
    let mut engine = new_engine();
    engine
        .add_policy(file.origin.file.clone(), file.text.clone())
        .map_err(|e| e.to_string())
}

/// The hook a package selects: the hook's own package or one below it.
fn hook_of(package: &str) -> Option<PolicyHook> {
    let package = package.strip_prefix("data.")?;
    PolicyHook::ALL.into_iter().find(|h| {
        package == h.package()
            || package
                .strip_prefix(h.package())
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

impl PolicySet {
    /// Compiles `files`; any file that does not compile is a
    /// `VALIDATION_FAILED` naming it (its field is the file).
    pub fn new(files: Vec<PolicyFile>) -> Result<PolicySet> {
        let (set, problems) = PolicySet::build(files);
        if problems.is_empty() {
            Ok(set)
        } else {
            Err(Error::Validation {
                errors: problems
                    .into_iter()
                    .map(|p| FieldError::new(p.origin.file, p.message))
                    .collect(),
            })
        }
    }

    /// Compiles what compiles of `files` and reports the rest per file
    /// (a sync keeps the good files of a source with a broken one).
    pub fn build(files: Vec<PolicyFile>) -> (PolicySet, Vec<PolicyProblem>) {
        let mut problems = Vec::new();
        let mut libraries = Vec::new();
        let mut entries = Vec::new();
        for file in files {
            match package_of(&file) {
                Err(message) => problems.push(PolicyProblem {
                    origin: file.origin,
                    message,
                }),
                Ok(package) => match hook_of(&package) {
                    Some(hook) => entries.push((file, hook, package)),
                    None => libraries.push(file),
                },
            }
        }
        let mut set = PolicySet::default();
        for lib in &libraries {
            set.files
                .push((lib.origin.clone(), lib.scope.clone(), None));
        }
        for (file, hook, query) in entries {
            match compile_entry(&file, &libraries, &query) {
                Ok(engine) => {
                    set.files
                        .push((file.origin.clone(), file.scope.clone(), Some(hook)));
                    set.entries.push(Entry {
                        origin: file.origin,
                        scope: file.scope,
                        hook,
                        evaluator: Evaluator::new(engine, &query),
                        cost: AtomicU64::new(0),
                    });
                }
                Err(message) => problems.push(PolicyProblem {
                    origin: file.origin,
                    message,
                }),
            }
        }
        (set, problems)
    }

    /// How many files compiled.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file compiled.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Every compiled file with its scope and hook (`None`: a library).
    pub fn files(&self) -> impl Iterator<Item = (&PolicyOrigin, &PolicyScope, Option<PolicyHook>)> {
        self.files.iter().map(|(o, s, h)| (o, s, *h))
    }

    /// Whether some policy of `hook` covers `team` in `environment`: when
    /// none does, callers skip building the input.
    pub fn applies(&self, hook: PolicyHook, team: Option<&str>, environment: Option<&str>) -> bool {
        self.entries
            .iter()
            .any(|e| e.hook == hook && e.scope.covers(team, environment))
    }

    /// Evaluates every policy of `hook` whose scope covers `team` in
    /// `environment` against `input`; their messages together.
    pub fn evaluate(
        &self,
        hook: PolicyHook,
        team: Option<&str>,
        environment: Option<&str>,
        input: &PolicyInput,
    ) -> PolicyVerdict {
        let mut verdict = PolicyVerdict::default();
        for i in self.selected(hook, team, environment) {
            self.entries[i].evaluate(input.value().clone(), &mut verdict);
        }
        verdict
    }

    /// [`evaluate`](Self::evaluate) with the policies spread over
    /// `offload`'s lanes when the input is large (each policy is
    /// independent of the others); the messages in the same order.
    pub async fn evaluate_on(
        self: Arc<Self>,
        offload: &dyn Offload,
        hook: PolicyHook,
        team: Option<&str>,
        environment: Option<&str>,
        input: &PolicyInput,
    ) -> PolicyVerdict {
        let selected = self.selected(hook, team, environment);
        if selected.len() < 2 || input.resources() < PARALLEL_FROM {
            return self.evaluate(hook, team, environment, input);
        }
        // Each policy a piece of its own, the costliest first (as their
        // last evaluations took): they cost unevenly (one reads a label,
        // another loops twice over every resource).
        let mut order: Vec<(usize, usize)> = selected.into_iter().enumerate().collect();
        order.sort_by_key(|&(_, i)| std::cmp::Reverse(self.entries[i].cost.load(Relaxed)));
        let shared = input.clone();
        let set = self.clone();
        let mut verdicts = cpu::map_each(offload, order, move |(at, i)| {
            let mut verdict = PolicyVerdict::default();
            let entry = &set.entries[i];
            let started = std::time::Instant::now();
            entry.evaluate(shared.value().clone(), &mut verdict);
            let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            entry.cost.store(took.max(1), Relaxed);
            (at, verdict)
        })
        .await;
        // The messages in the policies' order, whatever order they ran in.
        verdicts.sort_by_key(|&(at, _)| at);
        let mut verdict = PolicyVerdict::default();
        for (_, v) in verdicts {
            verdict.denials.extend(v.denials);
            verdict.warnings.extend(v.warnings);
        }
        verdict
    }

    /// The entries of `hook` whose scope covers `team` in `environment`.
    fn selected(
        &self,
        hook: PolicyHook,
        team: Option<&str>,
        environment: Option<&str>,
    ) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&i| {
                let e = &self.entries[i];
                e.hook == hook && e.scope.covers(team, environment)
            })
            .collect()
    }
}

/// The entry file with every library, evaluated once on an empty input so
/// that what only the analyser finds (an unknown function, an unsafe
/// variable) is reported as the file's error now, not at the first publish.
fn compile_entry(
    file: &PolicyFile,
    libraries: &[PolicyFile],
    query: &str,
) -> std::result::Result<Engine, String> {
    let mut engine = new_engine();
    for lib in libraries {
        engine
            .add_policy(lib.origin.file.clone(), lib.text.clone())
            .map_err(|e| format!("library {}: {e}", lib.origin.file))?;
    }
    engine
        .add_policy(file.origin.file.clone(), file.text.clone())
        .map_err(|e| e.to_string())?;
    engine.set_input(regorus::Value::new_object());
    engine
        .eval_query(query.to_string(), false)
        .map_err(|e| e.to_string())?;
    Ok(engine)
}

impl Entry {
    fn evaluate(&self, input: regorus::Value, verdict: &mut PolicyVerdict) {
        let message = |rule: &str, message: String| PolicyMessage {
            policy: self.origin.file.clone(),
            rule: rule.to_string(),
            message,
            source: self.origin.source.clone(),
        };
        let rules = match self.evaluator.evaluate(input) {
            Ok(rules) => rules,
            Err(e) => {
                verdict
                    .denials
                    .push(message("error", format!("the policy failed: {e}")));
                return;
            }
        };
        for (name, value) in rules {
            let Some(denies) = rule_kind(&name) else {
                continue;
            };
            for text in messages(&name, &value) {
                let m = message(&name, text);
                if denies {
                    verdict.denials.push(m);
                } else {
                    verdict.warnings.push(m);
                }
            }
        }
    }
}

/// `Some(true)` for a refusing rule, `Some(false)` for a warning, `None`
/// for any other rule.
pub(super) fn rule_kind(name: &str) -> Option<bool> {
    let is = |prefix: &str| {
        name == prefix
            || name
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('_'))
    };
    if is("deny") || is("violation") {
        Some(true)
    } else if is("warn") {
        Some(false)
    } else {
        None
    }
}

/// The messages of one rule's value: a set or array of strings (or of
/// objects with `msg`), a string, or `true` (a message naming the rule).
fn messages(rule: &str, value: &regorus::Value) -> Vec<String> {
    let json = serde_json::to_value(value).unwrap_or(Value::Null);
    let one = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(true) => Some(format!("{rule} is true")),
            Value::Bool(false) | Value::Null => None,
            Value::Object(o) => Some(match o.get("msg") {
                Some(Value::String(s)) => s.clone(),
                _ => v.to_string(),
            }),
            other => Some(other.to_string()),
        }
    };
    match &json {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cpu::{CountingLanes, Inline};
    use crate::policy::{deployment_input, PolicyResource, ResourceInputs};

    fn set(n: usize) -> PolicySet {
        let files = (0..n)
            .map(|i| PolicyFile {
                origin: PolicyOrigin {
                    file: format!("p{i}.rego"),
                    ..Default::default()
                },
                scope: PolicyScope::global(),
                text: format!(
                    "package nestor.deployment.p{i}\n\n\
                     deny contains sprintf(\"{i}: %s\", [r.name]) if {{\n    \
                     some r in input.resources\n    r.engine == \"helm\"\n}}\n\n\
                     warn contains sprintf(\"{i}: %d resources\", [count(input.resources)]) if true\n"
                ),
            })
            .collect();
        PolicySet::new(files).unwrap()
    }

    fn input(resources: usize) -> PolicyInput {
        let def = crate::parse::parse_definition_yaml(
            "apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\n\
             metadata: {name: thing, version: \"1.0.0\", provider: aws, category: test, resource_type: thing}\n\
             spec:\n  supported_engines: [terraform, helm]\n",
        )
        .unwrap();
        let pinned = crate::model::PublishedVersion::new(def, 0, None);
        let names: Vec<String> = (0..resources).map(|i| format!("r{i:02}")).collect();
        let listed: Vec<PolicyResource<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, name)| PolicyResource {
                name,
                engine: if i % 10 == 0 { "helm" } else { "terraform" },
                inputs: ResourceInputs::Rendered(Default::default()),
                pinned: &pinned,
            })
            .collect();
        let none = BTreeMap::new();
        let documents = crate::policy::DefinitionDocuments::default();
        let params = BTreeMap::new();
        let fields = crate::policy::DeploymentFields {
            team: "alpha",
            environment: "prod",
            name: "d",
            labels: &none,
            composition: None,
            params: &params,
        };
        deployment_input(&fields, &listed, &documents).unwrap()
    }

    #[tokio::test]
    async fn a_large_input_spreads_the_policies_and_keeps_their_order() {
        let set = Arc::new(set(6));
        let input = input(40);
        let alone = set.evaluate(PolicyHook::Deployment, Some("alpha"), Some("prod"), &input);
        assert_eq!(alone.denials.len(), 6 * 4);
        assert_eq!(alone.warnings.len(), 6);
        let lanes = CountingLanes::new(4);
        let spread = set
            .clone()
            .evaluate_on(
                &lanes,
                PolicyHook::Deployment,
                Some("alpha"),
                Some("prod"),
                &input,
            )
            .await;
        assert_eq!(spread, alone);
        assert_eq!(lanes.jobs(), 4, "6 policies over 4 lanes");
        assert!(set.entries.iter().all(|e| e.cost.load(Relaxed) > 0));
        // The last policy now the costliest, the first the cheapest: they
        // run in reverse, and the messages still come in the policies' order.
        for (i, e) in set.entries.iter().enumerate() {
            e.cost.store(1 + i as u64, Relaxed);
        }
        let reversed = set
            .clone()
            .evaluate_on(&Inline, PolicyHook::Deployment, None, None, &input)
            .await;
        let fours = set
            .clone()
            .evaluate_on(&lanes, PolicyHook::Deployment, None, None, &input)
            .await;
        assert_eq!(reversed, alone);
        assert_eq!(fours, alone);
    }

    #[tokio::test]
    async fn a_small_input_stays_on_the_calling_task() {
        let set = Arc::new(set(6));
        let input = input(3);
        let lanes = CountingLanes::new(4);
        let verdict = set
            .evaluate_on(&lanes, PolicyHook::Deployment, None, None, &input)
            .await;
        assert_eq!(verdict.denials.len(), 6);
        assert_eq!(lanes.jobs(), 0);
    }
}
