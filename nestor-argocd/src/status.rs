//! Argo CD's Application JSON read into an [`Observation`].
//!
//! Field names follow Argo CD's types (pkg/apis/application/v1alpha1):
//! `status.sync.{status,revision}`, `status.resources[]` (`group`,
//! `version`, `kind`, `namespace`, `name`, `status`, `health.{status,
//! message}`), `status.operationState.{phase, message, operation.sync.
//! revision, syncResult.{revision, resources[]}}`, `status.conditions[]`
//! (`type`, `message`), `status.resourceHealthSource`, and the resource
//! tree's `nodes[]` (the same reference fields plus `health`).

use nestor_core::{Health, ObjectHealth, ObjectRef, Observation, SyncFailure};
use serde_json::Value;

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut v = v;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str().map(str::to_string).filter(|s| !s.is_empty())
}

/// An object reference as Argo CD reports it; the namespace is absent
/// only for cluster-scoped objects.
fn reference(v: &Value) -> ObjectRef {
    ObjectRef {
        group: text(v, &["group"]).unwrap_or_default(),
        version: text(v, &["version"]).unwrap_or_default(),
        kind: text(v, &["kind"]).unwrap_or_default(),
        namespace: text(v, &["namespace"]),
        name: text(v, &["name"]).unwrap_or_default(),
        wave: None,
    }
}

/// Whether object health lives in the resource tree, not in the
/// Application (`controller.resource.health.persist: false`).
pub fn health_in_tree(app: &Value) -> bool {
    text(app, &["status", "resourceHealthSource"]).as_deref() == Some("appTree")
}

/// Everything the Application itself says.
pub fn observation(app: &Value) -> Observation {
    let status = app.get("status").cloned().unwrap_or(Value::Null);
    let objects = status
        .get("resources")
        .and_then(Value::as_array)
        .map(|resources| {
            resources
                .iter()
                .map(|r| ObjectHealth {
                    object: reference(r),
                    health: match text(r, &["health", "status"]) {
                        Some(h) => Health::parse(&h),
                        // Synced without a health check of its own: Argo CD
                        // counts it healthy (a ConfigMap).
                        None if text(r, &["status"]).as_deref() == Some("Synced") => {
                            Health::Healthy
                        }
                        None => Health::Unknown,
                    },
                    message: text(r, &["health", "message"]),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut notes = Vec::new();
    let mut sync_failure = operation_failure(&status);
    for condition in status
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = text(condition, &["type"]).unwrap_or_default();
        let message = text(condition, &["message"]).unwrap_or_default();
        if kind == "SyncError" && sync_failure.is_none() {
            sync_failure = Some(SyncFailure {
                revision: None,
                message: format!("{kind}: {message}"),
                objects: vec![],
            });
        } else if kind.ends_with("Error") {
            notes.push(format!("{kind}: {message}"));
        }
    }
    Observation {
        revision: text(&status, &["sync", "revision"]),
        synced: text(&status, &["sync", "status"]).as_deref() == Some("Synced"),
        sync_failure,
        objects,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// A sync operation that ended `Failed` or `Error`, with the objects whose
/// apply failed.
fn operation_failure(status: &Value) -> Option<SyncFailure> {
    let op = status.get("operationState")?;
    let phase = text(op, &["phase"])?;
    if phase != "Failed" && phase != "Error" {
        return None;
    }
    let objects = op
        .pointer("/syncResult/resources")
        .and_then(Value::as_array)
        .map(|resources| {
            resources
                .iter()
                .filter(|r| {
                    matches!(text(r, &["status"]).as_deref(), Some("SyncFailed"))
                        || matches!(text(r, &["hookPhase"]).as_deref(), Some("Failed" | "Error"))
                })
                .map(|r| (reference(r), text(r, &["message"]).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    Some(SyncFailure {
        revision: text(op, &["syncResult", "revision"])
            .or_else(|| text(op, &["operation", "sync", "revision"])),
        message: text(op, &["message"]).unwrap_or_else(|| format!("sync {phase}")),
        objects,
    })
}

/// Takes each object's health from the resource tree's nodes.
pub fn apply_tree(seen: &mut Observation, tree: &Value) {
    let nodes: Vec<&Value> = tree
        .get("nodes")
        .and_then(Value::as_array)
        .map(|n| n.iter().collect())
        .unwrap_or_default();
    for object in &mut seen.objects {
        let node = nodes.iter().find(|n| {
            let r = reference(n);
            r.group == object.object.group
                && r.kind == object.object.kind
                && r.name == object.object.name
                && r.namespace == object.object.namespace
        });
        match node.and_then(|n| text(n, &["health", "status"]).map(|h| (n, h))) {
            Some((node, h)) => {
                object.health = Health::parse(&h);
                object.message = text(node, &["health", "message"]);
            }
            // In the tree without a health check of its own: healthy once
            // synced, as Argo CD counts it; absent from the tree: missing.
            None if node.is_some() => {}
            None => {
                object.health = Health::Missing;
                object.message = Some("not in Argo CD's resource tree".into());
            }
        }
    }
}
