//! `nestor engines list|inspect` and `nestor render`: the engine host seen
//! from the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use nestor_core::{
    render_inputs, CatalogRef, CompositionResource, EngineProvider, Error, RenderContext,
    RenderRequest, TemplateContext,
};
use serde_json::json;

use super::output::{emit, Table};
use super::Context;

/// `nestor engines …`
#[derive(Debug, Subcommand)]
pub enum EnginesCommand {
    /// The loaded engines: bundled ones and those in engines.plugins_dir.
    List,
    /// What a .wasm file is: ABI version, name, exports, imports.
    Inspect {
        /// The component file.
        file: PathBuf,
    },
}

/// One engine as listed: the fields of `nestor_engines::EngineStatus`,
/// readable from a server's answer too.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct EngineLine {
    name: String,
    version: String,
    source: String,
    sha256: String,
    healthy: bool,
    description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub(super) async fn engines(
    command: EnginesCommand,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    match command {
        EnginesCommand::List => {
            let list: Vec<EngineLine> = match ctx.remote()? {
                Some(remote) => remote.engines().await?,
                None => ctx
                    .engines()?
                    .list()
                    .into_iter()
                    .map(|e| EngineLine {
                        name: e.name,
                        version: e.version,
                        source: e.source,
                        sha256: e.sha256,
                        healthy: e.healthy,
                        description: e.description,
                        error: e.error,
                    })
                    .collect(),
            };
            emit(ctx.format(), &list, || {
                let mut t = Table::new(&[
                    "NAME",
                    "VERSION",
                    "SOURCE",
                    "HEALTHY",
                    "SHA256",
                    "DESCRIPTION",
                ]);
                for e in &list {
                    let desc = e.error.clone().unwrap_or_else(|| e.description.clone());
                    t.row(vec![
                        e.name.clone(),
                        e.version.clone(),
                        e.source.clone(),
                        e.healthy.to_string(),
                        e.sha256.chars().take(12).collect(),
                        desc,
                    ]);
                }
                t.render()
            })?;
            Ok(ExitCode::SUCCESS)
        }
        EnginesCommand::Inspect { file } => {
            let info = nestor_engines::inspect_component(&file)?;
            emit(ctx.format(), &info, || {
                let mut out = format!("{}\n", file.display());
                let field = |k: &str, v: &Option<String>| {
                    format!("  {k:<12}{}\n", v.as_deref().unwrap_or("-"))
                };
                out.push_str(&field("abi", &info.abi_version));
                out.push_str(&field("name", &info.name));
                out.push_str(&field("version", &info.version));
                out.push_str(&field("description", &info.description));
                out.push_str(&format!(
                    "  {:<12}{}\n  {:<12}{} bytes\n",
                    "sha256", info.sha256, "size", info.size_bytes
                ));
                out.push_str("  exports:\n");
                for e in &info.exports {
                    out.push_str(&format!("    {e}\n"));
                }
                out.push_str("  imports:\n");
                for i in &info.imports {
                    out.push_str(&format!("    {i}\n"));
                }
                if let Some(e) = &info.load_error {
                    out.push_str(&format!("  would not load: {e}\n"));
                }
                out
            })?;
            Ok(if info.load_error.is_none() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// `nestor render NAME[:VERSION] --engine E --set k=v…`: the artifacts one
/// resource would produce, inputs validated and defaults applied.
pub(super) async fn render(
    reference: &str,
    engine: Option<String>,
    sets: &[String],
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    let r = CatalogRef::parse(reference).map_err(Error::bad_request)?;
    let store = ctx.store().await?;
    let version = store.resolve(&r.name, &r.version).await?;
    let def = &version.definition;
    let engine_name = match engine {
        Some(e) => e,
        None => def.spec.supported_engines[0].clone(),
    };
    if !def.spec.supported_engines.contains(&engine_name) {
        return Err(Error::invalid(
            "engine",
            format!(
                "{} does not support {engine_name:?} (supported: {})",
                def.subject(),
                def.spec.supported_engines.join(", ")
            ),
        )
        .into());
    }
    let config = nestor_core::parse_assignments(sets.iter().map(String::as_str))
        .map_err(|e| Error::invalid("--set", e))?;
    let resource = CompositionResource {
        name: r.name.clone(),
        catalog_ref: def.subject(),
        engine: Some(engine_name.clone()),
        config,
        depends_on: vec![],
    };
    let team = ctx.team();
    let environment = ctx.config.defaults.environment.clone();
    let tctx = TemplateContext {
        team: team.clone(),
        environment: environment.clone(),
        deployment: r.name.clone(),
        ..Default::default()
    };
    let inputs = render_inputs(&resource, def, &tctx)?;
    let registry = ctx.engines()?;
    let engine = registry
        .engine(&engine_name)
        .ok_or_else(|| Error::EngineNotFound {
            name: engine_name.clone(),
        })?;
    let request = RenderRequest {
        resource: r.name.clone(),
        definition: def.clone(),
        inputs,
        references: vec![],
        engine_config: def
            .spec
            .engine_configs
            .get(&engine_name)
            .cloned()
            .unwrap_or(serde_json::Value::Null),
        context: RenderContext::for_resource(&team, &environment, &r.name, &r.name, 0, 1),
    };
    let out = engine.render(&request).await?;
    let result = json!({"resource": def.subject(), "engine": engine_name, "artifacts": out.artifacts, "outputs": out.outputs});
    emit(ctx.format(), &result, || {
        let mut text = String::new();
        for a in &out.artifacts {
            text.push_str(&format!("--- {} ({})\n{}", a.path, a.media_type, a.content));
            if !a.content.ends_with('\n') {
                text.push('\n');
            }
        }
        let outputs: BTreeMap<_, _> = out.outputs.iter().collect();
        if !outputs.is_empty() {
            text.push_str("--- outputs\n");
            for (k, v) in outputs {
                text.push_str(&format!("{k} = {v}\n"));
            }
        }
        text
    })?;
    Ok(ExitCode::SUCCESS)
}
