//! Team routes: the teams a caller may see, one team (compositions,
//! deployments per environment, quota usage, the policies that apply),
//! its quotas, and `POST /api/v1/teams/{team}/validate`, which asks the
//! policies about a deployment of the team without deploying it.

use axum::extract::{Path, State};
use axum::Json;
use nestor_core::{DeploymentRequest, Error, FieldError, PolicySubject};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiResult;
use super::extract::{check_name, decode_value, off_thread, Query, Unread};
use super::AppState;

/// Every team the caller may read.
#[utoipa::path(get, path = "/api/v1/teams",
    responses((status = 200, description = "{items: [team]}: name, compositions, deployments by environment, quotas with usage, policies")))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
) -> ApiResult<Json<Value>> {
    query.allow(&[])?;
    caller.team_scope()?; // anonymous: 401
    let items: Vec<_> = state
        .nestor()
        .teams()
        .await?
        .into_iter()
        .filter(|t| caller.sees_team(&t.name))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// One team.
#[utoipa::path(get, path = "/api/v1/teams/{team}", params(("team" = String, Path)),
    responses((status = 200, description = "the team: name, compositions, deployments by environment, quotas with usage, policies"), (status = 403, description = "FORBIDDEN")))]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    Path(team): Path<String>,
) -> ApiResult<Json<Value>> {
    query.allow(&[])?;
    check_name("team", &team)?;
    caller.read_team(&team)?;
    Ok(Json(json!(state.nestor().team(&team).await?)))
}

/// The team's quotas, each with its usage.
#[utoipa::path(get, path = "/api/v1/teams/{team}/quotas", params(("team" = String, Path)),
    responses((status = 200, description = "{items: [{quota, usage}]}"), (status = 403, description = "FORBIDDEN")))]
pub(super) async fn quotas(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    Path(team): Path<String>,
) -> ApiResult<Json<Value>> {
    query.allow(&[])?;
    check_name("team", &team)?;
    caller.read_team(&team)?;
    Ok(Json(
        json!({ "items": state.nestor().team_quotas(&team).await? }),
    ))
}

/// What the policies say about a deployment of the team, nothing
/// deployed: the body is a deployment request (that of `POST
/// /api/v1/plan`) whose `team`, when given, is the path's. 200 with
/// `allowed`, `denials` and `warnings`.
#[utoipa::path(post, path = "/api/v1/teams/{team}/validate", params(("team" = String, Path)),
    request_body(content = Object, description = "A deployment request (docs/src/reference/formats.md#deployment-requests); `team` may be left out"),
    responses((status = 200, description = "{subject, allowed, denials, warnings}")))]
pub(super) async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    Path(team): Path<String>,
    body: Unread,
) -> ApiResult<Json<Value>> {
    query.allow(&[])?;
    check_name("team", &team)?;
    caller.read_team(&team)?;
    let payload = body.read(&state).await?;
    let mut request: Value = off_thread(&state, move |_| payload.decode()).await?;
    let Some(fields) = request.as_object_mut() else {
        return Err(Error::bad_request("a deployment request is an object").into());
    };
    match fields.get("team") {
        None => {
            fields.insert("team".into(), json!(team));
        }
        Some(t) if t == &json!(team) => {}
        Some(t) => {
            return Err(Error::Validation {
                errors: vec![FieldError::new(
                    "team",
                    format!("the body names team {t}, the path {team:?}"),
                )],
            }
            .into())
        }
    }
    let request: DeploymentRequest = decode_value(request)?;
    let check = state
        .nestor()
        .evaluate_policies(PolicySubject::Deployment(Box::new(request)))
        .await?;
    Ok(Json(json!(check)))
}
