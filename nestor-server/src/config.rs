//! `nestor.yaml`: every key optional, defaults that give a working
//! embedded server, `NESTOR_*` environment overrides, `${VAR}` substitution,
//! and an error naming any unknown key.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use nestor_core::SourceConfig;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

mod governance;
mod identity;
mod security;
pub use governance::PolicyConfig;
pub use identity::{ClientCertConfig, OidcConfig};
pub use security::{CorsConfig, RateConfig, RateLimitsConfig, TlsConfig};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP listener.
    pub server: ServerConfig,
    /// Which store and where.
    pub storage: StorageConfig,
    /// Catalog sources to sync.
    pub catalog: CatalogConfig,
    /// Engine plugins.
    pub engines: EnginesConfig,
    /// The GitOps repository deployments are committed to.
    pub gitops: GitopsConfig,
    /// Tokens and anonymous access.
    pub auth: AuthConfig,
    /// Server-sent events.
    pub sse: SseConfig,
    /// The audit trail.
    pub audit: AuditConfig,
    /// How deployments run: leases and the pause between waves.
    pub deployments: DeploymentsConfig,
    /// The Argo CD that syncs the GitOps repository: once set, a deployment
    /// stays `applying` until Argo CD reports it synced and healthy.
    pub argocd: Option<ArgoCdConfig>,
    /// Executors that run a tool themselves beside GitOps (Terraform).
    pub executors: crate::executors::ExecutorsConfig,
    /// Defaults for CLI commands.
    pub defaults: DefaultsConfig,
    /// Rego policy files or folders enforced beside those of the catalog
    /// sources (docs/src/platform/policies.md).
    pub policies: Vec<PolicyConfig>,
    /// Team quotas enforced at apply (docs/src/operator/quotas.md).
    pub quotas: Vec<nestor_core::Quota>,
}

/// `server:` — the listener and the limits every connection and request
/// meets, so no caller can stall or exhaust the server (issue 11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:8080`).
    pub listen: String,
    /// Largest accepted request body (1 MiB); larger is 413.
    pub max_body_bytes: usize,
    /// Largest request head, request line and headers together (16 KiB);
    /// larger is 431.
    pub max_header_bytes: usize,
    /// A connection must send a whole request head within this (`10s`)
    /// after it opens; else it is answered 408 and closed.
    pub header_read_timeout: String,
    /// A kept-alive connection with no request for this long (`60s`) is
    /// closed.
    pub idle_timeout: String,
    /// A request body must arrive whole within this (`30s`); else 408.
    pub body_read_timeout: String,
    /// Parsing and validating one body may take this long (`10s`); else 400.
    pub parse_timeout: String,
    /// A response (an event stream included) whose client reads nothing
    /// for this long (`30s`: the socket stays full) is cut off and its
    /// connection closed.
    pub write_timeout: String,
    /// Connections served at once (1024). When all are taken, the idle
    /// ones are closed first, oldest first; when none is idle, a new
    /// connection is answered 503 and closed.
    pub max_connections: usize,
    /// HTTPS with these certificates; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// Per-caller rate limits by route class; off when absent.
    pub rate_limits: Option<RateLimitsConfig>,
    /// Cross-origin access for browser apps; off when absent.
    pub cors: Option<CorsConfig>,
    /// How often `nestor serve` re-reads its configuration file to reload
    /// `auth`, `server.rate_limits` and `catalog.sources` when the content
    /// changed (`2s`); `0s` reloads on SIGHUP only.
    pub config_watch_interval: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            header_read_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            body_read_timeout: "30s".into(),
            parse_timeout: "10s".into(),
            write_timeout: "30s".into(),
            max_connections: 1024,
            tls: None,
            rate_limits: None,
            cors: None,
            config_watch_interval: "2s".into(),
        }
    }
}

/// The `server:` limits, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// `max_body_bytes`.
    pub max_body_bytes: usize,
    /// `max_header_bytes`.
    pub max_header_bytes: usize,
    /// `header_read_timeout`.
    pub header_read_timeout: std::time::Duration,
    /// `idle_timeout`.
    pub idle_timeout: std::time::Duration,
    /// `body_read_timeout`.
    pub body_read_timeout: std::time::Duration,
    /// `parse_timeout`.
    pub parse_timeout: std::time::Duration,
    /// `write_timeout`.
    pub write_timeout: std::time::Duration,
    /// `max_connections`.
    pub max_connections: usize,
}

impl ServerConfig {
    /// The limits, with durations parsed; a bad value names its key.
    pub fn limits(&self) -> anyhow::Result<ServerLimits> {
        let parse = |key: &str, text: &str| {
            let d = nestor_core::parse_duration(text)
                .map_err(|e| anyhow::anyhow!("server.{key}: {e}"))?;
            if d.is_zero() {
                bail!("server.{key} must be longer than 0s");
            }
            Ok::<_, anyhow::Error>(d)
        };
        if self.max_connections == 0 {
            bail!("server.max_connections must be at least 1");
        }
        if self.max_header_bytes < 1024 {
            bail!("server.max_header_bytes must be at least 1024");
        }
        Ok(ServerLimits {
            max_body_bytes: self.max_body_bytes,
            max_header_bytes: self.max_header_bytes,
            header_read_timeout: parse("header_read_timeout", &self.header_read_timeout)?,
            idle_timeout: parse("idle_timeout", &self.idle_timeout)?,
            body_read_timeout: parse("body_read_timeout", &self.body_read_timeout)?,
            parse_timeout: parse("parse_timeout", &self.parse_timeout)?,
            write_timeout: parse("write_timeout", &self.write_timeout)?,
            max_connections: self.max_connections,
        })
    }

    /// `config_watch_interval`, parsed: `None` when `0s` (SIGHUP only).
    pub fn config_watch_interval(&self) -> anyhow::Result<Option<std::time::Duration>> {
        let d = nestor_core::parse_duration(&self.config_watch_interval)
            .map_err(|e| anyhow::anyhow!("server.config_watch_interval: {e}"))?;
        Ok(Some(d).filter(|d| !d.is_zero()))
    }
}

/// `storage:`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite` (default), `dynamodb` or `memory`.
    #[serde(rename = "type")]
    pub kind: StorageKind,
    /// SQLite settings.
    pub sqlite: SqliteConfig,
    /// DynamoDB settings.
    pub dynamodb: DynamoConfig,
}

/// The store backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// One embedded file.
    #[default]
    Sqlite,
    /// Shared by several replicas.
    Dynamodb,
    /// Nothing persists (tests, demos).
    Memory,
}

/// `storage.sqlite:`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// The database file; default `<data dir>/nestor.db`.
    pub path: Option<PathBuf>,
}

/// `storage.dynamodb:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct DynamoConfig {
    /// Prefix of every table name.
    pub table_prefix: String,
    /// AWS region.
    pub region: String,
    /// A DynamoDB-compatible endpoint (local servers); `None` for AWS.
    pub endpoint_url: Option<String>,
}

impl Default for DynamoConfig {
    fn default() -> Self {
        DynamoConfig {
            table_prefix: "nestor".into(),
            region: "us-east-1".into(),
            endpoint_url: None,
        }
    }
}

/// `catalog:`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// The sources to sync.
    pub sources: Vec<SourceConfig>,
}

/// `engines:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct EnginesConfig {
    /// Folder of extra `.wasm` plugins, watched for changes.
    pub plugins_dir: PathBuf,
    /// CPU budget of one render call.
    pub timeout_ms: u64,
    /// Memory cap of one plugin instance.
    pub memory_limit_mb: u64,
}

impl Default for EnginesConfig {
    fn default() -> Self {
        EnginesConfig {
            plugins_dir: "./plugins".into(),
            timeout_ms: 1000,
            memory_limit_mb: 64,
        }
    }
}

/// `gitops:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct GitopsConfig {
    /// Local path of the GitOps repository.
    pub repo: PathBuf,
    /// Branch to commit to.
    pub branch: String,
    /// Remote to push to, if any.
    pub remote: Option<String>,
    /// Commit author name.
    pub author_name: String,
    /// Commit author e-mail.
    pub author_email: String,
}

impl Default for GitopsConfig {
    fn default() -> Self {
        GitopsConfig {
            repo: "./gitops".into(),
            branch: "main".into(),
            remote: None,
            author_name: "nestor".into(),
            author_email: "nestor@localhost".into(),
        }
    }
}

/// `auth:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether catalog reads need no token.
    pub anonymous_read: bool,
    /// Accepted tokens, stored as SHA-256 hashes.
    pub tokens: Vec<TokenConfig>,
    /// Client certificates (mutual TLS) mapped to roles; needs
    /// `server.tls.client_ca`.
    pub client_certs: Vec<ClientCertConfig>,
    /// OpenID Connect issuers whose JWTs are accepted as bearer tokens.
    pub oidc: Vec<OidcConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            anonymous_read: true,
            tokens: Vec::new(),
            client_certs: Vec::new(),
            oidc: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// Refuses `client_certs` when the server verifies no client
    /// certificate (`server.tls.client_ca` unset): they could never match.
    pub fn check_tls(&self, tls: Option<&TlsConfig>) -> anyhow::Result<()> {
        if !self.client_certs.is_empty() && tls.and_then(|t| t.client_ca.as_ref()).is_none() {
            bail!(
                "auth.client_certs needs server.tls.client_ca: without it no client certificate is asked for or verified"
            );
        }
        Ok(())
    }
}

/// One accepted token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (logged, never the token).
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// `admin`, `platform`, `team:<name>`, `reader`.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `sse:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct SseConfig {
    /// Heartbeat interval (`15s`).
    pub heartbeat: String,
    /// Events buffered per client before it is told to resync.
    pub client_buffer: usize,
    /// How long events are kept for replay (`7d`).
    pub retention: String,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            heartbeat: "15s".into(),
            client_buffer: 256,
            retention: "7d".into(),
        }
    }
}

/// `audit:` — the audit trail (who did what, docs/src/operator/security.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How long audit records are kept (`400d`), apart from `sse.retention`.
    pub retention: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: "400d".into(),
        }
    }
}

impl AuditConfig {
    /// `retention`, parsed.
    pub fn retention(&self) -> anyhow::Result<std::time::Duration> {
        nestor_core::parse_duration(&self.retention)
            .map_err(|e| anyhow::anyhow!("audit.retention: {e}"))
    }
}

/// `deployments:` (issue 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct DeploymentsConfig {
    /// How long a replica's claim on a running deployment lasts without a
    /// heartbeat (`30s`): another replica takes over a deployment at most
    /// about this long after its runner stopped.
    pub lease: String,
    /// Pause between two waves of a deployment (`0s`), like Argo CD's
    /// sync-wave delay.
    pub wave_delay: String,
    /// This replica's id in leases (default: `{hostname}-{pid}-{random}`).
    pub replica_id: Option<String>,
    /// How often every succeeded deployment's Terraform workspaces are
    /// checked for drift (`terraform plan -detailed-exitcode`); `off`
    /// (the default) or `0s` never.
    pub drift_interval: String,
}

impl Default for DeploymentsConfig {
    fn default() -> Self {
        DeploymentsConfig {
            lease: "30s".into(),
            wave_delay: "0s".into(),
            replica_id: None,
            drift_interval: "off".into(),
        }
    }
}

impl DeploymentsConfig {
    /// `drift_interval`, parsed: `None` when off.
    pub fn drift_interval(&self) -> anyhow::Result<Option<std::time::Duration>> {
        if matches!(self.drift_interval.trim(), "" | "off" | "never") {
            return Ok(None);
        }
        let every = nestor_core::parse_duration(&self.drift_interval)
            .map_err(|e| anyhow::anyhow!("deployments.drift_interval: {e}"))?;
        Ok((!every.is_zero()).then_some(every))
    }

    /// The lease settings and the wave delay, parsed.
    pub fn settings(&self) -> anyhow::Result<(nestor_core::LeaseSettings, std::time::Duration)> {
        let parse = |key: &str, text: &str| {
            nestor_core::parse_duration(text).map_err(|e| anyhow::anyhow!("deployments.{key}: {e}"))
        };
        let ttl = parse("lease", &self.lease)?;
        if ttl < std::time::Duration::from_millis(100) {
            bail!(
                "deployments.lease: {} is too short (at least 100ms)",
                self.lease
            );
        }
        let mut leases = nestor_core::LeaseSettings::default();
        if let Some(id) = &self.replica_id {
            leases.owner = id.clone();
        } else if let Ok(host) = std::env::var("HOSTNAME") {
            leases.owner = format!("{host}-{}", leases.owner.trim_start_matches("nestor-"));
        }
        leases.ttl = ttl;
        Ok((leases, parse("wave_delay", &self.wave_delay)?))
    }
}

/// `argocd:` (issue 13). Without it,
/// deployments say they are committed and not observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ArgoCdConfig {
    /// The Argo CD API server (`https://argocd.example.com`).
    pub server: String,
    /// A bearer token (an Argo CD account or project token), best given as
    /// `${VAR}`; when absent, `ARGOCD_AUTH_TOKEN` from the environment, as
    /// the `argocd` CLI reads it.
    #[serde(default)]
    pub token: Option<String>,
    /// The namespace Argo CD runs in, where Nestor's Applications and
    /// AppProjects live (`argocd`).
    #[serde(default = "default_argocd_namespace")]
    pub namespace: String,
    /// Accept any TLS certificate (a test installation with a self-signed
    /// one); never in production.
    #[serde(default)]
    pub insecure_tls: bool,
    /// The first pause between two looks (`5s`); it doubles while nothing
    /// changes, up to 16 times itself (at most a minute).
    #[serde(default = "default_argocd_poll")]
    pub poll: String,
    /// How long after the commit every object must be healthy (`10m`).
    #[serde(default = "default_argocd_health_timeout")]
    pub health_timeout: String,
}

fn default_argocd_namespace() -> String {
    "argocd".into()
}

fn default_argocd_poll() -> String {
    "5s".into()
}

fn default_argocd_health_timeout() -> String {
    "10m".into()
}

impl ArgoCdConfig {
    /// `poll` and `health_timeout`, parsed and checked.
    pub fn durations(&self) -> anyhow::Result<(std::time::Duration, std::time::Duration)> {
        let parse = |key: &str, text: &str| {
            nestor_core::parse_duration(text).map_err(|e| anyhow::anyhow!("argocd.{key}: {e}"))
        };
        let poll = parse("poll", &self.poll)?;
        let timeout = parse("health_timeout", &self.health_timeout)?;
        if poll < std::time::Duration::from_millis(10) {
            bail!("argocd.poll: {} is too short (at least 10ms)", self.poll);
        }
        if timeout < poll {
            bail!(
                "argocd.health_timeout: {} is shorter than argocd.poll ({})",
                self.health_timeout,
                self.poll
            );
        }
        Ok((poll, timeout))
    }

    /// The Argo CD observer these settings describe, its token from
    /// `token` or the process environment.
    pub fn observer(&self) -> anyhow::Result<std::sync::Arc<dyn nestor_core::Observer>> {
        let (poll, health_timeout) = self.durations()?;
        let observer = nestor_argocd::ArgoCdObserver::new(nestor_argocd::ArgoCdSettings {
            server: self.server.clone(),
            token: self.token_from(std::env::vars()),
            namespace: self.namespace.clone(),
            insecure_tls: self.insecure_tls,
            poll,
            health_timeout,
        })
        .map_err(anyhow::Error::msg)?;
        Ok(std::sync::Arc::new(observer))
    }

    /// The token: `token`, else `ARGOCD_AUTH_TOKEN` from `env`.
    pub fn token_from(&self, env: impl IntoIterator<Item = (String, String)>) -> Option<String> {
        self.token.clone().filter(|t| !t.is_empty()).or_else(|| {
            env.into_iter()
                .find(|(k, _)| k == "ARGOCD_AUTH_TOKEN")
                .map(|(_, v)| v)
                .filter(|t| !t.is_empty())
        })
    }
}

/// `defaults:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct DefaultsConfig {
    /// Team used when `--team` is absent.
    pub team: String,
    /// Environment used when `--env` is absent.
    pub environment: String,
}

impl Default for DefaultsConfig {
    fn default() -> Self {
        DefaultsConfig {
            team: "alpha".into(),
            environment: "dev".into(),
        }
    }
}

impl Config {
    /// Loads `path` (or, when `None`, `./nestor.yaml` if present), applies
    /// `${VAR}` substitution and `NESTOR_*` overrides from `env`, and
    /// rejects unknown keys by name.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let default_path = Path::new("nestor.yaml");
        let path = match path {
            Some(p) => Some(p),
            None if default_path.exists() => Some(default_path),
            None => None,
        };
        let mut value = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let value: Value = serde_yaml::from_str(&text)
                    .with_context(|| format!("parsing {}", p.display()))?;
                if value.is_null() {
                    Value::Mapping(Default::default())
                } else {
                    value
                }
            }
            None => Value::Mapping(Default::default()),
        };
        substitute(&mut value, &env)?;
        for (key, raw) in &env {
            let Some(path) = key.strip_prefix("NESTOR_").filter(|p| p.contains("__")) else {
                continue;
            };
            let segments: Vec<String> = path.split("__").map(str::to_lowercase).collect();
            set_path(
                &mut value,
                &segments,
                serde_yaml::from_str(raw).unwrap_or(Value::String(raw.clone())),
            )
            .with_context(|| format!("applying {key}"))?;
        }
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            anyhow::anyhow!("invalid configuration at {path}: {}", e.into_inner())
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        self.server.limits()?;
        self.server.config_watch_interval()?;
        nestor_core::parse_duration(&self.sse.heartbeat)
            .map_err(|e| anyhow::anyhow!("sse.heartbeat: {e}"))?;
        nestor_core::parse_duration(&self.sse.retention)
            .map_err(|e| anyhow::anyhow!("sse.retention: {e}"))?;
        self.audit.retention()?;
        self.auth.check_tls(self.server.tls.as_ref())?;
        if let Some(argo) = &self.argocd {
            argo.durations()?;
            if !(argo.server.starts_with("https://") || argo.server.starts_with("http://")) {
                bail!(
                    "argocd.server: {:?} is not an http(s) URL (https://argocd.example.com)",
                    argo.server
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.catalog.sources {
            if !names.insert(&s.name) {
                bail!(
                    "catalog.sources: the source name {:?} is used twice",
                    s.name
                );
            }
        }
        Ok(())
    }

    /// The SQLite file: `storage.sqlite.path`, else `<data_dir>/nestor.db`.
    pub fn sqlite_path(&self, data_dir: &Path) -> PathBuf {
        self.storage
            .sqlite
            .path
            .clone()
            .unwrap_or_else(|| data_dir.join("nestor.db"))
    }
}

/// Replaces `${VAR}` in every string; an unset variable is an error naming it.
fn substitute(value: &mut Value, env: &[(String, String)]) -> anyhow::Result<()> {
    match value {
        Value::String(s) if s.contains("${") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let end = rest[start..]
                    .find('}')
                    .map(|e| start + e)
                    .context("unterminated ${ in configuration")?;
                let var = &rest[start + 2..end];
                let found = env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone());
                out.push_str(
                    &found.with_context(|| format!("environment variable {var} is not set"))?,
                );
                rest = &rest[end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Mapping(m) => {
            for (_, v) in m.iter_mut() {
                substitute(v, env)?;
            }
        }
        Value::Sequence(items) => {
            for v in items {
                substitute(v, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn set_path(value: &mut Value, segments: &[String], new: Value) -> anyhow::Result<()> {
    let Some((first, rest)) = segments.split_first() else {
        *value = new;
        return Ok(());
    };
    if value.is_null() {
        *value = Value::Mapping(Default::default());
    }
    let Value::Mapping(map) = value else {
        bail!("{first} is not a mapping")
    };
    let key = Value::String(first.clone());
    if !map.contains_key(&key) {
        map.insert(key.clone(), Value::Null);
    }
    set_path(map.get_mut(&key).expect("just inserted"), rest, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str, env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nestor.yaml");
        std::fs::write(&path, text).unwrap();
        Config::load(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_give_an_embedded_server() {
        let c = load_text("", &[]).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.storage.kind, StorageKind::Sqlite);
        assert_eq!(
            c.sqlite_path(Path::new(".nestor")),
            Path::new(".nestor/nestor.db")
        );
        assert!(c.auth.anonymous_read);
    }

    #[test]
    fn server_limits_have_defaults_and_are_checked() {
        let c = load_text("", &[]).unwrap();
        let l = c.server.limits().unwrap();
        assert_eq!(l.header_read_timeout.as_secs(), 10);
        assert_eq!(l.max_connections, 1024);
        let c = load_text("server:\n  idle_timeout: 5s\n  max_connections: 10\n", &[]).unwrap();
        assert_eq!(c.server.limits().unwrap().idle_timeout.as_secs(), 5);
        let err = load_text("server:\n  idle_timeout: soon\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.idle_timeout"), "{err}");
        let err = load_text("server:\n  max_conections: 5\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_conections"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load_text("storage:\n  tpye: sqlite\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage") && err.contains("tpye"), "{err}");
    }

    #[test]
    fn argocd_keys_are_checked_like_every_key() {
        let c = load_text(
            "argocd: {server: \"https://argocd.example.com\", token: \"${T}\", poll: 2s}\n",
            &[("T", "tok")],
        )
        .unwrap();
        let argo = c.argocd.unwrap();
        assert_eq!(
            (argo.namespace.as_str(), argo.token.as_deref()),
            ("argocd", Some("tok"))
        );
        assert_eq!(argo.durations().unwrap().1.as_secs(), 600);
        let unset = ArgoCdConfig {
            token: None,
            ..argo
        };
        assert_eq!(
            unset.token_from([("ARGOCD_AUTH_TOKEN".to_string(), "env".to_string())]),
            Some("env".into())
        );
        let err = load_text("argocd: {server: \"https://a\", tiemout: 5m}\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("argocd") && err.contains("tiemout"), "{err}");
        let err = load_text(
            "argocd: {server: \"https://a\", poll: 1m, health_timeout: 5s}\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("shorter than argocd.poll"), "{err}");
        assert!(load_text("argocd: {server: argocd.local}\n", &[]).is_err());
        assert!(load_text("", &[]).unwrap().argocd.is_none());
    }

    #[test]
    fn environment_overrides_and_substitution() {
        let text = "catalog:\n  sources:\n    - {name: p, url: /x, webhook_secret: \"${SECRET}\", poll_interval: 5m}\n";
        let c = load_text(
            text,
            &[
                ("SECRET", "s3cr3t"),
                ("NESTOR_STORAGE__TYPE", "memory"),
                ("NESTOR_SERVER__MAX_BODY_BYTES", "10"),
            ],
        )
        .unwrap();
        assert_eq!(c.storage.kind, StorageKind::Memory);
        assert_eq!(c.server.max_body_bytes, 10);
        assert_eq!(
            c.catalog.sources[0].webhook_secret.as_deref(),
            Some("s3cr3t")
        );
        assert_eq!(c.catalog.sources[0].poll_interval.as_secs(), 300);
        let err = load_text(text, &[]).unwrap_err().to_string();
        assert!(err.contains("SECRET"), "{err}");
    }
}
