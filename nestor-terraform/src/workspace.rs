//! One resource's workspace folder and the Terraform commands run in it:
//! apply (init, plan -out, apply of that plan, output), plan (in a
//! scratch folder beside it, reading the same state), outputs, destroy and
//! the drift check (`plan -detailed-exitcode`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nestor_core::{Artifact, Error, Result, RunOutput, RunReceipt, RunSecrets, ToolPlan};
use serde_json::Value;

use crate::run::{append, Finished, Runner};

/// The file the plan to apply is saved to.
const PLAN_FILE: &str = "tfplan";
/// The scratch folder `nestor plan` runs in.
const PLAN_DIR: &str = ".nestor-plan";

/// A workspace folder and how to run commands in it.
pub(crate) struct Workspace<'a> {
    pub dir: PathBuf,
    pub runner: &'a Runner,
    /// `-lock-timeout=Ns`.
    pub lock_timeout: String,
    /// Variables set from sensitive values (`TF_VAR_…`), never written to a file.
    pub env: Vec<(String, String)>,
}

impl Workspace<'_> {
    /// The log of revision `revision`'s runs.
    pub fn log_path(&self, revision: u64) -> PathBuf {
        self.dir.join("logs").join(format!("r{revision}.log"))
    }

    /// Whether anything was ever initialised here.
    fn initialised(&self) -> bool {
        self.dir.join(".terraform").exists()
    }

    /// Plans and applies `artifacts`, then reads the outputs.
    pub async fn apply(&self, revision: u64, artifacts: &[Artifact]) -> Result<RunReceipt> {
        write_files(&self.dir, artifacts).await?;
        let log = self.log_path(revision);
        tokio::fs::create_dir_all(self.dir.join("logs"))
            .await
            .map_err(|e| io_error(&self.dir, e))?;
        append(&log, &format!("# apply of revision {revision}\n")).await;
        self.init(&self.dir, Some(&log)).await?;
        let plan_file = format!("-out={PLAN_FILE}");
        let planned = self
            .run_ok(
                "plan",
                &[
                    "plan",
                    "-input=false",
                    "-json",
                    &self.lock_timeout,
                    &plan_file,
                ],
                Some(&log),
            )
            .await?;
        let plan = plan_of_stream(&planned);
        self.run_ok(
            "apply",
            &[
                "apply",
                "-input=false",
                "-json",
                "-auto-approve",
                &self.lock_timeout,
                PLAN_FILE,
            ],
            Some(&log),
        )
        .await?;
        let _ = tokio::fs::remove_file(self.dir.join(PLAN_FILE)).await;
        let outputs = self.outputs(Some(&log)).await?.unwrap_or_default();
        Ok(RunReceipt {
            outputs,
            plan,
            workspace: self.dir.display().to_string(),
        })
    }

    /// What applying `artifacts` would change, planned in a scratch folder
    /// against the workspace's state; writes no state.
    pub async fn plan(&self, artifacts: &[Artifact]) -> Result<ToolPlan> {
        let scratch = self.dir.join(PLAN_DIR);
        write_files(&scratch, artifacts).await?;
        let log = scratch.join("plan.log");
        let _ = tokio::fs::remove_file(&log).await;
        self.init(&scratch, Some(&log)).await?;
        let mut args = vec!["plan", "-input=false", "-json", "-lock=false"];
        let state = format!("-state={}", self.dir.join("terraform.tfstate").display());
        if !has_backend(artifacts) {
            // The local state is the workspace's, not the scratch folder's.
            args.push(&state);
        }
        let out = format!("-out={PLAN_FILE}");
        args.push(&out);
        self.run_in_ok(&scratch, "plan", &args, Some(&log)).await?;
        let shown = self
            .run_in_ok(&scratch, "show", &["show", "-json", PLAN_FILE], None)
            .await?;
        let document: Value =
            serde_json::from_str(&shown.stdout).map_err(|e| Error::EngineFailed {
                engine: "terraform".into(),
                message: format!("terraform show -json printed no plan: {e}"),
            })?;
        Ok(plan_of_document(&document))
    }

    /// The outputs of the last apply; `None` when never applied.
    pub async fn outputs(&self, log: Option<&Path>) -> Result<Option<BTreeMap<String, RunOutput>>> {
        if !self.initialised() {
            return Ok(None);
        }
        let shown = self
            .runner
            .run(&self.dir, &["output", "-json"], &self.env, log, true)
            .await?;
        if shown.code != 0 {
            return Err(failed("output", &shown));
        }
        let document: BTreeMap<String, Value> =
            serde_json::from_str(&shown.stdout).map_err(|e| Error::EngineFailed {
                engine: "terraform".into(),
                message: format!("terraform output -json printed no outputs: {e}"),
            })?;
        if let Some(log) = log {
            let names: Vec<String> = document
                .iter()
                .map(|(name, o)| {
                    if o.get("sensitive").and_then(Value::as_bool) == Some(true) {
                        format!("{name} (sensitive)")
                    } else {
                        name.clone()
                    }
                })
                .collect();
            append(log, &format!("# outputs: {}\n\n", names.join(", "))).await;
        }
        if document.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            document
                .into_iter()
                .map(|(name, o)| {
                    let output = RunOutput {
                        value: o.get("value").cloned().unwrap_or(Value::Null),
                        sensitive: o.get("sensitive").and_then(Value::as_bool).unwrap_or(false),
                    };
                    (name, output)
                })
                .collect(),
        ))
    }

    /// Destroys what the workspace manages (nothing when never applied).
    pub async fn destroy(&self, revision: u64) -> Result<()> {
        if !self.initialised() {
            return Ok(());
        }
        let log = self.log_path(revision);
        tokio::fs::create_dir_all(self.dir.join("logs"))
            .await
            .map_err(|e| io_error(&self.dir, e))?;
        append(&log, &format!("# destroy at revision {revision}\n")).await;
        self.init(&self.dir, Some(&log)).await?;
        self.run_ok(
            "destroy",
            &[
                "destroy",
                "-input=false",
                "-json",
                "-auto-approve",
                &self.lock_timeout,
            ],
            Some(&log),
        )
        .await?;
        Ok(())
    }

    /// The addresses `plan -detailed-exitcode` would change (exit 2).
    pub async fn drift(&self) -> Result<Vec<String>> {
        if !self.initialised() {
            return Ok(Vec::new());
        }
        let args = [
            "plan",
            "-input=false",
            "-json",
            "-detailed-exitcode",
            &self.lock_timeout,
        ];
        let planned = self
            .runner
            .run(&self.dir, &args, &self.env, None, false)
            .await?;
        match planned.code {
            0 => Ok(Vec::new()),
            2 => {
                let mut addresses = plan_of_stream(&planned).changes;
                addresses.dedup();
                Ok(addresses)
            }
            _ => Err(failed("plan", &planned)),
        }
    }

    async fn init(&self, dir: &Path, log: Option<&Path>) -> Result<()> {
        let args = [
            "init",
            "-input=false",
            "-no-color",
            "-json",
            &self.lock_timeout,
        ];
        self.run_in_ok(dir, "init", &args, log).await.map(|_| ())
    }

    async fn run_ok(&self, what: &str, args: &[&str], log: Option<&Path>) -> Result<Finished> {
        self.run_in_ok(&self.dir, what, args, log).await
    }

    async fn run_in_ok(
        &self,
        dir: &Path,
        what: &str,
        args: &[&str],
        log: Option<&Path>,
    ) -> Result<Finished> {
        let finished = self.runner.run(dir, args, &self.env, log, false).await?;
        if finished.code == 0 {
            Ok(finished)
        } else {
            Err(failed(what, &finished))
        }
    }
}

/// `ENGINE_FAILED` with Terraform's diagnostics.
fn failed(what: &str, finished: &Finished) -> Error {
    Error::EngineFailed {
        engine: "terraform".into(),
        message: format!("terraform {what} failed: {}", finished.diagnostics()),
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("terraform workspace {}: {e}", path.display()))
}

/// Writes the Terraform files among `artifacts` (`*.tf.json`, `*.tf`)
/// into `dir`, removing Terraform files an earlier revision left there.
async fn write_files(dir: &Path, artifacts: &[Artifact]) -> Result<()> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| io_error(dir, e))?;
    let is_tf = |name: &str| name.ends_with(".tf.json") || name.ends_with(".tf");
    let wanted: Vec<&Artifact> = artifacts.iter().filter(|a| is_tf(&a.path)).collect();
    if wanted.is_empty() {
        return Err(Error::EngineFailed {
            engine: "terraform".into(),
            message: "the engine rendered no Terraform file (main.tf.json)".into(),
        });
    }
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| io_error(dir, e))?;
    while let Some(entry) = entries.next_entry().await.map_err(|e| io_error(dir, e))? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_tf(&name) && !wanted.iter().any(|a| a.path == name) {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
    for a in wanted {
        let name = Path::new(&a.path)
            .file_name()
            .ok_or_else(|| Error::internal(format!("artifact path {:?}", a.path)))?;
        tokio::fs::write(dir.join(name), a.content.as_bytes())
            .await
            .map_err(|e| io_error(dir, e))?;
    }
    Ok(())
}

/// The `TF_VAR_…` variables the engine's Workspace (`workspace.yaml`)
/// sets from Secret keys, with the values `secrets` holds for those keys.
pub(crate) fn secret_env(artifacts: &[Artifact], secrets: &RunSecrets) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for a in artifacts.iter().filter(|a| a.path.ends_with(".yaml")) {
        let Ok(doc) = serde_yaml::from_str::<Value>(&a.content) else {
            continue;
        };
        let entries = doc
            .pointer("/spec/forProvider/env")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for entry in entries {
            let name = entry.get("name").and_then(Value::as_str);
            let key = entry.get("secretKeyRef").and_then(|k| {
                let s = |f: &str| k.get(f).and_then(Value::as_str);
                Some(format!("{}/{}/{}", s("namespace")?, s("name")?, s("key")?))
            });
            if let (Some(name), Some(value)) = (name, key.and_then(|k| secrets.get(&k))) {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                env.push((name.to_string(), text));
            }
        }
    }
    env
}

/// Whether the rendered configuration names a backend.
fn has_backend(artifacts: &[Artifact]) -> bool {
    artifacts.iter().any(|a| {
        a.path.ends_with(".tf.json")
            && serde_json::from_str::<Value>(&a.content)
                .ok()
                .and_then(|v| v.pointer("/terraform/backend").cloned())
                .is_some()
    })
}

/// The plan a `-json` stream of `plan` reports: its change summary and
/// the addresses of planned changes (and of drift found refreshing).
fn plan_of_stream(finished: &Finished) -> ToolPlan {
    let mut plan = ToolPlan::default();
    for m in finished.messages() {
        match m.get("type").and_then(Value::as_str) {
            Some("planned_change") | Some("resource_drift") => {
                let addr = m.pointer("/change/resource/addr").and_then(Value::as_str);
                let action = m.pointer("/change/action").and_then(Value::as_str);
                if let (Some(addr), Some(action)) = (addr, action) {
                    let line = format!("{addr} ({action})");
                    if !plan.changes.contains(&line) {
                        plan.changes.push(line);
                    }
                }
            }
            Some("change_summary") => {
                let n = |k: &str| {
                    m.pointer(&format!("/changes/{k}"))
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                };
                plan.add = n("add");
                plan.change = n("change");
                plan.destroy = n("remove");
            }
            _ => {}
        }
    }
    plan
}

/// The plan `show -json` prints: counts and addresses from
/// `resource_changes` (a replacement counts as an add and a destroy).
fn plan_of_document(document: &Value) -> ToolPlan {
    let mut plan = ToolPlan::default();
    let changes = document
        .get("resource_changes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in changes {
        let address = c.get("address").and_then(Value::as_str).unwrap_or("?");
        let actions: Vec<&str> = c
            .pointer("/change/actions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let action = match actions.as_slice() {
            ["create"] => {
                plan.add += 1;
                "create"
            }
            ["update"] => {
                plan.change += 1;
                "update"
            }
            ["delete"] => {
                plan.destroy += 1;
                "delete"
            }
            [_, _] => {
                plan.add += 1;
                plan.destroy += 1;
                "replace"
            }
            _ => continue,
        };
        plan.changes.push(format!("{address} ({action})"));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn show_json_counts_replacements_twice_and_skips_no_ops() {
        let document = json!({"resource_changes": [
            {"address": "a.x", "change": {"actions": ["create"]}},
            {"address": "a.y", "change": {"actions": ["delete", "create"]}},
            {"address": "a.z", "change": {"actions": ["no-op"]}},
            {"address": "a.w", "change": {"actions": ["update"]}},
        ]});
        let plan = plan_of_document(&document);
        assert_eq!((plan.add, plan.change, plan.destroy), (2, 1, 1));
        assert_eq!(
            plan.changes,
            ["a.x (create)", "a.y (replace)", "a.w (update)"]
        );
    }
}
