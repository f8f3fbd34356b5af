//! TLS: a real server behind TLS on 127.0.0.1 whose certificate a private
//! CA signed (tests/data/tls). The client trusts it only when given that CA
//! with `ca_cert`, on top of the system's roots.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use nestor_client::Client;
use nestor_core::{ErrorCode, Store};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::{root, state};

fn data(file: &str) -> std::path::PathBuf {
    root().join("nestor-client/tests/data/tls").join(file)
}

/// The server's router behind TLS on `127.0.0.1:0`; answers its `https://` URL.
async fn tls_server(dir: &std::path::Path) -> String {
    let certs = CertificateDer::pem_file_iter(data("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(data("server.key")).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let store: Arc<dyn Store> = Arc::new(nestor_storage::MemoryStore::new());
    let router = nestor_server::server::router(state(store, false, dir));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                    .await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_signed_by_a_private_ca_is_trusted_only_with_ca_cert() {
    let dir = tempfile::tempdir().unwrap();
    let url = tls_server(dir.path()).await;

    let trusting = Client::builder(&url)
        .ca_cert(std::fs::read(data("ca.pem")).unwrap())
        .token("reader")
        .build()
        .unwrap();
    trusting.health().await.unwrap();
    let status = trusting.status().await.unwrap();
    assert_eq!(status.last_event, 0);
    // An API error arrives decoded over TLS like over plain HTTP.
    let missing = trusting.latest("no-such-thing").await.unwrap_err();
    assert_eq!(missing.code(), ErrorCode::ResourceNotFound);

    // Without the CA the certificate is refused: a transport failure, not
    // an answer, and the error says where.
    let wary = Client::builder(&url).retries(0).build().unwrap();
    let refused = wary.health().await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::StorageUnavailable);
    assert!(refused.to_string().contains(&url), "{refused}");
    let mut causes = String::new();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&refused);
    while let Some(c) = cause {
        causes.push_str(&format!("{c}; "));
        cause = c.source();
    }
    assert!(causes.contains("certificate"), "{causes}");
}
