//! The Argo CD objects the GitOps executor writes beside the deployments:
//! one `Application` per team and environment, and one `AppProject` per
//! team.
//!
//! The Application syncs the team's folder for the environment
//! (`{team}/{environment}`) recursively: every Kubernetes object an engine
//! renders is a `*.yaml` file there, whatever its kind (Crossplane claims,
//! provider-terraform Workspaces, Pulumi Programs and Stacks, Helm child
//! Applications). The files that are not Kubernetes manifests are left out
//! on purpose:
//! - `main.tf.json` (and any `*.tf.json`): the Terraform module for review
//!   and `terraform plan`; the cluster gets it inline in the Workspace. The
//!   `include: "*.yaml"` glob already leaves every `.json` out;
//! - `values.yaml`: the Helm release's values for `helm template` and
//!   review; the child Application carries them inline (`valuesObject`);
//! - `Pulumi.yaml` and `Pulumi.<stack>.yaml`: the Pulumi project and stack
//!   settings for the `pulumi` CLI; the operator gets the program from the
//!   `Program` object. A Pulumi YAML program can itself contain
//!   `apiVersion:`, `kind:` and `metadata:`, which would make Argo CD fail
//!   the whole Application if it tried to read it as a manifest.
//!
//! Argo CD matches `directory.include`/`exclude` with gobwas/glob against
//! each file's path relative to the Application's path
//! (`checkout/cache/values.yaml`), compiled without separators: `*`
//! matches any run of characters, `/` included, and a pattern matches the
//! whole path. So a bare `values.yaml` never matches a nested file; the
//! patterns are `*/values.yaml` and the like (every Nestor file is at
//! least `{deployment}/{resource}/{file}` deep), which stop at a `/` so
//! that `my-values.yaml` is not caught.
//!
//! The AppProject (`nestor-{team}`) is what makes team isolation a rule
//! the cluster enforces: its destinations are only the team's namespaces
//! (`{team}--*`, which no other team's namespace can match since team
//! names cannot contain `--`), the Applications it accepts live in the
//! Argo CD namespace or the team's namespaces (`sourceNamespaces`, for
//! child Applications kept next to what they deploy), and the only
//! cluster-scoped objects it may create are the team's namespaces and
//! provider-terraform Workspaces whose names start with the same prefix
//! (named cluster whitelists need Argo CD 3.3 or later).

use nestor_core::ClusterNames;
use serde_json::{json, Value};

/// What `directory.include` keeps: every YAML file, at any depth.
pub const INCLUDE: &str = "*.yaml";

/// What `directory.exclude` leaves out: files in Nestor's folders that are
/// not Kubernetes manifests (see the module docs for each kind).
pub const EXCLUDE: &str = "{*/values.yaml,*/Pulumi.yaml,*/Pulumi.*.yaml,*.tf.json}";

/// The in-cluster API server, as Argo CD names it.
pub const IN_CLUSTER: &str = "https://kubernetes.default.svc";

/// Where the Argo CD objects go and which repository they point at.
pub(super) struct ArgoObjects<'a> {
    /// The repository URL Argo CD clones.
    pub repo_url: &'a str,
    /// The branch the Application tracks.
    pub branch: &'a str,
    /// The namespace Argo CD runs in (where Applications and AppProjects live).
    pub argocd_namespace: &'a str,
}

impl ArgoObjects<'_> {
    /// The Application syncing `team`'s folder for `environment`.
    pub fn application(&self, team: &str, environment: &str, names: &ClusterNames) -> String {
        let app = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {
                "name": names.application,
                "namespace": self.argocd_namespace,
                "labels": labels(team, Some(environment)),
            },
            "spec": {
                "project": names.project,
                "source": {
                    "repoURL": self.repo_url,
                    "targetRevision": self.branch,
                    "path": format!("{team}/{environment}"),
                    "directory": {"recurse": true, "include": INCLUDE, "exclude": EXCLUDE},
                },
                "destination": {"server": IN_CLUSTER, "namespace": names.namespace},
                "syncPolicy": {
                    "automated": {"prune": true, "selfHeal": true},
                    "syncOptions": ["CreateNamespace=true"],
                    // A claim applied before its XRD is established, or a
                    // Stack before the operator's CRDs: retried rather than
                    // left failed until the next commit.
                    "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}},
                },
            },
        });
        document(
            &format!("syncs every deployment of {team} in {environment}"),
            &app,
        )
    }

    /// The AppProject of `team`: only the team's namespaces as destinations.
    pub fn project(&self, team: &str, names: &ClusterNames) -> String {
        let own = &names.team_namespaces;
        let project = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AppProject",
            "metadata": {
                "name": names.project,
                "namespace": self.argocd_namespace,
                "labels": labels(team, None),
            },
            "spec": {
                "description": format!("Nestor deployments of team {team}: only its own namespaces ({own})"),
                // Helm child Applications install charts from the
                // repositories the catalog names; what a team may reach
                // is where its objects land, not where charts come from.
                "sourceRepos": ["*"],
                "sourceNamespaces": [own],
                "destinations": [{"server": IN_CLUSTER, "namespace": own}],
                "clusterResourceWhitelist": [
                    {"group": "", "kind": "Namespace", "name": own},
                    {"group": "tf.upbound.io", "kind": "Workspace", "name": own},
                ],
            },
        });
        document(
            &format!("team {team}'s deployments may reach only its own namespaces"),
            &project,
        )
    }
}

fn labels(team: &str, environment: Option<&str>) -> Value {
    let mut labels = json!({
        "app.kubernetes.io/managed-by": "nestor",
        "nestor.io/team": team,
    });
    if let Some(env) = environment {
        labels["nestor.io/environment"] = json!(env);
    }
    labels
}

fn document(purpose: &str, value: &Value) -> String {
    let body = serde_yaml::to_string(value).unwrap_or_default();
    format!("# Managed by Nestor: {purpose}.\n{body}")
}
