//! Plans: what an apply would change, as resources added, changed and
//! removed, and a unified diff per file; and for each resource what will
//! happen in the cluster: its wave, the controller that applies it, and
//! where its outputs will be found.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use similar::TextDiff;

use crate::engine::Reach;
use crate::manifests::{objects, resource_controller, Controller};
use crate::model::{Artifact, Deployment};

/// The result of `plan`: everything an apply would do, nothing done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Plan {
    /// The deployment as it would be recorded (statuses after rendering).
    pub deployment: Deployment,
    /// Rendered files per resource.
    pub artifacts: BTreeMap<String, Vec<Artifact>>,
    /// The difference with the current revision.
    pub diff: PlanDiff,
    /// Every resource in wave order: when it applies, what applies it,
    /// where its outputs will be found.
    #[serde(default)]
    pub resources: Vec<PlannedResource>,
    /// What the policies' `warn` rules said (nothing is refused by them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<crate::policy::PolicyMessage>,
}

/// What a plan shows for one resource once committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PlannedResource {
    /// The resource's name in the deployment.
    pub name: String,
    /// Its engine.
    pub engine: String,
    /// Its wave, 1-based: the `argocd.argoproj.io/sync-wave` of its objects.
    pub wave: usize,
    /// What makes it take effect once Argo CD has applied its objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<Controller>,
    /// Its Kubernetes objects (`Kind/namespace/name`).
    #[serde(default)]
    pub objects: Vec<String>,
    /// Where each output will be found, as the deployment stores it
    /// (`{"secret_key_ref": {...}}`, `{"value": ...}`, `{"stack_output": {...}}`).
    #[serde(default)]
    pub outputs: BTreeMap<String, Reach>,
    /// For a resource a tool runs directly (Terraform): the tool's own
    /// plan — what it will add, change and destroy, and at which addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_plan: Option<crate::executor::ToolPlan>,
}

impl PlannedResource {
    /// The controller as a plan prints it (`provider-terraform`).
    pub fn controller_name(&self) -> &'static str {
        self.controller.map_or("none", Controller::as_str)
    }

    /// Each output and where it will be found, in words:
    /// `endpoint: Secret alpha--dev/shop--db-outputs key endpoint`.
    pub fn output_locations(&self) -> Vec<String> {
        self.outputs
            .iter()
            .map(|(name, reach)| format!("{name}: {reach}"))
            .collect()
    }
}

/// The resources of `deployment` in wave order with their controllers
/// (from the objects in `artifacts`) and the outputs' reach.
pub fn planned_resources(
    deployment: &Deployment,
    artifacts: &BTreeMap<String, Vec<Artifact>>,
) -> Vec<PlannedResource> {
    let mut planned = Vec::new();
    for (i, wave) in deployment.waves.iter().enumerate() {
        for name in wave {
            let Some(r) = deployment.resources.iter().find(|r| &r.name == name) else {
                continue;
            };
            let found = artifacts.get(name).map(|a| objects(a)).unwrap_or_default();
            planned.push(PlannedResource {
                name: name.clone(),
                engine: r.engine.clone(),
                wave: i + 1,
                controller: resource_controller(&r.engine, &found),
                objects: found.iter().map(|o| o.display()).collect(),
                outputs: r
                    .outputs
                    .iter()
                    .map(|(k, v)| (k.clone(), Reach::from_json(v.clone())))
                    .collect(),
                tool_plan: None,
            });
        }
    }
    planned
}

/// How a plan differs from the current (last succeeded) revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PlanDiff {
    /// The revision compared against; `None` when nothing is deployed.
    pub base_revision: Option<u64>,
    /// Resources that would be created.
    pub added: Vec<String>,
    /// Resources whose files would change.
    pub changed: Vec<String>,
    /// Resources that would be removed.
    pub removed: Vec<String>,
    /// Resources that would stay as they are.
    pub unchanged: Vec<String>,
    /// One entry per file that differs.
    pub files: Vec<FileDiff>,
}

impl PlanDiff {
    /// Whether applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The change of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FileDiff {
    /// The resource the file belongs to.
    pub resource: String,
    /// The file's path inside the resource's folder.
    pub path: String,
    /// `added`, `changed` or `removed`.
    pub change: String,
    /// A unified diff (`---`/`+++` headers, `@@` hunks).
    pub diff: String,
}

/// Compares rendered files with the current revision's.
pub fn diff_artifacts(
    base_revision: Option<u64>,
    current: &BTreeMap<String, Vec<Artifact>>,
    next: &BTreeMap<String, Vec<Artifact>>,
) -> PlanDiff {
    let mut diff = PlanDiff {
        base_revision,
        ..Default::default()
    };
    for (resource, files) in next {
        match current.get(resource) {
            None => {
                diff.added.push(resource.clone());
                for f in files {
                    diff.files
                        .push(file_diff(resource, &f.path, "", &f.content, "added"));
                }
            }
            Some(old) => {
                let before = diff.files.len();
                for f in files {
                    match old.iter().find(|o| o.path == f.path) {
                        None => diff
                            .files
                            .push(file_diff(resource, &f.path, "", &f.content, "added")),
                        Some(o) if o.content != f.content => diff.files.push(file_diff(
                            resource, &f.path, &o.content, &f.content, "changed",
                        )),
                        Some(_) => {}
                    }
                }
                for o in old
                    .iter()
                    .filter(|o| !files.iter().any(|f| f.path == o.path))
                {
                    diff.files
                        .push(file_diff(resource, &o.path, &o.content, "", "removed"));
                }
                if diff.files.len() > before {
                    diff.changed.push(resource.clone());
                } else {
                    diff.unchanged.push(resource.clone());
                }
            }
        }
    }
    for (resource, files) in current.iter().filter(|(r, _)| !next.contains_key(*r)) {
        diff.removed.push(resource.clone());
        for o in files {
            diff.files
                .push(file_diff(resource, &o.path, &o.content, "", "removed"));
        }
    }
    diff
}

fn file_diff(resource: &str, path: &str, old: &str, new: &str, change: &str) -> FileDiff {
    let a = if old.is_empty() && change == "added" {
        "/dev/null".to_string()
    } else {
        format!("a/{resource}/{path}")
    };
    let b = if new.is_empty() && change == "removed" {
        "/dev/null".to_string()
    } else {
        format!("b/{resource}/{path}")
    };
    let text = TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string();
    FileDiff {
        resource: resource.into(),
        path: path.into(),
        change: change.into(),
        diff: text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn art(path: &str, content: &str) -> Artifact {
        Artifact {
            path: path.into(),
            content: content.into(),
            media_type: "text/plain".into(),
        }
    }

    #[test]
    fn diffs_classify_resources_and_show_unified_hunks() {
        let current = BTreeMap::from([
            (
                "db".to_string(),
                vec![art("main.tf.json", "a\nsize = 1\nc\n")],
            ),
            ("old".to_string(), vec![art("x.yaml", "x\n")]),
            ("same".to_string(), vec![art("y.yaml", "y\n")]),
        ]);
        let next = BTreeMap::from([
            (
                "db".to_string(),
                vec![art("main.tf.json", "a\nsize = 2\nc\n")],
            ),
            ("new".to_string(), vec![art("z.yaml", "z\n")]),
            ("same".to_string(), vec![art("y.yaml", "y\n")]),
        ]);
        let d = diff_artifacts(Some(3), &current, &next);
        assert_eq!(
            (
                d.added.clone(),
                d.changed.clone(),
                d.removed.clone(),
                d.unchanged.clone()
            ),
            (
                vec!["new".into()],
                vec!["db".into()],
                vec!["old".into()],
                vec!["same".into()]
            )
        );
        let db = d.files.iter().find(|f| f.resource == "db").unwrap();
        assert!(
            db.diff.contains("--- a/db/main.tf.json")
                && db.diff.contains("-size = 1")
                && db.diff.contains("+size = 2"),
            "{}",
            db.diff
        );
        let added = d.files.iter().find(|f| f.resource == "new").unwrap();
        assert!(added.diff.contains("--- /dev/null") && added.diff.contains("+z"));
        assert!(!d.is_empty());
        assert!(diff_artifacts(None, &next, &next).is_empty());
    }
}
