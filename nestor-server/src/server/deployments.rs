//! Deployment routes: apply (in the background), plan, list, get, cancel or
//! roll back, promote, the dependency graph, and a deployment's Terraform
//! run logs and drift check.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use nestor_core::{
    Deployment, DeploymentFilter, DeploymentRequest, DeploymentStatus, Error, TeamDeploy,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit::Acting;
use super::auth::Caller;
use super::error::ApiResult;
use super::extract::{check_name, decode_value, off_thread, Query, Unread};
use super::AppState;

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    Error::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
                })?;
            Ok(Some(key.to_string()))
        }
    }
}

/// Applies a request (team role). The apply runs in the background: the
/// answer is `202` with the deployment as soon as its revision is recorded
/// (`201` when it already finished, `200` for an idempotent replay).
/// `dry_run` answers the plan instead.
#[utoipa::path(post, path = "/api/v1/deployments", request_body(content = Object, description = "A deployment request (docs/src/reference/formats.md#deployment-requests)"),
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 202, description = "the recorded deployment, applying"), (status = 409, description = "CONFLICT: idempotency key reused with another body"),
              (status = 422, description = "VALIDATION_FAILED, DEPENDENCY_CYCLE, ENGINE_NOT_FOUND, POLICY_VIOLATION, QUOTA_EXCEEDED")))]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    acting: Acting,
    query: Query,
    headers: HeaderMap,
    body: Unread,
) -> ApiResult<Response> {
    query.allow(&[])?;
    // The team is in the body: who may write no team is answered first.
    caller.may_write_some_team()?;
    let key = idempotency_key(&headers)?;
    let payload = body.read(&state).await?;
    let request: DeploymentRequest = off_thread(&state, move |_| payload.decode()).await?;
    caller.write_team(&request.team)?;
    start(&state, &acting, request, key).await
}

/// Deploys a team composition: `{composition, params, environment, name}`.
#[utoipa::path(post, path = "/api/v1/teams/{team}/deploy", params(("team" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body(content = Object, description = "{composition, composition_version, params, environment, name, labels, dry_run}"),
    responses((status = 202, description = "the recorded deployment, applying")))]
pub(super) async fn team_deploy(
    State(state): State<AppState>,
    caller: Caller,
    acting: Acting,
    query: Query,
    Path(team): Path<String>,
    headers: HeaderMap,
    body: Unread,
) -> ApiResult<Response> {
    query.allow(&[])?;
    check_name("team", &team)?;
    caller.write_team(&team)?;
    let key = idempotency_key(&headers)?;
    let payload = body.read(&state).await?;
    let body: TeamDeploy = off_thread(&state, move |_| payload.decode()).await?;
    let request = body.into_request(&team, &state.config().defaults.environment);
    start(&state, &acting, request, key).await
}

async fn start(
    state: &AppState,
    acting: &Acting,
    request: DeploymentRequest,
    key: Option<String>,
) -> ApiResult<Response> {
    if request.dry_run {
        return Ok(Json(json!(state.nestor().plan(&request).await?)).into_response());
    }
    let nestor = acting.nestor.clone();
    // Every request error surfaces here, before anything is recorded.
    let started = nestor.start(&request, key.as_deref()).await?;
    let deployment = started.deployment.clone();
    if !started.is_new() {
        // An idempotent repeat: the deployment the first request created.
        return Ok((StatusCode::OK, Json(json!(deployment))).into_response());
    }
    let metrics = state.metrics().clone();
    let span = tracing::info_span!("deployment", id = %deployment.id);
    state.inner.runs.spawn(tracing::Instrument::instrument(
        async move {
            match nestor.finish(started).await {
                Ok(d) => metrics.deployment_finished(d.status.as_str()),
                Err(e) => {
                    tracing::error!(error = %e, "deployment could not be recorded to the end")
                }
            }
        },
        span,
    ));
    Ok((StatusCode::ACCEPTED, Json(json!(deployment))).into_response())
}

/// Plans a request: rendered artifacts and a diff, applies nothing.
#[utoipa::path(post, path = "/api/v1/plan", request_body(content = Object, description = "A deployment request (docs/src/reference/formats.md#deployment-requests)"),
    responses((status = 200, description = "{deployment, artifacts, diff, resources: [{name, engine, wave, controller, objects, outputs}]}")))]
pub(super) async fn plan(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    body: Unread,
) -> ApiResult<Json<Value>> {
    query.allow(&[])?;
    caller.may_read_some_team()?;
    let payload = body.read(&state).await?;
    let request: DeploymentRequest = off_thread(&state, move |_| payload.decode()).await?;
    caller.read_team(&request.team)?;
    Ok(Json(json!(state.nestor().plan(&request).await?)))
}

/// Deployments, newest first, filtered; a team token sees only its teams.
#[utoipa::path(get, path = "/api/v1/deployments",
    params(("team" = Option<String>, Query), ("environment" = Option<String>, Query), ("name" = Option<String>, Query), ("status" = Option<String>, Query)),
    responses((status = 200, description = "{items: [deployment]}")))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
) -> ApiResult<Json<Value>> {
    query.allow(&["team", "environment", "name", "status"])?;
    let scope = caller.team_scope()?;
    let status = match query.get("status") {
        None => None,
        Some(s) => Some(
            decode_value::<DeploymentStatus>(json!(s))
                .map_err(|_| Error::bad_request(format!("unknown status {s:?}")))?,
        ),
    };
    let team = query.get("team").map(str::to_string);
    if let (Some(t), Some(teams)) = (&team, &scope) {
        if !teams.contains(t) {
            return Err(Error::Forbidden {
                message: format!("this token may not read team {t:?}"),
            }
            .into());
        }
    }
    let filter = DeploymentFilter {
        team,
        environment: query.get("environment").map(str::to_string),
        name: query.get("name").map(str::to_string),
        status,
    };
    let items: Vec<Deployment> = state
        .nestor()
        .deployments(&filter)
        .await?
        .into_iter()
        .filter(|d| scope.as_ref().is_none_or(|t| t.contains(&d.team)))
        .collect();
    Ok(Json(json!({"items": items})))
}

async fn visible(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Deployment> {
    if id.len() > 300 || id.contains('/') {
        return Err(Error::bad_request("not a deployment id").into());
    }
    caller.team_scope()?; // anonymous: 401
    let d = state.nestor().deployment(id).await?;
    if !caller.sees_team(&d.team) {
        // The same answer as for an id that does not exist, so ids of
        // other teams cannot be found by trying (issue 11).
        return Err(Error::DeploymentNotFound { id: id.to_string() }.into());
    }
    Ok(d)
}

/// One deployment with its progress.
#[utoipa::path(get, path = "/api/v1/deployments/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "the deployment"), (status = 404, description = "DEPLOYMENT_NOT_FOUND")))]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    query.allow(&[])?;
    Ok(Json(json!(visible(&state, &caller, &id).await?)))
}

/// Cancels a deployment in progress, or rolls a finished one back.
#[utoipa::path(delete, path = "/api/v1/deployments/{id}", params(("id" = String, Path)), responses((status = 200, description = "the resulting deployment")))]
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    acting: Acting,
    query: Query,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    query.allow(&[])?;
    let d = visible(&state, &caller, &id).await?;
    caller.write_team(&d.team)?;
    Ok(Json(json!(acting.nestor.delete(&id).await?)))
}

/// A new revision with an earlier one's content (`?to=REV`).
#[utoipa::path(post, path = "/api/v1/deployments/{id}/rollback", params(("id" = String, Path), ("to" = Option<u64>, Query)),
    responses((status = 200, description = "the new revision")))]
pub(super) async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    acting: Acting,
    query: Query,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    query.allow(&["to"])?;
    let d = visible(&state, &caller, &id).await?;
    caller.write_team(&d.team)?;
    let to = query.number("to")?;
    let done = acting.nestor.rollback(&id, to).await?;
    state.metrics().deployment_finished(done.status.as_str());
    Ok(Json(json!(done)))
}

/// The logs of a deployment's Terraform runs (sensitive values left out):
/// `{"items": [{"resource", "text"}]}`, one per resource Nestor ran
/// itself; empty for a deployment that went through GitOps only.
#[utoipa::path(get, path = "/api/v1/deployments/{id}/logs", params(("id" = String, Path)),
    responses((status = 200, description = "the run logs"), (status = 404, description = "DEPLOYMENT_NOT_FOUND")))]
pub(super) async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    query.allow(&[])?;
    visible(&state, &caller, &id).await?;
    Ok(Json(json!({"items": state.nestor().logs(&id).await?})))
}

/// Checks a succeeded deployment for drift now (`terraform plan
/// -detailed-exitcode` of each Terraform workspace): the report lists the
/// drifted addresses; a drifted deployment becomes `drifted`.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/drift", params(("id" = String, Path)),
    responses((status = 200, description = "the drift report"), (status = 409, description = "CONFLICT: not succeeded")))]
pub(super) async fn drift(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    query.allow(&[])?;
    let d = visible(&state, &caller, &id).await?;
    caller.write_team(&d.team)?;
    let reports = state.nestor().drift(Some(&id)).await?;
    Ok(Json(json!(reports.into_iter().next())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Promote {
    team: String,
    name: String,
    from: String,
    to: String,
}

/// Deploys to `to` exactly what last succeeded in `from`.
#[utoipa::path(post, path = "/api/v1/deployments/promote", request_body(content = Object, description = "{team, name, from, to}"),
    responses((status = 200, description = "the new deployment in `to`")))]
pub(super) async fn promote(
    State(state): State<AppState>,
    caller: Caller,
    acting: Acting,
    query: Query,
    body: Unread,
) -> ApiResult<Json<Value>> {
    query.allow(&[])?;
    caller.may_write_some_team()?;
    let payload = body.read(&state).await?;
    let p: Promote = off_thread(&state, move |_| payload.decode()).await?;
    for (kind, v) in [
        ("team", &p.team),
        ("deployment", &p.name),
        ("environment", &p.from),
        ("environment", &p.to),
    ] {
        check_name(kind, v)?;
    }
    caller.write_team(&p.team)?;
    let d = acting
        .nestor
        .promote(&p.team, &p.name, &p.from, &p.to)
        .await?;
    state.metrics().deployment_finished(d.status.as_str());
    Ok(Json(json!(d)))
}

/// The dependency graph of deployments and their catalog dependencies,
/// as JSON `{nodes, edges}` or Graphviz (`format=dot`).
#[utoipa::path(get, path = "/api/v1/graph", params(("team" = Option<String>, Query), ("environment" = Option<String>, Query), ("format" = Option<String>, Query)),
    responses((status = 200, description = "{nodes, edges} or text/vnd.graphviz")))]
pub(super) async fn graph(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
) -> ApiResult<Response> {
    query.allow(&["team", "environment", "format"])?;
    let dot = match query.get("format").unwrap_or("json") {
        "json" => false,
        "dot" => true,
        other => {
            return Err(Error::bad_request(format!("format {other:?}: use json or dot")).into())
        }
    };
    let scope = caller.team_scope()?;
    let team = query.get("team").map(str::to_string);
    if let Some(t) = &team {
        caller.read_team(t)?;
    }
    let filter = DeploymentFilter {
        team,
        environment: query.get("environment").map(str::to_string),
        ..Default::default()
    };
    let view = state
        .nestor()
        .graph(&filter, |d| {
            scope.as_ref().is_none_or(|t| t.contains(&d.team))
        })
        .await?;
    if dot {
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "text/vnd.graphviz")],
            view.to_dot(),
        )
            .into_response());
    }
    Ok(Json(view).into_response())
}
