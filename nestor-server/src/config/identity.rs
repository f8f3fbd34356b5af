//! The `auth:` keys that say who a caller is besides a static token: client
//! certificates mapped to roles (`auth.client_certs`, for services calling
//! over mutual TLS) and OpenID Connect issuers whose signed JWTs are
//! accepted as bearer tokens (`auth.oidc`). Kept apart from the token list
//! because each names an outside authority (a CA, an identity provider)
//! the operator trusts. How they are checked: server/auth/.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One client certificate identity (`auth.client_certs[]`), matched
/// against the certificate a client presented in the TLS handshake, after
/// the handshake verified it against `server.tls.client_ca`. Exactly one
/// of `subject` and `san` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientCertConfig {
    /// Who the certificate stands for: the actor in logs, events and the
    /// audit trail, and the rate-limit key.
    pub name: String,
    /// The certificate's subject Common Name (`CN`), compared exactly
    /// (case-sensitive, whole value).
    #[serde(default)]
    pub subject: Option<String>,
    /// A DNS name or URI (e.g. a SPIFFE ID) among the certificate's
    /// subject alternative names, compared exactly.
    #[serde(default)]
    pub san: Option<String>,
    /// `admin`, `platform`, `team:<name>`, `reader`.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// One OpenID Connect issuer (`auth.oidc[]`): a bearer token that is a JWT
/// whose `iss` claim is this `issuer` is checked against its keys and
/// mapped to roles through its claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` claim, exactly (`https://token.actions.githubusercontent.com`).
    pub issuer: String,
    /// The `aud` claim the token must carry (one of its values when it is a list).
    pub audience: String,
    /// The issuer's signing keys (a JSON Web Key Set): an `https://` or
    /// `http://` URL, or a file path.
    pub jwks: String,
    /// The claim whose value (a string or a list of strings) is looked up
    /// in `role_map` (default `groups`). A name starting with `/` is a JSON
    /// pointer into nested claims (`/kubernetes.io/namespace`).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// A value of `roles_claim` → the roles it grants.
    #[serde(default)]
    pub role_map: BTreeMap<String, Vec<String>>,
    /// A claim whose value(s) each grant `team:<value>` directly
    /// (`repository_owner` for GitHub Actions); same naming as `roles_claim`.
    #[serde(default)]
    pub team_claim: Option<String>,
    /// The claim naming the caller, the actor in logs and the audit trail
    /// (default `sub`).
    #[serde(default)]
    pub subject_claim: Option<String>,
    /// After fetching the keys, a token with an unknown key id fetches
    /// them again at most this often (`10s`).
    #[serde(default = "default_refetch")]
    pub jwks_refetch_interval: String,
}

fn default_roles_claim() -> String {
    "groups".into()
}

fn default_refetch() -> String {
    "10s".into()
}
