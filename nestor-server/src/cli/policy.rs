//! `nestor policy test DIR` (the `test_*` rules of a folder of Rego files,
//! run like `opa test`) and `nestor policy check FILE` (what the policies
//! in force say about a deployment file, or about definitions and
//! compositions, without deploying).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use nestor_core::{
    is_rego_file, parse_file, run_policy_tests, DeploymentSet, Document, PolicyCheck, PolicyFile,
    PolicyOrigin, PolicyScope, PolicySubject, PolicyTestReport,
};

use super::deploy::requests;
use super::output::emit;
use super::Context;

/// `nestor policy ...`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the `test_*` rules of the .rego files under DIR, like `opa test`;
    /// exit code 1 when a test fails or a file does not compile.
    ///
    /// Local by nature: reads local files (--server is ignored).
    Test {
        /// The folder (or one file) of policies and their tests.
        dir: PathBuf,
    },
    /// Ask the policies in force about FILE without deploying: every
    /// deployment of a deployment file, or every definition and
    /// composition of a catalog file; exit code 1 when one is denied.
    ///
    /// With --server, FILE must be a deployment file (the server judges
    /// deployments: POST /api/v1/teams/{team}/validate).
    Check {
        /// A deployment file (nestor.deploy.yaml) or a catalog file.
        file: PathBuf,
        /// Override every deployment's environment.
        #[arg(long)]
        env: Option<String>,
    },
}

pub(super) async fn run(command: PolicyCommand, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Test { dir } => test(&dir, ctx),
        PolicyCommand::Check { file, env } => check(&file, env.as_deref(), ctx).await,
    }
}

fn test(dir: &Path, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    let report = run_policy_tests(&rego_files(dir)?);
    emit(ctx.format(), &report, || test_table(&report))?;
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every .rego file at `path` (a file, or a folder's outside hidden
/// folders), named relative to the folder.
fn rego_files(path: &Path) -> anyhow::Result<Vec<PolicyFile>> {
    let found: Vec<(String, PathBuf)> = if path.is_file() {
        vec![(path.display().to_string(), path.to_path_buf())]
    } else {
        nestor_storage::walk_files(path, &[])
            .with_context(|| format!("reading {}", path.display()))?
            .into_iter()
            .filter(|f| is_rego_file(&f.rel))
            .map(|f| (f.rel, f.path))
            .collect()
    };
    let mut files = Vec::with_capacity(found.len());
    for (name, file) in found {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        files.push(PolicyFile {
            origin: PolicyOrigin {
                file: name,
                source: None,
                commit: None,
            },
            scope: PolicyScope::global(),
            text,
        });
    }
    Ok(files)
}

fn test_table(report: &PolicyTestReport) -> String {
    let mut out = String::new();
    for e in &report.errors {
        out.push_str(&format!("ERROR {e}\n"));
    }
    for t in &report.tests {
        match &t.error {
            None => out.push_str(&format!("PASS  {} ({})\n", t.test, t.file)),
            Some(why) => out.push_str(&format!("FAIL  {} ({}): {why}\n", t.test, t.file)),
        }
    }
    if report.tests.is_empty() {
        out.push_str("no test_* rule found\n");
    }
    out.push_str(&format!(
        "{} passed, {} failed\n",
        report.passed(),
        report.failed()
    ));
    out
}

async fn check(file: &Path, env: Option<&str>, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    let backend = ctx.backend().await?;
    let mut checks: Vec<PolicyCheck> = Vec::new();
    for subject in subjects(file, env)? {
        checks.push(backend.evaluate_policies(subject).await?);
    }
    emit(ctx.format(), &checks, || check_table(&checks))?;
    Ok(if checks.iter().all(|c| c.allowed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The deployments of a deployment file, else the definitions and
/// compositions of a catalog file.
fn subjects(file: &Path, env: Option<&str>) -> anyhow::Result<Vec<PolicySubject>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let deployments = DeploymentSet::parse(&text);
    if deployments.is_ok() {
        return Ok(requests(file, env)?
            .into_iter()
            .map(|r| PolicySubject::Deployment(Box::new(r)))
            .collect());
    }
    let documents =
        parse_file(text.as_bytes()).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut subjects = Vec::new();
    for d in documents {
        match d.document {
            Document::Definition(def) => subjects.push(PolicySubject::Definition(def)),
            Document::Composition(c) => subjects.push(PolicySubject::Composition(c)),
            Document::Foreign { .. } => {}
            Document::Invalid(errors) => {
                return Err(nestor_core::Error::Validation { errors }.into());
            }
        }
    }
    if subjects.is_empty() {
        // Neither: the deployment file's error says what was expected.
        deployments?;
    }
    Ok(subjects)
}

fn check_table(checks: &[PolicyCheck]) -> String {
    let mut out = String::new();
    for c in checks {
        let verdict = if c.allowed { "allowed" } else { "denied" };
        out.push_str(&format!("{}: {verdict}\n", c.subject));
        for (kind, list) in [("deny", &c.denials), ("warn", &c.warnings)] {
            for m in list {
                out.push_str(&format!("  {kind}  {m}\n"));
            }
        }
    }
    out
}
