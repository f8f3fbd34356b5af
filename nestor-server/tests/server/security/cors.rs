//! `server.cors`: off by default; when on, a preflight from an allowed
//! origin is answered without a token, a simple request carries the allow
//! header, and another origin gets none (so its browser hides the answer).

use nestor_server::CorsConfig;

use super::super::{Setup, TestServer};

const PORTAL: &str = "https://portal.example.com";

async fn with_cors() -> TestServer {
    let mut setup = Setup::default();
    setup.config.auth.anonymous_read = false;
    setup.config.server.cors = Some(CorsConfig {
        allowed_origins: vec![PORTAL.into()],
        max_age: Some("10m".into()),
        ..CorsConfig::default()
    });
    TestServer::with(setup).await
}

fn preflight(s: &TestServer, origin: &str) -> reqwest::RequestBuilder {
    s.client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/resources", s.url),
        )
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_origin_reads_the_catalog() {
    let s = with_cors().await;
    // The preflight needs no token (a browser sends none) and is answered.
    let resp = preflight(&s, PORTAL).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], PORTAL);
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("GET"), "{methods}");
    let headers = h["access-control-allow-headers"].to_str().unwrap();
    assert!(headers.contains("authorization"), "{headers}");
    assert_eq!(h["access-control-max-age"], "600");
    // The request itself: the catalog, with the allow header.
    let resp = s
        .client
        .get(format!("{}/api/v1/resources", s.url))
        .header("origin", PORTAL)
        .bearer_auth("reader")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], PORTAL);
    let exposed = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("retry-after"), "{exposed}");
    // An error is readable by the app too (401 without a token here).
    let resp = s
        .client
        .get(format!("{}/api/v1/resources", s.url))
        .header("origin", PORTAL)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["access-control-allow-origin"], PORTAL);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_gets_no_allow_header() {
    let s = with_cors().await;
    let resp = preflight(&s, "https://evil.example.net")
        .send()
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    let resp = s
        .client
        .get(format!("{}/api/v1/resources", s.url))
        .header("origin", "https://evil.example.net")
        .bearer_auth("reader")
        .send()
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default() {
    let s = TestServer::start().await;
    let resp = preflight(&s, PORTAL).send().await.unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    // Without CORS, OPTIONS is a method the routes do not take.
    assert_eq!(resp.status(), 405);
    s.stop().await;
}

#[test]
fn an_origin_with_a_path_is_refused() {
    let mut setup = Setup::default();
    setup.config.server.cors = Some(CorsConfig {
        allowed_origins: vec!["https://portal.example.com/app".into()],
        ..CorsConfig::default()
    });
    let yaml = serde_yaml::to_string(&setup.config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nestor.yaml");
    std::fs::write(&path, yaml).unwrap();
    // Loading the file is fine (the key is known); starting a server with it is not.
    let config = nestor_server::Config::load(Some(&path), Vec::new()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store: std::sync::Arc<dyn nestor_core::Store> =
        std::sync::Arc::new(nestor_storage::MemoryStore::new());
    let result = rt.block_on(async {
        nestor_server::server::AppState::new(nestor_server::server::Parts {
            config,
            store,
            engines: std::sync::Arc::new(
                nestor_engines::EngineRegistry::new(Default::default()).unwrap(),
            ),
            executor: std::sync::Arc::new(
                nestor_storage::GitOpsExecutor::open(nestor_storage::GitOpsConfig::local(
                    dir.path().join("gitops"),
                ))
                .unwrap(),
            ),
            cache_dir: dir.path().join("sources"),
        })
    });
    let err = result.err().expect("refused");
    assert!(
        err.to_string().contains("server.cors.allowed_origins"),
        "{err}"
    );
}
