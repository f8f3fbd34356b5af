//! Native engines: a shared library speaking the SDK's versioned C ABI
//! (JSON in, JSON out), for engines that need what the sandbox withholds.
//!
//! The ABI (version [`NATIVE_ABI_VERSION`]), as `export_engine!` in
//! `nestor-engine-sdk` generates it for non-wasm targets:
//! - `u32 nestor_engine_native_abi_version(void)`
//! - `char *nestor_engine_info(void)`: JSON `{name, version, description}`
//! - `char *nestor_engine_render(const uint8_t *request, size_t len)`: the
//!   request is `nestor_core::RenderRequest` as JSON; the answer is
//!   `{"ok": {artifacts: [{path, content, media_type}], outputs: {..}}}` or
//!   `{"error": {kind, message}}`
//! - `void nestor_engine_free(char *)`, for every string returned.
//!
//! A native engine runs in the host process with the host's rights: no CPU
//! or memory budget applies, only the output checks. Load only libraries
//! you would link into Nestor itself.
//!
//! This is one of the two modules allowed `unsafe` (the other is the
//! compiled-component cache): calling into a foreign library cannot be
//! expressed safely. Each library is first copied to a content-addressed
//! path, so replacing the original file (hot reload) neither hands `dlopen`
//! a cached handle of the old version nor changes code that is mapped; and
//! libraries are never unloaded, because unloading Rust libraries that
//! registered thread-local destructors is unsound.
#![allow(unsafe_code)]

use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use nestor_core::{Artifact, Engine, EngineInfo, Error, RenderOutput, RenderRequest, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::host::sha256_hex;

/// The newest native C ABI version this host speaks; version 1 libraries
/// (built with an SDK before references were typed) keep loading and get
/// their inputs in the 0.1.0 shapes.
pub const NATIVE_ABI_VERSION: u32 = 2;

type AbiVersionFn = unsafe extern "C" fn() -> u32;
type InfoFn = unsafe extern "C" fn() -> *mut c_char;
type RenderFn = unsafe extern "C" fn(*const u8, usize) -> *mut c_char;
type FreeFn = unsafe extern "C" fn(*mut c_char);
type ValidateFn = unsafe extern "C" fn(*const u8, usize) -> *mut c_char;

/// A loaded native engine library.
#[derive(Debug, Clone)]
pub struct NativeEngine {
    /// `nestor_engine_render`; valid forever because libraries are never unloaded.
    render_fn: RenderFn,
    /// `nestor_engine_free`.
    free_fn: FreeFn,
    /// `nestor_engine_validate` (version 2).
    validate_fn: Option<ValidateFn>,
    /// The native ABI version the library speaks.
    abi: u32,
    /// Names the library in errors.
    label: String,
    /// Hex SHA-256 of the library file.
    sha256: String,
    /// What `nestor_engine_info` said at load.
    info: EngineInfo,
    /// Cap on one render's answer, as for WASM engines.
    output_limit: usize,
}

impl NativeEngine {
    /// Loads the library at `path`, copying it first into `stage_dir`
    /// (content-addressed), and checks its ABI version.
    pub fn load(path: &Path, stage_dir: &Path, output_limit: usize) -> Result<NativeEngine> {
        let label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fail = |message: String| Error::EngineFailed {
            engine: label.clone(),
            message: format!("native plugin {label} {message}"),
        };
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
        let sha256 = sha256_hex(&bytes);
        let staged = stage(&bytes, &sha256, path, stage_dir)
            .map_err(|e| fail(format!("cannot be staged: {e}")))?;

        // SAFETY: loading runs the library's initialisers; native engines
        // are trusted like the host's own code (module docs). The library
        // is leaked so every symbol below stays valid for the process.
        let library: &'static libloading::Library = unsafe {
            let library = libloading::Library::new(&staged)
                .map_err(|e| fail(format!("cannot be loaded: {e}")))?;
            Box::leak(Box::new(library))
        };
        // SAFETY: the symbol types are the SDK's C ABI, checked by version
        // before any other call.
        let (version, info_fn, render_fn, free_fn, validate_fn) = unsafe {
            let symbol = |name: &[u8]| -> Result<*const (), Error> {
                library.get::<*const ()>(name).map(|s| *s).map_err(|e| {
                    fail(format!(
                        "does not export {}: {e}",
                        String::from_utf8_lossy(&name[..name.len() - 1])
                    ))
                })
            };
            let version: AbiVersionFn =
                std::mem::transmute(symbol(b"nestor_engine_native_abi_version\0")?);
            let version = version();
            if !(1..=NATIVE_ABI_VERSION).contains(&version) {
                return Err(fail(format!(
                    "speaks native ABI {version}; this host speaks 1 to {NATIVE_ABI_VERSION}"
                )));
            }
            let info: InfoFn = std::mem::transmute(symbol(b"nestor_engine_info\0")?);
            let render: RenderFn = std::mem::transmute(symbol(b"nestor_engine_render\0")?);
            let free: FreeFn = std::mem::transmute(symbol(b"nestor_engine_free\0")?);
            let validate: Option<ValidateFn> = if version >= 2 {
                Some(std::mem::transmute::<*const (), ValidateFn>(symbol(
                    b"nestor_engine_validate\0",
                )?))
            } else {
                None
            };
            (version, info, render, free, validate)
        };
        let mut engine = NativeEngine {
            render_fn,
            free_fn,
            validate_fn,
            abi: version,
            label: label.clone(),
            sha256,
            info: EngineInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
            },
            output_limit,
        };
        // SAFETY: `info_fn` returns a string of this library, freed by `take_string`.
        let info_text = unsafe { engine.take_string(info_fn()) }
            .ok_or_else(|| fail("returned no info".into()))?;
        engine.info = serde_json::from_str(&info_text)
            .map_err(|e| fail(format!("returned invalid info: {e}")))?;
        Ok(engine)
    }

    /// Hex SHA-256 of the library file.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Copies the library's string and frees it with the library's allocator.
    ///
    /// # Safety
    /// `ptr` must be null or a NUL-terminated string returned by this library.
    unsafe fn take_string(&self, ptr: *mut c_char) -> Option<String> {
        if ptr.is_null() {
            return None;
        }
        let text = unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned();
        unsafe { (self.free_fn)(ptr) };
        Some(text)
    }

    fn failed(&self, message: impl std::fmt::Display) -> Error {
        Error::EngineFailed {
            engine: self.info.name.clone(),
            message: format!("native plugin {} {message}", self.label),
        }
    }

    /// Renders synchronously on the calling thread.
    pub fn render_blocking(&self, request: &RenderRequest) -> Result<RenderOutput> {
        let body = if self.abi == 1 {
            let mut legacy = request.clone();
            legacy.inputs = crate::abi::legacy_inputs(request);
            legacy.references.clear();
            serde_json::to_vec(&legacy)
        } else {
            serde_json::to_vec(request)
        }
        .map_err(|e| self.failed(format!("could not be sent the request: {e}")))?;
        // SAFETY: `body` outlives the call; the answer is freed by `take_string`.
        let answer = unsafe { self.take_string((self.render_fn)(body.as_ptr(), body.len())) }
            .ok_or_else(|| self.failed("returned nothing"))?;
        if answer.len() > self.output_limit {
            return Err(self.failed(format!(
                "returned {} bytes, over the output cap of {}",
                answer.len(),
                self.output_limit
            )));
        }
        match serde_json::from_str::<Answer>(&answer) {
            Ok(Answer { ok: Some(ok), .. }) => {
                let outputs = ok
                    .outputs
                    .into_iter()
                    .map(|(k, v)| (k, v.to_string()))
                    .collect();
                crate::output::validate(ok.artifacts, outputs, self.output_limit)
                    .map_err(|e| self.failed(e))
            }
            Ok(Answer {
                error: Some(error), ..
            }) => Err(crate::abi::refusal_error(
                &self.info.name,
                &format!("native plugin {}", self.label),
                &request.resource,
                error.refusal(),
            )),
            Ok(_) => Err(self.failed("returned neither `ok` nor `error`")),
            Err(e) => Err(self.failed(format!("returned an invalid answer: {e}"))),
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    ok: Option<AnswerOk>,
    error: Option<AnswerError>,
}

#[derive(Deserialize)]
struct AnswerOk {
    #[serde(default)]
    artifacts: Vec<Artifact>,
    #[serde(default)]
    outputs: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct AnswerError {
    kind: String,
    message: String,
    #[serde(default)]
    problems: Vec<Problem>,
    #[serde(default)]
    refused: Vec<Refused>,
}

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    field: String,
    message: String,
}

#[derive(Deserialize)]
struct Refused {
    input: String,
    #[serde(default)]
    path: Vec<String>,
    reason: String,
}

impl AnswerError {
    fn refusal(self) -> crate::abi::Refusal {
        use crate::abi::Refusal;
        match self.kind.as_str() {
            "invalid-config" => Refusal::InvalidConfig(self.message),
            "invalid-input" => Refusal::InvalidInput(self.message),
            "unsupported" => Refusal::Unsupported(self.message),
            "config-problems" => Refusal::ConfigProblems(
                self.problems
                    .into_iter()
                    .map(|p| (p.field, p.message))
                    .collect(),
            ),
            "refused-references" => Refusal::RefusedReferences(
                self.refused
                    .into_iter()
                    .map(|r| (r.input, r.path, r.reason))
                    .collect(),
            ),
            _ => Refusal::Internal(self.message),
        }
    }
}

/// `stage_dir/{sha256}.{ext}`, written once.
fn stage(
    bytes: &[u8],
    sha256: &str,
    original: &Path,
    stage_dir: &Path,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(stage_dir)?;
    let ext = original
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "so".into());
    let staged = stage_dir.join(format!("{sha256}.{ext}"));
    if !staged.is_file() {
        let temp = staged.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temp, bytes)?;
        std::fs::rename(&temp, &staged)?;
    }
    Ok(staged)
}

#[async_trait]
impl Engine for NativeEngine {
    fn info(&self) -> EngineInfo {
        self.info.clone()
    }

    async fn render(&self, request: &RenderRequest) -> Result<RenderOutput> {
        self.render_blocking(request)
    }

    async fn validate_config(
        &self,
        definition: &nestor_core::ResourceDefinition,
        config: &Value,
    ) -> Result<Vec<nestor_core::FieldError>> {
        let Some(validate) = self.validate_fn else {
            return Ok(Vec::new());
        };
        let body = serde_json::to_vec(
            &serde_json::json!({"definition": definition, "engine_config": config}),
        )
        .map_err(|e| self.failed(format!("could not be sent the request: {e}")))?;
        // SAFETY: `body` outlives the call; the answer is freed by `take_string`.
        let answer = unsafe { self.take_string(validate(body.as_ptr(), body.len())) }
            .ok_or_else(|| self.failed("returned nothing from validate"))?;
        let problems: Vec<Problem> = serde_json::from_str(&answer)
            .map_err(|e| self.failed(format!("returned an invalid validation: {e}")))?;
        Ok(problems
            .into_iter()
            .map(|p| nestor_core::FieldError::new(p.field, p.message))
            .collect())
    }
}
