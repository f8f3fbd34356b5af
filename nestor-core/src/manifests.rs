//! Which rendered files are Kubernetes manifests a cluster applies, the
//! objects they hold, and the controller that makes each object take
//! effect.
//!
//! One rule for three readers: the GitOps executor's Argo CD Application
//! leaves out exactly the files [`is_manifest_file`] refuses (its
//! include/exclude globs are tested against it), the observer matches
//! Argo CD's per-object health to resources through [`objects`], and
//! plans name each resource's controller with [`controller_of`].
//!
//! Not manifests, on purpose: `*.tf.json` (the Terraform module, for
//! review and `terraform plan`; the Workspace carries it inline),
//! `values.yaml` (a Helm release's values; the child Application carries
//! them inline), `Pulumi.yaml` and `Pulumi.<stack>.yaml` (the Pulumi
//! project and stack settings; the operator's `Program` carries the
//! program). Only `.yaml` files are manifests: that is what every bundled
//! engine writes for the cluster.

use serde::{Deserialize, Serialize};

use crate::model::Artifact;

/// Whether Argo CD applies the file at `path` (relative to a resource's
/// folder): a `.yaml` file that is none of the non-manifest kinds.
pub fn is_manifest_file(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    let pulumi_settings = file == "Pulumi.yaml"
        || (file.starts_with("Pulumi.") && file.ends_with(".yaml") && file.len() >= 12);
    file.ends_with(".yaml") && file != "values.yaml" && !pulumi_settings
}

/// One Kubernetes object a resource's files hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    /// API group (`""` for the core group, `tf.upbound.io`).
    pub group: String,
    /// API version without the group (`v1beta1`).
    pub version: String,
    /// Kind (`Workspace`).
    pub kind: String,
    /// The namespace the manifest names, if it names one (otherwise the
    /// Application's destination namespace for namespaced kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// Its `argocd.argoproj.io/sync-wave` annotation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<String>,
}

impl ObjectRef {
    /// `Kind/name`, or `Kind/namespace/name`.
    pub fn display(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// The Kubernetes objects in the manifest files of `artifacts`, in file
/// and document order. Documents that are not objects (no `kind`, no
/// `metadata.name`) are skipped, as Argo CD skips them.
pub fn objects(artifacts: &[Artifact]) -> Vec<ObjectRef> {
    let mut out = Vec::new();
    for a in artifacts.iter().filter(|a| is_manifest_file(&a.path)) {
        for doc in serde_yaml::Deserializer::from_str(&a.content) {
            let Ok(value) = serde_json::Value::deserialize(doc) else {
                continue;
            };
            if let Some(object) = object_ref(&value) {
                out.push(object);
            }
        }
    }
    out
}

fn object_ref(value: &serde_json::Value) -> Option<ObjectRef> {
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    let api_version = text(value.get("apiVersion"))?;
    let kind = text(value.get("kind"))?;
    let metadata = value.get("metadata")?;
    let name = text(metadata.get("name"))?;
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version),
    };
    Some(ObjectRef {
        group,
        version,
        kind,
        namespace: text(metadata.get("namespace")),
        name,
        wave: text(
            metadata
                .get("annotations")
                .and_then(|a| a.get("argocd.argoproj.io/sync-wave")),
        ),
    })
}

/// What makes an object take effect once Argo CD has applied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Controller {
    /// Argo CD applies it and that is all (core kinds).
    ArgoCd,
    /// Crossplane's provider-terraform runs Terraform for a `Workspace`.
    ProviderTerraform,
    /// The Pulumi Kubernetes Operator runs a `Stack` (from a `Program`).
    PulumiOperator,
    /// Crossplane composes a claim or composite resource.
    Crossplane,
    /// Argo CD installs a Helm chart through a child `Application`.
    HelmChildApplication,
}

impl Controller {
    /// How a plan names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Controller::ArgoCd => "argo-cd",
            Controller::ProviderTerraform => "provider-terraform",
            Controller::PulumiOperator => "pulumi-operator",
            Controller::Crossplane => "crossplane",
            Controller::HelmChildApplication => "helm (argo-cd child application)",
        }
    }
}

/// The controller that makes `object` take effect. Kinds of groups
/// Kubernetes itself serves are Argo CD's alone; any other custom
/// resource that is not provider-terraform's, Pulumi's or Argo CD's is
/// taken for a Crossplane claim or composite (what the crossplane engine
/// renders).
pub fn controller_of(object: &ObjectRef) -> Controller {
    match (object.group.as_str(), object.kind.as_str()) {
        ("tf.upbound.io" | "tf.m.upbound.io", "Workspace") => Controller::ProviderTerraform,
        ("pulumi.com", _) | ("auto.pulumi.com", _) => Controller::PulumiOperator,
        ("argoproj.io", "Application") => Controller::HelmChildApplication,
        (group, _) if is_kubernetes_group(group) => Controller::ArgoCd,
        _ => Controller::Crossplane,
    }
}

/// Groups served by Kubernetes itself (and Argo CD's own kinds).
fn is_kubernetes_group(group: &str) -> bool {
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io") || group == "argoproj.io"
}

/// The controller of a resource: the one of its most significant object
/// (a controller other than plain Argo CD wins), by the engine's name when
/// its files hold no Kubernetes object.
pub fn resource_controller(engine: &str, objects: &[ObjectRef]) -> Option<Controller> {
    let mut found = objects.iter().map(controller_of).collect::<Vec<_>>();
    found.sort_by_key(|c| matches!(c, Controller::ArgoCd));
    found.first().copied().or(match engine {
        "terraform" => Some(Controller::ProviderTerraform),
        "pulumi" => Some(Controller::PulumiOperator),
        "crossplane" => Some(Controller::Crossplane),
        "helm" => Some(Controller::HelmChildApplication),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(path: &str, content: &str) -> Artifact {
        Artifact {
            path: path.into(),
            content: content.into(),
            media_type: "application/yaml".into(),
        }
    }

    #[test]
    fn manifest_files_leave_out_values_pulumi_settings_and_terraform() {
        for manifest in [
            "application.yaml",
            "workspace.yaml",
            "program.yaml",
            "stack.yaml",
            "postgresqlinstance.yaml",
            "nested/dir/object.yaml",
            "my-values.yaml",
            "Pulumi-notes.yaml",
        ] {
            assert!(is_manifest_file(manifest), "{manifest}");
        }
        for other in [
            "values.yaml",
            "Pulumi.yaml",
            "Pulumi.dev.yaml",
            "Pulumi.alpha--staging.yaml",
            "main.tf.json",
            "README.md",
            "object.yml",
        ] {
            assert!(!is_manifest_file(other), "{other}");
        }
    }

    #[test]
    fn objects_come_from_every_document_of_every_manifest() {
        let files = [
            yaml(
                "workspace.yaml",
                "apiVersion: tf.upbound.io/v1beta1\nkind: Workspace\nmetadata:\n  name: alpha--dev--c--db\n  annotations: {argocd.argoproj.io/sync-wave: \"1\"}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: alpha--dev}\n",
            ),
            yaml("values.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: not-applied}\n"),
            yaml("notes.yaml", "just: data\n"),
        ];
        let objects = objects(&files);
        assert_eq!(objects.len(), 2, "{objects:?}");
        assert_eq!(
            (
                objects[0].group.as_str(),
                objects[0].kind.as_str(),
                objects[0].wave.as_deref()
            ),
            ("tf.upbound.io", "Workspace", Some("1"))
        );
        assert_eq!(objects[1].display(), "Secret/alpha--dev/s");
        assert_eq!(controller_of(&objects[0]), Controller::ProviderTerraform);
        assert_eq!(controller_of(&objects[1]), Controller::ArgoCd);
        assert_eq!(
            resource_controller("terraform", &objects),
            Some(Controller::ProviderTerraform)
        );
    }

    #[test]
    fn controllers_by_kind() {
        let o = |api: &str, kind: &str| {
            let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
            ObjectRef {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                namespace: None,
                name: "n".into(),
                wave: None,
            }
        };
        assert_eq!(
            controller_of(&o("pulumi.com/v1", "Stack")),
            Controller::PulumiOperator
        );
        assert_eq!(
            controller_of(&o("argoproj.io/v1alpha1", "Application")),
            Controller::HelmChildApplication
        );
        assert_eq!(
            controller_of(&o("database.example.org/v1alpha1", "PostgreSQLInstance")),
            Controller::Crossplane
        );
        assert_eq!(
            controller_of(&o("apps/v1", "Deployment")),
            Controller::ArgoCd
        );
        assert_eq!(
            controller_of(&o("networking.k8s.io/v1", "Ingress")),
            Controller::ArgoCd
        );
        assert_eq!(
            resource_controller("helm", &[]),
            Some(Controller::HelmChildApplication)
        );
    }
}
