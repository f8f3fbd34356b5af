//! Run with: `cargo run -p xtask --features schemas -- docs [--check]`
//!
//! Project tasks that are not part of any shipped crate. `docs` writes the
//! book's generated pages from the code — the CLI reference from the clap
//! tree, the configuration reference from the configuration types' schema,
//! the error reference from `ErrorCode`, and the JSON Schemas — and checks
//! the book's internal links. `--check` writes nothing and fails when a
//! generated page differs from what is checked in (CI runs it), so the
//! references cannot drift from the code.

mod cli_ref;
#[cfg(feature = "schemas")]
mod config_ref;
mod errors_ref;
mod links;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("docs") => docs(args.iter().any(|a| a == "--check")),
        _ => {
            eprintln!("usage: cargo run -p xtask [--features schemas] -- docs [--check]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The repository's root (xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the repository")
        .to_path_buf()
}

/// Every generated file: its path from the root and its content.
fn generated() -> anyhow::Result<Vec<(PathBuf, String)>> {
    #[allow(unused_mut)]
    let mut files = vec![
        (PathBuf::from("docs/src/reference/cli.md"), cli_ref::page()),
        (
            PathBuf::from("docs/src/reference/errors.md"),
            errors_ref::page(),
        ),
    ];
    #[cfg(feature = "schemas")]
    {
        files.push((
            PathBuf::from("docs/src/reference/configuration.md"),
            config_ref::page()?,
        ));
        files.extend(schemas()?);
    }
    #[cfg(not(feature = "schemas"))]
    eprintln!(
        "docs: the configuration reference and the JSON Schemas need --features schemas (left as they are)"
    );
    Ok(files)
}

/// The JSON Schemas, one file per format.
#[cfg(feature = "schemas")]
fn schemas() -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    for kind in nestor_server::schema::SchemaKind::ALL {
        let text = serde_json::to_string_pretty(&nestor_server::schema::generate(kind))? + "\n";
        files.push((
            PathBuf::from("docs/src/schemas").join(kind.file_name()),
            text,
        ));
    }
    files.push((
        PathBuf::from("docs/src/schemas/api-responses.schema.json"),
        serde_json::to_string_pretty(&nestor_server::schema::responses())? + "\n",
    ));
    Ok(files)
}

/// Writes (or, with `check`, compares) the generated files, then checks the
/// links. `Ok(false)` when something is stale or broken.
fn docs(check: bool) -> anyhow::Result<bool> {
    // Help texts show `[env: NAME=value]` for variables that are set: the
    // pages must not depend on who generates them.
    for (key, _) in std::env::vars() {
        if key.starts_with("NESTOR_") {
            std::env::remove_var(key);
        }
    }
    let root = root();
    let mut ok = true;
    for (path, content) in generated()? {
        let full = root.join(&path);
        let current = std::fs::read_to_string(&full).unwrap_or_default();
        if current == content {
            continue;
        }
        if check {
            eprintln!(
                "{} is stale: run `cargo run -p xtask --features schemas -- docs` and commit the result",
                path.display()
            );
            ok = false;
        } else {
            if let Some(dir) = full.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&full, content)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    let problems = links::check(&root)?;
    for p in &problems {
        eprintln!("{p}");
    }
    if problems.is_empty() && ok {
        println!("docs: generated pages up to date, internal links resolve");
    }
    Ok(ok && problems.is_empty())
}
