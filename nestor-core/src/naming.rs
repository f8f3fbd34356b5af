//! The names a deployment takes outside Nestor: Kubernetes namespaces and
//! object names, Argo CD `Application` and `AppProject` names, and the
//! GitOps repository's file names.
//!
//! Every engine and the GitOps executor take their names from here, so two
//! teams can never land on the same name. Team, environment, deployment
//! and resource names may contain `-`, so joining them with `-` is
//! ambiguous (team `alpha` in environment `x-dev` and team `alpha-x` in
//! `dev` would both be `alpha-x-dev`). The parts are joined with
//! [`SEPARATOR`] (`--`) instead, which no part may contain, so each joined
//! name splits back into its parts exactly one way. Names that end up as
//! Kubernetes labels (namespaces, object names) must fit 63 characters;
//! [`check_names`] refuses what does not, before anything is rendered.

use crate::error::FieldError;
use crate::model::DeploymentKey;

/// What joins the parts of a derived name. No part may contain it.
pub const SEPARATOR: &str = "--";

/// Longest Kubernetes label (DNS-1123): namespaces, Service names.
pub const MAX_LABEL: usize = 63;

/// The names one team and environment take in the cluster and in Argo CD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNames {
    /// The namespace the team's objects in this environment go to
    /// (`alpha--staging`).
    pub namespace: String,
    /// The Argo CD `AppProject` of the team (`nestor-alpha`): its
    /// destinations are only the team's namespaces. The constant prefix
    /// keeps it clear of Argo CD's built-in `default` project.
    pub project: String,
    /// The Argo CD `Application` syncing the team's folder for this
    /// environment (`alpha--staging`).
    pub application: String,
    /// Where that Application lives in the GitOps repository
    /// (`argocd/alpha--staging.yaml`).
    pub application_file: String,
    /// Where the team's AppProject lives (`argocd/projects/alpha.yaml`).
    pub project_file: String,
}

/// The names of `team` in `environment`.
pub fn cluster_names(team: &str, environment: &str) -> ClusterNames {
    let joined = format!("{team}{SEPARATOR}{environment}");
    ClusterNames {
        namespace: joined.clone(),
        project: format!("nestor-{team}"),
        application_file: format!("argocd/{joined}.yaml"),
        application: joined,
        project_file: format!("argocd/projects/{team}.yaml"),
    }
}

/// The resource's part of an object name: resource names may be
/// snake_case, which Kubernetes names cannot hold.
pub fn resource_label(resource: &str) -> String {
    resource.replace('_', "-")
}

/// The name of a resource's objects inside its namespace
/// (`checkout--database`): unique per deployment and resource.
pub fn object_name(deployment: &str, resource: &str) -> String {
    format!("{deployment}{SEPARATOR}{}", resource_label(resource))
}

/// Every reason the names of `key` and its `resources` cannot be used:
/// a part holding [`SEPARATOR`], a derived label over [`MAX_LABEL`], two
/// resources with the same object name (`db_main` and `db-main`). Fields
/// are `team`, `environment`, `name` and `resources[i].name`.
pub fn check_names<'a>(
    key: &DeploymentKey,
    resources: impl IntoIterator<Item = &'a str>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (field, value) in [
        ("team", &key.team),
        ("environment", &key.environment),
        ("name", &key.name),
    ] {
        if value.contains(SEPARATOR) {
            errors.push(FieldError::new(
                field,
                format!("{value:?} contains {SEPARATOR:?}, which Nestor uses to join names"),
            ));
        }
    }
    let names = cluster_names(&key.team, &key.environment);
    if names.namespace.len() > MAX_LABEL {
        errors.push(FieldError::new(
            "environment",
            format!(
                "namespace {:?} is {} characters; team and environment together must fit {} (Kubernetes' limit is {MAX_LABEL})",
                names.namespace,
                names.namespace.len(),
                MAX_LABEL - SEPARATOR.len()
            ),
        ));
    }
    let mut seen: std::collections::BTreeMap<String, &str> = Default::default();
    for (i, resource) in resources.into_iter().enumerate() {
        let field = format!("resources[{i}].name");
        if resource.contains(SEPARATOR) || resource.contains("__") {
            errors.push(FieldError::new(
                &field,
                format!("{resource:?} contains {SEPARATOR:?} (or \"__\", which becomes it), which Nestor uses to join names"),
            ));
        }
        let object = object_name(&key.name, resource);
        if object.len() > MAX_LABEL {
            errors.push(FieldError::new(
                &field,
                format!(
                    "object name {object:?} is {} characters; deployment and resource names together must fit {} (Kubernetes' limit is {MAX_LABEL})",
                    object.len(),
                    MAX_LABEL - SEPARATOR.len()
                ),
            ));
        }
        if let Some(other) = seen.insert(object.clone(), resource) {
            errors.push(FieldError::new(
                &field,
                format!("{resource:?} and {other:?} both become the object name {object:?}"),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(team: &str, environment: &str, name: &str) -> DeploymentKey {
        DeploymentKey {
            team: team.into(),
            environment: environment.into(),
            name: name.into(),
        }
    }

    #[test]
    fn teams_whose_dashed_names_meet_get_different_names() {
        let a = cluster_names("alpha", "x-dev");
        let b = cluster_names("alpha-x", "dev");
        assert_ne!(a.namespace, b.namespace);
        assert_ne!(a.application, b.application);
        assert_ne!(a.application_file, b.application_file);
        assert_ne!(a.project, b.project);
        assert_ne!(object_name("a-b", "c"), object_name("a", "b-c"));
    }

    #[test]
    fn names_holding_the_separator_or_too_long_are_refused() {
        let errors = check_names(&key("al--pha", "dev", "web"), ["db"]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "team");

        let long = "e".repeat(60);
        let errors = check_names(&key("alpha", &long, "web"), ["db"]);
        assert_eq!(errors[0].field, "environment", "{errors:?}");

        let resource = "r".repeat(70);
        let errors = check_names(&key("alpha", "dev", "web"), [resource.as_str()]);
        assert_eq!(errors[0].field, "resources[0].name", "{errors:?}");
    }

    #[test]
    fn resources_that_map_to_one_object_name_are_refused() {
        let errors = check_names(&key("alpha", "dev", "web"), ["db_main", "db-main"]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("web--db-main"), "{errors:?}");
        assert!(check_names(&key("alpha", "dev", "web"), ["db", "cache"]).is_empty());
    }
}
