//! HTTPS for `nestor serve` (`server.tls`): rustls with the ring provider,
//! the certificate and key read from PEM files at start, TLS 1.2 and 1.3.
//! With `client_ca` every client must present a certificate that CA signed
//! (mutual TLS), checked during the handshake; with `client_cert_optional`
//! a client may present none, but one it presents must verify. The handshake runs inside
//! the transport's connection task (conn.rs), so the connection cap counts
//! it and `server.header_read_timeout` bounds it.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// The acceptor for `config`, `None` for plain HTTP; a bad file names its key.
pub(super) fn acceptor(config: Option<&TlsConfig>) -> anyhow::Result<Option<TlsAcceptor>> {
    let Some(config) = config else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&config.cert, "server.tls.cert")?;
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|e| {
        anyhow::anyhow!(
            "server.tls.key: no private key in {}: {e}",
            config.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("server.tls: the TLS provider")?;
    let builder = match &config.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(path, "server.tls.client_ca")? {
                roots.add(cert).map_err(|e| {
                    anyhow::anyhow!("server.tls.client_ca: {}: {e}", path.display())
                })?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if config.client_cert_optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| anyhow::anyhow!("server.tls.client_ca: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("server.tls: certificate and key do not fit: {e}"))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{key}: {}: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{key}: no PEM certificate in {}", path.display());
    }
    Ok(certs)
}
