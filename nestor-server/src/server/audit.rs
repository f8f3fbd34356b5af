//! The audit trail over HTTP: who a request's writes are recorded as
//! ([`Acting`]: the token's name and roles, the request id, the client's
//! address), the writes refused before they reached the facade
//! ([`denied`]), `GET /api/v1/audit` (admin role) and the retention task
//! (`audit.retention`, apart from the event log's).
//!
//! The records themselves are written by the core's facade, which every
//! write goes through; a handler only hands it the actor.

use std::time::Duration;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use nestor_core::{
    Actor, AuditOutcome, AuditPage, AuditPosition, AuditQuery, Error, ErrorCode, Nestor, Timestamp,
};
use tokio::sync::watch;

use super::auth::{Caller, Origin, Principal};
use super::error::{current_request_id, ApiError, ApiResult};
use super::extract::Query;
use super::AppState;

/// The facade acting for the request's caller: every write made through
/// it is audited under the caller's name and roles, the request id and
/// the client's address.
pub(super) struct Acting {
    /// The facade, acting for [`Acting::actor`].
    pub nestor: Nestor,
    actor: Actor,
}

impl FromRequestParts<AppState> for Acting {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let actor = actor_from(&parts.extensions);
        Ok(Acting {
            nestor: state.nestor().acting_as(actor.clone()),
            actor,
        })
    }
}

impl Acting {
    /// The same request recorded under another name (a signed webhook
    /// carries no token, but it is not anonymous either).
    pub(super) fn renamed(&self, name: &str) -> Nestor {
        let mut actor = self.actor.clone();
        actor.name = name.to_string();
        self.nestor.acting_as(actor)
    }
}

/// Who a request is from: its principal (attached by the front layer),
/// the request id and the client's address.
fn actor_from(extensions: &Extensions) -> Actor {
    let origin = Origin::of(extensions);
    let mut actor = actor_of(origin.and_then(|o| o.principal.as_deref()));
    let id = current_request_id();
    if !id.is_empty() {
        actor = actor.with_request_id(id);
    }
    if let Some(ip) = origin.and_then(|o| o.ip) {
        actor = actor.with_client(ip.to_string());
    }
    actor
}

/// The action a write route's records carry (the facade's names), for
/// the attempts refused before the facade saw them.
const WRITE_ACTIONS: &[(Method, &str, &str)] = &[
    (Method::POST, "/api/v1/resources", "resource.publish"),
    (
        Method::POST,
        "/api/v1/resources/{name}/{version}/yank",
        "resource.yank",
    ),
    (
        Method::POST,
        "/api/v1/resources/{name}/{version}/unyank",
        "resource.unyank",
    ),
    (Method::POST, "/api/v1/sync", "catalog.trigger"),
    (Method::POST, "/webhooks/git", "catalog.trigger"),
    (
        Method::POST,
        "/api/v1/teams/{team}/compositions",
        "composition.publish",
    ),
    (
        Method::POST,
        "/api/v1/teams/{team}/deploy",
        "deployment.apply",
    ),
    (Method::POST, "/api/v1/deployments", "deployment.apply"),
    (
        Method::POST,
        "/api/v1/deployments/promote",
        "deployment.promote",
    ),
    (
        Method::POST,
        "/api/v1/deployments/{id}/rollback",
        "deployment.rollback",
    ),
    (
        Method::DELETE,
        "/api/v1/deployments/{id}",
        "deployment.delete",
    ),
];

/// Around every write route: a write refused for who asked (401, 403)
/// never reaches the facade, so it is recorded here as `denied`, its
/// subject the path asked for.
pub(super) async fn denied(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let action = request.extensions().get::<MatchedPath>().and_then(|route| {
        WRITE_ACTIONS
            .iter()
            .find(|(m, r, _)| m == request.method() && *r == route.as_str())
            .map(|(_, _, action)| *action)
    });
    let Some(action) = action else {
        return next.run(request).await;
    };
    let actor = actor_from(request.extensions());
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let code = match response.status() {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        _ => return response,
    };
    state
        .nestor()
        .acting_as(actor)
        .record_write(
            action,
            &path,
            AuditOutcome::Denied,
            Some(code.as_str().into()),
        )
        .await;
    response
}

/// The audit actor of a principal: the token's name and its roles.
fn actor_of(principal: Option<&Principal>) -> Actor {
    match principal {
        None | Some(Principal::Anonymous) => Actor::new("anonymous", vec![]),
        Some(Principal::Token {
            name,
            admin,
            platform,
            reader,
            teams,
        }) => {
            let flags = [
                (*admin, "admin"),
                (*platform, "platform"),
                (*reader, "reader"),
            ];
            let roles = flags
                .iter()
                .filter(|(held, _)| *held)
                .map(|(_, role)| role.to_string())
                .chain(teams.iter().map(|t| format!("team:{t}")))
                .collect();
            Actor::new(name.clone(), roles)
        }
    }
}

/// Reading the trail: the `admin` role only.
fn may_read_audit(caller: &Caller) -> ApiResult<()> {
    match &*caller.0 {
        Principal::Anonymous => Err(Error::Unauthorized {
            message: "this needs a token: send `Authorization: Bearer <token>`".into(),
        }
        .into()),
        Principal::Token { admin: true, .. } => Ok(()),
        Principal::Token { .. } => Err(Error::Forbidden {
            message: "this token may not read the audit trail (needs the admin role)".into(),
        }
        .into()),
    }
}

/// A time parameter (the core's forms: seconds or RFC 3339).
fn time(query: &Query, key: &str) -> ApiResult<Option<Timestamp>> {
    match query.get(key).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => Ok(Some(AuditQuery::parse_time(key, text)?)),
    }
}

/// The audit trail, newest first, one page at a time (admin role).
#[utoipa::path(get, path = "/api/v1/audit",
    params(("actor" = Option<String>, Query, description = "the token's name (or OIDC subject)"),
           ("subject" = Option<String>, Query, description = "what the write was done to, exactly"),
           ("action" = Option<String>, Query, description = "an action (`deployment.apply`) or an area (`deployment.*`)"),
           ("since" = Option<String>, Query, description = "not before: seconds since the epoch or RFC 3339"),
           ("until" = Option<String>, Query, description = "before: seconds since the epoch or RFC 3339"),
           ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "{items: [audit record], next_cursor}")))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
) -> ApiResult<Json<AuditPage>> {
    may_read_audit(&caller)?;
    query.allow(&[
        "actor", "subject", "action", "since", "until", "limit", "cursor",
    ])?;
    let text = |key: &str| query.get(key).filter(|v| !v.is_empty()).map(str::to_string);
    let audit = AuditQuery {
        actor: text("actor"),
        subject: text("subject"),
        action: text("action"),
        since: time(&query, "since")?,
        until: time(&query, "until")?,
        limit: query
            .number("limit")?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        after: text("cursor")
            .map(|c| AuditPosition::parse(&c))
            .transpose()?,
    };
    Ok(Json(state.nestor().audit(&audit).await?))
}

/// Prunes records older than `retention` at start and then hourly, until
/// the server shuts down.
pub(super) fn start_retention(
    nestor: Nestor,
    retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut hourly = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = hourly.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as Timestamp);
            let before = now.saturating_sub(retention.as_secs() as Timestamp);
            match nestor.prune_audit(before).await {
                Ok(n) if n > 0 => tracing::info!(pruned = n, "audit trail retention"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "audit trail retention failed"),
            }
        }
    });
}
