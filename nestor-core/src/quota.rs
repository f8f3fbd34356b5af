//! Team quotas (docs/src/operator/quotas.md): how many deployments,
//! resources and resources of a category a team may have live, in every
//! environment or in one.
//!
//! Usage is counted from the latest revision of each deployment: its
//! resources are what is live. A deployment whose latest revision has no
//! resource (a deleted one) counts for nothing, so deleting frees its
//! share. A new revision replaces its predecessor's share, so redeploying
//! the same thing never needs room for it twice.
//!
//! The check is the store's to make, atomically with the write of the
//! revision ([`crate::DeploymentStore::create_deployment_within`]): memory
//! and SQLite count under their write lock with [`check_quotas`]; DynamoDB
//! keeps counters it updates conditionally in the same transaction, with
//! [`Usage::of`] and [`Quota::limits`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Deployment, DeploymentKey};

/// One quota of `quotas:` in `nestor.yaml`. An unset maximum is no limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// The team it limits.
    pub team: String,
    /// Only this environment; every environment together when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Live deployments at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deployments: Option<u64>,
    /// Resources of live deployments at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resources: Option<u64>,
    /// Resources of a definition category at most (`database: 3`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_per_category: BTreeMap<String, u64>,
}

/// What a team (or one deployment) holds: live deployments, their
/// resources, and those by definition category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Usage {
    /// Live deployments.
    pub deployments: u64,
    /// Their resources.
    pub resources: u64,
    /// Their resources by definition category.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_category: BTreeMap<String, u64>,
}

impl Usage {
    /// The share of one revision: nothing when it has no resource.
    pub fn of(d: &Deployment) -> Usage {
        let mut usage = Usage::default();
        if d.resources.is_empty() {
            return usage;
        }
        usage.deployments = 1;
        usage.resources = d.resources.len() as u64;
        for r in d.resources.iter().filter(|r| !r.category.is_empty()) {
            *usage.per_category.entry(r.category.clone()).or_default() += 1;
        }
        usage
    }

    /// The usage of the latest revision of each deployment in `revisions`
    /// (any revisions, in any order).
    pub fn of_latest<'a>(revisions: impl IntoIterator<Item = &'a Deployment>) -> Usage {
        let mut total = Usage::default();
        for d in latest_revisions(revisions) {
            total.add(&Usage::of(d));
        }
        total
    }

    /// Adds `other` to this usage.
    pub fn add(&mut self, other: &Usage) {
        self.deployments += other.deployments;
        self.resources += other.resources;
        for (c, n) in &other.per_category {
            *self.per_category.entry(c.clone()).or_default() += n;
        }
    }

    /// Each counted quantity by its limit's name (`max_deployments`,
    /// `max_resources`, `max_per_category.<category>`).
    fn quantity(&self, limit: &Limit) -> u64 {
        match limit {
            Limit::Deployments => self.deployments,
            Limit::Resources => self.resources,
            Limit::Category(c) => self.per_category.get(c).copied().unwrap_or(0),
        }
    }
}

/// One limit of a quota.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit {
    /// `max_deployments`.
    Deployments,
    /// `max_resources`.
    Resources,
    /// `max_per_category.<category>`.
    Category(String),
}

impl Limit {
    /// The limit's name in the configuration and in `QUOTA_EXCEEDED`.
    pub fn name(&self) -> String {
        match self {
            Limit::Deployments => "max_deployments".into(),
            Limit::Resources => "max_resources".into(),
            Limit::Category(c) => format!("max_per_category.{c}"),
        }
    }

    /// How much of this limit `usage` takes.
    pub fn of(&self, usage: &Usage) -> u64 {
        usage.quantity(self)
    }
}

impl Quota {
    /// Whether the quota limits deployments of `team` in `environment`.
    pub fn covers(&self, team: &str, environment: &str) -> bool {
        self.team == team && self.environment.as_deref().is_none_or(|e| e == environment)
    }

    /// Every limit the quota sets, with its maximum.
    pub fn limits(&self) -> Vec<(Limit, u64)> {
        let mut limits = Vec::new();
        if let Some(max) = self.max_deployments {
            limits.push((Limit::Deployments, max));
        }
        if let Some(max) = self.max_resources {
            limits.push((Limit::Resources, max));
        }
        for (c, max) in &self.max_per_category {
            limits.push((Limit::Category(c.clone()), *max));
        }
        limits
    }

    /// Whether replacing `old` by `new` within `before` (the usage the
    /// quota counts, `old` included) stays within every limit that grows;
    /// a limit that does not grow is never refused, even when the quota
    /// was lowered below the usage.
    pub fn admit(&self, before: &Usage, old: &Usage, new: &Usage) -> Result<()> {
        for (limit, max) in self.limits() {
            let (was, will) = (limit.of(old), limit.of(new));
            if will <= was {
                continue;
            }
            let usage = limit.of(before) - was.min(limit.of(before)) + will;
            if usage > max {
                return Err(self.exceeded(&limit, max, usage));
            }
        }
        Ok(())
    }

    /// `QUOTA_EXCEEDED` for `limit`.
    pub fn exceeded(&self, limit: &Limit, max: u64, usage: u64) -> Error {
        Error::QuotaExceeded {
            team: self.team.clone(),
            environment: self.environment.clone(),
            limit: limit.name(),
            max,
            usage,
        }
    }
}

/// The latest revision of each deployment among `revisions`.
pub fn latest_revisions<'a>(
    revisions: impl IntoIterator<Item = &'a Deployment>,
) -> Vec<&'a Deployment> {
    let mut latest: BTreeMap<DeploymentKey, &Deployment> = BTreeMap::new();
    for d in revisions {
        let slot = latest.entry(d.key()).or_insert(d);
        if d.revision > slot.revision {
            *slot = d;
        }
    }
    latest.into_values().collect()
}

/// Whether recording `new` keeps its team within every quota covering it;
/// `revisions` holds the team's revisions as stored before the write
/// (every revision, or only the latest of each deployment).
pub fn check_quotas<'a>(
    quotas: &[Quota],
    new: &Deployment,
    revisions: impl IntoIterator<Item = &'a Deployment>,
) -> Result<()> {
    let covering: Vec<&Quota> = quotas
        .iter()
        .filter(|q| q.covers(&new.team, &new.environment))
        .collect();
    if covering.is_empty() {
        return Ok(());
    }
    let latest = latest_revisions(revisions.into_iter().filter(|d| d.team == new.team));
    let key = new.key();
    let old = latest
        .iter()
        .find(|d| d.key() == key)
        .map(|d| Usage::of(d))
        .unwrap_or_default();
    let share = Usage::of(new);
    for q in covering {
        let counted = latest
            .iter()
            .filter(|d| q.environment.as_deref().is_none_or(|e| e == d.environment));
        let mut before = Usage::default();
        for d in counted {
            before.add(&Usage::of(d));
        }
        q.admit(&before, &old, &share)?;
    }
    Ok(())
}

/// The teams the quotas name.
pub fn quota_teams(quotas: &[Quota]) -> BTreeSet<String> {
    quotas.iter().map(|q| q.team.clone()).collect()
}
