//! A team composition with parameters (`POST /api/v1/teams/{team}/deploy`):
//! the short form of a deployment request, and the defaults that make it
//! one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DeploymentRequest;

/// One of a team's compositions to deploy, with its parameters; the team
/// comes from where it is sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TeamDeploy {
    /// The composition's name.
    pub composition: String,
    /// A version or requirement of it (default: its latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_version: Option<String>,
    /// Its parameters.
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    /// The environment (default: the server's `defaults.environment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The deployment's name (default: the composition's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels of the deployment.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Plan only: render and diff, apply nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl TeamDeploy {
    /// A deployment of `composition` with no parameters yet.
    pub fn new(composition: impl Into<String>) -> Self {
        TeamDeploy {
            composition: composition.into(),
            ..TeamDeploy::default()
        }
    }

    /// Sets a parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    /// Sets the environment.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Sets the deployment's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Pins a version or requirement of the composition.
    pub fn composition_version(mut self, version: impl Into<String>) -> Self {
        self.composition_version = Some(version.into());
        self
    }

    /// The deployment request of `team` this stands for: in
    /// `default_environment` unless it names one, named after the
    /// composition unless it names itself.
    pub fn into_request(self, team: &str, default_environment: &str) -> DeploymentRequest {
        DeploymentRequest {
            team: team.to_string(),
            environment: self
                .environment
                .unwrap_or_else(|| default_environment.to_string()),
            name: self.name.unwrap_or_else(|| self.composition.clone()),
            composition: Some(self.composition),
            composition_version: self.composition_version,
            params: self.params,
            labels: self.labels,
            dry_run: self.dry_run,
            ..DeploymentRequest::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_deploy_defaults_its_environment_and_name() {
        let request = TeamDeploy::new("web-app")
            .param("size", "small")
            .into_request("alpha", "dev");
        assert_eq!(
            (
                request.team.as_str(),
                request.environment.as_str(),
                request.name.as_str()
            ),
            ("alpha", "dev", "web-app")
        );
        assert_eq!(request.composition.as_deref(), Some("web-app"));
        assert_eq!(request.composition_version, None, "latest");
        let named = TeamDeploy::new("web-app")
            .environment("prod")
            .name("shop")
            .into_request("alpha", "dev");
        assert_eq!(
            (named.environment.as_str(), named.name.as_str()),
            ("prod", "shop")
        );
        let unknown = serde_json::from_value::<TeamDeploy>(
            serde_json::json!({"composition": "web-app", "enviroment": "prod"}),
        );
        assert!(unknown.is_err(), "a misspelt key is refused");
    }
}
