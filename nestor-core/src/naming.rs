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

/// Longest Kubernetes object name (a DNS-1123 subdomain): the limit of
/// cluster-scoped objects, whose names carry team and environment.
pub const MAX_OBJECT_NAME: usize = 253;

/// Longest resource name a composition may use: an object name is
/// `{deployment}--{resource}`, and a deployment name has at least two
/// characters, so a longer resource can never fit [`MAX_LABEL`].
pub const MAX_RESOURCE_NAME: usize = MAX_LABEL - SEPARATOR.len() - 2;

/// Longest file or folder name in the GitOps repository: most filesystems
/// refuse longer ones, and a `git clone` that meets one fails for every
/// team ("File name too long").
pub const MAX_PATH_SEGMENT: usize = 255;

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
    /// The glob matching every namespace of the team (`alpha--*`), in Argo
    /// CD's glob syntax: the AppProject's destinations. No other team's
    /// namespace can match it, since no team name contains [`SEPARATOR`].
    pub team_namespaces: String,
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
        team_namespaces: format!("{team}{SEPARATOR}*"),
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

/// The name of a resource's cluster-scoped objects (a provider-terraform
/// `Workspace`): cluster-wide, so it carries the namespace too
/// (`alpha--staging--checkout--database`), and it matches the team's
/// [`ClusterNames::team_namespaces`] glob the AppProject allows.
pub fn cluster_object_name(key: &DeploymentKey, resource: &str) -> String {
    format!(
        "{}{SEPARATOR}{}",
        cluster_names(&key.team, &key.environment).namespace,
        object_name(&key.name, resource)
    )
}

/// Why a resource name cannot become a Kubernetes name, whatever the
/// deployment: it holds [`SEPARATOR`] (or `__`, which becomes it), ends
/// with `_` or `-`, or is longer than [`MAX_RESOURCE_NAME`]. Checked when
/// a composition is published and again when a deployment is planned.
pub fn resource_name_problem(resource: &str) -> Option<String> {
    if resource.contains(SEPARATOR) || resource.contains("__") {
        return Some(format!(
            "{resource:?} contains {SEPARATOR:?} (or \"__\", which becomes it), which Nestor uses to join names"
        ));
    }
    if resource.ends_with(['_', '-']) {
        return Some(format!(
            "{resource:?} ends with {:?}; Kubernetes names end with a letter or digit",
            &resource[resource.len() - 1..]
        ));
    }
    if resource.len() > MAX_RESOURCE_NAME {
        return Some(format!(
            "{resource:?} is {} characters; a resource name becomes part of Kubernetes names and may have at most {MAX_RESOURCE_NAME}",
            resource.len()
        ));
    }
    None
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
        if let Some(problem) = resource_name_problem(resource) {
            errors.push(FieldError::new(&field, problem));
            continue;
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
    fn resource_names_that_cannot_become_kubernetes_names_are_refused() {
        assert!(resource_name_problem("database_main").is_none());
        assert!(resource_name_problem(&"r".repeat(MAX_RESOURCE_NAME)).is_none());
        let long = "r".repeat(300);
        let problem = resource_name_problem(&long).unwrap();
        assert!(problem.contains("300 characters"), "{problem}");
        assert!(resource_name_problem("db__main").is_some());
        assert!(resource_name_problem("db--main").is_some());
        assert!(resource_name_problem("db_").unwrap().contains("ends with"));
        let errors = check_names(&key("alpha", "dev", "web"), [long.as_str()]);
        assert_eq!(errors.len(), 1, "one reason per resource: {errors:?}");
    }

    #[test]
    fn cluster_scoped_names_carry_the_namespace_and_match_the_team_glob() {
        let k = key("alpha", "staging", "checkout");
        let name = cluster_object_name(&k, "main_db");
        assert_eq!(name, "alpha--staging--checkout--main-db");
        let names = cluster_names("alpha", "staging");
        assert_eq!(names.team_namespaces, "alpha--*");
        let prefix = names.team_namespaces.trim_end_matches('*');
        assert!(name.starts_with(prefix) && names.namespace.starts_with(prefix));
        assert!(!cluster_names("alpha-x", "dev")
            .namespace
            .starts_with(prefix));
        assert_ne!(
            cluster_object_name(&key("alpha", "x-dev", "c"), "d"),
            cluster_object_name(&key("alpha-x", "dev", "c"), "d")
        );
    }

    #[test]
    fn resources_that_map_to_one_object_name_are_refused() {
        let errors = check_names(&key("alpha", "dev", "web"), ["db_main", "db-main"]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("web--db-main"), "{errors:?}");
        assert!(check_names(&key("alpha", "dev", "web"), ["db", "cache"]).is_empty());
    }
}
