//! Compositions and deployments from the command line: `composition …`,
//! `generate`, `plan`, `apply`, `status`, `rollback`, `promote`, `graph`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use nestor_core::{
    parse_file, scan_annotations, AnnotationContext, CatalogRef, Deployment, DeploymentFilter,
    DeploymentRequest, DeploymentSet, Document, Error, PublishOutcome,
};
use serde_json::json;

use super::output::{emit, timestamp, Table};
use super::Context;

/// `nestor composition …`
#[derive(Debug, Subcommand)]
pub enum CompositionCommand {
    /// Check composition files against the catalog; prints file:line: field: message.
    ///
    /// With --server, against the server's catalog; nothing is written either way.
    Validate {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Publish composition files.
    Publish {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// The newest version of each composition of the team (--team), or of every team with --all.
    List {
        /// Every team.
        #[arg(long)]
        all: bool,
    },
    /// One composition: NAME or NAME:VERSION of the team (--team).
    Get {
        /// e.g. web-app, web-app:1.0.0.
        reference: String,
    },
}

/// Compositions found in files (file, line, composition), and problems.
type FoundCompositions = (Vec<(String, usize, nestor_core::Composition)>, Vec<String>);

fn compositions_in(paths: &[PathBuf]) -> anyhow::Result<FoundCompositions> {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for file in super::catalog::expand(paths)? {
        let name = file.display().to_string();
        let bytes = std::fs::read(&file).with_context(|| format!("reading {name}"))?;
        match parse_file(&bytes) {
            Err(e) => problems.push(format!("{name}:1: {}", e.message)),
            Ok(docs) => {
                for doc in docs {
                    match doc.document {
                        Document::Composition(c) => found.push((name.clone(), doc.line, *c)),
                        Document::Invalid(errors) => problems.extend(
                            errors
                                .iter()
                                .map(|e| format!("{name}:{}: {e}", e.line.unwrap_or(doc.line))),
                        ),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok((found, problems))
}

pub(super) async fn composition(
    command: CompositionCommand,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    match command {
        CompositionCommand::Validate { paths } => publish_or_validate(&paths, false, ctx).await,
        CompositionCommand::Publish { paths } => publish_or_validate(&paths, true, ctx).await,
        CompositionCommand::List { all } => {
            let team = ctx.team();
            let list = ctx
                .backend()
                .await?
                .compositions(if all { None } else { Some(team.as_str()) })
                .await?;
            emit(ctx.format(), &list, || {
                let mut t = Table::new(&["TEAM", "NAME", "VERSION", "RESOURCES", "DESCRIPTION"]);
                for c in &list {
                    let m = &c.composition.metadata;
                    let resources: Vec<&str> = c
                        .composition
                        .spec
                        .resources
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect();
                    t.row(vec![
                        m.team.clone(),
                        m.name.clone(),
                        m.version.to_string(),
                        resources.join(","),
                        c.composition.spec.description.clone(),
                    ]);
                }
                t.render()
            })?;
            Ok(ExitCode::SUCCESS)
        }
        CompositionCommand::Get { reference } => {
            let r = CatalogRef::parse(&reference).map_err(Error::bad_request)?;
            let c = ctx
                .backend()
                .await?
                .composition(&ctx.team(), &r.name, &r.version)
                .await?;
            emit(ctx.format(), &c, || {
                serde_yaml::to_string(&c.composition).unwrap_or_default()
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn publish_or_validate(
    paths: &[PathBuf],
    publish: bool,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    let (found, mut problems) = compositions_in(paths)?;
    let mut lines = Vec::new();
    if publish {
        let backend = ctx.backend().await?;
        for (file, line, c) in found {
            let subject = c.subject();
            match backend.publish_composition(c).await? {
                Ok((outcome, waves)) => {
                    let word = match outcome {
                        PublishOutcome::Created => "created",
                        PublishOutcome::Unchanged => "unchanged",
                    };
                    lines.push(
                        json!({"composition": subject, "file": file, "outcome": word, "waves": waves}),
                    );
                }
                Err(refusal) => {
                    for fe in &refusal.field_errors {
                        problems.push(format!("{file}:{line}: [{}] {fe}", refusal.code));
                    }
                }
            }
        }
    } else {
        let backend = ctx.backend().await?;
        for (file, line, c) in found {
            let check = backend.check_composition(&c).await?;
            match check.code {
                None => lines.push(
                    json!({"composition": check.name, "file": file, "outcome": "valid", "waves": check.waves}),
                ),
                Some(code) => {
                    for fe in &check.errors {
                        problems.push(format!("{file}:{line}: [{code}] {fe}"));
                    }
                }
            }
        }
    }
    let result = json!({"compositions": lines, "errors": problems});
    emit(ctx.format(), &result, || {
        let mut t = Table::new(&["COMPOSITION", "OUTCOME", "WAVES"]);
        for l in &lines {
            let waves: Vec<String> = l["waves"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|w| {
                    w.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            t.row(vec![
                l["composition"].as_str().unwrap_or_default().into(),
                l["outcome"].as_str().unwrap_or_default().into(),
                waves.join(" → "),
            ]);
        }
        let mut out = if lines.is_empty() {
            String::new()
        } else {
            t.render()
        };
        for p in &problems {
            out.push_str(p);
            out.push('\n');
        }
        out
    })?;
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Source files an annotation scan reads: files under 1 MiB below `root`,
/// walked by the one walker (hidden entries skipped, links not followed),
/// build output and dependencies skipped.
fn source_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    const SKIP: [&str; 5] = ["target", "node_modules", "vendor", "dist", "build"];
    let files = nestor_storage::walk_files(root, &SKIP)?;
    Ok(files
        .into_iter()
        .filter(|f| f.len < 1 << 20)
        .filter(|f| f.path.file_name() != Some("nestor.deploy.yaml".as_ref()))
        .map(|f| f.path)
        .collect())
}

/// `nestor generate [PATH]`: annotations → `nestor.deploy.yaml` in PATH.
pub(super) async fn generate(
    root: &Path,
    env: Option<&str>,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    let team = ctx.team();
    let context = AnnotationContext {
        team: &team,
        environment: env,
        default_environment: &ctx.config.defaults.environment,
    };
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for file in source_files(root)? {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        }; // binary files carry no annotations
        let rel = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        match scan_annotations(&text) {
            Err(e) => problems.push(format!("{rel}:{}: {}", e.line.unwrap_or(1), e.message)),
            Ok(found) => {
                let folder = file
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned());
                entries.extend(
                    found
                        .iter()
                        .map(|a| a.entry(context, folder.as_deref(), &rel)),
                );
            }
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        return Err(
            Error::bad_request(format!("{} malformed annotation(s)", problems.len())).into(),
        );
    }
    let set = DeploymentSet::new(entries);
    let path = root.join("nestor.deploy.yaml");
    std::fs::write(&path, serde_yaml::to_string(&set)?)
        .with_context(|| format!("writing {}", path.display()))?;
    emit(ctx.format(), &set, || {
        format!(
            "wrote {} with {} deployment(s)\n",
            path.display(),
            set.deployments.len()
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Reads the deployment file into requests (`--env` overrides every environment).
pub(super) fn requests(file: &Path, env: Option<&str>) -> anyhow::Result<Vec<DeploymentRequest>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::bad_request(format!(
            "reading {}: {e} (run `nestor generate` to create it)",
            file.display()
        ))
    })?;
    let set = DeploymentSet::parse(&text)?;
    Ok(set
        .deployments
        .into_iter()
        .map(|d| d.into_request(env))
        .collect())
}

pub(super) async fn plan(
    file: &Path,
    env: Option<&str>,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    let backend = ctx.backend().await?;
    let mut plans = Vec::new();
    for request in requests(file, env)? {
        plans.push(backend.plan(&request).await?);
    }
    emit(ctx.format(), &plans, || {
        let mut out = String::new();
        for p in &plans {
            let d = &p.deployment;
            let base = p
                .diff
                .base_revision
                .map_or("nothing deployed".to_string(), |r| format!("revision {r}"));
            out.push_str(&format!(
                "{}/{}/{} → revision {} (against {base}): {} to add, {} to change, {} to remove\n",
                d.team,
                d.environment,
                d.name,
                d.revision,
                p.diff.added.len(),
                p.diff.changed.len(),
                p.diff.removed.len()
            ));
            for (mark, list) in [
                ("+", &p.diff.added),
                ("~", &p.diff.changed),
                ("-", &p.diff.removed),
            ] {
                for r in list {
                    let engine = d
                        .resources
                        .iter()
                        .find(|x| &x.name == r)
                        .map(|x| format!(" ({}, {})", x.catalog_ref, x.engine))
                        .unwrap_or_default();
                    out.push_str(&format!("  {mark} {r}{engine}\n"));
                }
            }
            // What the cluster will do, from the core's plan.
            for r in &p.resources {
                out.push_str(&format!(
                    "  wave {}: {} ({}) applied by {}\n",
                    r.wave,
                    r.name,
                    r.engine,
                    r.controller_name()
                ));
                for output in r.output_locations() {
                    out.push_str(&format!("      {output}\n"));
                }
            }
            for w in &p.warnings {
                out.push_str(&format!("  warning: {w}\n"));
            }
            for f in &p.diff.files {
                out.push_str(&f.diff);
            }
        }
        out
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn apply(
    file: &Path,
    env: Option<&str>,
    yes: bool,
    wait: bool,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    let requests = requests(file, env)?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::bad_request(
                "nestor apply changes the GitOps repository: pass --yes to confirm when not on a terminal",
            )
            .into());
        }
        plan(file, env, ctx).await?;
        eprint!("apply {} deployment(s)? [y/N] ", requests.len());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing applied");
            return Ok(ExitCode::FAILURE);
        }
    }
    let backend = ctx.backend().await?;
    let quiet = ctx.global.quiet || ctx.format() != super::Format::Table;
    let mut results = Vec::new();
    for request in requests {
        results.push(backend.apply(&request, wait, quiet).await?);
    }
    emit(ctx.format(), &results, || {
        results.iter().map(summary).collect()
    })?;
    // A deployment still going on is one the server goes on with (an
    // apply without --wait): not a failure.
    let mut ok = true;
    for d in &results {
        if !d.status.is_final() {
            ctx.note(format!(
                "{} goes on on the server: follow it with `nestor status {}` (or apply with --wait)",
                d.id, d.id
            ));
        } else if d.status != nestor_core::DeploymentStatus::Succeeded {
            ok = false;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Whether event `e` tells the progress of an apply of `request`: a
/// deployment event of its team, environment and name. Embedded and remote
/// applies print the same lines because they print from the same events.
pub(super) fn is_progress(e: &nestor_core::Event, request: &DeploymentRequest) -> bool {
    use nestor_core::EventType::*;
    matches!(
        e.event_type,
        DeploymentStarted | DeploymentUpdated | DeploymentCompleted | DeploymentFailed
    ) && e.data["team"].as_str() == Some(request.team.as_str())
        && e.data["environment"].as_str() == Some(request.environment.as_str())
        && e.data["name"].as_str() == Some(request.name.as_str())
}

/// Prints the resource status changes a deployment event carries, one
/// line per change since the last one `seen`.
pub(super) fn print_progress(data: &serde_json::Value, seen: &mut BTreeMap<String, String>) {
    let Ok(d) = serde_json::from_value::<Deployment>(data.clone()) else {
        return;
    };
    for r in &d.resources {
        let status = format!("{:?}", r.status).to_lowercase();
        if seen.get(&r.name) != Some(&status) {
            eprintln!("  {:<20} {:<10} {}", r.name, status, r.engine);
            seen.insert(r.name.clone(), status);
        }
    }
}

fn summary(d: &Deployment) -> String {
    let mut out = format!(
        "{} {}/{}/{} revision {}: {}{}\n",
        d.id,
        d.team,
        d.environment,
        d.name,
        d.revision,
        d.status.as_str(),
        d.commit
            .as_deref()
            .map(|c| format!(" (commit {})", &c[..c.len().min(12)]))
            .unwrap_or_default()
    );
    if let Some(cluster) = &d.cluster {
        out.push_str(&format!("cluster: {}\n", cluster.message));
    }
    for w in &d.policy_warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    let mut t = Table::new(&[
        "RESOURCE",
        "DEFINITION",
        "ENGINE",
        "STATUS",
        "HEALTH",
        "ERROR",
    ]);
    for r in &d.resources {
        t.row(vec![
            r.name.clone(),
            r.catalog_ref.clone(),
            r.engine.clone(),
            format!("{:?}", r.status).to_lowercase(),
            r.health
                .as_ref()
                .map(|h| format!("{:?}", h.status))
                .unwrap_or_else(|| "-".into()),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&t.render());
    out
}

pub(super) async fn status(
    id: Option<&str>,
    env: Option<&str>,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    let backend = ctx.backend().await?;
    if let Some(id) = id {
        let d = backend.deployment(id).await?;
        emit(ctx.format(), &d, || summary(&d))?;
        return Ok(ExitCode::SUCCESS);
    }
    let filter = DeploymentFilter {
        team: Some(ctx.team()),
        environment: env.map(str::to_string),
        ..Default::default()
    };
    let list = backend.deployments(&filter).await?;
    emit(ctx.format(), &list, || {
        let mut t = Table::new(&["ID", "ENVIRONMENT", "NAME", "REVISION", "STATUS", "UPDATED"]);
        for d in &list {
            t.row(vec![
                d.id.clone(),
                d.environment.clone(),
                d.name.clone(),
                d.revision.to_string(),
                d.status.as_str().into(),
                timestamp(d.updated_at),
            ]);
        }
        t.render()
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn rollback(
    id: &str,
    to: Option<u64>,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    let d = ctx.backend().await?.rollback(id, to).await?;
    emit(ctx.format(), &d, || summary(&d))?;
    Ok(if d.status == nestor_core::DeploymentStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(super) async fn promote(
    from: &str,
    to: &str,
    name: Option<&str>,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    let team = ctx.team();
    let names: Vec<String> = match name {
        Some(n) => vec![n.to_string()],
        None => {
            let backend = ctx.backend().await?;
            let filter = DeploymentFilter {
                team: Some(team.clone()),
                environment: Some(from.into()),
                ..Default::default()
            };
            let mut names: Vec<String> = backend
                .deployments(&filter)
                .await?
                .into_iter()
                .map(|d| d.name)
                .collect();
            names.sort();
            names.dedup();
            names
        }
    };
    if names.is_empty() {
        return Err(Error::DeploymentNotFound {
            id: format!("{team}/{from} (nothing deployed)"),
        }
        .into());
    }
    let backend = ctx.backend().await?;
    let mut results = Vec::new();
    for n in names {
        results.push(backend.promote(&team, &n, from, to).await?);
    }
    emit(ctx.format(), &results, || {
        results.iter().map(summary).collect()
    })?;
    Ok(
        if results
            .iter()
            .all(|d| d.status == nestor_core::DeploymentStatus::Succeeded)
        {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// `nestor graph`: resources of the team's latest revisions and their edges,
/// plus the catalog dependencies of the definitions they use.
pub(super) async fn graph(
    env: Option<&str>,
    dot: bool,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    let view = ctx.backend().await?.graph(&ctx.team(), env).await?;
    if dot {
        print!("{}", view.to_dot());
        return Ok(ExitCode::SUCCESS);
    }
    emit(ctx.format(), &view, || {
        view.edges
            .iter()
            .map(|e| format!("{} -> {} ({})\n", e.from, e.to, e.kind))
            .collect()
    })?;
    Ok(ExitCode::SUCCESS)
}
