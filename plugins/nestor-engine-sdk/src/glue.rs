//! The bridges [`crate::export_engine!`] expands to: WIT types ⇄ SDK types on
//! `wasm32`, C strings ⇄ JSON elsewhere.

#[cfg(target_arch = "wasm32")]
pub use wasm::*;
#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::collections::BTreeMap;

    use crate::{Engine, EngineError, Request};

    /// The generated WIT bindings.
    #[allow(missing_docs, clippy::all)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "wit/v0.2.0",
            world: "plugin",
            pub_export_macro: true,
            export_macro_name: "export",
            runtime_path: "::nestor_engine_sdk::__private::wit_bindgen::rt",
        });
    }
    pub use wit_bindgen;

    use bindings::nestor::engine::types as wit;

    /// `info()` for the component export.
    pub fn wasm_info<E: Engine>() -> wit::EngineInfo {
        let info = E::info();
        wit::EngineInfo {
            name: info.name,
            version: info.version,
            description: info.description,
        }
    }

    /// `validate()` for the component export.
    pub fn wasm_validate<E: Engine>(request: wit::ValidateRequest) -> Vec<wit::ConfigProblem> {
        let parsed = parse("the definition", &request.definition).and_then(|definition| {
            Ok((
                definition,
                parse("the engine config", &request.engine_config)?,
            ))
        });
        let problems = match parsed {
            Ok((definition, config)) => {
                E::validate(&crate::Definition(definition), &crate::Config(config))
            }
            Err(e) => vec![crate::ConfigProblem::new("", e.message())],
        };
        problems.into_iter().map(to_wit_problem).collect()
    }

    /// `render()` for the component export.
    pub fn wasm_render<E: Engine>(
        request: wit::RenderRequest,
    ) -> Result<wit::RenderOutput, wit::EngineError> {
        let request = request_from_wit(request).map_err(to_wit_error)?;
        let rendered = E::render(request).map_err(to_wit_error)?;
        Ok(wit::RenderOutput {
            artifacts: rendered
                .artifacts
                .into_iter()
                .map(|a| wit::Artifact {
                    path: a.path,
                    content: a.content,
                    media_type: a.media_type,
                })
                .collect(),
            outputs: rendered
                .outputs
                .into_iter()
                .map(|(name, reach)| wit::Output {
                    name,
                    reach: reach_to_wit(reach),
                })
                .collect(),
        })
    }

    fn parse(what: &str, text: &str) -> Result<serde_json::Value, EngineError> {
        serde_json::from_str(text)
            .map_err(|e| EngineError::Internal(format!("host sent invalid JSON for {what}: {e}")))
    }

    fn reach_to_wit(reach: crate::Reach) -> wit::Reach {
        wit::Reach {
            value: reach.value.map(|v| v.to_string()),
            secret_key: reach.secret_key_ref.map(|s| wit::SecretKeyRef {
                name: s.name,
                namespace: s.namespace,
                key: s.key,
            }),
            stack_output: reach.stack_output.map(|s| wit::StackOutputRef {
                stack: s.stack,
                output: s.output,
            }),
        }
    }

    fn reach_from_wit(reach: wit::Reach) -> Result<crate::Reach, EngineError> {
        Ok(crate::Reach {
            value: reach.value.map(|v| parse("a reference", &v)).transpose()?,
            secret_key_ref: reach.secret_key.map(|s| crate::SecretKeyRef {
                name: s.name,
                namespace: s.namespace,
                key: s.key,
            }),
            stack_output: reach.stack_output.map(|s| crate::StackOutputRef {
                stack: s.stack,
                output: s.output,
            }),
        })
    }

    fn request_from_wit(request: wit::RenderRequest) -> Result<Request, EngineError> {
        let mut inputs = BTreeMap::new();
        for input in &request.inputs {
            inputs.insert(
                input.name.clone(),
                parse(&format!("input {}", input.name), &input.value)?,
            );
        }
        let references = request
            .references
            .into_iter()
            .map(|r| {
                Ok(crate::Reference {
                    input: r.input,
                    path: r.path,
                    producer: r.producer,
                    producer_engine: r.producer_engine,
                    output: r.output,
                    output_type: r.output_type,
                    sensitive: r.sensitive,
                    reach: reach_from_wit(r.reach)?,
                })
            })
            .collect::<Result<_, EngineError>>()?;
        let c = request.context;
        Ok(Request {
            resource: request.resource,
            definition: crate::Definition(parse("the definition", &request.definition)?),
            inputs,
            engine_config: crate::Config(parse("the engine config", &request.engine_config)?),
            references,
            placeholders: Vec::new(),
            context: crate::Context {
                team: c.team,
                environment: c.environment,
                deployment: c.deployment,
                revision: c.revision,
                wave: c.wave,
                namespace: c.namespace,
                object_name: c.object_name,
                project: c.project,
            },
        })
    }

    fn to_wit_problem(p: crate::ConfigProblem) -> wit::ConfigProblem {
        wit::ConfigProblem {
            field: p.field,
            message: p.message,
        }
    }

    fn to_wit_error(error: EngineError) -> wit::EngineError {
        match error {
            EngineError::InvalidConfig(m) => wit::EngineError::InvalidConfig(m),
            EngineError::InvalidInput(m) => wit::EngineError::InvalidInput(m),
            EngineError::Unsupported(m) => wit::EngineError::Unsupported(m),
            EngineError::Internal(m) => wit::EngineError::Internal(m),
            EngineError::ConfigProblems(problems) => {
                wit::EngineError::ConfigProblems(problems.into_iter().map(to_wit_problem).collect())
            }
            EngineError::RefusedReferences(refused) => wit::EngineError::RefusedReferences(
                refused
                    .into_iter()
                    .map(|r| wit::RefusedReference {
                        input: r.input,
                        path: r.path,
                        reason: r.reason,
                    })
                    .collect(),
            ),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::*;
#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::ffi::{c_char, CString};
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use serde_json::json;

    use crate::{Engine, EngineError, Request};

    fn into_c_string(text: String) -> *mut c_char {
        // JSON escapes NUL inside strings, so serialised JSON never holds one.
        CString::new(text).expect("JSON has no NUL byte").into_raw()
    }

    /// `nestor_engine_info()`.
    pub fn native_info<E: Engine>() -> *mut c_char {
        let info = catch_unwind(E::info)
            .unwrap_or_else(|_| crate::EngineInfo::new("unknown", "0.0.0", "info() panicked"));
        into_c_string(serde_json::to_string(&info).expect("serialises"))
    }

    /// `nestor_engine_render(ptr, len)`.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes.
    pub unsafe fn native_render<E: Engine>(ptr: *const u8, len: usize) -> *mut c_char {
        let bytes = if ptr.is_null() {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(ptr, len) }
        };
        let answer = match catch_unwind(AssertUnwindSafe(|| render_json::<E>(bytes))) {
            Ok(answer) => answer,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                error_json(&EngineError::Internal(format!("panicked: {message}")))
            }
        };
        into_c_string(answer.to_string())
    }

    fn render_json<E: Engine>(bytes: &[u8]) -> serde_json::Value {
        let request: Request = match serde_json::from_slice(bytes) {
            Ok(request) => request,
            Err(e) => {
                return error_json(&EngineError::Internal(format!(
                    "host sent an invalid request: {e}"
                )))
            }
        };
        match E::render(request) {
            Ok(rendered) => json!({"ok": rendered}),
            Err(error) => error_json(&error),
        }
    }

    fn error_json(error: &EngineError) -> serde_json::Value {
        let mut body = json!({"kind": error.kind(), "message": error.message()});
        match error {
            EngineError::ConfigProblems(problems) => body["problems"] = json!(problems),
            EngineError::RefusedReferences(refused) => body["refused"] = json!(refused),
            _ => {}
        }
        json!({ "error": body })
    }

    /// `nestor_engine_validate(ptr, len)`: `{definition, engine_config}` in,
    /// `[{field, message}]` out.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes.
    pub unsafe fn native_validate<E: Engine>(ptr: *const u8, len: usize) -> *mut c_char {
        let bytes = if ptr.is_null() {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(ptr, len) }
        };
        #[derive(serde::Deserialize)]
        struct Ask {
            #[serde(default)]
            definition: crate::Definition,
            #[serde(default)]
            engine_config: crate::Config,
        }
        let answer = catch_unwind(AssertUnwindSafe(|| {
            match serde_json::from_slice::<Ask>(bytes) {
                Ok(ask) => E::validate(&ask.definition, &ask.engine_config),
                Err(e) => vec![crate::ConfigProblem::new(
                    "",
                    format!("host sent an invalid request: {e}"),
                )],
            }
        }))
        .unwrap_or_else(|_| vec![crate::ConfigProblem::new("", "validate() panicked")]);
        into_c_string(json!(answer).to_string())
    }

    /// `nestor_engine_free(ptr)`.
    ///
    /// # Safety
    /// `ptr` must come from [`native_info`] or [`native_render`], freed once.
    pub unsafe fn native_free(ptr: *mut c_char) {
        if !ptr.is_null() {
            drop(unsafe { CString::from_raw(ptr) });
        }
    }
}
