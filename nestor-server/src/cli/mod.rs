//! The `nestor` command line (docs/src/reference/cli.md).
//!
//! Commands work **embedded**: they open the local store (`--data-dir`,
//! default `./.nestor`, or `storage:` in `nestor.yaml`) and call the one
//! `nestor_core::Nestor` the server calls. With `--server URL` they talk to
//! `nestor serve` instead and print the same output: every command reaches
//! its data through one [`backend::Backend`], implemented both ways
//! (`embedded.rs`, `remote.rs`). Commands local by nature (`serve`,
//! `generate`, `migrate`, `engines inspect`, `catalog validate|diff`,
//! `schema`, `completions`, `man`) say so in their help. Exit codes:
//! 0 success, 1 failure (invalid input, failed operation), 2 usage.

mod audit;
mod backend;
mod catalog;
mod deploy;
mod drift;
mod embedded;
mod engines;
mod events;
mod lazy;
mod output;
mod policy;
mod reference;
mod remote;
mod serve;
mod team;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use nestor_core::Store;
use nestor_engines::EngineRegistry;
use nestor_storage::GitOpsExecutor;
use tokio::sync::OnceCell;

use crate::config::{Config, StorageKind};
pub use audit::AuditArgs;
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
    ///
    /// Local by nature: serves the local store (--server is ignored).
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
    ///
    /// Local by nature: reads and writes local files only (--server is ignored).
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
    ///
    /// With --server, ID is required (the server checks one deployment at a time).
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
    /// Who wrote what: the audit trail, newest first (with --server, the admin role).
    Audit(AuditArgs),
    /// List or inspect engines.
    Engines {
        #[command(subcommand)]
        command: EnginesCommand,
    },
    /// Test Rego policies, or ask the policies in force about a file.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Teams: their compositions, deployments, quotas and policies.
    Team {
        #[command(subcommand)]
        command: team::TeamCommand,
    },
    /// Print the artifacts one resource would produce.
    ///
    /// Renders as the team (--team) in `defaults.environment`; with --server
    /// the server's engines render it.
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
    ///
    /// Local by nature: migrates the configured store; refused with --server.
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
    if g.server.is_some() {
        if let Some(command) = cli.command.local_only() {
            return Err(nestor_core::Error::bad_request(format!(
                "`nestor {command}` works only on the local store: run it without --server (and without NESTOR_SERVER)"
            ))
            .into());
        }
    }
    // These describe the binary itself: no configuration needed.
    match &cli.command {
        Command::Schema(args) => return reference::print_schema(args),
        Command::Completions(args) => return reference::completions(args),
        Command::Man => return reference::man(),
        _ => {}
    }
    let config = Config::load(g.config.as_deref(), std::env::vars())?;
    let mut ctx = Context {
        config,
        global: g,
        backend: OnceCell::new(),
    };
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
            other => Err(nestor_core::Error::bad_request(format!(
                "--format {other:?}: use json or dot"
            ))
            .into()),
        },
        Command::Audit(args) => audit::audit(args, &ctx).await,
        Command::Engines { command } => engines::engines(command, &ctx).await,
        Command::Policy { command } => policy::run(command, &ctx).await,
        Command::Team { command } => team::run(command, &ctx).await,
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
    /// The name of a command that works on the local store only and would
    /// mislead with `--server` (it would not touch the server's data).
    /// Commands that read only local files (`generate`, `engines inspect`,
    /// `catalog validate|diff`, `schema`, ...) ignore `--server`.
    fn local_only(&self) -> Option<&'static str> {
        match self {
            Command::Migrate => Some("migrate"),
            _ => None,
        }
    }
}

/// What a command needs: the configuration, the global flags and the one
/// backend (built on first use).
struct Context<'a> {
    config: Config,
    global: &'a Global,
    backend: OnceCell<Box<dyn backend::Backend>>,
}

impl Context<'_> {
    /// Opens the configured store (for `serve` and `migrate`; commands
    /// use [`Context::backend`]).
    async fn store(&self) -> anyhow::Result<Arc<dyn Store>> {
        lazy::open_store(&self.config, &self.global.data_dir).await
    }

    /// Where the data is: the server of `--server`, else the local store
    /// through one `Nestor`. Built once per command. A server token comes
    /// from `--token`, else from the file `nestor serve --dev` wrote in the
    /// data folder.
    async fn backend(&self) -> anyhow::Result<&dyn backend::Backend> {
        let backend = self
            .backend
            .get_or_try_init(|| async {
                let Some(url) = &self.global.server else {
                    let embedded =
                        embedded::Embedded::new(self.config.clone(), self.global.data_dir.clone());
                    return anyhow::Ok(Box::new(embedded) as Box<dyn backend::Backend>);
                };
                let token = self.global.token.clone().or_else(|| {
                    std::fs::read_to_string(serve::token_path(&self.global.data_dir))
                        .ok()
                        .map(|t| t.trim().to_string())
                });
                Ok(Box::new(remote::Remote::new(url, token)?) as Box<dyn backend::Backend>)
            })
            .await?;
        Ok(backend.as_ref())
    }

    /// The bundled engines plus `engines.plugins_dir`, with the configured
    /// limits (for `serve`).
    fn engines(&self) -> anyhow::Result<Arc<EngineRegistry>> {
        lazy::engines(&self.config)
    }

    /// The GitOps executor of `gitops:` (for `serve`).
    fn executor(&self) -> anyhow::Result<Arc<dyn nestor_core::Executor>> {
        Ok(Arc::new(GitOpsExecutor::open(lazy::gitops_config(
            &self.config,
        ))?))
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
                lazy::dynamodb(&self.config).await?.migrate().await?;
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
