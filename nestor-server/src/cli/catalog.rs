//! `nestor catalog …`: validate and diff offline; sync, publish, yank and
//! browse on the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use nestor_core::{
    compare, parse_file, publish_order, CatalogRef, CheckScope, Document, Error, FieldError,
    ListFilter, PageRequest, PublishOutcome, PublishedVersion, ResourceDefinition,
};
use serde::Serialize;
use serde_json::json;

use super::output::{emit, timestamp, truncate, Table};
use super::Context;

/// The catalog subcommands.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Validate definition files offline; prints file:line: field: message.
    ///
    /// Local by nature: reads only the files and the local engines (--server is ignored).
    Validate {
        /// Files or folders (searched for *.yaml / *.yml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Classify the changes between two versions and the bump they need.
    ///
    /// Local by nature: compares two files (--server is ignored).
    Diff {
        /// The older definition file.
        old: PathBuf,
        /// The newer definition file.
        new: PathBuf,
    },
    /// Sync a catalog source (a configured source name, a git URL or a folder).
    Sync {
        /// Source name from the configuration, or a URL or path.
        source: String,
        /// Branch to read (default: the source's, else main). Embedded only:
        /// with --server the server's source configuration decides.
        #[arg(long)]
        branch: Option<String>,
        /// Folder inside the repository to read.
        #[arg(long)]
        path: Option<String>,
    },
    /// List the latest version of each definition.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Page size (at most 500).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Cursor printed by the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one definition: NAME, NAME:VERSION or NAME:REQUIREMENT.
    Get {
        /// e.g. aws-rds-mysql, aws-rds-mysql:1.2.0, 'aws-rds-mysql:^1.1'.
        reference: String,
    },
    /// A definition's versions, newest first.
    Versions {
        /// The definition's name.
        name: String,
    },
    /// Ranked search over names, descriptions, labels and types.
    Search {
        /// Words to look for.
        query: String,
        #[command(flatten)]
        filter: FilterArgs,
        /// Most results.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Publish definition files (dependencies first, ascending versions).
    Publish {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Yank a version: still readable exactly, never chosen again.
    Yank {
        /// The definition's name.
        name: String,
        /// The version to yank.
        version: String,
        /// Restore a yanked version instead (the same as `catalog unyank`).
        #[arg(long)]
        undo: bool,
    },
    /// Restore a yanked version: it can be chosen as latest and by
    /// requirements again.
    Unyank {
        /// The definition's name.
        name: String,
        /// The version to restore.
        version: String,
    },
}

/// The list and search filters.
#[derive(Debug, Clone, clap::Args)]
pub struct FilterArgs {
    /// Only this provider.
    #[arg(long)]
    provider: Option<String>,
    /// Only this category.
    #[arg(long)]
    category: Option<String>,
    /// Only this resource type.
    #[arg(long = "resource-type")]
    resource_type: Option<String>,
    /// Only definitions supporting this engine.
    #[arg(long)]
    engine: Option<String>,
    /// Only definitions with this label (key=value; repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Substring of name or description.
    #[arg(long)]
    q: Option<String>,
}

impl FilterArgs {
    fn to_filter(&self) -> anyhow::Result<ListFilter> {
        let mut labels = BTreeMap::new();
        for l in &self.labels {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| Error::bad_request(format!("--label {l:?}: expected KEY=VALUE")))?;
            labels.insert(k.to_string(), v.to_string());
        }
        Ok(ListFilter {
            provider: self.provider.clone(),
            category: self.category.clone(),
            resource_type: self.resource_type.clone(),
            engine: self.engine.clone(),
            labels,
            q: self.q.clone(),
        })
    }
}

pub(super) async fn run(command: CatalogCommand, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    match command {
        CatalogCommand::Validate { paths } => validate(&paths, ctx).await,
        CatalogCommand::Diff { old, new } => diff(&old, &new, ctx),
        CatalogCommand::Sync {
            source,
            branch,
            path,
        } => sync(&source, branch, path, ctx).await,
        CatalogCommand::List {
            filter,
            limit,
            cursor,
        } => list(&filter, limit, cursor, ctx).await,
        CatalogCommand::Get { reference } => get(&reference, ctx).await,
        CatalogCommand::Versions { name } => versions(&name, ctx).await,
        CatalogCommand::Search {
            query,
            filter,
            limit,
        } => search(&query, &filter, limit, ctx).await,
        CatalogCommand::Publish { paths } => publish(&paths, ctx).await,
        CatalogCommand::Yank {
            name,
            version,
            undo,
        } => yank(&name, &version, undo, ctx).await,
        CatalogCommand::Unyank { name, version } => yank(&name, &version, true, ctx).await,
    }
}

/// Every catalog file below the given paths, in path order: folders are
/// walked as a folder catalog source reads them (the same walker, the same
/// catalog-file rule); a file named directly is read whatever its name.
pub(super) fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = nestor_storage::walk_files(path, &[])?;
            files.extend(
                found
                    .into_iter()
                    .filter(|f| nestor_core::is_catalog_file(&f.rel, ""))
                    .map(|f| f.path),
            );
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(
                Error::bad_request(format!("{}: no such file or folder", path.display())).into(),
            );
        }
    }
    files.sort();
    Ok(files)
}

/// A problem found by offline validation, with where it is.
#[derive(Debug, Serialize)]
struct Problem {
    file: String,
    line: usize,
    code: &'static str,
    field: String,
    message: String,
}

/// A valid definition and where it was read.
struct Found {
    file: String,
    line: usize,
    definition: ResourceDefinition,
}

/// Reads and parses files, collecting definitions and problems.
fn read_definitions(files: &[PathBuf], problems: &mut Vec<Problem>) -> Vec<Found> {
    let mut found = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                problems.push(Problem {
                    file: name,
                    line: 1,
                    code: "BAD_REQUEST",
                    field: String::new(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let docs = match parse_file(&bytes) {
            Ok(docs) => docs,
            Err(e) => {
                problems.push(Problem {
                    file: name,
                    line: 1,
                    code: "BAD_REQUEST",
                    field: e.field,
                    message: e.message,
                });
                continue;
            }
        };
        for doc in docs {
            match doc.document {
                Document::Definition(def) => found.push(Found {
                    file: name.clone(),
                    line: doc.line,
                    definition: *def,
                }),
                Document::Invalid(errors) => problems.extend(errors.into_iter().map(|e| Problem {
                    file: name.clone(),
                    line: e.line.unwrap_or(doc.line),
                    code: "VALIDATION_FAILED",
                    field: e.field,
                    message: e.message,
                })),
                Document::Foreign { api_version, kind } => {
                    tracing::warn!(file = %name, line = doc.line, %api_version, %kind, "skipped a document that is not Nestor's")
                }
                Document::Composition(_) => {}
            }
        }
    }
    found
}

/// `nestor catalog validate`: the files' definitions checked together by
/// the core as a publish of them would be, against nothing else
/// (`CheckScope::Offline`), with the configured engines.
async fn validate(paths: &[PathBuf], ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    let files = expand(paths)?;
    let mut problems = Vec::new();
    let found = read_definitions(&files, &mut problems);
    let mut places = Vec::with_capacity(found.len());
    let mut documents = Vec::with_capacity(found.len());
    for (i, f) in found.into_iter().enumerate() {
        places.push((f.file, f.line));
        documents.push((i, Document::Definition(Box::new(f.definition))));
    }
    let checked = super::lazy::offline(&ctx.config)?
        .check_documents(documents, CheckScope::Offline)
        .await?;
    let mut valid = 0;
    for check in checked {
        let (file, line) = &places[check.index];
        let Some(code) = check.code else {
            valid += 1;
            continue;
        };
        problems.extend(check.errors.into_iter().map(|e| Problem {
            file: file.clone(),
            line: e.line.unwrap_or(*line),
            code: code.as_str(),
            field: e.field,
            message: e.message,
        }));
    }
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    let summary = json!({"files": files.len(), "definitions": valid, "errors": problems});
    emit(ctx.format(), &summary, || {
        problems
            .iter()
            .map(|p| {
                let field = if p.field.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", p.field)
                };
                format!("{}:{}: {field}{}\n", p.file, p.line, p.message)
            })
            .collect()
    })?;
    ctx.note(format!(
        "{} file(s), {valid} valid definition(s), {} error(s)",
        files.len(),
        problems.len()
    ));
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn read_one(path: &Path) -> anyhow::Result<ResourceDefinition> {
    let mut problems = Vec::new();
    let mut found = read_definitions(&[path.to_path_buf()], &mut problems);
    if let Some(p) = problems.first() {
        let errors = problems
            .iter()
            .map(|p| FieldError {
                field: p.field.clone(),
                message: p.message.clone(),
                line: Some(p.line),
            })
            .collect();
        return Err(anyhow::Error::new(Error::Validation { errors })
            .context(format!("{}:{}", p.file, p.line)));
    }
    match found.len() {
        1 => Ok(found.remove(0).definition),
        n => Err(Error::bad_request(format!(
            "{}: expected one resource definition, found {n}",
            path.display()
        ))
        .into()),
    }
}

fn diff(old: &Path, new: &Path, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    let (a, b) = (read_one(old)?, read_one(new)?);
    let comparison = compare(&a, &b);
    emit(ctx.format(), &comparison, || {
        let c = &comparison;
        let mut t = Table::new(&["KIND", "FIELD", "CHANGE"]);
        for change in &c.changes {
            t.row(vec![
                change.kind.as_str().into(),
                change.field.clone(),
                change.message.clone(),
            ]);
        }
        let verdict = if c.ok { "ok" } else { "too small" };
        format!(
            "{}required bump: {} (at least {}); {} → {}: {verdict}\n",
            if c.changes.is_empty() {
                "no changes\n".to_string()
            } else {
                t.render()
            },
            c.required_bump.as_str(),
            c.minimum_version,
            c.old_version,
            c.new_version
        )
    })?;
    Ok(if comparison.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn sync(
    source: &str,
    branch: Option<String>,
    path: Option<String>,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    let report = ctx.backend().await?.sync(source, branch, path).await?;
    print_sync(&report, ctx)
}

/// Prints a sync report; fails when a document was skipped.
fn print_sync(report: &nestor_core::SyncReport, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    emit(ctx.format(), report, || {
        let mut out = format!(
            "synced {} at {}: {} published, {} unchanged, {} yanked, {} error(s), {} file(s) read in {} ms\n",
            report.source,
            report.commit.as_deref().map(|c| truncate(c, 12)).unwrap_or_default(),
            report.published.len(),
            report.unchanged,
            report.yanked.len(),
            report.errors.len(),
            report.files_read,
            report.duration_ms
        );
        for p in &report.published {
            out.push_str(&format!("  published {p}\n"));
        }
        for y in &report.yanked {
            out.push_str(&format!("  yanked    {y}\n"));
        }
        for e in &report.errors {
            for fe in &e.errors {
                out.push_str(&format!(
                    "{}:{}: [{}] {fe}\n",
                    e.file,
                    fe.line.unwrap_or(e.line),
                    e.code
                ));
            }
        }
        out
    })?;
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A source name for an ad-hoc URL or path: its last segment without `.git`.
pub(super) fn source_name(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(url);
    let name = last.trim_end_matches(".git");
    if name.is_empty() || name == "." {
        "catalog".into()
    } else {
        name.into()
    }
}

fn definition_row(v: &PublishedVersion) -> Vec<String> {
    let m = &v.definition.metadata;
    let mut version = v.version().to_string();
    if m.deprecated {
        version.push_str(" (deprecated)");
    }
    vec![
        m.name.clone(),
        version,
        m.provider.clone(),
        m.category.clone(),
        m.resource_type.clone(),
        v.definition.spec.supported_engines.join(","),
        truncate(&m.description, 50),
    ]
}

const DEFINITION_HEADERS: [&str; 7] = [
    "NAME",
    "VERSION",
    "PROVIDER",
    "CATEGORY",
    "TYPE",
    "ENGINES",
    "DESCRIPTION",
];

async fn list(
    filter: &FilterArgs,
    limit: usize,
    cursor: Option<String>,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    if !(1..=PageRequest::MAX_LIMIT).contains(&limit) {
        return Err(Error::bad_request(format!(
            "--limit must be between 1 and {}",
            PageRequest::MAX_LIMIT
        ))
        .into());
    }
    let store = ctx.backend().await?;
    let page = store
        .list_latest(&filter.to_filter()?, &PageRequest { limit, cursor })
        .await?;
    emit(ctx.format(), &page, || {
        let mut t = Table::new(&DEFINITION_HEADERS);
        for v in &page.items {
            t.row(definition_row(v));
        }
        t.render()
    })?;
    if let Some(c) = &page.next_cursor {
        ctx.note(format!("more: --cursor {c}"));
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(reference: &str, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    let r = CatalogRef::parse(reference).map_err(Error::bad_request)?;
    let store = ctx.backend().await?;
    let v = store.resolve(&r.name, &r.version).await?;
    emit(ctx.format(), &v, || describe(&v))?;
    Ok(ExitCode::SUCCESS)
}

fn describe(v: &PublishedVersion) -> String {
    let d = &v.definition;
    let m = &d.metadata;
    let mut out = format!("{} {}\n", m.name, m.version);
    if !m.description.is_empty() {
        out.push_str(&format!("  {}\n", m.description));
    }
    out.push_str(&format!(
        "provider: {}  category: {}  type: {}  maturity: {:?}  support: {:?}\n",
        m.provider, m.category, m.resource_type, m.maturity, m.support_level
    ));
    out.push_str(&format!(
        "engines: {}\n",
        d.spec.supported_engines.join(", ")
    ));
    if v.yanked {
        out.push_str("YANKED: never chosen for latest or a requirement\n");
    }
    if m.deprecated {
        out.push_str(&format!("DEPRECATED: {}\n", m.deprecation_message));
    }
    if let Some(o) = &v.origin {
        out.push_str(&format!(
            "source: {} {} {}\n",
            o.git_repository,
            o.git_path,
            o.git_commit.as_deref().unwrap_or("(no commit)")
        ));
    }
    let mut t = Table::new(&["INPUT", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"]);
    for (i, required) in d.inputs() {
        let default = i
            .default
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_default();
        t.row(vec![
            i.name.clone(),
            i.value_type.to_string(),
            required.to_string(),
            default,
            truncate(&i.description, 40),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render());
    if !d.spec.outputs.is_empty() {
        let mut t = Table::new(&["OUTPUT", "TYPE", "DESCRIPTION"]);
        for o in &d.spec.outputs {
            t.row(vec![
                o.name.clone(),
                o.value_type.to_string(),
                truncate(&o.description, 50),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    if !d.spec.dependencies.is_empty() {
        out.push_str("\ndepends on: ");
        let deps: Vec<String> = d
            .spec
            .dependencies
            .iter()
            .map(|x| format!("{} {}", x.name, x.version))
            .collect();
        out.push_str(&deps.join(", "));
        out.push('\n');
    }
    out
}

async fn versions(name: &str, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    let store = ctx.backend().await?;
    let versions = store.versions(name).await?;
    if versions.is_empty() {
        return Err(Error::ResourceNotFound { name: name.into() }.into());
    }
    emit(ctx.format(), &versions, || {
        let mut t = Table::new(&["VERSION", "PUBLISHED", "YANKED", "DEPRECATED", "COMMIT"]);
        for v in &versions {
            t.row(vec![
                v.version.to_string(),
                timestamp(v.published_at),
                v.yanked.to_string(),
                v.deprecated.to_string(),
                v.git_commit
                    .as_deref()
                    .map(|c| truncate(c, 12))
                    .unwrap_or_default(),
            ]);
        }
        t.render()
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn search(
    query: &str,
    filter: &FilterArgs,
    limit: usize,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    let store = ctx.backend().await?;
    let hits = store
        .search(
            query,
            &filter.to_filter()?,
            limit.clamp(1, PageRequest::MAX_LIMIT),
        )
        .await?;
    emit(ctx.format(), &hits, || {
        let mut t = Table::new(&[
            "SCORE",
            "NAME",
            "VERSION",
            "PROVIDER",
            "CATEGORY",
            "TYPE",
            "ENGINES",
            "DESCRIPTION",
        ]);
        for h in &hits {
            let mut row = vec![h.score.to_string()];
            row.extend(definition_row(&h.version));
            t.row(row);
        }
        t.render()
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct PublishLine {
    subject: String,
    file: String,
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
}

async fn publish(paths: &[PathBuf], ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    let files = expand(paths)?;
    let mut problems = Vec::new();
    let found = read_definitions(&files, &mut problems);
    let backend = ctx.backend().await?;
    let mut lines = Vec::new();
    let mut failed = !problems.is_empty();
    for f in publish_order(found, |f| &f.definition) {
        let subject = f.definition.subject();
        let line = match backend.publish(f.definition).await? {
            Ok(outcome) => PublishLine {
                subject,
                file: f.file,
                outcome: match outcome {
                    PublishOutcome::Created => "created".into(),
                    PublishOutcome::Unchanged => "unchanged".into(),
                },
                error: None,
            },
            Err(refusal) => {
                failed = true;
                PublishLine {
                    subject,
                    file: f.file,
                    outcome: refusal.code.to_string(),
                    error: Some(refusal.to_json()),
                }
            }
        };
        lines.push(line);
    }
    let result = json!({"published": lines, "invalid": problems});
    emit(ctx.format(), &result, || {
        let mut t = Table::new(&["DEFINITION", "OUTCOME", "FILE"]);
        for l in &lines {
            t.row(vec![l.subject.clone(), l.outcome.clone(), l.file.clone()]);
        }
        let mut out = t.render();
        for l in lines
            .iter()
            .filter_map(|l| l.error.as_ref().map(|e| (l, e)))
        {
            out.push_str(&format!(
                "{}: {}\n",
                l.0.subject,
                l.1["message"].as_str().unwrap_or_default()
            ));
        }
        for p in &problems {
            out.push_str(&format!(
                "{}:{}: {}: {}\n",
                p.file, p.line, p.field, p.message
            ));
        }
        out
    })?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn yank(
    name: &str,
    version: &str,
    undo: bool,
    ctx: &Context<'_>,
) -> anyhow::Result<ExitCode> {
    let version = nestor_core::parse_version(version).map_err(Error::bad_request)?;
    let backend = ctx.backend().await?;
    let changed = backend.set_yanked(name, &version, !undo).await?;
    let state = if undo { "restored" } else { "yanked" };
    let result =
        json!({"name": name, "version": version.to_string(), "yanked": !undo, "changed": changed});
    emit(ctx.format(), &result, || {
        if changed {
            format!("{name}@{version} {state}\n")
        } else {
            format!("{name}@{version} was already {state}\n")
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::source_name;

    #[test]
    fn ad_hoc_sources_are_named_after_their_last_segment() {
        assert_eq!(
            source_name("https://git.example.com/platform/catalog.git"),
            "catalog"
        );
        assert_eq!(source_name("examples/catalog/"), "catalog");
        assert_eq!(source_name("git@host:team/defs.git"), "defs");
        assert_eq!(source_name("."), "catalog");
    }
}
