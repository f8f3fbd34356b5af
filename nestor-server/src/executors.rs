//! `executors:` in nestor.yaml — executors that run a tool themselves
//! beside GitOps (today: Terraform), and how the server builds them.
//!
//! ```yaml
//! executors:
//!   terraform:
//!     binary: /usr/local/bin/terraform   # default: terraform on PATH
//!     environments: [dev, prod]          # Terraform resources of these run here
//!     dir: /var/lib/nestor/terraform     # default: {data_dir}/terraform
//!     timeout: 30m                       # one terraform command at most
//!     lock_timeout: 5m                   # waiting for a state lock
//!     env: {AWS_PROFILE: platform}       # extra environment for terraform
//!     parallelism: 4                     # workspaces running at once
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// `executors:`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorsConfig {
    /// Nestor runs Terraform itself for the Terraform resources of the
    /// listed environments; absent: every resource goes to GitOps.
    pub terraform: Option<TerraformExecutorConfig>,
}

/// `executors.terraform:`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerraformExecutorConfig {
    /// The `terraform` executable: a path or a name on `PATH`.
    pub binary: PathBuf,
    /// The environments whose Terraform resources it runs.
    pub environments: Vec<String>,
    /// Where the workspaces (state, logs) live; default `{data_dir}/terraform`.
    pub dir: Option<PathBuf>,
    /// The longest one terraform command may run (`30m`).
    pub timeout: String,
    /// How long a command waits for a state lock another run holds (`5m`).
    pub lock_timeout: String,
    /// Extra environment variables for every terraform command.
    pub env: BTreeMap<String, String>,
    /// How many workspaces run terraform at once (`4`).
    pub parallelism: usize,
}

impl Default for TerraformExecutorConfig {
    fn default() -> Self {
        TerraformExecutorConfig {
            binary: PathBuf::from("terraform"),
            environments: Vec::new(),
            dir: None,
            timeout: "30m".into(),
            lock_timeout: "5m".into(),
            env: BTreeMap::new(),
            parallelism: 4,
        }
    }
}

impl ExecutorsConfig {
    /// The direct executor the config asks for, with its workspaces under
    /// `data_dir` unless it names a folder.
    pub fn direct(
        &self,
        data_dir: &Path,
    ) -> anyhow::Result<Option<Arc<dyn nestor_core::DirectExecutor>>> {
        let Some(t) = &self.terraform else {
            return Ok(None);
        };
        let parse = |key: &str, text: &str| {
            nestor_core::parse_duration(text)
                .map_err(|e| anyhow::anyhow!("executors.terraform.{key}: {e}"))
        };
        let dir = t.dir.clone().unwrap_or_else(|| data_dir.join("terraform"));
        let mut config = nestor_terraform::TerraformConfig::new(dir, t.environments.clone());
        config.binary = t.binary.clone();
        config.timeout = parse("timeout", &t.timeout)?;
        config.lock_timeout = parse("lock_timeout", &t.lock_timeout)?;
        config.env = t.env.clone();
        config.parallelism = t.parallelism.max(1);
        Ok(Some(Arc::new(nestor_terraform::TerraformExecutor::new(
            config,
        ))))
    }
}
