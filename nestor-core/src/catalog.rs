//! The catalog service: publish and yank with every SPEC §1–§2 rule applied
//! before the store is touched, and an event appended after each change.
//! The library user, the CLI and the server all publish through it.

use std::sync::Arc;

use semver::Version;
use serde::Serialize;
use serde_json::json;

use crate::error::{Change, Error, FieldError, Result};
use crate::model::{EventType, NewEvent, Origin, PublishOutcome, PublishedVersion, ResourceDefinition, Timestamp};
use crate::store::CatalogStore;
use crate::validate::validate_definition;
use crate::versioning::{check_bump, predecessor, select_matching, VersionSpec};

/// Where the service reads the time. The core performs no I/O, but it does
/// need timestamps for records; tests fix them through this trait.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> Timestamp;
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
        CatalogService { store, clock: Arc::new(SystemClock) }
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
    pub async fn publish(&self, def: ResourceDefinition, origin: Option<Origin>, actor: &str) -> Result<PublishResult> {
        let errors = validate_definition(&def);
        if !errors.is_empty() {
            return Err(Error::Validation { errors });
        }
        let name = def.metadata.name.clone();
        let version = def.metadata.version.clone();
        let candidate = PublishedVersion::new(def, self.clock.now(), origin);

        if let Some(existing) = self.store.get_version(&name, &version).await? {
            return self.existing(existing, &candidate);
        }
        self.check_dependencies(&candidate.definition).await?;

        let versions = self.store.versions(&name).await?;
        let mut changes = Vec::new();
        let mut was_deprecated = false;
        if let Some(pred) = predecessor(versions.iter().map(|v| &v.version), &version) {
            let old = self.store.get_version(&name, &pred).await?.ok_or_else(|| {
                Error::internal(format!("{name}@{pred} is listed but cannot be read"))
            })?;
            changes = check_bump(&old.definition, &candidate.definition)?;
            was_deprecated = old.definition.metadata.deprecated;
        }

        match self.store.insert_version(candidate.clone()).await? {
            PublishOutcome::Unchanged => {
                // Another publisher won the race with the same content.
                return Ok(PublishResult { outcome: PublishOutcome::Unchanged, version: candidate, changes: vec![] });
            }
            PublishOutcome::Created => {}
        }
        let event_type = if versions.is_empty() { EventType::ResourceCreated } else { EventType::ResourceUpdated };
        self.emit(event_type, actor, &candidate).await?;
        if candidate.definition.metadata.deprecated && !was_deprecated {
            self.emit(EventType::ResourceDeprecated, actor, &candidate).await?;
        }
        Ok(PublishResult { outcome: PublishOutcome::Created, version: candidate, changes })
    }

    fn existing(&self, existing: PublishedVersion, candidate: &PublishedVersion) -> Result<PublishResult> {
        if existing.content_hash == candidate.content_hash {
            Ok(PublishResult { outcome: PublishOutcome::Unchanged, version: existing, changes: vec![] })
        } else {
            Err(Error::VersionImmutable {
                name: candidate.name().to_string(),
                version: candidate.version().to_string(),
            })
        }
    }

    /// Every dependency must name an existing definition with a published,
    /// non-yanked version matching its requirement.
    async fn check_dependencies(&self, def: &ResourceDefinition) -> Result<()> {
        let mut errors = Vec::new();
        for (i, dep) in def.spec.dependencies.iter().enumerate() {
            let field = format!("spec.dependencies[{i}]");
            let spec = match VersionSpec::parse(&dep.version) {
                // Dependencies use Cargo's meaning: a bare version is a caret requirement.
                Ok(VersionSpec::Exact(v)) => VersionSpec::Req(
                    semver::VersionReq::parse(&v.to_string()).map_err(|e| Error::internal(e.to_string()))?,
                ),
                Ok(spec) => spec,
                Err(e) => {
                    errors.push(FieldError::new(format!("{field}.version"), e));
                    continue;
                }
            };
            let versions = self.store.versions(&dep.name).await?;
            if versions.is_empty() {
                errors.push(FieldError::new(format!("{field}.name"), format!("no definition named {:?} is published", dep.name)));
            } else if select_matching(&versions, &spec).is_none() {
                errors.push(FieldError::new(
                    format!("{field}.version"),
                    format!("no published, non-yanked version of {:?} matches {:?}", dep.name, dep.version),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::DependencyNotFound { errors })
        }
    }

    /// Yanks (or with `yanked = false`, restores) a version. Returns whether
    /// anything changed; a yank appends `resource.yanked`.
    pub async fn set_yanked(&self, name: &str, version: &Version, yanked: bool, actor: &str) -> Result<bool> {
        let changed = self.store.set_yanked(name, version, yanked).await?;
        if changed {
            if let Some(v) = self.store.get_version(name, version).await? {
                let event_type = if yanked { EventType::ResourceYanked } else { EventType::ResourceUpdated };
                self.emit(event_type, actor, &v).await?;
            }
        }
        Ok(changed)
    }

    async fn emit(&self, event_type: EventType, actor: &str, version: &PublishedVersion) -> Result<()> {
        self.store
            .append(NewEvent {
                event_type,
                source: actor.to_string(),
                subject: version.definition.subject(),
                timestamp: self.clock.now(),
                data: json!(version),
            })
            .await?;
        Ok(())
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
        by_name.entry(definition(&item).metadata.name.clone()).or_default().push(item);
    }
    for versions in by_name.values_mut() {
        versions.sort_by(|a, b| definition(a).metadata.version.cmp(&definition(b).metadata.version));
    }
    let mut graph: DiGraphMap<&str, ()> = DiGraphMap::new();
    for name in by_name.keys() {
        graph.add_node(name.as_str());
    }
    for (name, versions) in &by_name {
        for dep in versions.iter().flat_map(|p| &definition(p).spec.dependencies) {
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
    order.into_iter().flat_map(|name| index.remove(&name).unwrap_or_default()).collect()
}
