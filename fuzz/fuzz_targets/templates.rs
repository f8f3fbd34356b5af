//! Composition templates (minijinja with fuel and a per-request budget):
//! the syntax check, the reference scan and a render against a small
//! context. A template may fail; it may not panic, hang past its fuel or
//! grow past the budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let value = Value::String(text.to_string());
    let nested = json!({"a": [text, {"b": text}]});
    let _ = nestor_core::check_syntax(&value);
    let _ = nestor_core::references(&nested);
    let mut ctx = nestor_core::TemplateContext {
        team: "alpha".into(),
        environment: "dev".into(),
        deployment: "web".into(),
        ..Default::default()
    };
    ctx.params.insert("replicas".into(), json!(3));
    ctx.params.insert("name".into(), json!("db"));
    ctx.params.insert("tags".into(), json!(["a", "b"]));
    let mut outputs = nestor_core::ResourceOutputs::default();
    outputs
        .outputs
        .insert("endpoint".into(), json!("db.local:5432"));
    ctx.resources.insert("db".into(), outputs);
    let _ = nestor_core::render_value(&nested, &ctx);
});
