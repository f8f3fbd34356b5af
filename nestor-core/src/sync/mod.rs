//! The sync service (docs/src/platform/git-sources.md): read a catalog source, publish what is new in
//! dependency and semver order, yank what vanished, and store the report.
//!
//! Incremental by construction: the service remembers the head it read last
//! and which versions each file published ([`SourceState`]); an unchanged
//! head reads nothing, a changed one re-reads only the files the source's
//! diff names.
//!
//! A source's policy files (`policies/`) are read with its catalog files
//! and kept whole in its state; their layer of the shared policies is
//! recompiled before the definitions publish (the `policies` module).

mod policies;
mod read;
mod vanished;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::json;

use crate::catalog::{publish_order, BatchMode, CatalogService};
use crate::composer::Composer;
use crate::error::{Error, Result};
use crate::model::*;
use crate::policy::Policies;
use crate::source::{is_policy_file, CatalogSource, FileChange, SourceHead};
use read::{document_error, parse_all, Pending, PendingComposition, Stamp};

/// Syncs catalog sources into the store behind a [`CatalogService`].
#[derive(Clone)]
pub struct SyncService {
    catalog: CatalogService,
    /// Publishes the compositions a source holds (team repositories carry
    /// them beside or instead of definitions); without one they are skipped.
    composer: Option<Composer>,
    /// Where each source's policy files are compiled (one layer per source).
    policies: Policies,
}

impl SyncService {
    /// A sync service publishing definitions through `catalog`.
    pub fn new(catalog: CatalogService) -> Self {
        SyncService {
            catalog,
            composer: None,
            policies: Policies::none(),
        }
    }

    /// Compiles each source's policy files into its layer of `policies`
    /// (the set the catalog, composer and orchestrator evaluate).
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    /// Compiles the stored policy files of every source synced before
    /// into the layers not filled yet (a process starting over a store
    /// whose sources' heads are unchanged reads no file again).
    pub async fn restore_policies(&self) -> Result<()> {
        let store = self.catalog.store();
        for report in store.last_syncs().await? {
            let layer = policies::layer_of(&report.source);
            if self.policies.has_layer(&layer) {
                continue;
            }
            let Some(state) = store.source_state(&report.source).await? else {
                continue;
            };
            let files = policies::files_of(&report.source, &state);
            self.policies.set_layer(&layer, files);
        }
        Ok(())
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
        let mut report = empty_report(&config.name, &head);
        if state.head.as_deref() == Some(head.id.as_str()) {
            // Another process may have synced this head: its policies.
            self.install_policies(config, &state, &mut report);
            return self.finish(report, started, false).await;
        }

        let (to_read, deleted) = self.plan(source, &head, &state).await?;
        let contents = source.read_files(&head, &to_read).await;
        report.files_read = to_read.len();
        let (mut catalog_files, mut catalog_contents) = (Vec::new(), Vec::new());
        let mut policy_reads = Vec::new();
        for (path, bytes) in to_read.into_iter().zip(contents) {
            if is_policy_file(&path, &config.path) {
                policy_reads.push((path, bytes));
            } else {
                catalog_files.push(path);
                catalog_contents.push(bytes);
            }
        }
        let to_read = catalog_files;
        let unread = policies::update(
            &mut state,
            &config.path,
            &deleted,
            policy_reads,
            head.commit.as_ref(),
        );
        report.errors.extend(unread);
        self.install_policies(config, &state, &mut report);
        let stamp = Stamp {
            source: config.name.clone(),
            repository: config.url.clone(),
            commit: head.commit.clone(),
            published_at: self.catalog.now(),
        };
        let offload = self.catalog.offload();
        let parsed = parse_all(&*offload, &to_read, catalog_contents, stamp.clone()).await;
        report.errors.extend(parsed.errors);

        // What each re-read file holds now, whether or not it published.
        let mut now_in_file: BTreeMap<String, Vec<String>> =
            to_read.iter().map(|f| (f.clone(), vec![])).collect();
        self.publish_definitions(parsed.definitions, &stamp, &mut report, &mut now_in_file)
            .await?;
        self.publish_compositions(parsed.compositions, &stamp, &mut report)
            .await?;
        let gone = vanished::settle(&mut state, &deleted, now_in_file, &parsed.clean);
        self.yank(gone, &config.name, &mut report).await?;

        state.head = Some(head.id.clone());
        store.save_source_state(&state).await?;
        self.finish(report, started, true).await
    }

    /// Compiles the source's policy files of `state` into its layer; the
    /// files in force and those that did not compile go into the report.
    fn install_policies(
        &self,
        config: &SourceConfig,
        state: &SourceState,
        report: &mut SyncReport,
    ) {
        let layer = policies::layer_of(&config.name);
        let problems = self
            .policies
            .set_layer(&layer, policies::files_of(&config.name, state));
        report.policies = state
            .policies
            .keys()
            .filter(|path| !problems.iter().any(|p| &p.origin.file == *path))
            .cloned()
            .collect();
        report
            .errors
            .extend(problems.iter().map(policies::compile_error));
    }

    /// Publishes the definitions read, in dependency order, as one batch;
    /// records in `now_in_file` every version a file names, published or
    /// not — a document that failed to publish (an in-place edit refused as
    /// immutable, a breaking change without a bump, a dependency that does
    /// not resolve) still holds its version, so it is never yanked.
    async fn publish_definitions(
        &self,
        pending: Vec<Pending>,
        stamp: &Stamp,
        report: &mut SyncReport,
        now_in_file: &mut BTreeMap<String, Vec<String>>,
    ) -> Result<()> {
        let pending = publish_order(pending, |p| p.candidate.definition());
        // The candidates move into the batch; what the report needs of each
        // (where it was read) stays here.
        let mut batch = Vec::with_capacity(pending.len());
        let mut places = Vec::with_capacity(pending.len());
        for p in pending {
            let subject = p.candidate.subject().to_string();
            batch.push(p.candidate);
            places.push((p.file, p.document, p.line, subject));
        }
        // Validated as they were parsed, and only the outcomes are needed
        // back: the versions move to the store.
        let mode = BatchMode {
            validated: true,
            keep_versions: false,
        };
        let source = &stamp.source;
        let results = self.catalog.publish_candidates(batch, source, mode).await?;
        for ((file, document, line, subject), result) in places.into_iter().zip(results) {
            match now_in_file.get_mut(&file) {
                Some(subjects) => subjects.push(subject),
                None => {
                    now_in_file.insert(file.clone(), vec![subject]);
                }
            }
            match result {
                Ok(r) if r.outcome == PublishOutcome::Created => report.published.push(r.subject),
                Ok(r) => {
                    report.unchanged += 1;
                    if let Some(version) = &r.version {
                        self.restore_if_returned(version, source).await?;
                    }
                }
                Err(e) => report
                    .errors
                    .push(document_error(&file, document, line, &e)),
            }
        }
        Ok(())
    }

    /// Publishes the compositions read, after the definitions they use;
    /// skipped without a composer. A refused composition's error names its
    /// team, so other teams never see it.
    async fn publish_compositions(
        &self,
        compositions: Vec<PendingComposition>,
        stamp: &Stamp,
        report: &mut SyncReport,
    ) -> Result<()> {
        let Some(composer) = &self.composer else {
            return Ok(());
        };
        for c in compositions {
            let subject = c.composition.subject();
            let team = c.composition.metadata.team.clone();
            let origin = Some(stamp.origin(&c.file));
            match composer.publish(c.composition, origin, &stamp.source).await {
                Ok(r) if r.outcome == PublishOutcome::Created => report.published.push(subject),
                Ok(_) => report.unchanged += 1,
                // About the store or the service, not this document: the batch
                // stops (the one rule of ErrorCode::aborts_batch).
                Err(e) if e.code().aborts_batch() => return Err(e),
                Err(e) => report.errors.push(DocumentError {
                    team: Some(team),
                    ..document_error(&c.file, c.document, c.line, &e)
                }),
            }
        }
        Ok(())
    }

    /// Yanks the versions that vanished from the source (`name:version`
    /// subjects); one that never published has nothing to yank.
    async fn yank(&self, gone: Vec<String>, source: &str, report: &mut SyncReport) -> Result<()> {
        for subject in gone {
            let Some((name, version)) = subject.split_once(':') else {
                continue;
            };
            let Ok(version) = version.parse() else {
                continue;
            };
            match self.catalog.set_yanked(name, &version, true, source).await {
                Ok(true) => report.yanked.push(subject),
                Ok(false) | Err(Error::VersionNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Stamps and stores the report; a sync that read something also
    /// announces it (`sync.completed`).
    async fn finish(
        &self,
        mut report: SyncReport,
        started: Instant,
        announce: bool,
    ) -> Result<SyncReport> {
        let store = self.catalog.store();
        report.duration_ms = started.elapsed().as_millis() as u64;
        report.finished_at = self.catalog.now();
        store.record_sync(&report).await?;
        if announce {
            store
                .append(NewEvent {
                    event_type: EventType::SyncCompleted,
                    source: report.source.clone(),
                    subject: report.source.clone(),
                    timestamp: report.finished_at,
                    data: json!(report),
                })
                .await?;
        }
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
            .chain(state.policies.keys())
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

/// The report of a sync of `source` at `head` before anything was read.
fn empty_report(source: &str, head: &SourceHead) -> SyncReport {
    SyncReport {
        source: source.to_string(),
        commit: head.commit.clone().or(Some(head.id.clone())),
        published: vec![],
        unchanged: 0,
        yanked: vec![],
        errors: vec![],
        duration_ms: 0,
        files_read: 0,
        finished_at: 0,
        policies: vec![],
    }
}
