//! The team composition routes: list, get, publish.

use nestor_core::{Composition, CompositionPublished, PublishedComposition, Result, VersionSpec};
use reqwest::Method;

use crate::client::Client;
use crate::retry::Retry;

impl Client {
    /// The newest version of each of `team`'s compositions, by name.
    pub async fn compositions(&self, team: &str) -> Result<Vec<PublishedComposition>> {
        self.json(self.get(&["api", "v1", "teams", team, "compositions"]))
            .await
    }

    /// A version (or requirement, or `latest`) of a team's composition.
    pub async fn composition(
        &self,
        team: &str,
        name: &str,
        spec: &VersionSpec,
    ) -> Result<PublishedComposition> {
        let version = spec.to_string();
        let call = match spec {
            VersionSpec::Latest => self.get(&["api", "v1", "teams", team, "compositions", name]),
            _ => self.get(&["api", "v1", "teams", team, "compositions", name, &version]),
        };
        self.json(call).await
    }

    /// Validates and publishes a composition under its `metadata.team`
    /// (that team's role): created or unchanged, with the waves a
    /// deployment of it would run. Retried: versions are immutable.
    pub async fn publish_composition(
        &self,
        composition: &Composition,
    ) -> Result<CompositionPublished> {
        let team = composition.metadata.team.clone();
        let call = self.publish_composition_call(&team).json(composition)?;
        self.json(call).await
    }

    /// Publishes one composition document written in YAML under `team`
    /// (`metadata.team` may be left out; it is filled in).
    pub async fn publish_composition_yaml(
        &self,
        team: &str,
        document: &str,
    ) -> Result<CompositionPublished> {
        let call = self.publish_composition_call(team).yaml(document);
        self.json(call).await
    }

    fn publish_composition_call(&self, team: &str) -> crate::client::Call {
        self.call(
            Method::POST,
            &["api", "v1", "teams", team, "compositions"],
            Retry::Safe,
        )
    }
}
