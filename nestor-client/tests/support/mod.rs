//! A real Nestor server for the tests: `nestor_server::server::serve` on
//! `127.0.0.1:0`, in this process ([`Server`]) or in a child process on a
//! SQLite file that a test can kill and start again ([`ServerProcess`]).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nestor_client::Client;
use nestor_core::{SourceConfig, Store};
use nestor_engines::{EngineRegistry, HostConfig};
use nestor_server::server::{self, AppState, Parts};
use nestor_server::{Config, TokenConfig};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Tokens every test server accepts; the token is its name.
pub const TOKENS: [(&str, &str); 5] = [
    ("admin", "admin"),
    ("platform", "platform"),
    ("reader", "reader"),
    ("alpha", "team:alpha"),
    ("beta", "team:beta"),
];

/// The configuration of every test server: the tokens above, a 1 s
/// heartbeat.
pub fn config() -> Config {
    let mut config = Config::default();
    config.storage.kind = nestor_server::StorageKind::Memory;
    config.sse.heartbeat = "1s".into();
    for (name, role) in TOKENS {
        config.auth.tokens.push(TokenConfig {
            name: name.into(),
            sha256: server::hash_token(name),
            roles: vec![role.into()],
        });
    }
    config
}

/// The server state over `store`: bundled engines or none, the GitOps
/// repository under `dir`.
pub fn state(store: Arc<dyn Store>, engines: bool, dir: &Path) -> AppState {
    let engines = if engines {
        EngineRegistry::with_bundled().unwrap()
    } else {
        EngineRegistry::new(HostConfig::default()).unwrap()
    };
    let executor = nestor_storage::GitOpsExecutor::open(nestor_storage::GitOpsConfig::local(
        dir.join("gitops"),
    ))
    .unwrap();
    AppState::new(Parts {
        config: config(),
        store,
        engines: Arc::new(engines),
        executor: Arc::new(executor),
        cache_dir: dir.join("sources"),
    })
    .unwrap()
}

/// A server in this process, on a memory store with the example catalog.
pub struct Server {
    pub url: String,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// The example catalog, no engines.
    pub async fn start() -> Server {
        Self::with(false).await
    }

    /// The example catalog; the bundled engines when `engines`.
    pub async fn with(engines: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(nestor_storage::MemoryStore::new());
        let state = state(store, engines, dir.path());
        state.syncs().add(SourceConfig::new(
            "examples",
            root().join("examples/catalog").display().to_string(),
        ));
        let report = state.syncs().sync_now("examples").await.unwrap();
        assert!(report.errors.is_empty(), "{report:?}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server::serve(listener, state, async move {
            let _ = rx.await;
        }));
        Server {
            url,
            _dir: dir,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// A client with `token` (a name from [`TOKENS`]), or anonymous.
    pub fn client(&self, token: Option<&str>) -> Client {
        client(&self.url, token)
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(20), h)
                .await
                .expect("graceful shutdown is bounded")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A client of `url` with short retry delays.
pub fn client(url: &str, token: Option<&str>) -> Client {
    let mut b = Client::builder(url)
        .timeout(Duration::from_secs(30))
        .backoff(Duration::from_millis(20), Duration::from_millis(300));
    if let Some(t) = token {
        b = b.token(t);
    }
    b.build().unwrap()
}

/// A small valid definition.
pub fn definition_yaml(name: &str, version: &str, description: &str) -> String {
    format!(
        "apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\nmetadata:\n  name: {name}\n  version: \"{version}\"\n  provider: test\n  category: misc\n  resource_type: thing\n  description: \"{description}\"\nspec:\n  supported_engines: [terraform]\n  required_inputs: []\n  outputs:\n    - {{name: id, type: string}}\n"
    )
}

/// [`definition_yaml`] parsed.
pub fn definition(name: &str, version: &str, description: &str) -> nestor_core::ResourceDefinition {
    nestor_core::parse_definition_yaml(&definition_yaml(name, version, description)).unwrap()
}

/// Environment variable naming the configuration file of the server child
/// process; set only for it.
const CONFIG_VAR: &str = "NESTOR_CLIENT_TEST_CONFIG";
/// Environment variable with the address the child listens on.
const LISTEN_VAR: &str = "NESTOR_CLIENT_TEST_LISTEN";
/// What `nestor serve` prints once it listens.
const READY_LINE: &str = "nestor listening on ";

/// `nestor serve` in a child process — this test binary started again to
/// run only [`server_process_main`], which runs the `nestor` command line
/// (`nestor --config nestor.yaml serve --listen ADDR`) — on a SQLite file
/// in `dir`, so a test can kill it (SIGKILL: no graceful shutdown) and
/// start it again on the same file and port. (Cargo builds the `nestor`
/// binary only for nestor-server's own tests, hence the detour.)
pub struct ServerProcess {
    pub url: String,
    child: Child,
}

impl ServerProcess {
    /// Starts `nestor serve` with its data in `dir` (the configuration of
    /// [`config`] on SQLite `dir/nestor.db`), listening on `listen`
    /// (`127.0.0.1:0` for any port).
    pub fn start(dir: &Path, listen: &str) -> ServerProcess {
        let mut config = config();
        config.storage.kind = nestor_server::StorageKind::Sqlite;
        config.storage.sqlite.path = Some(dir.join("nestor.db"));
        config.gitops.repo = dir.join("gitops");
        config.engines.plugins_dir = dir.join("plugins");
        let file = dir.join("nestor.yaml");
        std::fs::write(&file, serde_yaml::to_string(&config).unwrap()).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "restart::server_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .current_dir(dir)
            .env(CONFIG_VAR, &file)
            .env(LISTEN_VAR, listen)
            .env("NESTOR_DATA_DIR", dir.join("data"))
            .env_remove("NESTOR_SERVER")
            .env_remove("NESTOR_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Drains stdout for the child's whole life: a closed pipe would make
        // its next line fail (and `println!` panic), killing the server.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let url = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(120))
                .expect("nestor serve prints where it listens");
            // libtest may print the test's name on the same line first.
            if let Some((_, rest)) = line.split_once(READY_LINE) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        ServerProcess { url, child }
    }

    /// `host:port` it listens on.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Kills the process (SIGKILL) and waits for it to be gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of the child process: when [`ServerProcess::start`] started
/// this binary with [`CONFIG_VAR`] set, runs `nestor serve` until killed;
/// otherwise returns.
pub fn server_process_main() {
    let (Ok(config), Ok(listen)) = (std::env::var(CONFIG_VAR), std::env::var(LISTEN_VAR)) else {
        return;
    };
    // Serves until killed; a failed start says why on stderr.
    let _ = nestor_server::run_from(["nestor", "--config", &config, "serve", "--listen", &listen]);
}
