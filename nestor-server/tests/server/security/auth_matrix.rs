//! Who a caller is, over HTTPS with mutual TLS (docs/src/operator/security.md):
//! a real server on 127.0.0.1 with certificates a CA made here signed,
//! static tokens, OIDC tokens from three issuers (an identity provider whose
//! key set is served on 127.0.0.1, GitHub-Actions-like and
//! Kubernetes-like issuers whose key sets are files) with RS256 and ES256
//! keys made here, and client certificates mapped by Common Name and by
//! URI SAN. Each case asserts the status and the error code a client sees.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use nestor_server::{ClientCertConfig, OidcConfig, TlsConfig};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType};
use reqwest::Method;
use serde_json::{json, Value};

use super::super::{code, definition, Setup, TestServer};
use super::tls::{write, Pki};

pub(super) const IDP: &str = "https://idp.example.test";
const GITHUB: &str = "https://token.actions.githubusercontent.com";
const K8S: &str = "https://kubernetes.default.svc.cluster.local";
const SPIFFE: &str = "spiffe://example.org/ns/platform/sa/publisher";

/// A signing key and the public half as a JWK named `kid`.
pub(super) struct SigningKey {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    pub(super) fn es256(kid: &str) -> SigningKey {
        let pair = KeyPair::generate().unwrap();
        let key = EncodingKey::from_ec_der(&pair.serialize_der());
        Self::named(Algorithm::ES256, kid, key)
    }

    fn rs256(kid: &str) -> SigningKey {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::Generate;
        let private = rsa::PrivateKey::generate();
        let der = private.to_pkcs1_der().unwrap();
        Self::named(
            Algorithm::RS256,
            kid,
            EncodingKey::from_rsa_der(der.as_bytes()),
        )
    }

    fn named(alg: Algorithm, kid: &str, key: EncodingKey) -> SigningKey {
        let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
        jwk.common.key_id = Some(kid.into());
        SigningKey {
            alg,
            kid: kid.into(),
            key,
            jwk,
        }
    }

    /// A token with `claims`, signed by this key under `kid` (its own by default).
    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

pub(super) fn jwks(keys: &[&SigningKey]) -> String {
    serde_json::to_string(&JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    })
    .unwrap()
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Claims of `iss` for `aud`, valid for an hour, with `extra` merged in.
fn claims(iss: &str, aud: &str, sub: &str, extra: Value) -> Value {
    let mut c = json!({"iss": iss, "aud": aud, "sub": sub, "iat": now(), "exp": now() + 3600});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// A JWKS served on 127.0.0.1: its answer can change, its fetches are counted.
pub(super) struct JwksServer {
    pub(super) url: String,
    answer: Arc<Mutex<(u16, String)>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub(super) async fn start(body: String) -> JwksServer {
        let answer = Arc::new(Mutex::new((200, body)));
        let hits = Arc::new(AtomicUsize::new(0));
        let (a, h) = (answer.clone(), hits.clone());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                h.fetch_add(1, Ordering::SeqCst);
                let (status, body) = a.lock().unwrap().clone();
                async move { (axum::http::StatusCode::from_u16(status).unwrap(), body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer { url, answer, hits }
    }

    fn set(&self, status: u16, body: String) {
        *self.answer.lock().unwrap() = (status, body);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

pub(super) fn oidc(issuer: &str, jwks: &str) -> OidcConfig {
    OidcConfig {
        issuer: issuer.into(),
        audience: "nestor".into(),
        jwks: jwks.into(),
        roles_claim: "groups".into(),
        role_map: Default::default(),
        team_claim: None,
        subject_claim: None,
        jwks_refetch_interval: "10s".into(),
    }
}

/// The three issuers: the IdP (ES256, served), GitHub-like (RS256, file:
/// `repository_owner` names the team), Kubernetes-like (ES256, file: the
/// namespace, a nested claim, names the team).
fn issuers(dir: &Path, idp_url: &str, github: &SigningKey, k8s: &SigningKey) -> Vec<OidcConfig> {
    let mut idp = oidc(IDP, idp_url);
    idp.role_map = [
        ("nestor-alpha".to_string(), vec!["team:alpha".to_string()]),
        ("nestor-admins".to_string(), vec!["admin".to_string()]),
    ]
    .into();
    // Fetched once, on first use: every later unknown kid is refused without a fetch.
    idp.jwks_refetch_interval = "1h".into();
    let mut gh = oidc(
        GITHUB,
        write(dir, "github.jwks", &jwks(&[github]))
            .to_str()
            .unwrap(),
    );
    gh.team_claim = Some("repository_owner".into());
    let mut kube = oidc(K8S, write(dir, "k8s.jwks", &jwks(&[k8s])).to_str().unwrap());
    kube.team_claim = Some("/kubernetes.io/namespace".into());
    vec![idp, gh, kube]
}

/// A client certificate with `cn` and, optionally, a URI SAN.
fn client_cert(ca: &Pki, cn: &str, uri: Option<&str>) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if let Some(uri) = uri {
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.ca, &ca.ca_key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn https_client(server_ca: &Pki, identity: (String, String)) -> reqwest::Client {
    server_ca.client(Some(identity))
}

/// What a case asks for.
#[derive(Clone, Copy, Debug)]
enum Ask {
    /// `GET /api/v1/resources` (anonymous reads allowed).
    Catalog,
    /// `GET /api/v1/teams/alpha/compositions`.
    ReadAlpha,
    /// `POST /api/v1/deployments` for team beta.
    DeployBeta,
    /// `POST /api/v1/resources`, a new version each time.
    Publish,
}

/// (case, certificate, bearer token, request, status, error code, what the message says).
type Case = (
    &'static str,
    Cert,
    Option<String>,
    Ask,
    u16,
    &'static str,
    &'static str,
);

/// Which client certificate a case's connection presents.
#[derive(Clone, Copy, Debug)]
enum Cert {
    /// Signed by the client CA, mapped to nothing.
    Unmapped,
    /// CN `alpha-ci.example`, mapped to `team:alpha`.
    AlphaCi,
    /// URI SAN [`SPIFFE`], mapped to `platform`.
    Spiffe,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_matrix_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca) = (Pki::new("server ca"), Pki::new("client ca"));
    let idp = SigningKey::es256("idp-1");
    let stranger = SigningKey::es256("idp-1"); // same kid, a key not in the JWKS
    let github = SigningKey::rs256("gh-1");
    let k8s = SigningKey::es256("k8s-1");
    let served = JwksServer::start(jwks(&[&idp])).await;

    let mut setup = Setup::default();
    let (cert, key) = server_ca.issue("nestor", &["127.0.0.1", "localhost"], false);
    setup.config.server.tls = Some(TlsConfig {
        cert: write(dir.path(), "server.pem", &cert),
        key: write(dir.path(), "server.key", &key),
        client_ca: Some(write(dir.path(), "client-ca.pem", &client_ca.ca.pem())),
        client_cert_optional: false,
    });
    setup.config.auth.client_certs = vec![
        ClientCertConfig {
            name: "alpha-ci".into(),
            subject: Some("alpha-ci.example".into()),
            san: None,
            roles: vec!["team:alpha".into()],
        },
        ClientCertConfig {
            name: "publisher".into(),
            subject: None,
            san: Some(SPIFFE.into()),
            roles: vec!["platform".into()],
        },
    ];
    setup.config.auth.oidc = issuers(dir.path(), &served.url, &github, &k8s);
    let s = TestServer::with(setup).await;
    let url = s.url.replacen("http://", "https://", 1);
    let clients = [
        https_client(&server_ca, client_cert(&client_ca, "someone.example", None)),
        https_client(
            &server_ca,
            client_cert(&client_ca, "alpha-ci.example", None),
        ),
        https_client(
            &server_ca,
            client_cert(&client_ca, "publisher", Some(SPIFFE)),
        ),
    ];

    let alpha_user = claims(
        IDP,
        "nestor",
        "ada@example.com",
        json!({"groups": ["staff", "nestor-alpha"]}),
    );
    let gh_alpha = claims(
        GITHUB,
        "nestor",
        "repo:alpha/web:ref:refs/heads/main",
        json!({"repository_owner": "alpha", "repository": "alpha/web"}),
    );
    let k8s_alpha = claims(
        K8S,
        "nestor",
        "system:serviceaccount:alpha:deployer",
        json!({"kubernetes.io": {"namespace": "alpha", "serviceaccount": {"name": "deployer"}}}),
    );
    let with = |base: &Value, extra: Value| {
        let mut c = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &alpha_user,
        &EncodingKey::from_secret(b"guessable").unwrap(),
    )
    .unwrap();

    // (case, certificate, bearer token, request, status, code, what the message says)
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("anonymous reads the catalog", Cert::Unmapped, None, Ask::Catalog, 200, "", ""),
        ("anonymous reads a team", Cert::Unmapped, None, Ask::ReadAlpha, 401, "UNAUTHORIZED", "needs a token"),
        ("static team token", Cert::Unmapped, Some("alpha".into()), Ask::ReadAlpha, 200, "", ""),
        ("unknown static token", Cert::Unmapped, Some("nope".into()), Ask::Catalog, 401, "UNAUTHORIZED", "unknown token"),
        ("OIDC token, group mapped to team:alpha", Cert::Unmapped, Some(idp.sign(&alpha_user)), Ask::ReadAlpha, 200, "", ""),
        ("OIDC token, groups as one string", Cert::Unmapped, Some(idp.sign(&with(&alpha_user, json!({"groups": "nestor-alpha"})))), Ask::ReadAlpha, 200, "", ""),
        ("GitHub Actions token, RS256, repository_owner", Cert::Unmapped, Some(github.sign(&gh_alpha)), Ask::ReadAlpha, 200, "", ""),
        ("Kubernetes service-account token, namespace", Cert::Unmapped, Some(k8s.sign(&k8s_alpha)), Ask::ReadAlpha, 200, "", ""),
        ("expired token", Cert::Unmapped, Some(idp.sign(&with(&alpha_user, json!({"exp": now() - 120})))), Ask::ReadAlpha, 401, "UNAUTHORIZED", "expired"),
        ("expired within the leeway", Cert::Unmapped, Some(idp.sign(&with(&alpha_user, json!({"exp": now() - 10})))), Ask::ReadAlpha, 200, "", ""),
        ("not valid yet", Cert::Unmapped, Some(idp.sign(&with(&alpha_user, json!({"nbf": now() + 600})))), Ask::ReadAlpha, 401, "UNAUTHORIZED", "not valid yet"),
        ("wrong audience", Cert::Unmapped, Some(idp.sign(&with(&alpha_user, json!({"aud": "someone-else"})))), Ask::ReadAlpha, 401, "UNAUTHORIZED", "audience"),
        ("wrong key, a known kid", Cert::Unmapped, Some(stranger.sign(&alpha_user)), Ask::ReadAlpha, 401, "UNAUTHORIZED", "signature"),
        ("unknown kid", Cert::Unmapped, Some(idp.sign_as("idp-9", &alpha_user)), Ask::ReadAlpha, 401, "UNAUTHORIZED", "no ES256 key \"idp-9\""),
        ("unknown issuer", Cert::Unmapped, Some(idp.sign(&with(&alpha_user, json!({"iss": "https://evil.example"})))), Ask::ReadAlpha, 401, "UNAUTHORIZED", "not one this server trusts"),
        ("a token claiming another issuer's key", Cert::Unmapped, Some(idp.sign_as("gh-1", &gh_alpha)), Ask::ReadAlpha, 401, "UNAUTHORIZED", "no ES256 key"),
        ("HS256 is not accepted", Cert::Unmapped, Some(hs256), Ask::ReadAlpha, 401, "UNAUTHORIZED", "alg"),
        ("valid token, no mapped role", Cert::Unmapped, Some(idp.sign(&with(&alpha_user, json!({"groups": ["marketing"]})))), Ask::Catalog, 403, "FORBIDDEN", "grants no role"),
        ("no subject", Cert::Unmapped, Some(idp.sign(&with(&alpha_user, json!({"sub": null})))), Ask::ReadAlpha, 401, "UNAUTHORIZED", "no sub claim"),
        ("team A OIDC token on team B's deployment", Cert::Unmapped, Some(idp.sign(&alpha_user)), Ask::DeployBeta, 403, "FORBIDDEN", "team \"beta\""),
        ("team A GitHub token on team B's deployment", Cert::Unmapped, Some(github.sign(&gh_alpha)), Ask::DeployBeta, 403, "FORBIDDEN", "team \"beta\""),
        ("team A static token on team B's deployment", Cert::Unmapped, Some("alpha".into()), Ask::DeployBeta, 403, "FORBIDDEN", "team \"beta\""),
        ("OIDC admin group publishes", Cert::Unmapped, Some(idp.sign(&with(&alpha_user, json!({"groups": ["nestor-admins"]})))), Ask::Publish, 201, "", ""),
        ("mapped certificate (CN) reads its team", Cert::AlphaCi, None, Ask::ReadAlpha, 200, "", ""),
        ("mapped certificate on team B's deployment", Cert::AlphaCi, None, Ask::DeployBeta, 403, "FORBIDDEN", "team \"beta\""),
        ("mapped certificate may not publish", Cert::AlphaCi, None, Ask::Publish, 403, "FORBIDDEN", "platform"),
        ("the header wins over the certificate", Cert::AlphaCi, Some("beta".into()), Ask::ReadAlpha, 403, "FORBIDDEN", "team \"alpha\""),
        ("a bad header is refused despite the certificate", Cert::AlphaCi, Some("nope".into()), Ask::ReadAlpha, 401, "UNAUTHORIZED", "unknown token"),
        ("mapped certificate (URI SAN) publishes", Cert::Spiffe, None, Ask::Publish, 201, "", ""),
        ("mapped certificate (URI SAN) reads no team", Cert::Spiffe, None, Ask::ReadAlpha, 403, "FORBIDDEN", ""),
        ("unmapped certificate is anonymous", Cert::Unmapped, None, Ask::Publish, 401, "UNAUTHORIZED", ""),
    ];
    let mut published = 0;
    let mut failures = Vec::new();
    for (case, cert, token, ask, status, error, says) in &cases {
        let client = &clients[*cert as usize];
        let mut req = match ask {
            Ask::Catalog => client.get(format!("{url}/api/v1/resources")),
            Ask::ReadAlpha => client.get(format!("{url}/api/v1/teams/alpha/compositions")),
            Ask::DeployBeta => client
                .post(format!("{url}/api/v1/deployments"))
                .json(&json!({"team": "beta", "environment": "dev", "name": "svc", "resources": [{"name": "q", "catalog_ref": "aws-sqs-queue:1.1.0", "config": {}}]})),
            Ask::Publish => {
                published += 1;
                client
                    .post(format!("{url}/api/v1/resources"))
                    .header("content-type", "application/yaml")
                    .body(definition("matrix", &format!("1.{published}.0"), "matrix", &[]))
            }
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let got = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        let code_ok = error.is_empty() || code(&body) == *error;
        if got != *status || !code_ok || !message.contains(says) {
            failures.push(format!(
                "{case}: expected {status} {error} ~{says:?}, got {got} {body}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The served key set was fetched once: unknown kids did not fetch it again.
    assert_eq!(served.hits(), 1);
    // OIDC callers and certificates are audited under their subject or name.
    let admin = &clients[0];
    let trail = |actor: &str| {
        admin
            .get(format!("{url}/api/v1/audit"))
            .query(&[("actor", actor)])
            .bearer_auth("admin")
            .send()
    };
    let denied: Value = trail("ada@example.com")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = denied["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|r| r["actor"]["roles"] == json!(["team:alpha"])),
        "{denied}"
    );
    let publisher: Value = trail("publisher").await.unwrap().json().await.unwrap();
    assert!(
        !publisher["items"].as_array().unwrap().is_empty(),
        "{publisher}"
    );
    s.stop().await;
}

/// An issuer's keys rotate: a new `kid` fetches the set again (at most once
/// per `jwks_refetch_interval`), a removed key stops working, and an
/// unreachable key set is a 401 that says so, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_and_bounded_refetches() {
    let (old, new) = (SigningKey::es256("k-1"), SigningKey::rs256("k-2"));
    let served = JwksServer::start(jwks(&[&old])).await;
    let mut setup = Setup::default();
    let mut idp = oidc(IDP, &served.url);
    idp.role_map = [("nestor-readers".to_string(), vec!["reader".to_string()])].into();
    idp.jwks_refetch_interval = "1s".into();
    setup.config.auth.oidc = vec![idp];
    let s = TestServer::with(setup).await;
    let user = claims(
        IDP,
        "nestor",
        "bob@example.com",
        json!({"groups": ["nestor-readers"]}),
    );
    let read = |token: String| {
        let s = &s;
        async move {
            s.send(
                Method::GET,
                "/api/v1/teams/alpha/compositions",
                Some(&token),
                None,
            )
            .await
        }
    };
    assert_eq!(read(old.sign(&user)).await.0, 200);
    assert_eq!(served.hits(), 1);
    // Rotation: the set now holds only the new key.
    served.set(200, jwks(&[&new]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = read(new.sign(&user)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.hits(), 2);
    // Unknown kids right after a fetch do not fetch again.
    for i in 0..5 {
        let (status, body) = read(new.sign_as(&format!("k-x{i}"), &user)).await;
        assert_eq!(
            (status.as_u16(), code(&body)),
            (401, "UNAUTHORIZED"),
            "{body}"
        );
    }
    assert_eq!(served.hits(), 2);
    // The removed key is no longer accepted.
    let (status, body) = read(old.sign(&user)).await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (401, "UNAUTHORIZED"),
        "{body}"
    );
    // The key set's server fails: a clear 401.
    served.set(500, "down".into());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = read(new.sign_as("k-3", &user)).await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (401, "UNAUTHORIZED"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be fetched"),
        "{body}"
    );
    // Until the next fetch, a refused token says the last one failed.
    let (status, body) = read(new.sign_as("k-4", &user)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the last fetch of its keys failed"),
        "{body}"
    );
    // Keys already cached still work while it is down.
    assert_eq!(read(new.sign(&user)).await.0, 200);
    s.stop().await;
}
