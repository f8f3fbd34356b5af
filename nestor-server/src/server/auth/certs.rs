//! Client certificates as callers (`auth.client_certs`): a service calling
//! over mutual TLS is known by its certificate instead of a bearer token.
//!
//! The TLS handshake has already verified the certificate against
//! `server.tls.client_ca` (tls.rs); the connection (conn.rs) parses the
//! leaf once into a [`PeerIdentity`] and every request on it carries that.
//! Here the identity is matched against the configured entries, in their
//! order: `subject` against each Common Name of the certificate's subject,
//! `san` against each DNS name and URI of its subject alternative names,
//! both compared exactly. The first entry that matches is the principal.

use std::collections::HashSet;
use std::sync::Arc;

use x509_parser::extensions::GeneralName;

use super::{parse_roles, Principal};
use crate::config::ClientCertConfig;

/// What the server knows of the certificate a client presented.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The Common Names (`CN`) of its subject.
    pub common_names: Vec<String>,
    /// Its subject alternative names that are DNS names or URIs.
    pub sans: Vec<String>,
}

impl PeerIdentity {
    /// Parses a verified leaf certificate (DER); `None` when it cannot be
    /// read (then the caller is treated as presenting no certificate).
    pub fn from_der(der: &[u8]) -> Option<PeerIdentity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect();
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(n) | GeneralName::URI(n) => sans.push(n.to_string()),
                    _ => {}
                }
            }
        }
        Some(PeerIdentity { common_names, sans })
    }
}

/// What a certificate is matched on.
#[derive(Debug)]
enum Match {
    Subject(String),
    San(String),
}

/// `auth.client_certs`, parsed, in configuration order.
#[derive(Debug, Default)]
pub(super) struct CertMap {
    entries: Vec<(Match, Arc<Principal>)>,
}

impl CertMap {
    /// Checks every entry: a name, exactly one of `subject` and `san`,
    /// known roles, no identity mapped twice.
    pub(super) fn from_config(config: &[ClientCertConfig]) -> anyhow::Result<CertMap> {
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        for (i, c) in config.iter().enumerate() {
            let key = format!("auth.client_certs[{i}]");
            if c.name.trim().is_empty() {
                anyhow::bail!("{key}.name must not be empty");
            }
            let matched = match (&c.subject, &c.san) {
                (Some(s), None) if !s.is_empty() => Match::Subject(s.clone()),
                (None, Some(s)) if !s.is_empty() => Match::San(s.clone()),
                _ => anyhow::bail!(
                    "{key} ({}): set exactly one of subject (the Common Name) and san (a DNS name or URI), not empty",
                    c.name
                ),
            };
            if !seen.insert(format!("{matched:?}")) {
                anyhow::bail!("{key} ({}): {matched:?} is mapped twice", c.name);
            }
            let roles = parse_roles(&format!("{key}.roles"), &c.roles)?;
            entries.push((matched, Arc::new(roles.principal(&c.name))));
        }
        Ok(CertMap { entries })
    }

    /// The principal of the first entry `peer` matches.
    pub(super) fn lookup(&self, peer: &PeerIdentity) -> Option<Arc<Principal>> {
        self.entries.iter().find_map(|(m, p)| {
            let hit = match m {
                Match::Subject(cn) => peer.common_names.iter().any(|c| c == cn),
                Match::San(san) => peer.sans.iter().any(|s| s == san),
            };
            hit.then(|| p.clone())
        })
    }
}
