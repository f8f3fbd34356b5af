//! `POST /webhooks/git`, verified the way each provider signs: GitHub
//! (`X-Hub-Signature-256: sha256=<hex>`), Gitea and Forgejo
//! (`X-Gitea-Signature: <hex>`), Gogs (`X-Gogs-Signature: <hex>`) — each an
//! HMAC-SHA256 of the raw body — and GitLab (`X-Gitlab-Token`, the secret
//! itself). Bodies may be JSON or GitHub's default form encoding
//! (`payload=<urlencoded JSON>`, signed as sent). A push is for the sources
//! whose repository URL it names (or `?source=`) and whose branch it moved.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{KeyInit, Mac};
use nestor_core::{AuditOutcome, Error, SourceConfig};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::super::audit::Acting;
use super::super::error::{ApiError, ApiResult};
use super::super::extract::{Query, Unread};
use super::super::AppState;

type HmacSha256 = hmac::Hmac<sha2_mac::Sha256>;

/// Hex HMAC-SHA256 of `message`: what GitHub sends after `sha256=` in
/// `X-Hub-Signature-256`, and Gitea and Gogs send bare (handy for clients
/// and tests).
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// The signature headers, in the order they are tried: the HMAC ones
/// (with the prefix their value carries), then GitLab's shared token.
const HMAC_HEADERS: [(&str, &str); 3] = [
    ("x-hub-signature-256", "sha256="),
    ("x-gitea-signature", ""),
    ("x-gogs-signature", ""),
];

/// Whether the call carries any signature header at all.
fn has_signature(headers: &HeaderMap) -> bool {
    HMAC_HEADERS
        .iter()
        .map(|(h, _)| *h)
        .chain(["x-gitlab-token"])
        .any(|h| headers.contains_key(h))
}

/// Whether the call carries a valid signature for `secret`; the first
/// signature header present decides.
fn signed(headers: &HeaderMap, body: &[u8], secret: &str) -> bool {
    for (name, prefix) in HMAC_HEADERS {
        let Some(sig) = headers.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Some(given) = sig
            .trim()
            .strip_prefix(prefix)
            .and_then(|h| hex::decode(h).ok())
        else {
            return false;
        };
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(body);
        // Constant time, whatever the given length.
        return mac.verify_slice(&given).is_ok();
    }
    if let Some(token) = headers.get("x-gitlab-token").and_then(|v| v.to_str().ok()) {
        // Compare digests, so neither the time nor the length compared
        // tells anything about the secret.
        use sha2::Digest;
        let given = sha2::Sha256::digest(token.as_bytes());
        let wanted = sha2::Sha256::digest(secret.as_bytes());
        return bool::from(given.as_slice().ct_eq(wanted.as_slice()));
    }
    false
}

/// The push payload of a body: JSON, or GitHub's default form encoding
/// `payload=<urlencoded JSON>` (the signature covers the form as sent).
/// A push event is a JSON object; an empty body (a bare trigger) is null.
fn push_payload(bytes: &[u8], form: bool) -> ApiResult<Value> {
    let value = push_json(bytes, form)?;
    if value.is_object() || value.is_null() {
        Ok(value)
    } else {
        Err(Error::bad_request("a webhook payload is a JSON object (a push event)").into())
    }
}

fn push_json(bytes: &[u8], form: bool) -> ApiResult<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let looks_like_form = form || bytes.starts_with(b"payload=");
    if looks_like_form {
        let json = form_urlencoded::parse(bytes)
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| {
                Error::bad_request("a form-encoded webhook must carry its JSON in `payload=`")
            })?;
        return serde_json::from_str(&json)
            .map_err(|e| Error::bad_request(format!("invalid JSON in payload=: {e}")).into());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error::bad_request(format!("invalid JSON payload: {e}")).into())
}

/// A repository URL reduced to host and path, so `https://h/o/r.git`,
/// `git@h:o/r` and `ssh://git@h/o/r` compare equal.
fn normalize_url(url: &str) -> String {
    let mut u = url.trim().to_ascii_lowercase();
    for scheme in ["https://", "http://", "ssh://", "git://", "file://"] {
        if let Some(rest) = u.strip_prefix(scheme) {
            u = rest.to_string();
        }
    }
    if let Some((user, rest)) = u.split_once('@') {
        if !user.contains('/') {
            u = rest.to_string();
        }
    }
    if !u.starts_with('/') {
        if let Some((host, path)) = u.split_once(':') {
            if !path.starts_with("//") && !host.contains('/') {
                u = format!(
                    "{host}/{}",
                    path.trim_start_matches(|c: char| c.is_ascii_digit())
                        .trim_start_matches('/')
                );
            }
        }
    }
    u.trim_end_matches('/')
        .trim_end_matches(".git")
        .trim_end_matches('/')
        .to_string()
}

/// Every repository URL a GitHub or GitLab payload names.
fn payload_urls(payload: &Value) -> Vec<String> {
    let mut urls = Vec::new();
    for base in ["/repository", "/project"] {
        for key in [
            "clone_url",
            "html_url",
            "ssh_url",
            "git_url",
            "url",
            "git_http_url",
            "git_ssh_url",
            "web_url",
            "http_url",
            "homepage",
        ] {
            if let Some(u) = payload
                .pointer(&format!("{base}/{key}"))
                .and_then(Value::as_str)
            {
                urls.push(normalize_url(u));
            }
        }
    }
    urls
}

/// `POST /webhooks/git`: verifies, answers 202 at once, syncs in the
/// background. A source with a secret refuses unsigned or mis-signed calls
/// with 401 and nothing is synced. An unsigned call is refused before its
/// body is read when every source it could be for has a secret.
#[utoipa::path(post, path = "/webhooks/git", params(("source" = Option<String>, Query), ("X-Hub-Signature-256" = Option<String>, Header),
        ("X-Gitea-Signature" = Option<String>, Header), ("X-Gogs-Signature" = Option<String>, Header), ("X-Gitlab-Token" = Option<String>, Header)),
    request_body(content = Object, description = "a GitHub, Gitea, Gogs or GitLab push payload: JSON, or GitHub's form encoding (payload=...)"),
    responses((status = 202, description = "{accepted: [sources]}"), (status = 401, description = "UNAUTHORIZED: missing or wrong signature"), (status = 404, description = "NOT_FOUND: no source matches")))]
pub(in crate::server) async fn webhook(
    State(state): State<AppState>,
    acting: Acting,
    query: Query,
    headers: HeaderMap,
    body: Unread,
) -> ApiResult<Response> {
    query.allow(&["source"])?;
    let configs = state.syncs().configs();
    let named: Option<Vec<&SourceConfig>> = query
        .get("source")
        .map(|name| configs.iter().filter(|c| c.name == name).collect());
    if named.as_ref().is_some_and(Vec::is_empty) {
        return Err(not_found());
    }
    let candidates: Vec<&SourceConfig> = named.clone().unwrap_or_else(|| configs.iter().collect());
    let secret = |c: &&SourceConfig| c.webhook_secret.as_deref().is_some_and(|s| !s.is_empty());
    if !has_signature(&headers) && !candidates.is_empty() && candidates.iter().all(secret) {
        tracing::warn!("webhook refused before its body was read: no signature");
        return Err(unsigned());
    }
    let payload = body.read(&state).await?;
    let body = push_payload(&payload.bytes, payload.form)?;
    let matched: Vec<&SourceConfig> = match named {
        Some(named) => named,
        None => {
            let urls = payload_urls(&body);
            configs
                .iter()
                .filter(|c| urls.contains(&normalize_url(&c.url)))
                .collect()
        }
    };
    if matched.is_empty() {
        return Err(not_found());
    }
    // Every matched source with a secret must accept the signature; else nothing syncs.
    for c in &matched {
        if let Some(secret) = c.webhook_secret.as_deref().filter(|s| !s.is_empty()) {
            if !signed(&headers, &payload.bytes, secret) {
                tracing::warn!(source = %c.name, "webhook refused: missing or wrong signature");
                return Err(unsigned());
            }
        }
    }
    let branch = body
        .get("ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("refs/heads/"));
    let mut accepted = Vec::new();
    let mut ignored = Vec::new();
    for c in matched {
        if branch.is_some_and(|b| b != c.branch) {
            ignored.push(c.name.clone());
        } else if state.syncs().trigger(&c.name) {
            acting
                .renamed("webhook")
                .record_write("catalog.trigger", &c.name, AuditOutcome::Succeeded, None)
                .await;
            accepted.push(c.name.clone());
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"accepted": accepted, "ignored_other_branch": ignored})),
    )
        .into_response())
}

fn unsigned() -> ApiError {
    Error::Unauthorized {
        message: "missing or wrong webhook signature".into(),
    }
    .into()
}

fn not_found() -> ApiError {
    Error::NotFound {
        message: "no catalog source matches this repository; add ?source=NAME".into(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long_key = [0xaau8; 131];
        assert_eq!(
            hmac_sha256_hex(
                &long_key,
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn every_provider_signature_is_checked() {
        let body = b"{\"ref\": \"refs/heads/main\"}";
        let sig = hmac_sha256_hex(b"s3cret", body);
        let with = |name: &'static str, value: String| {
            let mut h = HeaderMap::new();
            h.insert(name, value.parse().unwrap());
            h
        };
        assert!(signed(
            &with("x-hub-signature-256", format!("sha256={sig}")),
            body,
            "s3cret"
        ));
        assert!(signed(
            &with("x-gitea-signature", sig.clone()),
            body,
            "s3cret"
        ));
        assert!(signed(
            &with("x-gogs-signature", sig.clone()),
            body,
            "s3cret"
        ));
        assert!(signed(
            &with("x-gitlab-token", "s3cret".into()),
            body,
            "s3cret"
        ));
        assert!(!signed(
            &with("x-gitea-signature", sig.clone()),
            body,
            "other"
        ));
        assert!(
            !signed(&with("x-hub-signature-256", sig), body, "s3cret"),
            "needs its prefix"
        );
        assert!(!signed(&HeaderMap::new(), body, "s3cret"));
    }

    #[test]
    fn urls_compare_by_host_and_path() {
        let a = normalize_url("https://github.com/Acme/catalog.git");
        assert_eq!(a, normalize_url("git@github.com:acme/catalog"));
        assert_eq!(a, normalize_url("ssh://git@github.com/acme/catalog/"));
        assert_eq!(normalize_url("/tmp/x/repo"), "/tmp/x/repo");
    }
}
