//! OpenID Connect bearer tokens (`auth.oidc`): a JWT signed by a
//! configured issuer (GitHub Actions, a Kubernetes cluster, a company IdP)
//! is accepted like a static token, its claims mapped to roles.
//!
//! Checks, with the `jsonwebtoken` crate: the header's `alg` is RS256 or
//! ES256; `iss` selects the issuer (an unknown one is refused); the
//! signature verifies with the issuer's key named by `kid`; `exp`, `nbf`
//! and `aud` hold, with [`LEEWAY_SECS`] of clock skew. Every refusal is
//! `401 UNAUTHORIZED` saying why; a valid token that grants no role is
//! `403 FORBIDDEN`.
//!
//! Keys come from the issuer's JWKS (a URL, fetched on first use, or a
//! file, read at start) and are cached. A token whose `kid` is not cached
//! fetches the set again, at most once per `jwks_refetch_interval`, one
//! fetch at a time per issuer, bounded by [`FETCH_TIMEOUT`] and
//! [`MAX_JWKS_BYTES`], so unknown key ids cannot make the server hammer
//! the identity provider. Only that fetch waits (see [`Pending`]); a token
//! whose key is cached is checked without awaiting anything.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use nestor_core::Error;
use serde_json::Value;

use super::{parse_roles, Lookup, Principal, Roles};
use crate::config::OidcConfig;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub(super) const LEEWAY_SECS: u64 = 30;
/// The most one JWKS fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWKS accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Whether `token` has the shape of a JWT: three dot-separated, non-empty
/// base64url parts.
pub(super) fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn refused(message: impl Into<String>) -> Error {
    Error::Unauthorized {
        message: message.into(),
    }
}

/// `auth.oidc`, by `issuer`.
#[derive(Debug, Default)]
pub(super) struct Issuers {
    by_iss: HashMap<String, Arc<Issuer>>,
}

impl Issuers {
    /// Checks each issuer; a file JWKS is read now, a URL on first use.
    pub(super) fn from_config(config: &[OidcConfig]) -> anyhow::Result<Issuers> {
        let mut by_iss = HashMap::new();
        for (i, c) in config.iter().enumerate() {
            let issuer = Issuer::from_config(&format!("auth.oidc[{i}]"), c)?;
            if by_iss.insert(c.issuer.clone(), Arc::new(issuer)).is_some() {
                anyhow::bail!("auth.oidc[{i}]: the issuer {:?} is listed twice", c.issuer);
            }
        }
        Ok(Issuers { by_iss })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_iss.is_empty()
    }

    /// The principal of a JWT, or that its issuer's keys must be fetched first.
    pub(super) fn lookup(&self, token: &str) -> Lookup {
        let (header, iss) = match peek(token) {
            Ok(peeked) => peeked,
            Err(e) => return Lookup::Known(Err(e)),
        };
        let Some(issuer) = self.by_iss.get(&iss) else {
            return Lookup::Known(Err(refused(format!(
                "the token's issuer {iss:?} is not one this server trusts (auth.oidc)"
            ))));
        };
        match issuer.verify_cached(token, &header, true) {
            Some(result) => Lookup::Known(result),
            None => Lookup::Fetch(Box::new(Pending {
                issuer: issuer.clone(),
                token: token.to_string(),
                header,
            })),
        }
    }
}

/// The header and the (unverified) `iss` of a token, to pick its issuer.
fn peek(token: &str) -> Result<(Header, String), Error> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| refused(format!("the token is not a valid JWT: {e}")))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(refused(format!(
            "the token's alg {:?} is not accepted (RS256, ES256)",
            header.alg
        )));
    }
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let claims: Iss = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|e| refused(format!("the token's claims are not valid JSON: {e}")))?;
    let iss = claims
        .iss
        .ok_or_else(|| refused("the token has no iss claim naming its issuer"))?;
    Ok((header, iss))
}

/// A JWT waiting for its issuer's keys.
pub(crate) struct Pending {
    issuer: Arc<Issuer>,
    token: String,
    header: Header,
}

impl Pending {
    /// Fetches the issuer's keys (unless another request just did) and
    /// checks the token with them.
    pub(crate) async fn resolve(self) -> Result<Arc<Principal>, Error> {
        let issuer = &self.issuer;
        {
            // One fetch at a time; who waited finds the keys fresh.
            let _one = issuer.fetching.lock().await;
            if issuer.may_refetch() {
                let fetched = issuer.source.load().await;
                let mut keys = issuer.keys.write().unwrap();
                keys.fetched_at = Some(Instant::now());
                match fetched {
                    Ok(set) => {
                        keys.set = set;
                        keys.last_error = None;
                    }
                    Err(e) => {
                        keys.last_error = Some(e.clone());
                        tracing::warn!(issuer = %issuer.issuer, error = %e, "could not fetch the JWKS");
                        return Err(refused(format!(
                            "the keys of issuer {:?} could not be fetched to check the token: {e}",
                            issuer.issuer
                        )));
                    }
                }
            }
        }
        issuer
            .verify_cached(&self.token, &self.header, false)
            .unwrap_or_else(|| Err(refused("the token's key could not be found")))
    }
}

/// Where an issuer's JWKS comes from.
#[derive(Debug)]
enum Source {
    Url {
        url: String,
        client: OnceLock<reqwest::Client>,
    },
    File(PathBuf),
}

impl Source {
    /// Reads or fetches the key set.
    async fn load(&self) -> Result<KeySet, String> {
        let bytes = match self {
            Source::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?,
            Source::Url { url, client } => {
                let client = match client.get() {
                    Some(c) => c,
                    None => {
                        let built = reqwest::Client::builder()
                            .timeout(FETCH_TIMEOUT)
                            .connect_timeout(FETCH_TIMEOUT)
                            .build()
                            .map_err(|e| e.to_string())?;
                        client.get_or_init(|| built)
                    }
                };
                fetch(client, url).await?
            }
        };
        KeySet::parse(&bytes)
    }
}

/// GET `url`, 2xx, at most [`MAX_JWKS_BYTES`].
async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "{url}: the key set is larger than {MAX_JWKS_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The usable keys of a JWKS: RSA and P-256 keys, by `kid`.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    /// Keys without a `kid`, tried for a token without one.
    unnamed: Vec<(Algorithm, DecodingKey)>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.by_kid.keys().collect::<Vec<_>>())
            .field("unnamed", &self.unnamed.len())
            .finish()
    }
}

impl KeySet {
    /// A JWKS document; keys of other types or uses are skipped.
    fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        let set: JwkSet =
            serde_json::from_slice(bytes).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
        let mut keys = KeySet::default();
        for jwk in &set.keys {
            let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                    if ec.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => continue,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid.clone(), (alg, key));
                }
                None => keys.unnamed.push((alg, key)),
            }
        }
        Ok(keys)
    }
}

/// The cached keys and when they were last read.
#[derive(Debug, Default)]
struct Keys {
    set: KeySet,
    fetched_at: Option<Instant>,
    /// Why the last fetch failed, if it did (told to the tokens refused
    /// until the next one).
    last_error: Option<String>,
}

/// One configured issuer.
#[derive(Debug)]
pub(super) struct Issuer {
    /// `iss`.
    issuer: String,
    audience: String,
    source: Source,
    roles_claim: String,
    role_map: HashMap<String, Roles>,
    team_claim: Option<String>,
    subject_claim: String,
    refetch: Duration,
    keys: RwLock<Keys>,
    fetching: tokio::sync::Mutex<()>,
}

impl Issuer {
    fn from_config(key: &str, c: &OidcConfig) -> anyhow::Result<Issuer> {
        if c.issuer.is_empty() || c.audience.is_empty() {
            anyhow::bail!("{key}: issuer and audience must not be empty");
        }
        let mut role_map = HashMap::new();
        for (value, roles) in &c.role_map {
            let parsed = parse_roles(&format!("{key}.role_map[{value:?}]"), roles)?;
            role_map.insert(value.clone(), parsed);
        }
        if role_map.is_empty() && c.team_claim.is_none() {
            anyhow::bail!(
                "{key} ({}): set role_map or team_claim, or no token of it could do anything",
                c.issuer
            );
        }
        let refetch = nestor_core::parse_duration(&c.jwks_refetch_interval)
            .map_err(|e| anyhow::anyhow!("{key}.jwks_refetch_interval: {e}"))?;
        let mut keys = Keys::default();
        let source = if c.jwks.starts_with("https://") || c.jwks.starts_with("http://") {
            Source::Url {
                url: c.jwks.clone(),
                client: OnceLock::new(),
            }
        } else {
            let bytes = std::fs::read(&c.jwks)
                .map_err(|e| anyhow::anyhow!("{key}.jwks: {}: {e}", c.jwks))?;
            keys.set = KeySet::parse(&bytes)
                .map_err(|e| anyhow::anyhow!("{key}.jwks: {}: {e}", c.jwks))?;
            keys.fetched_at = Some(Instant::now());
            Source::File(PathBuf::from(&c.jwks))
        };
        Ok(Issuer {
            issuer: c.issuer.clone(),
            audience: c.audience.clone(),
            source,
            roles_claim: c.roles_claim.clone(),
            role_map,
            team_claim: c.team_claim.clone(),
            subject_claim: c.subject_claim.clone().unwrap_or_else(|| "sub".into()),
            refetch,
            keys: RwLock::new(keys),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether the keys may be read again now.
    fn may_refetch(&self) -> bool {
        let keys = self.keys.read().unwrap();
        keys.fetched_at
            .is_none_or(|at| at.elapsed() >= self.refetch)
    }

    /// Checks `token` with the cached keys; `None` when its key is not
    /// cached, `fetch` is set and the keys may be fetched again.
    fn verify_cached(
        &self,
        token: &str,
        header: &Header,
        fetch: bool,
    ) -> Option<Result<Arc<Principal>, Error>> {
        let keys = self.keys.read().unwrap();
        let candidates: Vec<&(Algorithm, DecodingKey)> = match &header.kid {
            Some(kid) => keys.set.by_kid.get(kid).into_iter().collect(),
            None => keys.set.unnamed.iter().collect(),
        };
        let candidates: Vec<_> = candidates
            .into_iter()
            .filter(|(alg, _)| *alg == header.alg)
            .collect();
        if candidates.is_empty() {
            if fetch
                && keys
                    .fetched_at
                    .is_none_or(|at| at.elapsed() >= self.refetch)
            {
                return None;
            }
            let failed = keys.last_error.as_ref().map_or(String::new(), |e| {
                format!(" (the last fetch of its keys failed: {e})")
            });
            return Some(Err(refused(format!(
                "no {:?} key {} in the keys of issuer {:?}{failed}",
                header.alg,
                header
                    .kid
                    .as_deref()
                    .map_or("without a kid".into(), |k| format!("{k:?}")),
                self.issuer
            ))));
        }
        let mut last = None;
        for (_, key) in candidates {
            match jsonwebtoken::decode::<Value>(token, key, &self.validation(header.alg)) {
                Ok(data) => return Some(self.principal(&data.claims)),
                Err(e) => last = Some(e),
            }
        }
        Some(Err(self.why(last.expect("at least one candidate").kind())))
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v
    }

    /// What a failed check says.
    fn why(&self, kind: &ErrorKind) -> Error {
        refused(match kind {
            ErrorKind::ExpiredSignature => {
                format!("the token has expired (exp is past, {LEEWAY_SECS} s of leeway)")
            }
            ErrorKind::ImmatureSignature => {
                format!("the token is not valid yet (nbf is ahead, {LEEWAY_SECS} s of leeway)")
            }
            ErrorKind::InvalidAudience => format!(
                "the token is for another audience: this server accepts aud {:?}",
                self.audience
            ),
            ErrorKind::InvalidIssuer => format!("the token's iss is not {:?}", self.issuer),
            ErrorKind::InvalidSignature => format!(
                "the token's signature does not verify with the keys of issuer {:?}",
                self.issuer
            ),
            ErrorKind::MissingRequiredClaim(c) => format!("the token has no {c} claim"),
            ErrorKind::InvalidClaimFormat(c) => format!("the token's {c} claim has the wrong type"),
            other => format!("the token could not be checked: {other:?}"),
        })
    }

    /// The principal of verified `claims`: actor from the subject claim,
    /// roles from `role_map` and `team_claim`; 403 when none.
    fn principal(&self, claims: &Value) -> Result<Arc<Principal>, Error> {
        let subject = claim(claims, &self.subject_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                refused(format!(
                    "the token has no {} claim (a string) naming the caller",
                    self.subject_claim
                ))
            })?;
        let mut roles = Roles::default();
        for value in values(claim(claims, &self.roles_claim)) {
            if let Some(granted) = self.role_map.get(value) {
                roles.merge(granted);
            }
        }
        if let Some(team_claim) = &self.team_claim {
            for team in values(claim(claims, team_claim)) {
                if nestor_core::is_valid_name(team) {
                    roles.teams.insert(team.to_string());
                }
            }
        }
        if roles.is_empty() {
            return Err(Error::Forbidden {
                message: format!(
                    "the token of {subject:?} from issuer {:?} grants no role: no value of its {} claim is in role_map{}",
                    self.issuer,
                    self.roles_claim,
                    self.team_claim.as_ref().map_or(String::new(), |t| format!(" and its {t} claim names no valid team")),
                ),
            });
        }
        Ok(Arc::new(roles.principal(subject)))
    }
}

/// A claim by name, or by JSON pointer when the name starts with `/`.
fn claim<'a>(claims: &'a Value, name: &str) -> Option<&'a Value> {
    if name.starts_with('/') {
        claims.pointer(name)
    } else {
        claims.get(name)
    }
}

/// The strings of a claim that is a string or a list of strings.
fn values(claim: Option<&Value>) -> Vec<&str> {
    match claim {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}
