//! Teams (`GET /api/v1/teams…`, `nestor team list|show`): a team is a
//! name that owns compositions and deployments, has quotas and policies;
//! this view gathers all four from the store and the configuration.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Nestor;
use crate::error::Result;
use crate::model::Deployment;
use crate::policy::{PolicyHook, PolicyScope};
use crate::quota::{latest_revisions, Quota, Usage};
use crate::store::DeploymentFilter;

/// One team: what it owns, its quotas with their usage, the policies that
/// judge it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Team {
    /// The team's name.
    pub name: String,
    /// Its compositions, `name:version` of the newest version of each.
    pub compositions: Vec<String>,
    /// Its live deployments (latest revision with resources), by
    /// environment: names.
    pub deployments: BTreeMap<String, Vec<String>>,
    /// Its quotas, each with what it counts now.
    pub quotas: Vec<QuotaUsage>,
    /// The policy files that judge its compositions or deployments
    /// (global ones included).
    pub policies: Vec<TeamPolicy>,
}

/// A quota with the usage it counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct QuotaUsage {
    /// The quota as configured.
    pub quota: Quota,
    /// What the team's live deployments take of it.
    pub usage: Usage,
}

/// A policy file that applies to a team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TeamPolicy {
    /// The file.
    pub file: String,
    /// The source it was synced from; none for a configured file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Where it runs: `composition` or `deployment`.
    pub hook: String,
    /// `global`, `team alpha`, `environment production`...
    pub scope: String,
}

impl Nestor {
    /// Every team something names: compositions, deployments, quotas and
    /// policy scopes, sorted by name.
    pub async fn teams(&self) -> Result<Vec<Team>> {
        self.policies_ready().await?;
        let compositions = self.inner.store.list_compositions(None).await?;
        let deployments = self.all_deployments(None).await?;
        let mut names: BTreeSet<String> = compositions
            .iter()
            .map(|c| c.composition.metadata.team.clone())
            .chain(deployments.iter().map(|d| d.team.clone()))
            .chain(self.quotas().iter().map(|q| q.team.clone()))
            .collect();
        let set = self.inner.policies.current();
        names.extend(set.files().filter_map(|(_, s, _)| s.team.clone()));
        Ok(names
            .into_iter()
            .map(|name| {
                let comps = compositions
                    .iter()
                    .filter(|c| c.composition.metadata.team == name)
                    .map(|c| composition_name(&c.composition))
                    .collect();
                self.team_view(name, comps, &deployments)
            })
            .collect())
    }

    /// One team; a name nothing mentions is a team with nothing yet.
    pub async fn team(&self, name: &str) -> Result<Team> {
        self.policies_ready().await?;
        let compositions = self
            .inner
            .store
            .list_compositions(Some(name))
            .await?
            .iter()
            .map(|c| composition_name(&c.composition))
            .collect();
        let deployments = self.all_deployments(Some(name)).await?;
        Ok(self.team_view(name.to_string(), compositions, &deployments))
    }

    /// The quotas of `team`, each with its usage.
    pub async fn team_quotas(&self, team: &str) -> Result<Vec<QuotaUsage>> {
        let deployments = self.all_deployments(Some(team)).await?;
        Ok(quota_usage(self.quotas(), team, &deployments))
    }

    /// The quotas every apply must fit in.
    pub fn quotas(&self) -> &[Quota] {
        self.inner.orchestrator.quotas()
    }

    async fn all_deployments(&self, team: Option<&str>) -> Result<Vec<Deployment>> {
        let filter = DeploymentFilter {
            team: team.map(str::to_string),
            ..Default::default()
        };
        self.inner.store.list_deployments(&filter).await
    }

    fn team_view(&self, name: String, compositions: Vec<String>, all: &[Deployment]) -> Team {
        let mine: Vec<&Deployment> = all.iter().filter(|d| d.team == name).collect();
        let mut deployments: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in latest_revisions(mine.iter().copied()) {
            if !d.resources.is_empty() {
                deployments
                    .entry(d.environment.clone())
                    .or_default()
                    .push(d.name.clone());
            }
        }
        let set = self.inner.policies.current();
        let policies = set
            .files()
            .filter_map(|(origin, scope, hook)| {
                let hook = hook.filter(|h| *h != PolicyHook::Definition)?;
                applies_to(scope, &name).then(|| TeamPolicy {
                    file: origin.file.clone(),
                    source: origin.source.clone(),
                    hook: hook.package().trim_start_matches("nestor.").to_string(),
                    scope: scope.describe(),
                })
            })
            .collect();
        let owned: Vec<Deployment> = mine.into_iter().cloned().collect();
        Team {
            quotas: quota_usage(self.quotas(), &name, &owned),
            name,
            compositions,
            deployments,
            policies,
        }
    }
}

/// `name:version` of a composition.
fn composition_name(c: &crate::model::Composition) -> String {
    format!("{}:{}", c.metadata.name, c.metadata.version)
}

/// Whether a policy of `scope` can judge something of `team`.
fn applies_to(scope: &PolicyScope, team: &str) -> bool {
    scope.team.as_deref().is_none_or(|t| t == team)
}

/// Each quota of `team` with the usage of its deployments (`revisions`:
/// any revisions of the team).
fn quota_usage(quotas: &[Quota], team: &str, revisions: &[Deployment]) -> Vec<QuotaUsage> {
    quotas
        .iter()
        .filter(|q| q.team == team)
        .map(|q| {
            let counted = revisions.iter().filter(|d| {
                d.team == team && q.environment.as_deref().is_none_or(|e| e == d.environment)
            });
            QuotaUsage {
                quota: q.clone(),
                usage: Usage::of_latest(counted),
            }
        })
        .collect()
}
