//! `auth.client_certs` and `auth.oidc` entries the server refuses to start
//! with, each error naming the key at fault (docs/src/operator/security.md).

use std::sync::Arc;

use nestor_server::{ClientCertConfig, OidcConfig, TlsConfig};

use super::super::Setup;
use super::auth_matrix::{jwks, oidc, SigningKey, IDP};
use super::tls::write;

#[test]
fn client_certs_without_a_client_ca_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nestor.yaml");
    std::fs::write(
        &path,
        "auth:\n  client_certs:\n    - {name: ci, subject: ci.example, roles: [platform]}\n",
    )
    .unwrap();
    let err = nestor_server::Config::load(Some(&path), Vec::new()).unwrap_err();
    assert!(
        err.to_string()
            .contains("auth.client_certs needs server.tls.client_ca"),
        "{err}"
    );
}

/// Why `AppState::new` refuses `config`.
pub(super) fn start_error(config: nestor_server::Config) -> String {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let parts = nestor_server::server::Parts {
        config,
        store: Arc::new(nestor_storage::MemoryStore::new()),
        engines: Arc::new(nestor_engines::EngineRegistry::new(Default::default()).unwrap()),
        executor: Arc::new(
            nestor_storage::GitOpsExecutor::open(nestor_storage::GitOpsConfig::local(
                dir.path().join("gitops"),
            ))
            .unwrap(),
        ),
        cache_dir: dir.path().join("sources"),
    };
    rt.block_on(async { nestor_server::server::AppState::new(parts) })
        .err()
        .expect("refused")
        .to_string()
}

#[test]
fn a_bad_identity_entry_is_refused_at_start_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = || {
        let mut config = Setup::default().config;
        config.server.tls = Some(TlsConfig {
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
            client_ca: Some(dir.path().join("ca.pem")),
            client_cert_optional: false,
        });
        config
    };
    let mut both = base();
    both.auth.client_certs = vec![ClientCertConfig {
        name: "ci".into(),
        subject: Some("ci.example".into()),
        san: Some("spiffe://example.org/ci".into()),
        roles: vec!["platform".into()],
    }];
    let mut twice = base();
    let entry = ClientCertConfig {
        name: "ci".into(),
        subject: Some("ci.example".into()),
        san: None,
        roles: vec!["platform".into()],
    };
    twice.auth.client_certs = vec![entry.clone(), entry.clone()];
    let mut bad_role = base();
    bad_role.auth.client_certs = vec![ClientCertConfig {
        roles: vec!["root".into()],
        ..entry
    }];
    let jwks_file = write(dir.path(), "keys.jwks", &jwks(&[&SigningKey::es256("k")]));
    let not_jwks = write(dir.path(), "keys.txt", "hello");
    let issuer = |edit: &dyn Fn(&mut OidcConfig)| {
        let mut config = base();
        let mut o = oidc(IDP, jwks_file.to_str().unwrap());
        o.role_map = [("g".to_string(), vec!["reader".to_string()])].into();
        edit(&mut o);
        config.auth.oidc = vec![o];
        config
    };
    let cases = [
        (
            both,
            "auth.client_certs[0] (ci): set exactly one of subject",
        ),
        (
            twice,
            "auth.client_certs[1] (ci): Subject(\"ci.example\") is mapped twice",
        ),
        (
            bad_role,
            "auth.client_certs[0].roles: unknown role \"root\"",
        ),
        (
            issuer(&|o| o.role_map = [("g".to_string(), vec!["superuser".to_string()])].into()),
            "auth.oidc[0].role_map[\"g\"]: unknown role \"superuser\"",
        ),
        (
            issuer(&|o| o.role_map.clear()),
            "auth.oidc[0] (https://idp.example.test): set role_map or team_claim",
        ),
        (
            issuer(&|o| o.jwks = "/no/such/keys.json".into()),
            "auth.oidc[0].jwks: /no/such/keys.json",
        ),
        (
            issuer(&|o| o.jwks = not_jwks.display().to_string()),
            "not a JSON Web Key Set",
        ),
        (
            issuer(&|o| o.jwks_refetch_interval = "soon".into()),
            "auth.oidc[0].jwks_refetch_interval",
        ),
    ];
    for (config, says) in cases {
        let err = start_error(config);
        assert!(err.contains(says), "expected {says:?} in: {err}");
    }
}
