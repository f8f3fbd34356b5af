//! `nestor engines list|inspect` and `nestor render`: the engine host seen
//! from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use nestor_core::{Error, RenderResourceRequest};

use super::output::{emit, Table};
use super::Context;

/// `nestor engines …`
#[derive(Debug, Subcommand)]
pub enum EnginesCommand {
    /// The loaded engines: bundled ones and those in engines.plugins_dir.
    List,
    /// What a .wasm file is: ABI version, name, exports, imports.
    ///
    /// Local by nature: reads a local file (--server is ignored).
    Inspect {
        /// The component file.
        file: PathBuf,
    },
}

pub(super) async fn engines(
    command: EnginesCommand,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    match command {
        EnginesCommand::List => {
            let list = ctx.backend().await?.engines().await?;
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
    let config = nestor_core::parse_assignments(sets.iter().map(String::as_str))
        .map_err(|e| Error::invalid("--set", e))?;
    let request = RenderResourceRequest {
        catalog_ref: reference.to_string(),
        engine,
        config,
        team: ctx.team(),
        environment: ctx.config.defaults.environment.clone(),
    };
    let result = ctx.backend().await?.render(&request).await?;
    emit(ctx.format(), &result, || {
        let mut text = String::new();
        for a in &result.artifacts {
            text.push_str(&format!("--- {} ({})\n{}", a.path, a.media_type, a.content));
            if !a.content.ends_with('\n') {
                text.push('\n');
            }
        }
        let outputs = &result.outputs;
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
