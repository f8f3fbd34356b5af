//! Team composition routes: list, get, publish (JSON or YAML), all scoped
//! to the team in the path.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nestor_core::{
    interpret, locate_lines, parse_composition, split_documents, Document, Error, PublishOutcome,
    VersionSpec,
};
use serde_json::{json, Value};

use super::audit::Acting;
use super::auth::Caller;
use super::error::ApiResult;
use super::extract::{check_name, off_thread, Query, Unread};
use super::AppState;

/// The newest version of each of the team's compositions.
#[utoipa::path(get, path = "/api/v1/teams/{team}/compositions", params(("team" = String, Path)),
    responses((status = 200, description = "[composition]"), (status = 403, description = "FORBIDDEN")))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    Path(team): Path<String>,
) -> ApiResult<Json<Value>> {
    query.allow(&[])?;
    check_name("team", &team)?;
    caller.read_team(&team)?;
    Ok(Json(json!(state.nestor().compositions(Some(&team)).await?)))
}

/// The latest version of a composition.
#[utoipa::path(get, path = "/api/v1/teams/{team}/compositions/{name}", params(("team" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "the composition"), (status = 404, description = "COMPOSITION_NOT_FOUND")))]
pub(super) async fn latest(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    Path((team, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    get_spec(&state, &caller, &query, &team, &name, "").await
}

/// One version (or requirement) of a composition.
#[utoipa::path(get, path = "/api/v1/teams/{team}/compositions/{name}/{version}",
    params(("team" = String, Path), ("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "the composition"), (status = 404, description = "COMPOSITION_NOT_FOUND")))]
pub(super) async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    Path((team, name, version)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    get_spec(&state, &caller, &query, &team, &name, &version).await
}

async fn get_spec(
    state: &AppState,
    caller: &Caller,
    query: &Query,
    team: &str,
    name: &str,
    version: &str,
) -> ApiResult<Json<Value>> {
    query.allow(&[])?;
    check_name("team", team)?;
    check_name("composition", name)?;
    caller.read_team(team)?;
    let spec = VersionSpec::parse(version)
        .map_err(|e| Error::bad_request(format!("version {version:?}: {e}")))?;
    Ok(Json(json!(
        state.nestor().composition(team, name, &spec).await?
    )))
}

/// Validates and publishes a composition of `team` (201 created, 200
/// unchanged). The document's `metadata.team` must be the path's team
/// (or absent: it is then filled in).
#[utoipa::path(post, path = "/api/v1/teams/{team}/compositions", params(("team" = String, Path)),
    request_body(content = Object, description = "a composition, JSON or YAML"),
    responses((status = 201, description = "created"), (status = 200, description = "unchanged"), (status = 422, description = "VALIDATION_FAILED, DEPENDENCY_CYCLE")))]
pub(super) async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    acting: Acting,
    Path(team): Path<String>,
    body: Unread,
) -> ApiResult<Response> {
    query.allow(&[])?;
    check_name("team", &team)?;
    caller.write_team(&team)?;
    let payload = body.read(&state).await?;
    let path_team = team.clone();
    let composition = off_thread(&state, move |_| parse_body(&payload, &path_team)).await?;
    let published = acting
        .nestor
        .publish_composition(composition, None, &caller.actor())
        .await?;
    let status = if published.outcome == PublishOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(published))).into_response())
}

/// The composition in a body (JSON or one YAML document), checked to
/// belong to `team`.
fn parse_body(
    payload: &super::extract::Payload,
    team: &str,
) -> ApiResult<nestor_core::Composition> {
    let team = team.to_string();
    let mut value = if payload.yaml {
        let mut docs = split_documents(payload.text()?);
        if docs.len() != 1 {
            return Err(Error::bad_request(format!(
                "expected one composition document, got {}",
                docs.len()
            ))
            .into());
        }
        let raw = docs.remove(0);
        let value = raw.value.map_err(|e| Error::bad_request(e.message))?;
        if let Document::Invalid(mut errs) = interpret(&with_team(value.clone(), &team)) {
            locate_lines(&raw.text, raw.line, &mut errs);
            return Err(Error::Validation { errors: errs }.into());
        }
        value
    } else {
        payload.value()?
    };
    value = with_team(value, &team);
    let composition = parse_composition(&value).map_err(|errors| Error::Validation { errors })?;
    if composition.metadata.team != team {
        return Err(Error::invalid(
            "metadata.team",
            format!(
                "{:?} does not match the team in the path ({team:?})",
                composition.metadata.team
            ),
        )
        .into());
    }
    Ok(composition)
}

/// Fills in `metadata.team` when the document leaves it out.
fn with_team(mut value: Value, team: &str) -> Value {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("team")
            .or_insert_with(|| Value::String(team.to_string()));
    }
    value
}
