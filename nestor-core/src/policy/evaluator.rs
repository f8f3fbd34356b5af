//! How one entry file evaluates: compiled to regorus' bytecode (its RVM)
//! when the compiler takes it, else by regorus' tree interpreter.
//!
//! The bytecode runs each rule as a straight sequence of instructions whose
//! paths and literals were resolved once, at compile time; the interpreter
//! re-reads the syntax tree (and allocates a string per path component) for
//! every resource it visits. Both give a rule's value the same way, so a
//! file the compiler refuses (a construct the RVM does not support yet)
//! still evaluates, interpreted. Either way an evaluation is stopped after
//! [`EVAL_LIMIT`] and a failure is an error the caller turns into a
//! refusal.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};

use super::compile::rule_kind;

/// How long one policy may evaluate before it is stopped (and refuses).
const EVAL_LIMIT: Duration = Duration::from_secs(1);

/// The timer of every evaluation: checked every 64 steps.
fn timer() -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: EVAL_LIMIT,
        check_interval: std::num::NonZeroU32::new(64).expect("non-zero"),
    }
}

/// An engine with the evaluation limit set.
pub(super) fn new_engine() -> Engine {
    let mut engine = Engine::new();
    engine.set_execution_timer_config(timer());
    engine
}

/// One entry file, ready to evaluate inputs; no evaluation keeps its
/// input once it is done.
pub(super) enum Evaluator {
    /// Compiled to bytecode.
    Bytecode(Bytecode),
    /// Interpreted: the package is queried as a whole (boxed: an engine
    /// is large, and rarely needed).
    Interpreted(Box<Interpreted>),
}

/// The bytecode of an entry's message rules.
pub(super) struct Bytecode {
    program: Arc<Program>,
    /// `(rule, entry point)` of every message rule, by rule name.
    rules: Vec<(String, String)>,
}

/// The engine an entry compiled into, queried for its whole package.
pub(super) struct Interpreted {
    /// `data.nestor.deployment...`: what is queried.
    query: String,
    /// The compiled engine every evaluation clones from.
    prototype: Engine,
    /// Clones that evaluated before.
    pool: Mutex<Vec<Engine>>,
}

/// What a policy's rules gave: each message rule's value, by rule name.
pub(super) type RuleValues = Vec<(String, Value)>;

impl Evaluator {
    /// The evaluator of `engine`, holding one entry module of package
    /// `package` (`data.`…) with its libraries, already checked by an
    /// evaluation: bytecode when every message rule is a plain rule the
    /// compiler takes, else the engine itself.
    pub(super) fn new(mut engine: Engine, package: &str) -> Evaluator {
        match message_rules(&mut engine).and_then(|rules| compile(&mut engine, package, rules)) {
            Some(bytecode) => Evaluator::Bytecode(bytecode),
            None => Evaluator::interpreted(engine, package),
        }
    }

    /// The evaluator that queries `engine` for the whole `package`.
    fn interpreted(engine: Engine, package: &str) -> Evaluator {
        Evaluator::Interpreted(Box::new(Interpreted {
            query: package.to_string(),
            prototype: engine,
            pool: Mutex::new(Vec::new()),
        }))
    }

    /// The message rules' values on `input`, by rule name; an undefined
    /// rule is left out. An error (the limit passed, a builtin failed
    /// strictly...) as its text.
    pub(super) fn evaluate(&self, input: Value) -> Result<RuleValues, String> {
        match self {
            Evaluator::Bytecode(b) => b.evaluate(input),
            Evaluator::Interpreted(i) => i.evaluate(input),
        }
    }
}

/// The names of the entry module's message rules (the last module added),
/// sorted; `None` when the bytecode could say something else than the
/// interpreter does, so only the interpreter reads the file:
/// - a message rule is not a plain rule (`deny.x := ...`), which the
///   interpreter reads as the package does;
/// - a rule of any module has a reference head (`p[k] := v`) or, named
///   twice in a package, assigns a value (`x := 1 if a`, `x := 2 if b`):
///   values that conflict are an error to the interpreter (so the policy
///   refuses) but make the rule undefined to the RVM (so it might pass).
fn message_rules(engine: &mut Engine) -> Option<Vec<String>> {
    use regorus::unstable::{Expr, Rule, RuleHead};
    let modules = engine.get_modules().clone();
    let mut assigned = std::collections::BTreeSet::new();
    let mut names = Vec::new();
    let entry = modules.len().checked_sub(1)?;
    for (i, module) in modules.iter().enumerate() {
        let package = module.package.refr.span().text();
        for rule in &module.policy {
            let (head, assigns) = match rule.as_ref() {
                Rule::Spec { head, .. } => match head {
                    RuleHead::Compr { refr, assign, .. } => (refr, assign.is_some()),
                    RuleHead::Func { refr, assign, .. } => (refr, assign.is_some()),
                    RuleHead::Set { refr, .. } => (refr, false),
                },
                Rule::Default { refr, .. } => (refr, false),
            };
            let Expr::Var { span, .. } = head.as_ref() else {
                return None;
            };
            let name = span.text();
            if assigns && !assigned.insert((package, name)) {
                return None;
            }
            let is_function = matches!(
                rule.as_ref(),
                Rule::Spec {
                    head: RuleHead::Func { .. },
                    ..
                }
            );
            if i == entry && !is_function && rule_kind(name).is_some() {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    names.dedup();
    Some(names)
}

/// The bytecode of `rules` in `package`; `None` when the compiler refuses.
fn compile(engine: &mut Engine, package: &str, rules: Vec<String>) -> Option<Bytecode> {
    let rules: Vec<(String, String)> = rules
        .into_iter()
        .map(|r| {
            let path = format!("{package}.{r}");
            (r, path)
        })
        .collect();
    let program = match rules.first() {
        Some((_, first)) => {
            let policy = engine
                .compile_with_entrypoint(&first.as_str().into())
                .ok()?;
            let paths: Vec<&str> = rules.iter().map(|(_, p)| p.as_str()).collect();
            regorus::languages::rego::compiler::Compiler::compile_from_policy(&policy, &paths)
                .ok()?
        }
        None => Arc::new(Program::new()),
    };
    Some(Bytecode { program, rules })
}

impl Bytecode {
    /// A machine per evaluation (making one costs a few allocations): a
    /// pooled one would keep the registers of its last run, and so the
    /// (shared, possibly large) input, alive until its next.
    fn machine(&self) -> RegoVM {
        let mut vm = RegoVM::new();
        vm.load_program(self.program.clone());
        vm.set_execution_timer_config(Some(timer()));
        // The time limit bounds an evaluation; the instruction count
        // (25,000 by default) would refuse a plan of a few thousand
        // resources.
        vm.set_max_instructions(usize::MAX);
        vm
    }

    fn evaluate(&self, input: Value) -> Result<RuleValues, String> {
        if self.rules.is_empty() {
            return Ok(Vec::new());
        }
        let mut vm = self.machine();
        vm.set_input(input);
        let mut values = Vec::with_capacity(self.rules.len());
        for (rule, path) in &self.rules {
            match vm.execute_entry_point_by_name(path) {
                Ok(Value::Undefined) => {}
                Ok(v) => values.push((rule.clone(), v)),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(values)
    }
}

impl Interpreted {
    fn evaluate(&self, input: Value) -> Result<RuleValues, String> {
        let taken = self.pool.lock().ok().and_then(|mut p| p.pop());
        let mut engine = taken.unwrap_or_else(|| self.prototype.clone());
        engine.set_input(input);
        let result = engine.eval_query(self.query.clone(), false);
        engine.set_input(Value::new_object());
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(engine);
        }
        let package = result
            .map_err(|e| e.to_string())?
            .result
            .into_iter()
            .next()
            .and_then(|r| r.expressions.into_iter().next())
            .map(|e| e.value);
        let Some(Value::Object(rules)) = package else {
            return Ok(Vec::new());
        };
        let mut values: RuleValues = rules
            .iter()
            .filter_map(|(k, v)| {
                let name = k.as_string().ok()?;
                rule_kind(name).map(|_| (name.to_string(), v.clone()))
            })
            .collect();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A library the entry files below import.
    const LIBRARY: &str = "package lib.naming\n\n\
                           prefixed(name, prefix) if startswith(name, prefix)\n\n\
                           default tier := \"none\"\n\n\
                           tier := t if t := input.labels.tier\n";

    /// Entry files with what the examples do not use: a library function
    /// and a default, `every`, comprehensions, `with`, objects as messages.
    const MORE: [&str; 3] = [
        "package nestor.deployment\n\nimport data.lib.naming\n\n\
         deny contains msg if {\n    some r in input.resources\n    \
         not naming.prefixed(r.name, \"d\")\n    \
         msg := {\"msg\": sprintf(\"%s: %s\", [r.name, naming.tier])}\n}\n",
        "package nestor.deployment\n\n\
         warn_all_stable if {\n    every r in input.resources {\n        \
         r.definition.metadata.maturity == \"stable\"\n    }\n}\n\n\
         violation contains sprintf(\"%d classes\", [count(classes)]) if {\n    \
         classes := {c | some r in input.resources; c := r.inputs.instance_class}\n    \
         count(classes) > 1\n}\n",
        "package nestor.deployment\n\n\
         names := [r.name | some r in input.resources]\n\n\
         deny contains n if {\n    some n in names\n    \
         count(names) == 1 with input.resources as []\n}\n\n\
         warn contains object.get(input.labels, \"owner\", \"nobody\") if count(names) > 1\n",
    ];

    /// `text`'s engine, checked on an empty input as a policy set does.
    fn engine(text: &str) -> (Engine, String) {
        let mut engine = new_engine();
        engine
            .add_policy("lib.rego".into(), LIBRARY.into())
            .unwrap();
        let package = engine.add_policy("p.rego".into(), text.into()).unwrap();
        engine.set_input(Value::new_object());
        engine.eval_query(package.clone(), false).unwrap();
        (engine, package)
    }

    fn both(text: &str) -> (Evaluator, Evaluator) {
        let (e, package) = engine(text);
        (
            Evaluator::new(e.clone(), &package),
            Evaluator::interpreted(e, &package),
        )
    }

    fn input(environment: &str, resources: serde_json::Value) -> Value {
        Value::from(serde_json::json!({
            "team": "alpha", "environment": environment, "name": "shop",
            "labels": {"cost-center": "cc-1", "owner": ""},
            "resources": resources,
        }))
    }

    fn resource(name: &str, maturity: &str, class: &str, acl: &str) -> serde_json::Value {
        serde_json::json!({
            "name": name, "catalog_ref": format!("{name}:1.0.0"), "engine": "terraform",
            "inputs": {"instance_class": class, "acl": acl, "replicas": 60},
            "definition": {"metadata": {"name": name, "maturity": maturity, "category": "storage"},
                "spec": {"engine_configs": {"terraform": {"static_inputs": {"block_public_acls": false}}}}},
        })
    }

    const EXAMPLES: [&str; 4] = [
        include_str!("../../../examples/policies/policies/instance_classes.rego"),
        include_str!("../../../examples/policies/policies/no_public_buckets.rego"),
        include_str!("../../../examples/policies/policies/production_stable.rego"),
        include_str!("../../../examples/policies/policies/required_labels.rego"),
    ];

    #[test]
    fn the_bytecode_says_what_the_interpreter_says() {
        let inputs = [
            input("production", serde_json::json!([])),
            input(
                "production",
                serde_json::json!([
                    resource("db", "beta", "db.t4g.micro", "private"),
                    resource("bucket", "stable", "db.r6g.large", "public-read"),
                ]),
            ),
            input(
                "staging",
                serde_json::json!([resource("db", "stable", "db.r6g.large", "private")]),
            ),
        ];
        for text in EXAMPLES.iter().chain(&MORE) {
            let (bytecode, interpreted) = both(text);
            // The RVM compiler (0.14.1) refuses `with`: that file stays
            // interpreted, and says the same.
            let compiles = !text.contains(" with ");
            assert_eq!(
                matches!(bytecode, Evaluator::Bytecode(_)),
                compiles,
                "{text}"
            );
            for input in &inputs {
                let said = bytecode.evaluate(input.clone()).unwrap();
                assert_eq!(said, interpreted.evaluate(input.clone()).unwrap(), "{text}");
                assert!(said.iter().all(|(rule, _)| rule_kind(rule).is_some()));
            }
        }
        let refused = both(EXAMPLES[1]).0.evaluate(inputs[1].clone()).unwrap();
        let (rule, messages) = &refused[0];
        assert_eq!(rule, "deny");
        assert_eq!(messages.as_set().unwrap().len(), 3, "{messages:?}");
    }

    #[test]
    fn an_evaluation_lets_go_of_its_input() {
        for text in EXAMPLES {
            for evaluator in [both(text).0, both(text).1] {
                let input = input(
                    "production",
                    serde_json::json!([resource("db", "beta", "db.t4g.micro", "private")]),
                );
                evaluator.evaluate(input.clone()).unwrap();
                let Value::Object(document) = &input else {
                    unreachable!()
                };
                assert_eq!(Arc::strong_count(document), 1, "{text}");
            }
        }
    }

    #[test]
    fn a_rule_with_a_reference_head_is_interpreted() {
        let text =
            "package nestor.deployment\n\ndeny.labels := \"needs labels\" if not input.labels\n";
        let (evaluator, _) = both(text);
        assert!(matches!(evaluator, Evaluator::Interpreted(_)));
        let said = evaluator.evaluate(Value::new_object()).unwrap();
        assert_eq!(said.len(), 1);
        assert_eq!(said[0].0, "deny");
    }

    #[test]
    fn an_undefined_rule_is_left_out_and_other_rules_are_not_read() {
        let text = "package nestor.deployment\n\n\
                    deny := \"no name\" if not input.name\n\
                    warn_x contains \"x\" if input.x\n\
                    helper := 1\n";
        let (bytecode, interpreted) = both(text);
        assert!(matches!(bytecode, Evaluator::Bytecode(_)));
        let named = Value::from(serde_json::json!({"name": "a", "x": true}));
        for evaluator in [&bytecode, &interpreted] {
            let said = evaluator.evaluate(named.clone()).unwrap();
            let rules: Vec<&str> = said.iter().map(|(r, _)| r.as_str()).collect();
            assert_eq!(rules, vec!["warn_x"]);
        }
    }

    #[test]
    fn a_rule_whose_values_may_conflict_is_interpreted_and_fails() {
        let text = "package nestor.deployment\n\n\
                    deny := \"one\" if input.a\n\
                    deny := \"two\" if input.a\n";
        let (bytecode, interpreted) = both(text);
        assert!(matches!(bytecode, Evaluator::Interpreted(_)));
        let conflicting = Value::from(serde_json::json!({"a": true}));
        for evaluator in [&bytecode, &interpreted] {
            assert!(evaluator.evaluate(conflicting.clone()).is_err());
            assert!(evaluator.evaluate(Value::new_object()).unwrap().is_empty());
        }
    }

    #[test]
    fn an_evaluation_is_stopped_after_the_limit() {
        let text = "package nestor.deployment\n\n\
                    deny contains \"slow\" if {\n    \
                    some a in input.xs\n    some b in input.xs\n    some c in input.xs\n    \
                    a + b + c < 0\n}\n";
        let (bytecode, interpreted) = both(text);
        assert!(matches!(bytecode, Evaluator::Bytecode(_)));
        let xs: Vec<u64> = (0..3000).collect();
        let slow = Value::from(serde_json::json!({ "xs": xs }));
        for evaluator in [&bytecode, &interpreted] {
            let started = std::time::Instant::now();
            let failed = evaluator.evaluate(slow.clone()).unwrap_err();
            assert!(started.elapsed() < EVAL_LIMIT * 3, "{failed}");
            assert!(failed.contains("time limit"), "{failed}");
        }
    }
}
