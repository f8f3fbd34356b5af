//! `nestor serve`: opens the store, loads the engines (with hot reload),
//! syncs every source once, starts the pollers and serves the HTTP API
//! until Ctrl-C or SIGTERM; SIGHUP or an edit of the configuration file
//! reloads `auth`, `server.rate_limits` and `catalog.sources`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use nestor_core::SourceConfig;

use super::Context;
use crate::config::TokenConfig;
use crate::server::{self, AppState, Parts};

/// The `serve` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default: `server.listen`, 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// A catalog to sync at start and poll: a git URL or a folder (repeatable).
    #[arg(long = "catalog", value_name = "PATH_OR_URL")]
    catalogs: Vec<String>,
    /// Development mode: make a random admin token, print it once and store
    /// it in <data-dir>/token where the CLI finds it.
    #[arg(long)]
    dev: bool,
}

/// Where `serve --dev` stores its token for the CLI.
pub(super) fn token_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("token")
}

fn write_token(path: &std::path::Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(token.as_bytes())?;
    Ok(())
}

pub(super) async fn serve(args: ServeArgs, ctx: &mut Context<'_>) -> anyhow::Result<ExitCode> {
    if let Some(listen) = &args.listen {
        ctx.config.server.listen = listen.clone();
    }
    let data_dir = ctx.global.data_dir.clone();
    // 0700 when created here: the store and the token under it are the
    // server's alone (an existing directory keeps the operator's mode).
    nestor_storage::create_private_dir(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let dev_token = if args.dev {
        let token = server::new_token()?;
        ctx.config.auth.tokens.push(dev_token_config(&token));
        write_token(&token_path(&data_dir), &token)?;
        Some(token)
    } else {
        None
    };
    // What a reload reads: the same file and environment, the same flags on top.
    let overlay = (
        args.listen.clone(),
        dev_token.as_deref().map(dev_token_config),
    );
    let reloads = server::ConfigSource::new(ctx.global.config.clone(), std::env::vars())
        .with_overlay(move |config| {
            if let Some(listen) = &overlay.0 {
                config.server.listen = listen.clone();
            }
            config.auth.tokens.extend(overlay.1.clone());
        });
    let store = ctx.store().await?;
    let engines = ctx.engines()?;
    let _watch = ctx
        .config
        .engines
        .plugins_dir
        .is_dir()
        .then(|| engines.watch(Duration::from_secs(2)));
    let executor = ctx.executor()?;
    let direct = ctx.config.executors.direct(&data_dir)?;
    let state = AppState::with_direct(
        Parts {
            config: ctx.config.clone(),
            store,
            engines: engines.clone(),
            executor,
            cache_dir: data_dir.join("sources"),
        },
        direct,
    )?;

    let mut names = ctx
        .config
        .catalog
        .sources
        .iter()
        .map(|s| s.name.clone())
        .collect::<Vec<_>>();
    for url in &args.catalogs {
        let base = super::catalog::source_name(url);
        let mut name = base.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        let path = std::path::Path::new(url);
        let url = if !url.contains("://") && path.exists() {
            std::fs::canonicalize(path)?.display().to_string()
        } else {
            url.clone()
        };
        state.syncs().add(SourceConfig::new(name.clone(), url));
        names.push(name);
    }
    for name in &names {
        match state.syncs().sync_now(name).await {
            Ok(r) => ctx.note(format!(
                "synced {name}: {} published, {} unchanged, {} yanked, {} error(s) in {} ms",
                r.published.len(),
                r.unchanged,
                r.yanked.len(),
                r.errors.len(),
                r.duration_ms
            )),
            Err(e) => ctx.note(format!(
                "sync of {name} failed: {e} (the poller will retry)"
            )),
        }
    }
    state.syncs().start_pollers();
    let _reloads = state.watch_config(reloads, ctx.config.server.config_watch_interval()?);

    let listener = tokio::net::TcpListener::bind(&ctx.config.server.listen)
        .await
        .with_context(|| format!("listening on {}", ctx.config.server.listen))?;
    let addr = listener.local_addr()?;
    let healthy = engines
        .list()
        .iter()
        .filter(|e| e.healthy)
        .map(|e| e.name.clone())
        .collect::<Vec<_>>();
    println!(
        "nestor listening on http://{addr} (store: {:?}, engines: {})",
        ctx.config.storage.kind,
        healthy.join(", ")
    );
    println!("  try: curl -s http://{addr}/api/v1/resources?limit=5");
    println!("       curl -N http://{addr}/api/v1/events");
    if let Some(token) = &dev_token {
        println!(
            "  dev admin token (shown once; saved to {}):",
            token_path(&data_dir).display()
        );
        println!("    {token}");
        println!("  export NESTOR_SERVER=http://{addr} NESTOR_TOKEN={token}");
    }
    server::serve(listener, state, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The admin token of `serve --dev`.
fn dev_token_config(token: &str) -> TokenConfig {
    TokenConfig {
        name: "dev".into(),
        sha256: server::hash_token(token),
        roles: vec!["admin".into()],
    }
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
