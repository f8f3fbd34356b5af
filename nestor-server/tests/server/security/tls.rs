//! `server.tls`: the server speaks HTTPS with a certificate a private CA
//! (made in the test with rcgen) signed; nestor-client trusts it with
//! `ca_cert`; with `client_ca` a client must present a certificate that CA
//! signed (mutual TLS).

use std::path::Path;
use std::time::Duration;

use nestor_server::TlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use super::super::{Setup, TestServer};

/// A CA and what it signs, as PEM.
pub(super) struct Pki {
    pub(super) ca: rcgen::Certificate,
    pub(super) ca_key: KeyPair,
}

impl Pki {
    pub(super) fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }

    /// (certificate PEM, key PEM) for `names`, for a server or a client.
    pub(super) fn issue(&self, cn: &str, names: &[&str], client: bool) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// An HTTPS client that trusts this CA's servers, presenting
    /// `identity` (certificate PEM, key PEM) when given.
    pub(super) fn client(&self, identity: Option<(String, String)>) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).unwrap();
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(10))
            .add_root_certificate(ca);
        if let Some((cert, key)) = identity {
            b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
        }
        b.build().unwrap()
    }
}

pub(super) fn write(dir: &Path, file: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

/// A server behind TLS; answers it and its `https://` URL.
async fn https_server(dir: &Path, pki: &Pki, client_ca: Option<&Pki>) -> (TestServer, String) {
    let (cert, key) = pki.issue("nestor", &["127.0.0.1", "localhost"], false);
    let mut setup = Setup::default();
    setup.config.server.tls = Some(TlsConfig {
        cert: write(dir, "server.pem", &cert),
        key: write(dir, "server.key", &key),
        client_ca: client_ca.map(|ca| write(dir, "client-ca.pem", &ca.ca.pem())),
        client_cert_optional: false,
    });
    let s = TestServer::with(setup).await;
    let url = s.url.replacen("http://", "https://", 1);
    (s, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("test ca");
    let (s, url) = https_server(dir.path(), &pki, None).await;
    let client = nestor_client::Client::builder(&url)
        .ca_cert(pki.ca.pem())
        .token("reader")
        .build()
        .unwrap();
    client.health().await.unwrap();
    let found = client.latest("aws-rds-postgres").await.unwrap();
    assert_eq!(found.definition.metadata.name, "aws-rds-postgres");
    // An API error travels over TLS with its code.
    let missing = client.latest("no-such-thing").await.unwrap_err();
    assert_eq!(missing.code(), nestor_core::ErrorCode::ResourceNotFound);
    // Without the CA the server's certificate is not trusted.
    let wary = nestor_client::Client::builder(&url)
        .retries(0)
        .build()
        .unwrap();
    assert!(wary.health().await.is_err());
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(plain.get(format!("{}/health", s.url)).send().await.is_err());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_certificate_from_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server_pki = Pki::new("server ca");
    let clients = Pki::new("client ca");
    let (s, url) = https_server(dir.path(), &server_pki, Some(&clients)).await;
    let client = |identity| server_pki.client(identity);
    let health = format!("{url}/health");
    // A certificate the client CA signed: served.
    let ok = client(Some(clients.issue("ci-runner", &[], true)));
    assert_eq!(ok.get(&health).send().await.unwrap().status(), 200);
    let resources = ok
        .get(format!("{url}/api/v1/resources"))
        .bearer_auth("reader")
        .send()
        .await
        .unwrap();
    assert_eq!(resources.status(), 200);
    // No certificate, or one another CA signed: the handshake fails.
    assert!(client(None).get(&health).send().await.is_err());
    let stranger = Pki::new("other ca").issue("intruder", &[], true);
    assert!(client(Some(stranger)).get(&health).send().await.is_err());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_admit_token_callers() {
    let dir = tempfile::tempdir().unwrap();
    let server_pki = Pki::new("server ca");
    let clients = Pki::new("client ca");
    let (cert, key) = server_pki.issue("nestor", &["127.0.0.1"], false);
    let mut setup = Setup::default();
    setup.config.server.tls = Some(TlsConfig {
        cert: write(dir.path(), "server.pem", &cert),
        key: write(dir.path(), "server.key", &key),
        client_ca: Some(write(dir.path(), "client-ca.pem", &clients.ca.pem())),
        client_cert_optional: true,
    });
    setup.config.auth.client_certs = vec![nestor_server::ClientCertConfig {
        name: "alpha-ci".into(),
        subject: Some("alpha-ci".into()),
        san: None,
        roles: vec!["team:alpha".into()],
    }];
    let s = TestServer::with(setup).await;
    let url = s.url.replacen("http://", "https://", 1);
    let client = |identity| server_pki.client(identity);
    let team = format!("{url}/api/v1/teams/alpha/compositions");
    // No certificate: a token caller is served, an anonymous one is anonymous.
    let bare = client(None);
    let with_token = bare.get(&team).bearer_auth("alpha").send().await.unwrap();
    assert_eq!(with_token.status(), 200);
    assert_eq!(bare.get(&team).send().await.unwrap().status(), 401);
    // A mapped certificate is its principal.
    let mapped = client(Some(clients.issue("alpha-ci", &[], true)));
    assert_eq!(mapped.get(&team).send().await.unwrap().status(), 200);
    // A certificate another CA signed is still refused in the handshake.
    let stranger = client(Some(Pki::new("other ca").issue("alpha-ci", &[], true)));
    assert!(stranger.get(&team).send().await.is_err());
    s.stop().await;
}

#[test]
fn a_missing_certificate_file_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Setup::default().config;
    config.server.tls = Some(TlsConfig {
        cert: dir.path().join("missing.pem"),
        key: dir.path().join("missing.key"),
        client_ca: None,
        client_cert_optional: false,
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let parts = nestor_server::server::Parts {
        config,
        store: std::sync::Arc::new(nestor_storage::MemoryStore::new()),
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
    };
    let err = rt
        .block_on(async { nestor_server::server::AppState::new(parts) })
        .err()
        .expect("refused");
    assert!(err.to_string().contains("server.tls.cert"), "{err}");
}
