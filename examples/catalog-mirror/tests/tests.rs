//! The mirror against a real server on 127.0.0.1 with the example catalog:
//! the initial copy matches the server, then publishes and yanks arrive.

use std::sync::Arc;
use std::time::Duration;

use nestor_core::{EventType, SourceConfig, Store};
use nestor_example_catalog_mirror::Mirror;
use nestor_server::server::{self, AppState, Parts};
use nestor_server::{Config, TokenConfig};

async fn server(dir: &std::path::Path) -> String {
    let mut config = Config::default();
    config.auth.tokens.push(TokenConfig {
        name: "platform".into(),
        sha256: server::hash_token("platform"),
        roles: vec!["platform".into()],
    });
    let store: Arc<dyn Store> = Arc::new(nestor_storage::MemoryStore::new());
    let executor = nestor_storage::GitOpsExecutor::open(nestor_storage::GitOpsConfig::local(
        dir.join("gitops"),
    ))
    .unwrap();
    let state = AppState::new(Parts {
        config,
        store,
        engines: Arc::new(
            nestor_engines::EngineRegistry::new(nestor_engines::HostConfig::default()).unwrap(),
        ),
        executor: Arc::new(executor),
        cache_dir: dir.join("sources"),
    })
    .unwrap();
    let catalog = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
    state
        .syncs()
        .add(SourceConfig::new("examples", catalog.display().to_string()));
    state.syncs().sync_now("examples").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server::serve(listener, state, std::future::pending()));
    url
}

async fn next(mirror: &mut Mirror) -> nestor_core::Event {
    tokio::time::timeout(Duration::from_secs(30), mirror.apply_next())
        .await
        .expect("an event within 30 s")
        .expect("the stream goes on")
        .expect("an event, applied")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_copies_the_catalog_then_follows_publishes_and_yanks() {
    let dir = tempfile::tempdir().unwrap();
    let url = server(dir.path()).await;
    let client = nestor_client::Client::builder(&url)
        .token("platform")
        .build()
        .unwrap();
    let mut mirror = Mirror::start(client.clone()).await.unwrap();

    // The copy is the server's list of latest versions, all of it.
    let page = client
        .list_latest(&Default::default(), &nestor_core::PageRequest::first(500))
        .await
        .unwrap();
    assert!(page.items.len() > 5);
    assert_eq!(
        mirror.versions().cloned().collect::<Vec<_>>().len(),
        page.items.len()
    );
    for v in &page.items {
        assert_eq!(mirror.get(v.name()), Some(v));
    }
    assert_eq!(
        mirror.get("aws-rds-mysql").unwrap().version().to_string(),
        "2.0.0"
    );

    // Yanking the latest: the copy falls back to what the server now calls latest.
    let two = semver::Version::new(2, 0, 0);
    client.yank("aws-rds-mysql", &two).await.unwrap();
    let event = next(&mut mirror).await;
    assert_eq!(event.event_type, EventType::ResourceYanked);
    let fallback = client.latest("aws-rds-mysql").await.unwrap();
    assert_ne!(fallback.version(), &two);
    assert_eq!(mirror.get("aws-rds-mysql"), Some(&fallback));

    // A new name arrives with its first version.
    let def = nestor_core::parse_definition_yaml(
        "apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\nmetadata:\n  name: mirror-test\n  version: \"0.1.0\"\n  provider: test\n  category: misc\n  resource_type: thing\n  description: \"published while mirrored\"\nspec:\n  supported_engines: [terraform]\n  required_inputs: []\n  outputs:\n    - {name: id, type: string}\n",
    )
    .unwrap();
    client.publish(&def).await.unwrap();
    let event = next(&mut mirror).await;
    assert_eq!(
        (event.event_type, event.subject.as_str()),
        (EventType::ResourceCreated, "mirror-test:0.1.0")
    );
    assert_eq!(mirror.get("mirror-test").unwrap().definition, def);
    assert_eq!(mirror.position(), event.id);
}
