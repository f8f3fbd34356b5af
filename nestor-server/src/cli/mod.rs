//! The `nestor` command line (docs/src/reference/cli.md).
//!
//! Commands work **embedded**: they open the local store (`--data-dir`,
//! default `./.nestor`, or `storage:` in `nestor.yaml`) and call the same
//! library services the server calls. With `--server URL` most commands
//! talk to `nestor serve` instead and print the same output (see
//! `Command::works_remotely`; the others refuse it). Exit codes: 0 success,
//! 1 failure (invalid input, failed operation), 2 usage.

mod catalog;
mod client;
mod deploy;
mod drift;
mod engines;
mod events;
mod output;
mod reference;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use nestor_core::{CatalogService, Composer, Orchestrator, Store};
use nestor_engines::{EngineRegistry, HostConfig};
use nestor_storage::{GitOpsConfig, GitOpsExecutor, MemoryStore};

use crate::config::{Config, StorageKind};
pub use catalog::CatalogCommand;
pub use deploy::CompositionCommand;
pub use engines::EnginesCommand;
pub use events::EventsArgs;
pub use output::Format;
pub use serve::ServeArgs;

/// `nestor`: a platform-engineering catalog, composer and deployer.
#[derive(Debug, Parser)]
#[command(name = "nestor", version, about)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
struct Global {
    /// Configuration file (default ./nestor.yaml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A Nestor server to talk to; when absent the CLI works embedded.
    #[arg(long, global = true, env = "NESTOR_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Bearer token for the server.
    #[arg(long, global = true, env = "NESTOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    output: Format,
    /// Team (default: `defaults.team` in the configuration).
    #[arg(long, global = true)]
    team: Option<String>,
    /// Print only results, no progress or hints.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More logging (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Folder of the embedded store.
    #[arg(
        long,
        global = true,
        env = "NESTOR_DATA_DIR",
        default_value = ".nestor",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API, the event stream and git webhooks.
    Serve(ServeArgs),
    /// Tail the event stream (docs/src/reference/events.md).
    Events(EventsArgs),
    /// Validate, diff, sync, publish and browse resource definitions.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Validate, publish and browse team compositions.
    Composition {
        #[command(subcommand)]
        command: CompositionCommand,
    },
    /// Scan source files for `nestor:` annotations and write nestor.deploy.yaml.
    Generate {
        /// Folder to scan (the file is written there).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Environment for every deployment found.
        #[arg(long)]
        env: Option<String>,
    },
    /// Show what an apply would change; applies nothing.
    Plan {
        /// The deployment file.
        #[arg(default_value = "nestor.deploy.yaml")]
        file: PathBuf,
        /// Override every deployment's environment.
        #[arg(long)]
        env: Option<String>,
    },
    /// Deploy: render through the engines and commit to the GitOps repository.
    Apply {
        /// The deployment file.
        #[arg(default_value = "nestor.deploy.yaml")]
        file: PathBuf,
        /// Override every deployment's environment.
        #[arg(long)]
        env: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Wait for the deployment to finish (embedded applies always do).
        #[arg(long)]
        wait: bool,
    },
    /// One deployment, or the team's deployments.
    Status {
        /// A deployment id.
        id: Option<String>,
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        /// Print the logs of the deployment's Terraform runs (needs ID).
        #[arg(long, requires = "id")]
        logs: bool,
    },
    /// Check Terraform workspaces for drift now; print the drifted addresses.
    Drift {
        /// A deployment id (default: every succeeded deployment).
        id: Option<String>,
    },
    /// Roll a deployment back: a new revision with an earlier one's content.
    Rollback {
        /// The deployment id.
        id: String,
        /// The revision to restore (default: the one before).
        #[arg(long)]
        to: Option<u64>,
    },
    /// Deploy to TO exactly what last succeeded in FROM.
    Promote {
        /// Source environment.
        from: String,
        /// Target environment.
        to: String,
        /// Only this deployment (default: every deployment of the team in FROM).
        #[arg(long)]
        name: Option<String>,
    },
    /// The dependency graph of the team's deployments.
    Graph {
        /// `json` (see -o) or `dot`.
        #[arg(long, default_value = "json")]
        format: String,
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
    },
    /// List or inspect engines.
    Engines {
        #[command(subcommand)]
        command: EnginesCommand,
    },
    /// Print the artifacts one resource would produce.
    Render {
        /// NAME or NAME:VERSION.
        reference: String,
        /// The engine (default: the definition's first).
        #[arg(long)]
        engine: Option<String>,
        /// Input values, typed like annotations (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Create or upgrade the store's tables.
    Migrate,
    /// Print the JSON Schema of a file format (definition, composition, deployment, config).
    Schema(reference::SchemaArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(reference::CompletionsArgs),
    /// Print the man page nestor(1) in roff.
    Man,
}

/// Runs the CLI with the process's arguments and environment.
pub fn run() -> ExitCode {
    run_cli(Cli::parse())
}

/// Runs the CLI with these arguments (the first is the program name, as
/// `nestor`) and the process's environment: `nestor` in a process that was
/// started as something else (a test binary that serves until killed).
pub fn run_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    run_cli(Cli::parse_from(args))
}

fn run_cli(cli: Cli) -> ExitCode {
    init_logging(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("NESTOR_LOG").unwrap_or_else(|_| level.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints an error with its error code and every field problem.
fn report(e: &anyhow::Error) {
    if let Some(core) = e.downcast_ref::<nestor_core::Error>() {
        eprintln!("error[{}]: {core}", core.code());
        if matches!(
            core,
            nestor_core::Error::Validation { .. }
                | nestor_core::Error::DependencyNotFound { .. }
                | nestor_core::Error::BreakingChange { .. }
        ) {
            for fe in core.field_errors() {
                eprintln!("  {fe}");
            }
        }
    } else {
        eprintln!("error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    if g.server.is_some() && !cli.command.works_remotely() {
        anyhow::bail!("this command works only on the local store for now: run it without --server (and without NESTOR_SERVER)");
    }
    // These describe the binary itself: no configuration needed.
    match &cli.command {
        Command::Schema(args) => return reference::print_schema(args),
        Command::Completions(args) => return reference::completions(args),
        Command::Man => return reference::man(),
        _ => {}
    }
    let config = Config::load(g.config.as_deref(), std::env::vars())?;
    let mut ctx = Context { config, global: g };
    match cli.command {
        Command::Serve(args) => serve::serve(args, &mut ctx).await,
        Command::Events(args) => events::events(args, &ctx).await,
        Command::Catalog { command } => catalog::run(command, &ctx).await,
        Command::Composition { command } => deploy::composition(command, &ctx).await,
        Command::Generate { path, env } => deploy::generate(&path, env.as_deref(), &ctx).await,
        Command::Plan { file, env } => deploy::plan(&file, env.as_deref(), &ctx).await,
        Command::Apply {
            file,
            env,
            yes,
            wait,
        } => deploy::apply(&file, env.as_deref(), yes, wait, &ctx).await,
        Command::Status {
            id: Some(id),
            logs: true,
            ..
        } => drift::logs(&id, &ctx).await,
        Command::Status { id, env, .. } => {
            deploy::status(id.as_deref(), env.as_deref(), &ctx).await
        }
        Command::Drift { id } => drift::drift(id.as_deref(), &ctx).await,
        Command::Rollback { id, to } => deploy::rollback(&id, to, &ctx).await,
        Command::Promote { from, to, name } => {
            deploy::promote(&from, &to, name.as_deref(), &ctx).await
        }
        Command::Graph { format, env } => match format.as_str() {
            "dot" => deploy::graph(env.as_deref(), true, &ctx).await,
            "json" => deploy::graph(env.as_deref(), false, &ctx).await,
            other => anyhow::bail!("--format {other:?}: use json or dot"),
        },
        Command::Engines { command } => engines::engines(command, &ctx).await,
        Command::Render {
            reference,
            engine,
            sets,
        } => engines::render(&reference, engine, &sets, &ctx).await,
        Command::Migrate => {
            let version = ctx.migrate().await?;
            println!("{version}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema(_) | Command::Completions(_) | Command::Man => {
            unreachable!("answered before the configuration is loaded")
        }
    }
}

impl Command {
    /// Whether the command can run against `--server` (the others refuse
    /// it rather than silently use the local store).
    fn works_remotely(&self) -> bool {
        match self {
            Command::Serve(_)
            | Command::Events(_)
            | Command::Status { logs: false, .. }
            | Command::Plan { .. }
            | Command::Apply { .. }
            | Command::Rollback { .. }
            | Command::Promote { .. }
            | Command::Graph { .. } => true,
            // Reads source files only: a server in the environment changes
            // nothing about it.
            Command::Generate { .. } => true,
            Command::Schema(_) | Command::Completions(_) | Command::Man => true,
            Command::Engines { command } => matches!(command, EnginesCommand::List),
            Command::Catalog { command } => matches!(
                command,
                CatalogCommand::List { .. }
                    | CatalogCommand::Get { .. }
                    | CatalogCommand::Versions { .. }
                    | CatalogCommand::Search { .. }
                    | CatalogCommand::Yank { .. }
                    | CatalogCommand::Unyank { .. }
                    | CatalogCommand::Publish { .. }
                    | CatalogCommand::Sync { .. }
                    | CatalogCommand::Validate { .. }
                    | CatalogCommand::Diff { .. }
            ),
            Command::Composition { command } => matches!(
                command,
                CompositionCommand::Publish { .. }
                    | CompositionCommand::List { .. }
                    | CompositionCommand::Get { .. }
            ),
            _ => false,
        }
    }
}

/// What a command needs: the configuration and the global flags.
struct Context<'a> {
    config: Config,
    global: &'a Global,
}

impl Context<'_> {
    /// Opens the configured store.
    async fn store(&self) -> anyhow::Result<Arc<dyn Store>> {
        match self.config.storage.kind {
            StorageKind::Memory => Ok(Arc::new(MemoryStore::new())),
            StorageKind::Sqlite => {
                let path = self.config.sqlite_path(&self.global.data_dir);
                let store = nestor_storage::SqliteStore::open(&path)
                    .with_context(|| format!("opening the store at {}", path.display()))?;
                Ok(Arc::new(store))
            }
            StorageKind::Dynamodb => Ok(Arc::new(self.dynamodb().await?)),
        }
    }

    /// The DynamoDB store of `storage.dynamodb` (tables made by `nestor migrate`).
    async fn dynamodb(&self) -> anyhow::Result<nestor_storage::DynamoStore> {
        let d = &self.config.storage.dynamodb;
        let config = nestor_storage::DynamoConfig {
            table_prefix: d.table_prefix.clone(),
            region: d.region.clone(),
            endpoint_url: d.endpoint_url.clone(),
        };
        Ok(nestor_storage::DynamoStore::connect(config).await?)
    }

    /// The server of `--server`, when there is one.
    fn remote(&self) -> anyhow::Result<Option<client::Remote>> {
        let Some(url) = &self.global.server else {
            return Ok(None);
        };
        let token = self.global.token.clone().or_else(|| {
            std::fs::read_to_string(serve::token_path(&self.global.data_dir))
                .ok()
                .map(|t| t.trim().to_string())
        });
        Ok(Some(client::Remote::new(url, token)?))
    }

    /// Where the data is: the server of `--server`, else the local store.
    /// A server token comes from `--token`, else from the file
    /// `nestor serve --dev` wrote in the data folder.
    async fn backend(&self) -> anyhow::Result<Box<dyn client::Backend>> {
        match self.remote()? {
            Some(remote) => Ok(Box::new(remote)),
            None => {
                let store = self.store().await?;
                let catalog = CatalogService::new(store.clone()).with_engines(self.engines()?);
                let composer = Composer::new(store.clone());
                Ok(Box::new(client::Embedded {
                    store,
                    catalog,
                    composer,
                }))
            }
        }
    }

    /// A catalog service over the configured store.
    async fn catalog(&self) -> anyhow::Result<CatalogService> {
        Ok(CatalogService::new(self.store().await?))
    }

    /// A composer over the configured store.
    async fn composer(&self) -> anyhow::Result<Composer> {
        Ok(Composer::new(self.store().await?))
    }

    /// The bundled engines plus `engines.plugins_dir`, with the configured limits.
    fn engines(&self) -> anyhow::Result<Arc<EngineRegistry>> {
        let e = &self.config.engines;
        let host = HostConfig {
            timeout: std::time::Duration::from_millis(e.timeout_ms),
            memory_limit: (e.memory_limit_mb as usize) << 20,
            ..HostConfig::default()
        };
        let dir = e.plugins_dir.is_dir().then_some(e.plugins_dir.as_path());
        Ok(Arc::new(EngineRegistry::with_plugins_dir(host, dir)?))
    }

    /// The GitOps executor of `gitops:`.
    fn executor(&self) -> anyhow::Result<Arc<dyn nestor_core::Executor>> {
        let g = &self.config.gitops;
        let executor = GitOpsExecutor::open(GitOpsConfig {
            repo: g.repo.clone(),
            branch: g.branch.clone(),
            remote: g.remote.clone(),
            author_name: g.author_name.clone(),
            author_email: g.author_email.clone(),
            argocd_namespace: self
                .config
                .argocd
                .as_ref()
                .map_or_else(|| "argocd".into(), |a| a.namespace.clone()),
        })?;
        Ok(Arc::new(executor))
    }

    /// The orchestrator: the store, the engines and the GitOps executor.
    async fn orchestrator(&self) -> anyhow::Result<Orchestrator> {
        let (leases, wave_delay) = self.config.deployments.settings()?;
        let mut orchestrator =
            Orchestrator::new(self.store().await?, self.engines()?, self.executor()?)
                .with_leases(leases)
                .with_wave_delay(wave_delay);
        if let Some(argo) = &self.config.argocd {
            orchestrator = orchestrator.with_observer(argo.observer()?);
        }
        if let Some(direct) = self.config.executors.direct(&self.global.data_dir)? {
            orchestrator = orchestrator.with_direct(direct);
        }
        Ok(orchestrator)
    }

    /// `--team`, else `defaults.team`.
    fn team(&self) -> String {
        self.global
            .team
            .clone()
            .unwrap_or_else(|| self.config.defaults.team.clone())
    }

    async fn migrate(&self) -> anyhow::Result<String> {
        match self.config.storage.kind {
            StorageKind::Sqlite => {
                let path = self.config.sqlite_path(&self.global.data_dir);
                let store = nestor_storage::SqliteStore::open(&path)
                    .with_context(|| format!("opening the store at {}", path.display()))?;
                let version = store.migrate()?;
                Ok(format!(
                    "store {} is at schema version {version}",
                    path.display()
                ))
            }
            StorageKind::Memory => Ok("the memory store has no tables".into()),
            StorageKind::Dynamodb => {
                self.dynamodb().await?.migrate().await?;
                let d = &self.config.storage.dynamodb;
                Ok(format!(
                    "DynamoDB tables with prefix {:?} are ready",
                    d.table_prefix
                ))
            }
        }
    }

    fn format(&self) -> Format {
        self.global.output
    }

    /// Progress and hints go to stderr unless `-q`.
    fn note(&self, text: impl std::fmt::Display) {
        if !self.global.quiet {
            eprintln!("{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
