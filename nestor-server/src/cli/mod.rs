//! The `nestor` command line (SPEC §9).
//!
//! Commands work **embedded**: they open the local store (`--data-dir`,
//! default `./.nestor`, or `storage:` in `nestor.yaml`) and call the same
//! library services the server calls. Exit codes: 0 success, 1 failure
//! (invalid input, failed operation), 2 usage.

mod catalog;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use nestor_core::{CatalogService, CatalogStore};
use nestor_storage::MemoryStore;

use crate::config::{Config, StorageKind};
pub use catalog::CatalogCommand;
pub use output::Format;

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
    #[arg(long, global = true, env = "NESTOR_DATA_DIR", default_value = ".nestor", value_name = "DIR")]
    data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate, diff, sync, publish and browse resource definitions.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Create or upgrade the store's tables.
    Migrate,
}

/// Runs the CLI with the process's arguments and environment.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
    let filter = tracing_subscriber::EnvFilter::try_from_env("NESTOR_LOG").unwrap_or_else(|_| level.into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Prints an error with its SPEC §12 code and every field problem.
fn report(e: &anyhow::Error) {
    if let Some(core) = e.downcast_ref::<nestor_core::Error>() {
        eprintln!("error[{}]: {core}", core.code());
        if matches!(core, nestor_core::Error::Validation { .. } | nestor_core::Error::DependencyNotFound { .. } | nestor_core::Error::BreakingChange { .. }) {
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
        anyhow::bail!("--server is not supported by this build yet: run the command without --server to work on the local store");
    }
    let config = Config::load(g.config.as_deref(), std::env::vars())?;
    match cli.command {
        Command::Catalog { command } => catalog::run(command, &Context { config, global: g }).await,
        Command::Migrate => {
            let ctx = Context { config, global: g };
            let version = ctx.migrate().await?;
            println!("{version}");
            Ok(ExitCode::SUCCESS)
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
    async fn store(&self) -> anyhow::Result<Arc<dyn CatalogStore>> {
        match self.config.storage.kind {
            StorageKind::Memory => Ok(Arc::new(MemoryStore::new())),
            StorageKind::Sqlite => {
                let path = self.config.sqlite_path(&self.global.data_dir);
                let store = nestor_storage::SqliteStore::open(&path)
                    .with_context(|| format!("opening the store at {}", path.display()))?;
                Ok(Arc::new(store))
            }
            StorageKind::Dynamodb => {
                anyhow::bail!("storage.type dynamodb is not supported by this build yet; use sqlite")
            }
        }
    }

    /// A catalog service over the configured store.
    async fn catalog(&self) -> anyhow::Result<CatalogService> {
        Ok(CatalogService::new(self.store().await?))
    }

    async fn migrate(&self) -> anyhow::Result<String> {
        match self.config.storage.kind {
            StorageKind::Sqlite => {
                let path = self.config.sqlite_path(&self.global.data_dir);
                let store = nestor_storage::SqliteStore::open(&path)
                    .with_context(|| format!("opening the store at {}", path.display()))?;
                let version = store.migrate()?;
                Ok(format!("store {} is at schema version {version}", path.display()))
            }
            StorageKind::Memory => Ok("the memory store has no tables".into()),
            StorageKind::Dynamodb => anyhow::bail!("storage.type dynamodb is not supported by this build yet"),
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
