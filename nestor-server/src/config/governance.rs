//! The governance keys of `nestor.yaml`: `policies:` (Rego files or
//! folders enforced beside the policies of the catalog sources) and
//! `quotas:` (team limits enforced at apply). Both go to the `Nestor`
//! builder, so the server and the embedded CLI enforce the same.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use nestor_core::{
    is_policy_module, NestorBuilder, Policies, PolicyFile, PolicyOrigin, PolicyScope,
};
use serde::{Deserialize, Serialize};

use super::Config;

/// One entry of `policies:`: a `.rego` file, or a folder whose `.rego`
/// files (tests, `*_test.rego`, left out) are all loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The file or folder.
    pub path: PathBuf,
    /// Only this team's compositions and deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Only deployments to this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// The layer the configured files fill.
const CONFIG_LAYER: &str = "config";

impl Config {
    /// `builder` with the configured policies (every file compiled now: one
    /// that does not compile is an error naming it) and quotas.
    pub fn with_governance(&self, builder: NestorBuilder) -> anyhow::Result<NestorBuilder> {
        let policies = Policies::none();
        let files = self.policy_files()?;
        let problems = policies.set_layer(CONFIG_LAYER, files);
        if let Some(first) = problems.first() {
            bail!(
                "policies: {} does not compile: {}{}",
                first.origin.file,
                first.message,
                match problems.len() {
                    1 => String::new(),
                    n => format!(" (and {} more files)", n - 1),
                }
            );
        }
        self.check_quotas()?;
        Ok(builder.policies(policies).quotas(self.quotas.clone()))
    }

    /// Every file of `policies:`, read.
    fn policy_files(&self) -> anyhow::Result<Vec<PolicyFile>> {
        let mut files = Vec::new();
        for entry in &self.policies {
            let scope = PolicyScope {
                team: entry.team.clone(),
                environment: entry.environment.clone(),
            };
            for path in modules(&entry.path)? {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("policies: reading {}", path.display()))?;
                files.push(PolicyFile {
                    origin: PolicyOrigin {
                        file: path.display().to_string(),
                        source: None,
                        commit: None,
                    },
                    scope: scope.clone(),
                    text,
                });
            }
        }
        Ok(files)
    }

    /// A quota must name a team and limit something.
    fn check_quotas(&self) -> anyhow::Result<()> {
        for (i, q) in self.quotas.iter().enumerate() {
            if q.team.is_empty() {
                bail!("quotas[{i}].team must not be empty");
            }
            if q.limits().is_empty() {
                bail!(
                    "quotas[{i}] (team {}) sets no limit: give max_deployments, max_resources or max_per_category",
                    q.team
                );
            }
        }
        Ok(())
    }
}

/// The policy modules at `path`: the file itself, or a folder's `.rego`
/// files (not its tests), sorted.
fn modules(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        bail!("policies: {}: no such file or folder", path.display());
    }
    let found = nestor_storage::walk_files(path, &[])
        .with_context(|| format!("policies: reading {}", path.display()))?;
    Ok(found
        .into_iter()
        .filter(|f| is_policy_module(&f.rel))
        .map(|f| f.path)
        .collect())
}
