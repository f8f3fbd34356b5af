//! The catalog service: publish and yank with every definition and versioning rule applied
//! before the store is touched, and an event appended after each change.
//! The library user, the CLI and the server all publish through it.

use std::collections::HashMap;
use std::sync::Arc;

use semver::Version;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::clock::{Clock, SystemClock};
use crate::cpu::{self, default_offload, Offload};
use crate::engine::{check_engine_configs, EngineProvider};
use crate::error::{Error, FieldError, Result};
use crate::model::Change;
use crate::model::{
    EventType, Origin, PublishOutcome, PublishedVersion, ResourceDefinition, SerializedEvent,
    Shared, Timestamp, VersionSummary,
};
use crate::policy::{Policies, PolicyHook, PolicyInput, PolicyVerdict};
use crate::store::{Announcement, CatalogStore, VersionWrite};
use crate::validate::validate_definition;
use crate::versioning::{check_bump, predecessor, select_matching, VersionSpec};

/// What a publish did, with the classified changes against the predecessor.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PublishResult {
    /// Created or unchanged.
    pub outcome: PublishOutcome,
    /// The stored version.
    pub version: PublishedVersion,
    /// The changes against the predecessor (empty for a first version or an
    /// unchanged publish).
    pub changes: Vec<Change>,
}

/// Publishes and yanks definitions on a store.
#[derive(Clone)]
pub struct CatalogService {
    store: Arc<dyn CatalogStore>,
    clock: Arc<dyn Clock>,
    /// Engines that check their `engine_configs` entry of each new version.
    engines: Option<Arc<dyn EngineProvider>>,
    /// Where a batch's CPU work runs; [`default_offload`] when unset.
    offload: Option<Arc<dyn Offload>>,
    /// The `nestor.definition` policies every new version must pass.
    policies: Policies,
}

impl CatalogService {
    /// A service over `store` using the system clock.
    pub fn new(store: Arc<dyn CatalogStore>) -> Self {
        CatalogService {
            store,
            clock: Arc::new(SystemClock),
            engines: None,
            offload: None,
            policies: Policies::none(),
        }
    }

    /// Has every new version pass the `nestor.definition` policies of
    /// `policies` (`POLICY_VIOLATION` otherwise).
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    /// Has each loaded engine check its `engine_configs` entry of every new
    /// version before it is published (`VALIDATION_FAILED` otherwise).
    pub fn with_engines(mut self, engines: Arc<dyn EngineProvider>) -> Self {
        self.engines = Some(engines);
        self
    }

    /// Runs a batch's CPU work (serialising, hashing; a sync's parsing) on
    /// `offload` instead of [`default_offload`]'s choice.
    pub fn with_offload(mut self, offload: Arc<dyn Offload>) -> Self {
        self.offload = Some(offload);
        self
    }

    /// Where CPU-bound work runs.
    pub(crate) fn offload(&self) -> Arc<dyn Offload> {
        self.offload.clone().unwrap_or_else(default_offload)
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The store behind the service.
    pub fn store(&self) -> &Arc<dyn CatalogStore> {
        &self.store
    }

    /// The service's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Publishes a definition: static rules, dependency existence,
    /// immutability, required bump, then the conditional write and the event.
    /// `actor` is recorded as the event's source (`api`, `cli`, a source name).
    pub async fn publish(
        &self,
        def: ResourceDefinition,
        origin: Option<Origin>,
        actor: &str,
    ) -> Result<PublishResult> {
        let mut results = self.publish_many(vec![(def, origin)], actor).await?;
        results.pop().expect("one result per definition")
    }

    /// Publishes many definitions in the order given (see [`publish_order`]),
    /// each with exactly [`CatalogService::publish`]'s rules and its own
    /// result; definitions earlier in the batch count as published for the
    /// ones after them (dependencies, predecessors). The store is read once
    /// up front and written once, and the events are appended together: a
    /// cold sync of thousands of files costs a few transactions, not
    /// thousands. Only storage failures fail the whole call.
    pub async fn publish_many(
        &self,
        items: Vec<(ResourceDefinition, Option<Origin>)>,
        actor: &str,
    ) -> Result<Vec<Result<PublishResult>>> {
        let results = self
            .publish_batch(items, actor, BatchMode::default())
            .await?;
        Ok(results
            .into_iter()
            .map(|r| {
                r.map(|b| PublishResult {
                    outcome: b.outcome,
                    version: b.version.expect("versions are kept unless asked otherwise"),
                    changes: b.changes,
                })
            })
            .collect())
    }

    /// Every rule of [`CatalogService::publish_many`] without writing: the
    /// result each definition would get (`created` for one that would be),
    /// each seeing the ones before it. Against the store, or `offline`
    /// against nothing but the batch itself (dependencies on names outside
    /// the batch are then not checked: they are checked when published).
    pub async fn check_many(
        &self,
        items: Vec<(ResourceDefinition, Option<Origin>)>,
        offline: bool,
    ) -> Result<Vec<Result<PublishResult>>> {
        let (mut results, batch) = self.judge(items, false, offline).await?;
        for a in batch.accepted {
            results[a.index] = Some(Ok(BatchResult {
                outcome: PublishOutcome::Created,
                subject: a.subject,
                version: Some(a.candidate),
                changes: a.changes,
            }));
        }
        Ok(results
            .into_iter()
            .map(|r| {
                let b = r.expect("every definition has a result")?;
                Ok(PublishResult {
                    outcome: b.outcome,
                    version: b.version.expect("a check keeps every version"),
                    changes: b.changes,
                })
            })
            .collect())
    }

    /// [`CatalogService::publish_many`], with the shortcuts `mode` allows.
    pub(crate) async fn publish_batch(
        &self,
        items: Vec<(ResourceDefinition, Option<Origin>)>,
        actor: &str,
        mode: BatchMode,
    ) -> Result<Vec<Result<BatchResult>>> {
        let (results, batch) = self.judge(items, mode.validated, false).await?;
        self.write_batch(results, batch, actor, mode).await
    }

    /// [`CatalogService::publish_batch`] of candidates made already
    /// ([`Candidate::new`], e.g. on the lanes that parsed them), in order.
    pub(crate) async fn publish_candidates(
        &self,
        candidates: Vec<Candidate>,
        actor: &str,
        mode: BatchMode,
    ) -> Result<Vec<Result<BatchResult>>> {
        let names = batch_names(candidates.iter().map(|c| &c.version.definition));
        let known = self.store.versions_many(&names).await?;
        let (results, batch) = self
            .judge_candidates(candidates, known, mode.validated, false)
            .await?;
        self.write_batch(results, batch, actor, mode).await
    }

    /// Writes the accepted versions of a judged batch and completes the
    /// results.
    async fn write_batch(
        &self,
        mut results: Vec<Option<Result<BatchResult>>>,
        batch: Batch,
        actor: &str,
        mode: BatchMode,
    ) -> Result<Vec<Result<BatchResult>>> {
        // Each accepted version goes to the store with its events' data, and
        // the store writes both together. What the results need of each is
        // taken first (the versions are moved to the store when the caller
        // does not want them back, copied otherwise).
        let timestamp = self.clock.now();
        let mut written = Vec::with_capacity(batch.accepted.len());
        let mut writes = Vec::with_capacity(batch.accepted.len());
        for a in batch.accepted {
            let deprecates = a.candidate.definition.metadata.deprecated && !a.was_deprecated;
            let subject = a.subject;
            written.push(Written {
                index: a.index,
                subject: subject.clone(),
                changes: a.changes,
            });
            writes.push(VersionWrite {
                announcement: Announcement {
                    subject,
                    actor: actor.to_string(),
                    timestamp,
                    data: a.data,
                    deprecates,
                },
                version: a.candidate,
                definition_json: a.json,
            });
        }
        let mut kept = mode.keep_versions.then(|| {
            writes
                .iter()
                .map(|w| w.version.clone())
                .collect::<Vec<_>>()
                .into_iter()
        });
        let outcomes = self.store.insert_versions(writes).await?;
        for (w, outcome) in written.into_iter().zip(outcomes) {
            let version = kept.as_mut().and_then(Iterator::next);
            results[w.index] = Some(outcome.map(|outcome| BatchResult {
                // Unchanged here: another publisher won the race with the
                // same content.
                outcome,
                subject: w.subject,
                version,
                changes: match outcome {
                    PublishOutcome::Created => w.changes,
                    PublishOutcome::Unchanged => vec![],
                },
            }));
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every definition has a result"))
            .collect())
    }

    /// Reads what the batch needs and applies every rule to each
    /// definition in order: the results of those refused or unchanged, and
    /// the batch holding the ones to write (their results are `None`).
    async fn judge(
        &self,
        items: Vec<(ResourceDefinition, Option<Origin>)>,
        validated: bool,
        offline: bool,
    ) -> Result<(Vec<Option<Result<BatchResult>>>, Batch)> {
        let now = self.clock.now();
        let names = batch_names(items.iter().map(|(d, _)| d));
        // Each definition is serialised once, on every core: the bytes give
        // its content hash and its events' data together. A store that
        // reads on other threads reads the names' histories meanwhile.
        let read = async {
            if offline {
                Ok(HashMap::new())
            } else {
                self.store.versions_many(&names).await
            }
        };
        let (known, candidates) = futures_util::future::join(read, async {
            let offload = self.offload();
            cpu::map(&*offload, items, 256, move |(def, origin)| {
                Candidate::new(def, now, origin)
            })
            .await
        })
        .await;
        self.judge_candidates(candidates, known?, validated, offline)
            .await
    }

    /// Applies every rule to each candidate in order, against the `known`
    /// histories of the batch's names.
    async fn judge_candidates(
        &self,
        candidates: Vec<Candidate>,
        known: HashMap<String, Vec<VersionSummary>>,
        validated: bool,
        offline: bool,
    ) -> Result<(Vec<Option<Result<BatchResult>>>, Batch)> {
        // Sized once: in a cold sync nearly every candidate is accepted.
        let mut batch = Batch {
            known,
            new: HashMap::with_capacity(candidates.len()),
            accepted: Vec::with_capacity(candidates.len()),
            offline,
        };
        let mut results: Vec<Option<Result<BatchResult>>> = Vec::with_capacity(candidates.len());
        for Candidate {
            version,
            subject,
            json,
            data,
        } in candidates
        {
            let candidate = version;
            match self.prepare(&candidate, &batch, validated).await {
                Ok(Prepared::Unchanged(existing)) => results.push(Some(Ok(BatchResult {
                    outcome: PublishOutcome::Unchanged,
                    subject,
                    version: Some(*existing),
                    changes: vec![],
                }))),
                Ok(Prepared::New {
                    changes,
                    was_deprecated,
                }) => {
                    batch.add(Accepted {
                        index: results.len(),
                        candidate,
                        subject,
                        json,
                        data,
                        changes,
                        was_deprecated,
                    });
                    results.push(None);
                }
                // About the store or the service, not this document: the batch
                // stops (the one rule of ErrorCode::aborts_batch).
                Err(e) if e.code().aborts_batch() => return Err(e),
                Err(e) => results.push(Some(Err(e))),
            }
        }
        Ok((results, batch))
    }

    /// Every rule of one publish, against the store as the batch sees it.
    async fn prepare(
        &self,
        candidate: &PublishedVersion,
        batch: &Batch,
        validated: bool,
    ) -> Result<Prepared> {
        if !validated {
            let errors = validate_definition(&candidate.definition);
            if !errors.is_empty() {
                return Err(Error::Validation { errors });
            }
        }
        let (name, version) = (candidate.name(), candidate.version());
        let versions = batch.versions(name);
        if versions.iter().any(|v| &v.version == version) {
            let existing = self.read(batch, name, version).await?;
            return if existing.content_hash == candidate.content_hash {
                Ok(Prepared::Unchanged(Box::new(existing.into_owned())))
            } else {
                Err(Error::VersionImmutable {
                    name: name.to_string(),
                    version: version.to_string(),
                })
            };
        }
        if let Some(engines) = &self.engines {
            let errors = check_engine_configs(engines.as_ref(), &candidate.definition).await?;
            if !errors.is_empty() {
                return Err(Error::Validation { errors });
            }
        }
        check_dependencies(&candidate.definition, batch)?;
        self.check_policies(&candidate.definition)?;
        let mut changes = Vec::new();
        let mut was_deprecated = false;
        if let Some(pred) = predecessor(versions.iter().map(|v| &v.version), version) {
            let old = self.read(batch, name, &pred).await?;
            changes = check_bump(&old.definition, &candidate.definition)?;
            was_deprecated = old.definition.metadata.deprecated;
        }
        Ok(Prepared::New {
            changes,
            was_deprecated,
        })
    }

    /// The global `nestor.definition` policies on `def` (definitions
    /// belong to no team, so only global policies apply).
    fn check_policies(&self, def: &ResourceDefinition) -> Result<()> {
        let verdict = self.evaluate_policies(def)?;
        if verdict.denials.is_empty() {
            return Ok(()); // no subject to name
        }
        verdict.into_result(&def.subject()).map(|_| ())
    }

    /// What the `nestor.definition` policies say about `def`, nothing
    /// published.
    pub fn evaluate_policies(&self, def: &ResourceDefinition) -> Result<PolicyVerdict> {
        let set = self.policies.current();
        if !set.applies(PolicyHook::Definition, None, None) {
            return Ok(PolicyVerdict::default());
        }
        let input = PolicyInput::of(def)?;
        Ok(set.evaluate(PolicyHook::Definition, None, None, &input))
    }

    /// A version from the batch, else from the store.
    async fn read<'b>(&self, batch: &'b Batch, name: &str, version: &Version) -> Result<Found<'b>> {
        if let Some(v) = batch.get(name, version) {
            return Ok(Found::Batch(v));
        }
        let v = self
            .store
            .get_version(name, version)
            .await?
            .ok_or_else(|| {
                Error::internal(format!("{name}@{version} is listed but cannot be read"))
            })?;
        Ok(Found::Store(v))
    }

    /// An event about a version, its data (the version) serialised once,
    /// straight from the record: no value tree is built for it.
    fn event(
        &self,
        event_type: EventType,
        actor: &str,
        version: &PublishedVersion,
    ) -> Result<SerializedEvent> {
        let subject = version.definition.subject();
        SerializedEvent::new(event_type, actor, subject, self.clock.now(), version)
            .map_err(|e| Error::internal(format!("serialising an event's data: {e}")))
    }

    /// Yanks (or with `yanked = false`, restores) a version. Returns whether
    /// anything changed; a yank appends `resource.yanked`.
    pub async fn set_yanked(
        &self,
        name: &str,
        version: &Version,
        yanked: bool,
        actor: &str,
    ) -> Result<bool> {
        let changed = self.store.set_yanked(name, version, yanked).await?;
        if changed {
            if let Some(v) = self.store.get_version(name, version).await? {
                let event_type = if yanked {
                    EventType::ResourceYanked
                } else {
                    EventType::ResourceUpdated
                };
                self.emit(event_type, actor, &v).await?;
            }
        }
        Ok(changed)
    }

    async fn emit(
        &self,
        event_type: EventType,
        actor: &str,
        version: &PublishedVersion,
    ) -> Result<()> {
        self.store
            .append_serialized(vec![self.event(event_type, actor, version)?])
            .await?;
        Ok(())
    }
}

/// What a batch knows: every relevant name's versions (store plus batch),
/// and the definitions the batch adds, each held once.
struct Batch {
    known: HashMap<String, Vec<VersionSummary>>,
    /// Only the batch is known: a dependency on a name outside it is not
    /// checked (an offline check has no catalog to look in).
    offline: bool,
    /// name@version → its index in `accepted`.
    new: HashMap<(String, Version), usize>,
    accepted: Vec<Accepted>,
}

impl Batch {
    fn versions(&self, name: &str) -> &[VersionSummary] {
        self.known.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    fn get(&self, name: &str, version: &Version) -> Option<&PublishedVersion> {
        let i = self.new.get(&(name.to_string(), version.clone()))?;
        Some(&self.accepted[*i].candidate)
    }

    fn add(&mut self, accepted: Accepted) {
        let v = &accepted.candidate;
        // The histories read hold every name of the batch already.
        match self.known.get_mut(v.name()) {
            Some(history) => history.push(v.summary()),
            None => {
                self.known.insert(v.name().to_string(), vec![v.summary()]);
            }
        }
        self.new.insert(
            (v.name().to_string(), v.version().clone()),
            self.accepted.len(),
        );
        self.accepted.push(accepted);
    }
}

/// The shortcuts a batch publish may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchMode {
    /// Every definition passed [`validate_definition`] already (it came
    /// from [`crate::parse::parse_definition`], which runs it).
    pub validated: bool,
    /// The caller wants each created version back; without it they are
    /// moved to the store instead of copied.
    pub keep_versions: bool,
}

impl Default for BatchMode {
    fn default() -> Self {
        BatchMode {
            validated: false,
            keep_versions: true,
        }
    }
}

/// One definition's result in a batch publish.
pub(crate) struct BatchResult {
    /// Created or unchanged.
    pub outcome: PublishOutcome,
    /// `name:version`.
    pub subject: String,
    /// The stored version: always for an unchanged publish the rules
    /// caught, else only with [`BatchMode::keep_versions`].
    pub version: Option<PublishedVersion>,
    /// The changes against the predecessor.
    pub changes: Vec<Change>,
}

/// What the result of an accepted version needs once it went to the store.
struct Written {
    index: usize,
    subject: String,
    changes: Vec<Change>,
}

/// A definition of the batch that passed every rule, waiting to be written.
struct Accepted {
    /// Its position in the batch (and in the results).
    index: usize,
    candidate: PublishedVersion,
    /// `name:version`.
    subject: String,
    /// The definition's canonical JSON.
    json: Box<RawValue>,
    /// Its events' data ([`Candidate::data`]).
    data: Box<RawValue>,
    changes: Vec<Change>,
    was_deprecated: bool,
}

/// A version about to be published with its definition's canonical JSON,
/// serialised once for both the content hash and the events, and its
/// events' data: all of it made on the CPU pool's lanes, so a large batch
/// serialises nothing on its one thread.
pub(crate) struct Candidate {
    version: PublishedVersion,
    /// `name:version`, which the results and the events name it by.
    subject: String,
    json: Box<RawValue>,
    /// The version as its events carry it, around `json`: the same text as
    /// serialising the version.
    data: Box<RawValue>,
}

impl Candidate {
    /// What [`PublishedVersion::new`] makes, the same hash included.
    pub(crate) fn new(
        definition: ResourceDefinition,
        published_at: Timestamp,
        origin: Option<Origin>,
    ) -> Self {
        use sha2::Digest;
        /// [`PublishedVersion`]'s fields, in its order, as it serialises.
        #[derive(Serialize)]
        struct VersionData<'a> {
            definition: &'a RawValue,
            content_hash: &'a str,
            published_at: Timestamp,
            yanked: bool,
            origin: &'a Option<Origin>,
        }
        let json =
            serde_json::value::to_raw_value(&definition).expect("a definition always serialises");
        let content_hash = hex::encode(sha2::Sha256::digest(json.get().as_bytes()));
        let data = serde_json::value::to_raw_value(&VersionData {
            definition: &json,
            content_hash: &content_hash,
            published_at,
            yanked: false,
            origin: &origin,
        })
        .expect("a version always serialises");
        Candidate {
            subject: definition.subject(),
            version: PublishedVersion {
                definition,
                content_hash,
                published_at,
                yanked: false,
                origin,
            },
            json,
            data,
        }
    }

    /// The definition it publishes.
    pub(crate) fn definition(&self) -> &ResourceDefinition {
        &self.version.definition
    }

    /// `name:version`.
    pub(crate) fn subject(&self) -> &str {
        &self.subject
    }
}

/// The names a batch of `definitions` reads the histories of: theirs and
/// their dependencies', sorted, once each.
fn batch_names<'a>(definitions: impl Iterator<Item = &'a ResourceDefinition>) -> Vec<String> {
    let mut names: Vec<String> = definitions
        .flat_map(|d| {
            std::iter::once(&d.metadata.name).chain(d.spec.dependencies.iter().map(|x| &x.name))
        })
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A version the batch holds or the store handed out, read where it is.
enum Found<'b> {
    Batch(&'b PublishedVersion),
    Store(Shared<PublishedVersion>),
}

impl Found<'_> {
    fn into_owned(self) -> PublishedVersion {
        match self {
            Found::Batch(v) => v.clone(),
            Found::Store(v) => v.into_inner(),
        }
    }
}

impl std::ops::Deref for Found<'_> {
    type Target = PublishedVersion;

    fn deref(&self) -> &PublishedVersion {
        match self {
            Found::Batch(v) => v,
            Found::Store(v) => v,
        }
    }
}

enum Prepared {
    Unchanged(Box<PublishedVersion>),
    New {
        changes: Vec<Change>,
        was_deprecated: bool,
    },
}

/// Every dependency must name an existing definition with a published,
/// non-yanked version matching its requirement (Cargo's meaning: a bare
/// version is a caret requirement here).
fn check_dependencies(def: &ResourceDefinition, batch: &Batch) -> Result<()> {
    let mut errors = Vec::new();
    for (i, dep) in def.spec.dependencies.iter().enumerate() {
        let field = format!("spec.dependencies[{i}]");
        let spec = match VersionSpec::parse(&dep.version) {
            Ok(VersionSpec::Exact(v)) => match semver::VersionReq::parse(&v.to_string()) {
                Ok(req) => VersionSpec::Req(req),
                Err(e) => {
                    errors.push(FieldError::new(format!("{field}.version"), e.to_string()));
                    continue;
                }
            },
            Ok(spec) => spec,
            Err(e) => {
                errors.push(FieldError::new(format!("{field}.version"), e));
                continue;
            }
        };
        let versions = batch.versions(&dep.name);
        if versions.is_empty() && batch.offline {
            continue;
        }
        if versions.is_empty() {
            errors.push(FieldError::new(
                format!("{field}.name"),
                format!("no definition named {:?} is published", dep.name),
            ));
        } else if select_matching(versions, &spec).is_none() {
            errors.push(FieldError::new(
                format!("{field}.version"),
                format!(
                    "no published, non-yanked version of {:?} matches {:?}",
                    dep.name, dep.version
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::DependencyNotFound { errors })
    }
}

/// Orders items holding definitions so each comes after the definitions it
/// names as dependencies and, within a name, by ascending semver: the order
/// a batch (a sync, `nestor catalog publish a.yaml b.yaml`) must publish in,
/// whatever the order of files and documents. Names in a dependency cycle
/// keep name order; their publishes then fail on the missing dependency,
/// which is the honest outcome.
pub fn publish_order<T>(items: Vec<T>, definition: impl Fn(&T) -> &ResourceDefinition) -> Vec<T> {
    use petgraph::graphmap::DiGraphMap;

    // Positions sorted by name, then version, then position (equal ones
    // keep the order given). The keys sit side by side, so the sort reads
    // no item; the items themselves move once, at the end.
    let mut keys: Vec<(&str, &Version, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let m = &definition(item).metadata;
            (m.name.as_str(), &m.version, i)
        })
        .collect();
    keys.sort_unstable();
    let sorted: Vec<usize> = keys.into_iter().map(|(_, _, i)| i).collect();
    // Each name's run of `sorted`, in name order: the graph's nodes.
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for (at, &i) in sorted.iter().enumerate() {
        let name = &definition(&items[i]).metadata.name;
        match runs.last_mut() {
            Some(run) if &definition(&items[sorted[run.start]]).metadata.name == name => {
                run.end = at + 1
            }
            _ => runs.push(at..at + 1),
        }
    }
    let position: HashMap<&str, usize> = runs
        .iter()
        .enumerate()
        .map(|(node, run)| {
            let name = definition(&items[sorted[run.start]]).metadata.name.as_str();
            (name, node)
        })
        .collect();
    let mut edges = Vec::new();
    for (node, run) in runs.iter().enumerate() {
        for dep in sorted[run.clone()]
            .iter()
            .flat_map(|&i| &definition(&items[i]).spec.dependencies)
        {
            if let Some(&d) = position.get(dep.name.as_str()) {
                if d != node {
                    edges.push((d, node));
                }
            }
        }
    }
    drop(position);
    // Without edges the order is name order, as a topological sort of the
    // same graph gives it (and no graph is built).
    let order: Vec<usize> = if edges.is_empty() {
        (0..runs.len()).collect()
    } else {
        let mut graph: DiGraphMap<usize, ()> = DiGraphMap::new();
        for node in 0..runs.len() {
            graph.add_node(node);
        }
        for (d, node) in edges {
            graph.add_edge(d, node, ());
        }
        petgraph::algo::toposort(&graph, None).unwrap_or_else(|_| (0..runs.len()).collect())
    };
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order
        .into_iter()
        .flat_map(|node| runs[node].clone().map(|at| sorted[at]))
        .filter_map(|i| slots[i].take())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> ResourceDefinition {
        crate::parse::parse_definition_yaml(
            r#"
apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {name: db, version: "1.2.0", provider: aws, category: database, resource_type: mysql,
           description: "quotes \" and ünïcode", labels: {tier: data}}
spec:
  supported_engines: [terraform]
  optional_inputs:
    - {name: size, type: number, default: 0.1, validation: {min: 0.05, enum: [0.1, 0.2]}}
  engine_configs: {terraform: {module: "x", nested: {list: [1, -2, 3.5e-7]}}}
"#,
        )
        .unwrap()
    }

    /// The batch's shortcut (one serialisation for the hash and the event)
    /// gives exactly what serialising the version gives.
    #[test]
    fn candidates_hash_and_serialise_as_published_versions() {
        for origin in [
            None,
            Some(Origin {
                source: "platform".into(),
                git_repository: "https://example.com/c.git".into(),
                git_commit: Some("abc".into()),
                git_path: "a/db.yaml".into(),
            }),
        ] {
            let expected = PublishedVersion::new(definition(), 42, origin.clone());
            let Candidate {
                version,
                subject,
                json,
                data,
            } = Candidate::new(definition(), 42, origin);
            assert_eq!(version, expected);
            assert_eq!(subject, expected.definition.subject());
            assert_eq!(
                json.get(),
                serde_json::to_string(&expected.definition).unwrap()
            );
            assert_eq!(data.get(), serde_json::to_string(&expected).unwrap());
        }
    }

    fn named(name: &str, version: &str, deps: &[&str]) -> ResourceDefinition {
        let mut d = definition();
        d.metadata.name = name.into();
        d.metadata.version = version.parse().unwrap();
        d.spec.dependencies = deps
            .iter()
            .map(|n| crate::model::Dependency {
                name: n.to_string(),
                version: "*".into(),
            })
            .collect();
        d
    }

    fn order(defs: Vec<ResourceDefinition>) -> Vec<String> {
        publish_order(defs, |d| d)
            .iter()
            .map(|d| d.subject())
            .collect()
    }

    /// Dependencies first, semver order within a name, name order
    /// otherwise; a cycle leaves name order.
    #[test]
    fn publish_order_puts_dependencies_first() {
        let no_edges = order(vec![
            named("c", "1.0.0", &[]),
            named("a", "2.0.0", &[]),
            named("b", "1.0.0", &["zzz-not-in-batch"]),
            named("a", "1.0.0", &[]),
        ]);
        assert_eq!(no_edges, ["a:1.0.0", "a:2.0.0", "b:1.0.0", "c:1.0.0"]);
        let chain = order(vec![
            named("d", "1.0.0", &["e"]),
            named("b", "1.0.0", &["a", "b"]),
            named("e", "1.0.0", &[]),
            named("a", "1.0.0", &[]),
            named("c", "1.0.0", &[]),
        ]);
        assert_eq!(
            chain,
            ["e:1.0.0", "d:1.0.0", "c:1.0.0", "a:1.0.0", "b:1.0.0"]
        );
        let cycle = order(vec![
            named("e", "1.0.0", &["d"]),
            named("d", "1.0.0", &["e"]),
            named("a", "1.0.0", &[]),
        ]);
        assert_eq!(cycle, ["a:1.0.0", "d:1.0.0", "e:1.0.0"]);
    }

    /// Two documents of one name@version keep the order they were given
    /// (the second is then the batch's immutability error, not the first).
    #[test]
    fn publish_order_keeps_equal_versions_in_order() {
        let described = |text: &str| {
            let mut d = named("a", "1.0.0", &[]);
            d.metadata.description = text.into();
            d
        };
        let items = vec![
            described("first"),
            named("b", "1.0.0", &[]),
            described("second"),
            named("a", "0.9.0", &[]),
        ];
        let ordered: Vec<String> = publish_order(items, |d| d)
            .into_iter()
            .map(|d| format!("{}:{}", d.subject(), d.metadata.description))
            .collect();
        assert_eq!(
            ordered,
            [
                "a:0.9.0:".to_string() + &named("a", "0.9.0", &[]).metadata.description,
                "a:1.0.0:first".into(),
                "a:1.0.0:second".into(),
                "b:1.0.0:".to_string() + &named("b", "1.0.0", &[]).metadata.description,
            ]
        );
    }
}
