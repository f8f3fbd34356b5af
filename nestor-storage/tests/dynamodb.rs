//! The DynamoDB store against a real DynamoDB-compatible server (AWS
//! DynamoDB Local, started by `.ci/dynamodb.sh start`): the whole
//! conformance suite, concurrency, two replicas, and an outage.
//!
//! Every case gets its own table prefix, and its guard deletes the tables
//! afterwards. Without `NESTOR_TEST_DYNAMODB_ENDPOINT` the cases say they
//! are skipped and pass — except under `CI=true`, where they fail: CI must
//! never skip them.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nestor_core::testing::{definition, Fixture};
use nestor_core::{
    CatalogReader, CatalogSearch, CatalogService, CatalogWriter, DeploymentStore, ErrorCode,
    EventLog, EventType, ListFilter, NewEvent, PageRequest, PublishOutcome, PublishedVersion,
};
use nestor_storage::{DynamoConfig, DynamoStore};
use semver::Version;

const SKIPPED: &str =
    "skipped: NESTOR_TEST_DYNAMODB_ENDPOINT is not set (run .ci/dynamodb.sh start)";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The server's endpoint; `None` (after saying so) when the tests are to
/// be skipped. Panics under CI, which must never skip them.
fn endpoint() -> Option<String> {
    match std::env::var("NESTOR_TEST_DYNAMODB_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if in_ci() => panic!(
            "CI=true but NESTOR_TEST_DYNAMODB_ENDPOINT is not set: CI must run the DynamoDB tests"
        ),
        _ => {
            eprintln!("{SKIPPED}");
            None
        }
    }
}

/// A table prefix no other case (or earlier run against the same server)
/// uses.
fn unique_config(endpoint: &str) -> DynamoConfig {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    DynamoConfig {
        table_prefix: format!(
            "t{}-{}-{}",
            std::process::id(),
            nanos % 1_000_000_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
        region: "us-east-1".into(),
        endpoint_url: Some(endpoint.to_string()),
    }
}

/// Deletes a case's tables when dropped (best effort, never panics).
struct DropTables(DynamoConfig);

impl Drop for DropTables {
    fn drop(&mut self) {
        let config = self.0.clone();
        // The case's runtime is shutting the case down; use a private one.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let store = DynamoStore::connect(config).await.ok()?;
                store.delete_tables().await.ok()
            })
        })
        .join();
    }
}

async fn migrated(config: &DynamoConfig) -> Arc<DynamoStore> {
    let store = DynamoStore::connect(config.clone()).await.expect("connect");
    store.migrate().await.expect("migrate creates the tables");
    Arc::new(store)
}

async fn fixture(endpoint: String) -> Fixture {
    let config = unique_config(&endpoint);
    let store = migrated(&config).await;
    Fixture::with_guard(store, DropTables(config))
}

mod conformance {
    use super::*;

    // `return` leaves the generated test function: a skip.
    nestor_core::store_conformance_tests!({
        let Some(endpoint) = endpoint() else { return };
        fixture(endpoint)
    });
}

/// Two handles on the same tables: two replicas.
async fn two_replicas() -> Option<(Arc<DynamoStore>, Arc<DynamoStore>, DropTables)> {
    let endpoint = endpoint()?;
    let config = unique_config(&endpoint);
    let a = migrated(&config).await;
    let b = Arc::new(DynamoStore::connect(config.clone()).await.unwrap());
    Some((a, b, DropTables(config)))
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_publishers_across_two_replicas_one_wins() {
    let Some((a, b, _guard)) = two_replicas().await else {
        return;
    };
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut def = definition("raced", "1.0.0");
            def.metadata.description = format!("writer {i}");
            store
                .insert_version(PublishedVersion::new(def, 0, None))
                .await
        }));
    }
    let (mut created, mut immutable) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(PublishOutcome::Created) => created += 1,
            Err(e) if e.code() == ErrorCode::VersionImmutable => immutable += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(
        (created, immutable),
        (1, 15),
        "exactly one publisher wins, the others get VERSION_IMMUTABLE"
    );
    let winner = a.get_version("raced", &v("1.0.0")).await.unwrap().unwrap();
    assert_eq!(
        b.latest("raced").await.unwrap().unwrap(),
        winner,
        "both replicas agree on the winner"
    );
    assert_eq!(a.versions("raced").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_events_from_eight_tasks_get_distinct_increasing_sequences() {
    let Some((a, b, _guard)) = two_replicas().await else {
        return;
    };
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let store = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..125u64 {
                let event = NewEvent {
                    event_type: EventType::DeploymentUpdated,
                    source: format!("task-{t}"),
                    subject: format!("{t}-{i}"),
                    timestamp: 1,
                    data: serde_json::json!({"t": t, "i": i}),
                };
                ids.push(store.append(event).await.unwrap().id);
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let ids = t.await.unwrap();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "each task sees strictly increasing sequences"
        );
        all.extend(ids);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 1000, "1,000 distinct sequences");
    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let page = b.read_after(after, 300).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        read.extend(page);
    }
    assert_eq!(read.len(), 1000, "every event is read back, across buckets");
    assert!(
        read.windows(2).all(|w| w[0].id < w[1].id),
        "read back in strictly increasing order"
    );
    assert_eq!(read.iter().map(|e| e.id).collect::<Vec<_>>(), all);
    assert_eq!(a.last_sequence().await.unwrap(), *all.last().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_is_idempotent_even_concurrently() {
    let Some((a, b, _guard)) = two_replicas().await else {
        return;
    };
    a.migrate().await.expect("a second migrate is a no-op");
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    a.insert_version(PublishedVersion::new(definition("db", "1.0.0"), 0, None))
        .await
        .unwrap();
    a.migrate().await.unwrap();
    assert!(
        b.get_version("db", &v("1.0.0")).await.unwrap().is_some(),
        "migrate keeps data"
    );
}

/// An installation from before leases (every table but `P-leases`) gains
/// the leases table on `migrate`, keeping its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_adds_the_leases_table_to_an_older_installation() {
    let Some((a, b, guard)) = two_replicas().await else {
        return;
    };
    a.insert_version(PublishedVersion::new(definition("db", "1.0.0"), 0, None))
        .await
        .unwrap();
    let config = &guard.0;
    let credentials = aws_sdk_dynamodb::config::Credentials::new(
        "nestorlocal",
        "nestorlocal",
        None,
        None,
        "test",
    );
    let raw = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new(config.region.clone()))
            .endpoint_url(config.endpoint_url.clone().unwrap())
            .credentials_provider(credentials)
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .build(),
    );
    let leases = format!("{}-leases", config.table_prefix);
    raw.delete_table().table_name(&leases).send().await.unwrap();
    eventually(Duration::from_secs(30), "the leases table gone", || async {
        raw.describe_table()
            .table_name(&leases)
            .send()
            .await
            .is_err()
    })
    .await;
    assert_eq!(
        b.leases().await.unwrap_err().code(),
        ErrorCode::StorageUnavailable,
        "no leases table yet"
    );

    b.migrate().await.expect("migrate adds the leases table");
    assert!(b.leases().await.unwrap().is_empty());
    let lease = a.claim_lease("d1", "replica-a", 0, 100).await.unwrap();
    assert_eq!(lease.map(|l| l.epoch), Some(1));
    assert!(
        b.get_version("db", &v("1.0.0")).await.unwrap().is_some(),
        "migrate keeps data"
    );
}

/// Sixteen claimers across two replicas, for a new lease and then for the
/// expired one: one wins each time, and both replicas see its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_lease_claimers_across_two_replicas_one_wins() {
    let Some((a, b, _guard)) = two_replicas().await else {
        return;
    };
    nestor_core::testing::leases::claims_across_handles_one_wins(&[
        a as Arc<dyn nestor_core::Store>,
        b,
    ])
    .await;
}

/// Polls `check` until it holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < within,
            "{what} not seen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_see_each_others_writes_within_a_second() {
    let Some((a, b, _guard)) = two_replicas().await else {
        return;
    };
    let service_a = CatalogService::new(a.clone());
    let service_b = CatalogService::new(b.clone());
    // Warm B's caches and search snapshot before A writes.
    assert!(b
        .search("mysql", &ListFilter::default(), 10)
        .await
        .unwrap()
        .is_empty());

    let mut first = definition("mysql", "1.0.0");
    first.metadata.description = "first".into();
    service_a.publish(first, None, "api").await.unwrap();
    let second = Duration::from_secs(1);
    eventually(second, "a publish on A in B's latest", || async {
        b.latest("mysql")
            .await
            .unwrap()
            .is_some_and(|l| l.version() == &v("1.0.0"))
    })
    .await;
    eventually(second, "a publish on A in B's search", || async {
        b.search("mysql", &ListFilter::default(), 10)
            .await
            .unwrap()
            .len()
            == 1
    })
    .await;
    eventually(second, "a publish on A in B's list", || async {
        b.list_latest(&ListFilter::default(), &PageRequest::default())
            .await
            .unwrap()
            .items
            .len()
            == 1
    })
    .await;

    let mut next = definition("mysql", "1.1.0");
    next.metadata.description = "second".into();
    service_b.publish(next, None, "api").await.unwrap();
    eventually(second, "a publish on B in A's latest", || async {
        a.latest("mysql")
            .await
            .unwrap()
            .is_some_and(|l| l.version() == &v("1.1.0"))
    })
    .await;

    service_a
        .set_yanked("mysql", &v("1.1.0"), true, "api")
        .await
        .unwrap();
    eventually(second, "a yank on A in B's get_version", || async {
        b.get_version("mysql", &v("1.1.0"))
            .await
            .unwrap()
            .unwrap()
            .yanked
    })
    .await;
    eventually(second, "a yank on A in B's latest", || async {
        b.latest("mysql")
            .await
            .unwrap()
            .is_some_and(|l| l.version() == &v("1.0.0"))
    })
    .await;
    eventually(second, "a yank on A in B's search", || async {
        let hits = b.search("mysql", &ListFilter::default(), 10).await.unwrap();
        hits.len() == 1 && hits[0].version.version() == &v("1.0.0")
    })
    .await;
    eventually(second, "a yank on A in B's list", || async {
        let page = b
            .list_latest(&ListFilter::default(), &PageRequest::default())
            .await
            .unwrap();
        page.items.len() == 1 && page.items[0].version() == &v("1.0.0")
    })
    .await;

    let events = b.read_after(0, 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        ["resource.created", "resource.updated", "resource.yanked"],
        "one log for both replicas"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_definitions_are_bad_requests() {
    let Some((a, _b, _guard)) = two_replicas().await else {
        return;
    };
    let mut def = definition("huge", "1.0.0");
    // Incompressible text: over the item limit even deflated.
    let mut x: u64 = 7;
    def.metadata.description = (0..600_000)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + ((x >> 33) % 26) as u8)
        })
        .collect();
    let err = a
        .insert_version(PublishedVersion::new(def, 0, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest, "{err}");
    assert!(
        a.versions("huge").await.unwrap().is_empty(),
        "nothing is written"
    );

    let mut big = definition("big", "1.0.0");
    big.metadata.description = "a large but repetitive description ".repeat(30_000); // ~1 MiB
    a.insert_version(PublishedVersion::new(big.clone(), 0, None))
        .await
        .expect("compressible 1 MiB fits");
    assert_eq!(a.latest("big").await.unwrap().unwrap().definition, big);
}

/// A private DynamoDB Local for a test that stops it; killed on drop.
/// The folder of DynamoDB Local's jar, for the tests that start a private
/// server to stop or stall; `None` (after saying so) when they are to be
/// skipped. Panics under CI, which must never skip them.
fn local_dir() -> Option<PathBuf> {
    match std::env::var("NESTOR_DYNAMODB_LOCAL_DIR") {
        Ok(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ if in_ci() => panic!(
            "CI=true but NESTOR_DYNAMODB_LOCAL_DIR is not set (.ci/dynamodb.sh start exports it)"
        ),
        _ => {
            eprintln!("skipped: NESTOR_DYNAMODB_LOCAL_DIR is not set (run .ci/dynamodb.sh start)");
            None
        }
    }
}

struct PrivateServer {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    /// One private server at a time: the outage test leaves its port free
    /// for seconds, and a second server picking a port meanwhile could
    /// take it (its own JVM then exits, and the test talks to the other).
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// Whose turn it is to run a private server.
static PRIVATE_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl PrivateServer {
    async fn start(dir: PathBuf) -> PrivateServer {
        let turn = PRIVATE_TURN.lock().await;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = PrivateServer {
            dir,
            port,
            child: None,
            _turn: turn,
        };
        server.restart();
        server
    }

    fn restart(&mut self) {
        let child = Command::new("java")
            .current_dir(&self.dir)
            .args([
                "-Xmx256m",
                "-Djava.library.path=./DynamoDBLocal_lib",
                "-jar",
                "DynamoDBLocal.jar",
            ])
            .args(["-inMemory", "-sharedDb", "-port", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java starts DynamoDB Local");
        self.child = Some(child);
    }

    /// Fails the test unless the server answering is this one's own JVM
    /// (one that could not bind its port has exited).
    fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("the server was started");
        let exited = child.try_wait().expect("the JVM's state can be read");
        assert!(
            exited.is_none(),
            "the private DynamoDB Local on port {} exited ({exited:?}): another process holds the port",
            self.port
        );
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `call` until the server answers it, retrying `STORAGE_UNAVAILABLE`
/// for at most 90 s. A private server has just started a cold JVM, on a
/// machine that runs every other test at the same time: its first calls
/// may time out (a CI run once failed the stall test after 15 s, before
/// its stalled calls could have ended: in its set-up), which is the test
/// machine being slow, not the behaviour under test. Any other error fails
/// at once.
async fn when_up<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = nestor_core::Result<T>>,
{
    let start = Instant::now();
    for retry in 0.. {
        match call().await {
            Ok(value) => {
                if retry > 0 {
                    eprintln!(
                        "{what}: answered after {:?} and {retry} retries",
                        start.elapsed()
                    );
                }
                return value;
            }
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::StorageUnavailable, "{what}: {e}");
                assert!(
                    start.elapsed() < Duration::from_secs(90),
                    "{what}: DynamoDB Local did not answer in 90 s: {e}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    unreachable!("the retries end by answer or by the 90 s bound")
}

/// Creates the tables once the server answers (bounded, see [`when_up`]).
async fn migrate_when_up(store: &DynamoStore) {
    when_up("migrate", || store.migrate()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_gives_storage_unavailable_and_recovery_needs_nothing() {
    if endpoint().is_none() {
        return;
    }
    let Some(dir) = local_dir() else {
        return;
    };
    let mut server = PrivateServer::start(dir).await;
    let config = DynamoConfig {
        endpoint_url: Some(server.endpoint()),
        ..unique_config("unused")
    };
    let store = Arc::new(DynamoStore::connect(config).await.unwrap());
    let service = CatalogService::new(store.clone());
    migrate_when_up(&store).await;
    server.assert_running();
    when_up("the first publish", || {
        service.publish(definition("db", "1.0.0"), None, "test")
    })
    .await;

    server.stop();
    let bound = Duration::from_secs(15);
    let check = |what: &'static str, result: nestor_core::Result<()>, took: Duration| {
        let err = result.expect_err(what);
        assert_eq!(err.code(), ErrorCode::StorageUnavailable, "{what}: {err}");
        assert!(took < bound, "{what} took {took:?}");
        eprintln!("during the outage, {what} failed with STORAGE_UNAVAILABLE after {took:?}");
    };
    macro_rules! during_outage {
        ($what:literal, $call:expr) => {{
            let start = Instant::now();
            let result = tokio::time::timeout(bound * 2, $call)
                .await
                .expect(concat!($what, " hangs"));
            check($what, result.map(|_| ()), start.elapsed());
        }};
    }
    during_outage!("get_version", store.get_version("db", &v("1.0.0")));
    during_outage!("latest", store.latest("db"));
    during_outage!("versions", store.versions("db"));
    during_outage!(
        "list_latest",
        store.list_latest(&ListFilter::default(), &PageRequest::default())
    );
    during_outage!("search", store.search("db", &ListFilter::default(), 10));
    during_outage!(
        "publish",
        service.publish(definition("db", "1.1.0"), None, "test")
    );
    during_outage!(
        "insert_version",
        store.insert_version(PublishedVersion::new(definition("other", "1.0.0"), 0, None))
    );
    during_outage!("set_yanked", store.set_yanked("db", &v("1.0.0"), true));
    during_outage!("last_sequence", store.last_sequence());
    during_outage!("ping", store.ping());

    server.restart();
    // In-memory: the data is gone, but the same handle works again.
    migrate_when_up(&store).await;
    let outcome = service
        .publish(definition("db", "1.0.0"), None, "test")
        .await
        .expect("publish after recovery");
    assert_eq!(outcome.outcome, PublishOutcome::Created);
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("1.0.0")
    );
    assert_eq!(
        store
            .search("db", &ListFilter::default(), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_server_times_out_as_storage_unavailable() {
    if endpoint().is_none() {
        return;
    }
    let Some(dir) = local_dir() else {
        return;
    };
    let mut server = PrivateServer::start(dir).await;
    let config = DynamoConfig {
        endpoint_url: Some(server.endpoint()),
        ..unique_config("unused")
    };
    let store = DynamoStore::connect(config).await.unwrap();
    migrate_when_up(&store).await;
    // A retried insert whose first attempt did commit answers `Unchanged`.
    when_up("the first insert", || {
        store.insert_version(PublishedVersion::new(definition("db", "1.0.0"), 0, None))
    })
    .await;
    // One answered read, so the stalled calls below meet a warm server's
    // pooled connection, as a real partition would.
    let first = v("1.0.0");
    when_up("the first read", || store.get_version("db", &first)).await;
    server.assert_running();

    // A server that accepts connections but never answers (a partition, a
    // hung process): only the timeouts end the calls.
    let pid = server.child.as_ref().unwrap().id().to_string();
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    for what in ["read", "write"] {
        let start = Instant::now();
        let result = match what {
            "read" => store.get_version("db", &v("1.0.0")).await.map(|_| ()),
            _ => store
                .insert_version(PublishedVersion::new(definition("db", "2.0.0"), 0, None))
                .await
                .map(|_| ()),
        };
        let took = start.elapsed();
        let err = result.expect_err("a stalled server fails the call");
        assert_eq!(err.code(), ErrorCode::StorageUnavailable, "{err}");
        assert!(
            took < Duration::from_secs(15),
            "a {what} against a stalled server took {took:?}"
        );
        eprintln!(
            "a {what} against a stalled server failed with STORAGE_UNAVAILABLE after {took:?}"
        );
    }
    signal("-CONT");
    let start = Instant::now();
    loop {
        match store.get_version("db", &v("1.0.0")).await {
            Ok(found) => {
                assert!(found.is_some(), "the data survived the stall");
                break;
            }
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "no recovery after the stall: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
