//! The catalog's operations: definitions and team compositions.

use semver::Version;
use serde::{Deserialize, Serialize};

use super::Nestor;
use crate::catalog::{publish_order, PublishResult};
use crate::composer::CompositionPublished;
use crate::error::{Error, Result};
use crate::model::{
    Composition, Event, Origin, PublishedComposition, PublishedVersion, ResourceDefinition, Shared,
    SyncReport, VersionSummary,
};
use crate::source::CatalogSource;
use crate::store::{ListFilter, Page, PageRequest, SearchHit};
use crate::validate::check_name;
use crate::versioning::{compare, Comparison, VersionSpec};

/// A yank or unyank: whether anything changed, and the version as it is now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct YankOutcome {
    /// False when the version already was in the state asked for.
    pub changed: bool,
    /// The version after the call.
    pub version: Shared<PublishedVersion>,
}

/// What a check of definitions is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckScope {
    /// The catalog in the store, as a publish would be.
    Catalog,
    /// Nothing but the definitions checked together (`nestor catalog
    /// validate` on files): a dependency on a name outside them is checked
    /// when it is published.
    Offline,
}

/// `GET /api/v1/status`'s catalog part: the event log's end and each
/// source's last sync report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StatusSummary {
    /// The greatest event sequence so far.
    pub last_event: u64,
    /// The last report of every source synced into this store.
    pub syncs: Vec<SyncReport>,
}

impl Nestor {
    /// The latest version of each name passing `filter`, one page.
    pub async fn list(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> Result<Page<Shared<PublishedVersion>>> {
        self.inner.store.list_latest(filter, page).await
    }

    /// `name` at `spec` (latest, an exact version, a requirement; a name no
    /// resource can have is `BAD_REQUEST`), as the
    /// store shares it (no copy; its JSON written once, [`Shared::json`]).
    pub async fn get(&self, name: &str, spec: &VersionSpec) -> Result<Shared<PublishedVersion>> {
        check_name("resource", name)?;
        self.inner.store.resolve(name, spec).await
    }

    /// Every version of `name`, newest first; `RESOURCE_NOT_FOUND` when
    /// it has none.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionSummary>> {
        check_name("resource", name)?;
        let versions = self.inner.store.versions(name).await?;
        if versions.is_empty() {
            return Err(Error::ResourceNotFound { name: name.into() });
        }
        Ok(versions)
    }

    /// Ranked matches of `query` over the latest versions.
    pub async fn search(
        &self,
        query: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        self.inner.store.search(query, filter, limit).await
    }

    /// Publishes one definition with every definition and versioning rule; `actor` is the
    /// events' source (`api`, `cli`, a token's name).
    pub async fn publish(
        &self,
        definition: ResourceDefinition,
        actor: &str,
    ) -> Result<PublishResult> {
        self.policies_ready().await?;
        let subject = definition.subject();
        let result = self.inner.catalog.publish(definition, None, actor).await;
        self.audited("resource.publish", &subject, &result, |r| r.changes.clone())
            .await;
        result
    }

    /// Publishes several definitions in dependency and semver order (so the
    /// order given never matters) and answers in the order given, each with
    /// its own result. Only a storage failure fails the whole call.
    pub async fn publish_all(
        &self,
        definitions: Vec<ResourceDefinition>,
        actor: &str,
    ) -> Result<Vec<Result<PublishResult>>> {
        self.policies_ready().await?;
        let subjects: Vec<String> = definitions.iter().map(|d| d.subject()).collect();
        let (positions, items) = ordered(definitions);
        let results = match self.inner.catalog.publish_many(items, actor).await {
            Ok(results) => in_given_order(positions, results),
            Err(e) => {
                let code = e.code().as_str().to_string();
                for subject in &subjects {
                    self.record_write(
                        "resource.publish",
                        subject,
                        crate::audit::AuditOutcome::Failed,
                        Some(code.clone()),
                    )
                    .await;
                }
                return Err(e);
            }
        };
        for (subject, result) in subjects.iter().zip(&results) {
            self.audited("resource.publish", subject, result, |r| r.changes.clone())
                .await;
        }
        Ok(results)
    }

    /// A dry run of [`Nestor::publish_all`]: every rule, nothing written;
    /// each definition's result is what its publish would answer.
    pub async fn check(
        &self,
        definitions: Vec<ResourceDefinition>,
        scope: CheckScope,
    ) -> Result<Vec<Result<PublishResult>>> {
        self.policies_ready().await?;
        let (positions, items) = ordered(definitions);
        let results = self
            .inner
            .catalog
            .check_many(items, scope == CheckScope::Offline)
            .await?;
        Ok(in_given_order(positions, results))
    }

    /// `old` and `new` compared: the changes, the bump they need, and
    /// whether `new` is large enough.
    pub fn diff(&self, old: &ResourceDefinition, new: &ResourceDefinition) -> Comparison {
        compare(old, new)
    }

    /// Yanks (or with `yanked = false`, restores) a version; whether
    /// anything changed.
    pub async fn set_yanked(
        &self,
        name: &str,
        version: &Version,
        yanked: bool,
        actor: &str,
    ) -> Result<bool> {
        check_name("resource", name)?;
        let result = self
            .inner
            .catalog
            .set_yanked(name, version, yanked, actor)
            .await;
        let action = if yanked {
            "resource.yank"
        } else {
            "resource.unyank"
        };
        self.audited(action, &format!("{name}:{version}"), &result, |_| vec![])
            .await;
        result
    }

    /// [`Nestor::set_yanked`], answering with the version as it is now.
    pub async fn yank(
        &self,
        name: &str,
        version: &Version,
        yanked: bool,
        actor: &str,
    ) -> Result<YankOutcome> {
        let changed = self.set_yanked(name, version, yanked, actor).await?;
        let current = self
            .inner
            .store
            .get_version(name, version)
            .await?
            .ok_or_else(|| Error::VersionNotFound {
                name: name.into(),
                version: version.to_string(),
            })?;
        Ok(YankOutcome {
            changed,
            version: current,
        })
    }

    /// How many versions are published, yanked ones included (one listing
    /// of every name: callers that ask often keep the answer a while).
    pub async fn version_count(&self) -> Result<u64> {
        let store = &self.inner.store;
        let mut total = 0u64;
        let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
        loop {
            let found = store.list_latest(&ListFilter::default(), &page).await?;
            let names: Vec<String> = found.items.iter().map(|v| v.name().to_string()).collect();
            let versions = store.versions_many(&names).await?;
            total += versions.values().map(|v| v.len() as u64).sum::<u64>();
            match found.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => return Ok(total),
            }
        }
    }

    /// Syncs one source: definitions and compositions, yanks what vanished,
    /// stores and returns the report.
    pub async fn sync(&self, source: &dyn CatalogSource) -> Result<SyncReport> {
        self.policies_ready().await?;
        let result = self.inner.sync.sync(source).await;
        self.audited("catalog.sync", &source.config().name, &result, |_| vec![])
            .await;
        result
    }

    /// The event log's end and the sources' last reports.
    pub async fn status(&self) -> Result<StatusSummary> {
        let store = &self.inner.store;
        Ok(StatusSummary {
            last_event: store.last_sequence().await?,
            syncs: store.last_syncs().await?,
        })
    }

    /// [`Nestor::status`] as a caller who sees only the teams `sees_team`
    /// accepts reads it: other teams' compositions (and their documents'
    /// errors) are left out of every report.
    pub async fn status_for(&self, sees_team: impl Fn(&str) -> bool) -> Result<StatusSummary> {
        let mut status = self.status().await?;
        status.syncs = status
            .syncs
            .into_iter()
            .map(|r| r.visible_to(&sees_team))
            .collect();
        Ok(status)
    }

    /// Events after sequence `after`, oldest first, at most `limit`.
    pub async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.inner.store.read_after(after, limit).await
    }

    /// Validates and publishes a composition under its `metadata.team`.
    pub async fn publish_composition(
        &self,
        composition: Composition,
        origin: Option<Origin>,
        actor: &str,
    ) -> Result<CompositionPublished> {
        self.policies_ready().await?;
        let subject = format!(
            "{}/{}:{}",
            composition.metadata.team, composition.metadata.name, composition.metadata.version
        );
        let result = self
            .inner
            .composer
            .publish(composition, origin, actor)
            .await;
        self.audited("composition.publish", &subject, &result, |_| vec![])
            .await;
        result
    }

    /// Every static check of a composition, nothing written; its waves.
    pub async fn check_composition(&self, composition: &Composition) -> Result<Vec<Vec<String>>> {
        self.policies_ready().await?;
        self.inner.composer.validate(composition).await
    }

    /// The newest version of each composition of `team` (`None`: every team).
    pub async fn compositions(&self, team: Option<&str>) -> Result<Vec<PublishedComposition>> {
        if let Some(team) = team {
            check_name("team", team)?;
        }
        self.inner.store.list_compositions(team).await
    }

    /// `team/name` at `spec`.
    pub async fn composition(
        &self,
        team: &str,
        name: &str,
        spec: &VersionSpec,
    ) -> Result<PublishedComposition> {
        check_name("team", team)?;
        check_name("composition", name)?;
        self.inner.composer.get(team, name, spec).await
    }
}

type Positioned = (Vec<usize>, Vec<(ResourceDefinition, Option<Origin>)>);

/// The definitions in publish order, with where each was given.
fn ordered(definitions: Vec<ResourceDefinition>) -> Positioned {
    publish_order(definitions.into_iter().enumerate().collect(), |(_, d)| d)
        .into_iter()
        .map(|(i, d)| (i, (d, None)))
        .unzip()
}

/// Results in publish order put back in the order given.
fn in_given_order<T>(positions: Vec<usize>, results: Vec<T>) -> Vec<T> {
    let mut slots: Vec<Option<T>> = (0..results.len()).map(|_| None).collect();
    for (i, r) in positions.into_iter().zip(results) {
        slots[i] = Some(r);
    }
    slots
        .into_iter()
        .map(|r| r.expect("one result per definition"))
        .collect()
}
