//! The sync service (SPEC §3): read a catalog source, publish what is new in
//! dependency and semver order, yank what vanished, and store the report.
//!
//! Incremental by construction: the service remembers the head it read last
//! and which versions each file published ([`SourceState`]); an unchanged
//! head reads nothing, a changed one re-reads only the files the source's
//! diff names.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::json;

use crate::catalog::{publish_order, BatchMode, CatalogService};
use crate::composer::Composer;
use crate::error::{Error, ErrorCode, FieldError, Result};
use crate::model::*;
use crate::parse::{parse_file, Document};
use crate::source::{CatalogSource, FileChange, SourceHead};

/// A definition read from a file, waiting to be published.
struct Pending {
    file: String,
    document: usize,
    line: usize,
    definition: ResourceDefinition,
}

/// A composition read from a file.
struct PendingComposition {
    file: String,
    document: usize,
    line: usize,
    composition: Composition,
}

/// Syncs catalog sources into the store behind a [`CatalogService`].
#[derive(Clone)]
pub struct SyncService {
    catalog: CatalogService,
    /// Publishes the compositions a source holds (team repositories carry
    /// them beside or instead of definitions); without one they are skipped.
    composer: Option<Composer>,
}

impl SyncService {
    /// A sync service publishing definitions through `catalog`.
    pub fn new(catalog: CatalogService) -> Self {
        SyncService {
            catalog,
            composer: None,
        }
    }

    /// Also publishes compositions found in sources, after the definitions
    /// (which they reference).
    pub fn with_composer(mut self, composer: Composer) -> Self {
        self.composer = Some(composer);
        self
    }

    /// Syncs one source and returns (and stores) its report. Per-document
    /// problems are in the report; an error means the source itself could
    /// not be read (then `sync.failed` is appended).
    pub async fn sync(&self, source: &dyn CatalogSource) -> Result<SyncReport> {
        let started = Instant::now();
        let name = source.config().name.clone();
        match self.run(source, started).await {
            Ok(report) => Ok(report),
            Err(e) => {
                let store = self.catalog.store();
                let _ = store
                    .append(NewEvent {
                        event_type: EventType::SyncFailed,
                        source: name.clone(),
                        subject: name,
                        timestamp: self.catalog.now(),
                        data: json!({"error": {"code": e.code(), "message": e.to_string()}}),
                    })
                    .await;
                Err(e)
            }
        }
    }

    async fn run(&self, source: &dyn CatalogSource, started: Instant) -> Result<SyncReport> {
        let config = source.config();
        let store = self.catalog.store().clone();
        let head = source.head().await?;
        let mut state = store
            .source_state(&config.name)
            .await?
            .unwrap_or_else(|| SourceState {
                source: config.name.clone(),
                ..SourceState::default()
            });
        let mut report = SyncReport {
            source: config.name.clone(),
            commit: head.commit.clone().or(Some(head.id.clone())),
            published: vec![],
            unchanged: 0,
            yanked: vec![],
            errors: vec![],
            duration_ms: 0,
            files_read: 0,
            finished_at: 0,
        };
        if state.head.as_deref() == Some(head.id.as_str()) {
            report.duration_ms = started.elapsed().as_millis() as u64;
            report.finished_at = self.catalog.now();
            store.record_sync(&report).await?;
            return Ok(report);
        }

        let (to_read, deleted) = self.plan(source, &head, &state).await?;
        let contents = source.read_files(&head, &to_read).await;
        report.files_read = to_read.len();
        let (pending, compositions, clean_files, errors) = parse_all(&to_read, contents);
        report.errors.extend(errors);

        let origin_for = |file: &str| Origin {
            source: config.name.clone(),
            git_repository: config.url.clone(),
            git_commit: head.commit.clone(),
            git_path: file.to_string(),
        };
        let mut now_in_file: BTreeMap<String, Vec<String>> =
            to_read.iter().map(|f| (f.clone(), vec![])).collect();
        let pending = publish_order(pending, |p| &p.definition);
        // The definitions move into the batch; what the report needs of each
        // (where it was read) stays here.
        let mut batch = Vec::with_capacity(pending.len());
        let mut places = Vec::with_capacity(pending.len());
        for p in pending {
            let subject = p.definition.subject();
            batch.push((p.definition, Some(origin_for(&p.file))));
            places.push((p.file, p.document, p.line, subject));
        }
        // The definitions were validated as they were parsed, and only the
        // outcomes are needed back: the versions move to the store.
        let mode = BatchMode {
            validated: true,
            keep_versions: false,
        };
        let results = self
            .catalog
            .publish_batch(batch, &config.name, mode)
            .await?;
        for ((file, document, line, subject), result) in places.into_iter().zip(results) {
            // A document that failed to publish (an in-place edit refused as
            // immutable, a breaking change without a bump, a dependency that
            // does not resolve) still names its version: the file holds it,
            // so it is not counted as vanished and never yanked.
            now_in_file.entry(file.clone()).or_default().push(subject);
            match result {
                Ok(r) => match r.outcome {
                    PublishOutcome::Created => report.published.push(r.subject),
                    PublishOutcome::Unchanged => {
                        report.unchanged += 1;
                        if let Some(version) = &r.version {
                            self.restore_if_returned(version, &config.name).await?;
                        }
                    }
                },
                Err(e) => report
                    .errors
                    .push(document_error(&file, document, line, &e)),
            }
        }
        if let Some(composer) = &self.composer {
            for c in compositions {
                let subject = c.composition.subject();
                let team = c.composition.metadata.team.clone();
                match composer
                    .publish(c.composition, Some(origin_for(&c.file)), &config.name)
                    .await
                {
                    Ok(r) if r.outcome == PublishOutcome::Created => report.published.push(subject),
                    Ok(_) => report.unchanged += 1,
                    Err(e @ (Error::StorageUnavailable { .. } | Error::Internal { .. })) => {
                        return Err(e)
                    }
                    Err(e) => report.errors.push(DocumentError {
                        team: Some(team),
                        ..document_error(&c.file, c.document, c.line, &e)
                    }),
                }
            }
        }

        // Yank what vanished: deleted files, and versions missing from files
        // that were re-read cleanly.
        let mut gone: Vec<String> = Vec::new();
        for file in &deleted {
            gone.extend(state.files.remove(file).unwrap_or_default());
        }
        for (file, subjects) in &now_in_file {
            let before = state.files.get(file).cloned().unwrap_or_default();
            if clean_files.contains(file) {
                gone.extend(before.into_iter().filter(|s| !subjects.contains(s)));
                if subjects.is_empty() {
                    state.files.remove(file);
                } else {
                    state.files.insert(file.clone(), subjects.clone());
                }
            } else {
                let merged: BTreeSet<String> =
                    before.into_iter().chain(subjects.iter().cloned()).collect();
                state
                    .files
                    .insert(file.clone(), merged.into_iter().collect());
            }
        }
        let still_present: BTreeSet<&String> = state.files.values().flatten().collect();
        for subject in gone {
            if still_present.contains(&subject) {
                continue; // moved to another file
            }
            if let Some((name, version)) = subject.split_once(':') {
                let Ok(version) = version.parse() else {
                    continue;
                };
                // A version that never published (its document failed) has
                // nothing to yank.
                match self
                    .catalog
                    .set_yanked(name, &version, true, &config.name)
                    .await
                {
                    Ok(true) => report.yanked.push(subject),
                    Ok(false) | Err(Error::VersionNotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }

        state.head = Some(head.id.clone());
        store.save_source_state(&state).await?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        report.finished_at = self.catalog.now();
        store.record_sync(&report).await?;
        store
            .append(NewEvent {
                event_type: EventType::SyncCompleted,
                source: config.name.clone(),
                subject: config.name.clone(),
                timestamp: report.finished_at,
                data: json!(report),
            })
            .await?;
        Ok(report)
    }

    /// Which files to read and which were deleted: the source's diff when it
    /// has one from the last head, else everything.
    async fn plan(
        &self,
        source: &dyn CatalogSource,
        head: &SourceHead,
        state: &SourceState,
    ) -> Result<(Vec<String>, Vec<String>)> {
        if let Some(previous) = &state.head {
            if let Some(changes) = source.changed_files(previous, head).await? {
                let mut read = Vec::new();
                let mut deleted = Vec::new();
                for change in changes {
                    match change {
                        FileChange::Modified(p) => read.push(p),
                        FileChange::Deleted(p) => deleted.push(p),
                    }
                }
                return Ok((read, deleted));
            }
        }
        let files = source.list_files(head).await?;
        let listed: BTreeSet<&String> = files.iter().collect();
        let deleted = state
            .files
            .keys()
            .filter(|f| !listed.contains(f))
            .cloned()
            .collect();
        Ok((files, deleted))
    }

    /// A version that was yanked because its file vanished comes back when
    /// the same content reappears in the same source.
    async fn restore_if_returned(&self, version: &PublishedVersion, source: &str) -> Result<()> {
        let from_here = version.origin.as_ref().is_some_and(|o| o.source == source);
        if version.yanked && from_here {
            self.catalog
                .set_yanked(version.name(), version.version(), false, source)
                .await?;
        }
        Ok(())
    }
}

fn document_error(file: &str, document: usize, line: usize, e: &Error) -> DocumentError {
    let mut errors = e.field_errors();
    for err in &mut errors {
        err.line.get_or_insert(line);
    }
    if errors.is_empty() {
        errors.push(FieldError::new("", e.to_string()));
    }
    DocumentError {
        file: file.into(),
        document,
        line,
        code: e.code().as_str().into(),
        errors,
        team: None,
    }
}

/// Parses every file, on all cores: parsing is pure CPU work and the bulk
/// of a cold sync. Returns the definitions, the files whose every document
/// was usable, and the per-document errors, all in file order.
/// A file to parse: its path and what reading it gave.
type Job<'a> = (&'a String, Result<Vec<u8>>);

type Parsed = (
    Vec<Pending>,
    Vec<PendingComposition>,
    BTreeSet<String>,
    Vec<DocumentError>,
);

fn parse_all(paths: &[String], contents: Vec<Result<Vec<u8>>>) -> Parsed {
    let jobs: Vec<Job<'_>> = paths.iter().zip(contents).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = jobs.len().div_ceil(threads).max(64);
    let mut parsed: Vec<FileParse> = Vec::with_capacity(jobs.len());
    if jobs.len() <= chunk {
        parsed.extend(jobs.into_iter().map(|(p, c)| parse_one(p, c)));
    } else {
        let mut chunks: Vec<Vec<Job<'_>>> = Vec::new();
        let mut iter = jobs.into_iter().peekable();
        while iter.peek().is_some() {
            chunks.push(iter.by_ref().take(chunk).collect());
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|c| {
                    scope.spawn(move || {
                        c.into_iter()
                            .map(|(p, b)| parse_one(p, b))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                parsed.extend(h.join().expect("parsing never panics"));
            }
        });
    }
    let mut pending = Vec::new();
    let mut compositions = Vec::new();
    let mut clean = BTreeSet::new();
    let mut errors = Vec::new();
    for (path, file) in paths.iter().zip(parsed) {
        pending.extend(file.definitions);
        compositions.extend(file.compositions);
        if file.errors.is_empty() {
            clean.insert(path.clone());
        }
        errors.extend(file.errors);
    }
    (pending, compositions, clean, errors)
}

/// What one file held.
#[derive(Default)]
struct FileParse {
    definitions: Vec<Pending>,
    compositions: Vec<PendingComposition>,
    errors: Vec<DocumentError>,
}

/// Parses one file: its definitions and compositions, and the errors of
/// the documents that were not usable.
fn parse_one(path: &str, bytes: Result<Vec<u8>>) -> FileParse {
    let mut out = FileParse::default();
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            out.errors.push(document_error(path, 0, 1, &e));
            return out;
        }
    };
    let docs = match parse_file(&bytes) {
        Ok(docs) => docs,
        Err(e) => {
            let error = DocumentError {
                file: path.into(),
                document: 0,
                line: 1,
                code: ErrorCode::BadRequest.as_str().into(),
                errors: vec![e],
                team: None,
            };
            out.errors.push(error);
            return out;
        }
    };
    for doc in docs {
        match doc.document {
            Document::Definition(def) => out.definitions.push(Pending {
                file: path.into(),
                document: doc.index,
                line: doc.line,
                definition: *def,
            }),
            Document::Composition(c) => out.compositions.push(PendingComposition {
                file: path.into(),
                document: doc.index,
                line: doc.line,
                composition: *c,
            }),
            Document::Invalid(errs) => out.errors.push(DocumentError {
                file: path.into(),
                document: doc.index,
                line: doc.line,
                code: ErrorCode::ValidationFailed.as_str().into(),
                errors: errs,
                team: None,
            }),
            Document::Foreign { api_version, kind } => {
                tracing::warn!(file = path, document = doc.index, %api_version, %kind, "skipping a document that is not Nestor's");
            }
        }
    }
    out
}
