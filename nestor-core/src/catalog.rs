//! The catalog service: publish and yank with every SPEC §1–§2 rule applied
//! before the store is touched, and an event appended after each change.
//! The library user, the CLI and the server all publish through it.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use semver::Version;
use serde::Serialize;

use crate::error::{Change, Error, FieldError, Result};
use crate::model::{
    EventType, Origin, PublishOutcome, PublishedVersion, ResourceDefinition, SerializedEvent,
    Timestamp, VersionSummary,
};
use crate::store::CatalogStore;
use crate::validate::validate_definition;
use crate::versioning::{check_bump, predecessor, select_matching, VersionSpec};

/// Where the service reads the time. The core performs no I/O, but it does
/// need timestamps for records; tests fix them through this trait.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> Timestamp;

    /// Milliseconds since the Unix epoch (leases need sub-second time).
    fn now_millis(&self) -> i64 {
        self.now() * 1000
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as Timestamp)
            .unwrap_or(0)
    }

    fn now_millis(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// What a publish did, with the classified changes against the predecessor.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
}

impl CatalogService {
    /// A service over `store` using the system clock.
    pub fn new(store: Arc<dyn CatalogStore>) -> Self {
        CatalogService {
            store,
            clock: Arc::new(SystemClock),
        }
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
        let now = self.clock.now();
        let mut names: Vec<String> = items
            .iter()
            .flat_map(|(d, _)| {
                std::iter::once(&d.metadata.name).chain(d.spec.dependencies.iter().map(|x| &x.name))
            })
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        let mut batch = Batch {
            known: self.store.versions_many(&names).await?,
            new: HashMap::new(),
            accepted: Vec::new(),
        };
        let mut first_seen: HashSet<String> = batch
            .known
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, _)| n.clone())
            .collect();

        let mut results: Vec<Option<Result<PublishResult>>> = Vec::with_capacity(items.len());
        for (def, origin) in items {
            let candidate = PublishedVersion::new(def, now, origin);
            match self.prepare(&candidate, &batch).await {
                Ok(Prepared::Unchanged(existing)) => results.push(Some(Ok(PublishResult {
                    outcome: PublishOutcome::Unchanged,
                    version: *existing,
                    changes: vec![],
                }))),
                Ok(Prepared::New {
                    changes,
                    was_deprecated,
                }) => {
                    batch.add(Accepted {
                        index: results.len(),
                        candidate,
                        changes,
                        was_deprecated,
                    });
                    results.push(None);
                }
                Err(e @ (Error::StorageUnavailable { .. } | Error::Internal { .. })) => {
                    return Err(e)
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }

        let accepted = batch.accepted;
        let outcomes = self
            .store
            .insert_versions(accepted.iter().map(|a| a.candidate.clone()).collect())
            .await?;
        let mut events = Vec::new();
        for (a, outcome) in accepted.into_iter().zip(outcomes) {
            results[a.index] = Some(match outcome {
                Ok(PublishOutcome::Created) => {
                    let first = first_seen.insert(a.candidate.name().to_string());
                    let kind = if first {
                        EventType::ResourceCreated
                    } else {
                        EventType::ResourceUpdated
                    };
                    events.push(self.event(kind, actor, &a.candidate)?);
                    if a.candidate.definition.metadata.deprecated && !a.was_deprecated {
                        events.push(self.event(
                            EventType::ResourceDeprecated,
                            actor,
                            &a.candidate,
                        )?);
                    }
                    Ok(PublishResult {
                        outcome: PublishOutcome::Created,
                        version: a.candidate,
                        changes: a.changes,
                    })
                }
                // Another publisher won the race with the same content.
                Ok(PublishOutcome::Unchanged) => Ok(PublishResult {
                    outcome: PublishOutcome::Unchanged,
                    version: a.candidate,
                    changes: vec![],
                }),
                Err(e) => Err(e),
            });
        }
        self.store.append_serialized(events).await?;
        Ok(results
            .into_iter()
            .map(|r| r.expect("every definition has a result"))
            .collect())
    }

    /// Every rule of one publish, against the store as the batch sees it.
    async fn prepare(&self, candidate: &PublishedVersion, batch: &Batch) -> Result<Prepared> {
        let errors = validate_definition(&candidate.definition);
        if !errors.is_empty() {
            return Err(Error::Validation { errors });
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
        check_dependencies(&candidate.definition, batch)?;
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

    /// A version from the batch, else from the store.
    async fn read<'b>(
        &self,
        batch: &'b Batch,
        name: &str,
        version: &Version,
    ) -> Result<Cow<'b, PublishedVersion>> {
        if let Some(v) = batch.get(name, version) {
            return Ok(Cow::Borrowed(v));
        }
        let v = self
            .store
            .get_version(name, version)
            .await?
            .ok_or_else(|| {
                Error::internal(format!("{name}@{version} is listed but cannot be read"))
            })?;
        Ok(Cow::Owned(v))
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
        self.known
            .entry(v.name().to_string())
            .or_default()
            .push(v.summary());
        self.new.insert(
            (v.name().to_string(), v.version().clone()),
            self.accepted.len(),
        );
        self.accepted.push(accepted);
    }
}

/// A definition of the batch that passed every rule, waiting to be written.
struct Accepted {
    /// Its position in the batch (and in the results).
    index: usize,
    candidate: PublishedVersion,
    changes: Vec<Change>,
    was_deprecated: bool,
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
    use std::collections::{BTreeMap, HashMap};

    let mut by_name: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for item in items {
        by_name
            .entry(definition(&item).metadata.name.clone())
            .or_default()
            .push(item);
    }
    for versions in by_name.values_mut() {
        versions.sort_by(|a, b| {
            definition(a)
                .metadata
                .version
                .cmp(&definition(b).metadata.version)
        });
    }
    let mut graph: DiGraphMap<&str, ()> = DiGraphMap::new();
    for name in by_name.keys() {
        graph.add_node(name.as_str());
    }
    for (name, versions) in &by_name {
        for dep in versions
            .iter()
            .flat_map(|p| &definition(p).spec.dependencies)
        {
            if let Some((dep_name, _)) = by_name.get_key_value(&dep.name) {
                if dep_name != name {
                    graph.add_edge(dep_name.as_str(), name.as_str(), ());
                }
            }
        }
    }
    let order: Vec<String> = match petgraph::algo::toposort(&graph, None) {
        Ok(order) => order.into_iter().map(str::to_string).collect(),
        Err(_) => by_name.keys().cloned().collect(),
    };
    let mut index: HashMap<String, Vec<T>> = by_name.into_iter().collect();
    order
        .into_iter()
        .flat_map(|name| index.remove(&name).unwrap_or_default())
        .collect()
}
