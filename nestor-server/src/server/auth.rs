//! Bearer tokens and roles (docs/src/operator/security.md).
//!
//! Tokens live in the configuration as hex SHA-256 hashes, so the file never
//! holds a usable secret. Roles: `admin` (everything), `platform` (catalog
//! writes, sync, yank), `team:<name>` (that team's compositions and
//! deployments), `reader` (reads everything, writes nothing). Catalog reads
//! may be anonymous (`auth.anonymous_read`); every write needs a token.
//! A team token never sees another team's compositions or deployments:
//! listings are filtered to its teams, and a direct read is `FORBIDDEN`.
//!
//! Besides static tokens, a caller may be a client certificate mapped to
//! roles (certs.rs) or the subject of a JWT from a configured OpenID
//! Connect issuer (oidc.rs); all three end as the same [`Principal`], with
//! roles read by the one [`parse_roles`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use nestor_core::Error;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AppState;
use crate::config::AuthConfig;

mod certs;
mod oidc;
pub use certs::PeerIdentity;
pub(super) use oidc::Pending;

/// Who is calling, attached to every request by [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No `Authorization` header (and no mapped client certificate).
    Anonymous,
    /// A known token, a mapped client certificate or a valid OIDC token.
    Token {
        /// The token's or certificate's name from the configuration, or the
        /// OIDC token's subject (logged, never the token).
        name: String,
        /// Whether it has `admin`.
        admin: bool,
        /// Whether it has `platform`.
        platform: bool,
        /// Whether it has `reader`.
        reader: bool,
        /// The teams of its `team:<name>` roles.
        teams: BTreeSet<String>,
    },
}

/// The roles a token, certificate or OIDC claim grants, parsed by
/// [`parse_roles`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Roles {
    admin: bool,
    platform: bool,
    reader: bool,
    teams: BTreeSet<String>,
}

impl Roles {
    /// Whether it grants nothing.
    fn is_empty(&self) -> bool {
        !self.admin && !self.platform && !self.reader && self.teams.is_empty()
    }

    /// Adds what `other` grants.
    fn merge(&mut self, other: &Roles) {
        self.admin |= other.admin;
        self.platform |= other.platform;
        self.reader |= other.reader;
        self.teams.extend(other.teams.iter().cloned());
    }

    /// The principal `name` holding these roles.
    fn principal(self, name: &str) -> Principal {
        Principal::Token {
            name: name.to_string(),
            admin: self.admin,
            platform: self.platform,
            reader: self.reader,
            teams: self.teams,
        }
    }
}

/// Parses `roles`, the one place roles are read for tokens, client
/// certificates and OIDC role maps; an unknown role is an error naming
/// `key` (the configuration key it came from).
pub(super) fn parse_roles(key: &str, roles: &[String]) -> anyhow::Result<Roles> {
    let mut parsed = Roles::default();
    for role in roles {
        match role.as_str() {
            "admin" => parsed.admin = true,
            "platform" => parsed.platform = true,
            "reader" => parsed.reader = true,
            other => match other.strip_prefix("team:") {
                Some(team) if nestor_core::is_valid_name(team) => {
                    parsed.teams.insert(team.to_string());
                }
                _ => anyhow::bail!(
                    "{key}: unknown role {other:?} (admin, platform, reader, team:<name>)"
                ),
            },
        }
    }
    Ok(parsed)
}

/// Everything that tells who a caller is: static tokens by hash, client
/// certificates, OIDC issuers.
#[derive(Debug)]
pub(super) struct Auth {
    /// SHA-256 → principal.
    tokens: HashMap<[u8; 32], Arc<Principal>>,
    /// `auth.client_certs`.
    certs: certs::CertMap,
    /// `auth.oidc`, by issuer.
    oidc: oidc::Issuers,
    /// `auth.anonymous_read`.
    anonymous_read: bool,
    /// The one anonymous principal every request without a token shares.
    anonymous: Arc<Principal>,
}

/// Who a request is from, as far as can be told without waiting.
pub(super) enum Lookup {
    /// Known now (or refused now).
    Known(Result<Arc<Principal>, Error>),
    /// A JWT whose key is not cached: known once its issuer's keys are fetched.
    Fetch(Box<oidc::Pending>),
}

/// Hex SHA-256 of a token: what `auth.tokens[].sha256` holds.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random token (`nst_` and 48 hex digits).
pub fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no entropy for a token: {e}"))?;
    Ok(format!("nst_{}", hex::encode(bytes)))
}

impl Auth {
    /// Everything `auth:` says, checked; a bad entry is an error naming its key.
    pub(super) fn from_config(config: &AuthConfig) -> anyhow::Result<Auth> {
        let mut tokens = HashMap::new();
        for t in &config.tokens {
            let hash = t.sha256.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!(
                    "auth.tokens[{}].sha256 must be 64 hex digits (the SHA-256 of the token)",
                    t.name
                );
            }
            let roles = parse_roles(&format!("auth.tokens[{}]", t.name), &t.roles)?;
            let mut key = [0u8; 32];
            hex::decode_to_slice(&hash, &mut key)?;
            tokens.insert(key, Arc::new(roles.principal(&t.name)));
        }
        Ok(Auth {
            tokens,
            certs: certs::CertMap::from_config(&config.client_certs)?,
            oidc: oidc::Issuers::from_config(&config.oidc)?,
            anonymous_read: config.anonymous_read,
            anonymous: Arc::new(Principal::Anonymous),
        })
    }

    /// Who sends `header` (the `Authorization` value, `None` when absent)
    /// over a connection whose client presented `peer` (a verified
    /// certificate). The header wins: a static token, else a JWT of a
    /// configured issuer; an unknown token is 401 on every route, even
    /// one that anonymous callers may use. Without a header a mapped
    /// certificate is its principal and an unmapped one anonymous.
    pub(super) fn principal(&self, header: Option<&str>, peer: Option<&PeerIdentity>) -> Lookup {
        let Some(value) = header else {
            let mapped = peer.and_then(|p| self.certs.lookup(p));
            return Lookup::Known(Ok(mapped.unwrap_or_else(|| self.anonymous.clone())));
        };
        let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Lookup::Known(Err(Error::Unauthorized {
                message: "the Authorization header must be `Bearer <token>`".into(),
            }));
        };
        // Hash first: the lookup compares hashes, never the secret itself.
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(p) = self.tokens.get(&hash) {
            return Lookup::Known(Ok(p.clone()));
        }
        if !self.oidc.is_empty() && oidc::looks_like_jwt(token) {
            return self.oidc.lookup(token);
        }
        Lookup::Known(Err(Error::Unauthorized {
            message: "unknown token".into(),
        }))
    }
}

/// Who a request comes from, in one request extension: the client's
/// address and verified certificate, attached by the transport
/// (conn.rs), and the principal the front layer found for them
/// (front.rs). One extension rather than one per fact: each is a box in a
/// hash map the request carries, and a fourth extension made that map
/// grow on every request (benches/README.md, server).
#[derive(Debug, Clone, Default)]
pub(super) struct Origin {
    /// The client's address: anonymous callers' rate-limit key and the
    /// audit records' client.
    pub(super) ip: Option<std::net::IpAddr>,
    /// The client certificate verified in the TLS handshake, parsed once
    /// per connection (certs.rs).
    pub(super) identity: Option<Arc<PeerIdentity>>,
    /// The caller, once the front layer admitted the request.
    pub(super) principal: Option<Arc<Principal>>,
}

impl Origin {
    /// The origin attached to `extensions`, if any.
    pub(super) fn of(extensions: &axum::http::Extensions) -> Option<&Origin> {
        extensions.get::<Origin>()
    }

    /// Attaches the caller the front layer found, to the transport's
    /// origin (or to a new one when the request came without).
    pub(super) fn admit(extensions: &mut axum::http::Extensions, principal: Arc<Principal>) {
        match extensions.get_mut::<Origin>() {
            Some(origin) => origin.principal = Some(principal),
            None => {
                extensions.insert(Origin {
                    principal: Some(principal),
                    ..Origin::default()
                });
            }
        }
    }
}

/// The caller of a request, as an extractor.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller(
            Origin::of(&parts.extensions)
                .and_then(|o| o.principal.clone())
                .unwrap_or_else(|| Arc::new(Principal::Anonymous)),
        ))
    }
}

fn unauthorized() -> ApiError {
    Error::Unauthorized {
        message: "this needs a token: send `Authorization: Bearer <token>`".into(),
    }
    .into()
}

fn forbidden(what: impl std::fmt::Display) -> ApiError {
    Error::Forbidden {
        message: format!("this token may not {what}"),
    }
    .into()
}

impl Caller {
    /// Catalog reads: anonymous when allowed, else any token.
    pub fn read_catalog(&self, state: &AppState) -> Result<(), ApiError> {
        match &*self.0 {
            // A token caller never loads the access again; an anonymous one
            // reads the flag of the current reload.
            Principal::Anonymous if !state.access().auth.anonymous_read => Err(unauthorized()),
            _ => Ok(()),
        }
    }

    /// Catalog writes, syncs and yanks: `platform` or `admin`.
    pub fn write_catalog(&self) -> Result<(), ApiError> {
        match &*self.0 {
            Principal::Anonymous => Err(unauthorized()),
            Principal::Token {
                admin, platform, ..
            } if *admin || *platform => Ok(()),
            Principal::Token { .. } => {
                Err(forbidden("change the catalog (needs the platform role)"))
            }
        }
    }

    /// Whether the caller may read `team`'s compositions and deployments.
    pub fn sees_team(&self, team: &str) -> bool {
        match &*self.0 {
            Principal::Anonymous => false,
            Principal::Token {
                admin,
                reader,
                teams,
                ..
            } => *admin || *reader || teams.contains(team),
        }
    }

    /// Reads of a team's compositions and deployments.
    pub fn read_team(&self, team: &str) -> Result<(), ApiError> {
        match &*self.0 {
            Principal::Anonymous => Err(unauthorized()),
            _ if self.sees_team(team) => Ok(()),
            _ => Err(forbidden(format_args!("read team {team:?}"))),
        }
    }

    /// Writes to a team's compositions and deployments: `team:<team>` or `admin`.
    pub fn write_team(&self, team: &str) -> Result<(), ApiError> {
        match &*self.0 {
            Principal::Anonymous => Err(unauthorized()),
            Principal::Token { admin, teams, .. } if *admin || teams.contains(team) => Ok(()),
            Principal::Token { .. } => Err(forbidden(format_args!("change team {team:?}"))),
        }
    }

    /// Before reading a body that names its team: the caller must hold a
    /// token that may write some team (`admin` or a `team:` role), so an
    /// anonymous caller gets 401 and a reader or platform token 403 at
    /// once, without the server reading the body.
    pub fn may_write_some_team(&self) -> Result<(), ApiError> {
        match &*self.0 {
            Principal::Anonymous => Err(unauthorized()),
            Principal::Token { admin, teams, .. } if *admin || !teams.is_empty() => Ok(()),
            Principal::Token { .. } => Err(forbidden("change any team (needs a team: role)")),
        }
    }

    /// Before reading a plan request: any token (every token may read some
    /// team: admin and reader all, a team token its own).
    pub fn may_read_some_team(&self) -> Result<(), ApiError> {
        match &*self.0 {
            Principal::Anonymous => Err(unauthorized()),
            Principal::Token {
                admin,
                reader,
                teams,
                ..
            } if *admin || *reader || !teams.is_empty() => Ok(()),
            Principal::Token { .. } => Err(forbidden("read any team's deployments")),
        }
    }

    /// The teams a listing is restricted to: `None` for every team.
    pub fn team_scope(&self) -> Result<Option<BTreeSet<String>>, ApiError> {
        match &*self.0 {
            Principal::Anonymous => Err(unauthorized()),
            Principal::Token { admin, reader, .. } if *admin || *reader => Ok(None),
            Principal::Token { teams, .. } => Ok(Some(teams.clone())),
        }
    }

    /// The token's name for event sources and logs (`api` when anonymous).
    pub fn actor(&self) -> String {
        match &*self.0 {
            Principal::Anonymous => "api".into(),
            Principal::Token { name, .. } => format!("api:{name}"),
        }
    }
}
