//! The team routes: teams, one team, its quotas, and what the policies
//! say about a deployment of it.

use nestor_core::{DeploymentRequest, PolicyCheck, QuotaUsage, Result, Team};
use reqwest::Method;
use serde::Deserialize;

use crate::client::Client;
use crate::retry::Retry;

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

impl Client {
    /// Every team the token may read, with what each owns, its quotas
    /// and the policies that judge it.
    pub async fn teams(&self) -> Result<Vec<Team>> {
        let page: Items<Team> = self.json(self.get(&["api", "v1", "teams"])).await?;
        Ok(page.items)
    }

    /// One team.
    pub async fn team(&self, team: &str) -> Result<Team> {
        self.json(self.get(&["api", "v1", "teams", team])).await
    }

    /// The team's quotas, each with its usage.
    pub async fn team_quotas(&self, team: &str) -> Result<Vec<QuotaUsage>> {
        let page: Items<QuotaUsage> = self
            .json(self.get(&["api", "v1", "teams", team, "quotas"]))
            .await?;
        Ok(page.items)
    }

    /// What the server's policies say about `request` (its team's
    /// `validate` route); nothing is deployed. Retried: it writes nothing.
    pub async fn validate(&self, request: &DeploymentRequest) -> Result<PolicyCheck> {
        let call = self
            .call(
                Method::POST,
                &["api", "v1", "teams", &request.team, "validate"],
                Retry::Safe,
            )
            .json(request)?
            .long();
        self.json(call).await
    }
}
