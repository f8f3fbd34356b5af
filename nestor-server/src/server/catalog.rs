//! Catalog routes: list, get, versions, search, publish (JSON or YAML),
//! validate, yank, status.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nestor_core::{
    interpret, locate_lines, parse_definition, split_documents, CheckScope, Document, Error,
    FieldError, ListFilter, Page, PublishOutcome, PublishedVersion, ResourceDefinition, Shared,
    VersionSpec, VersionSummary,
};
use serde_json::{json, Value};

use super::audit::Acting;
use super::auth::Caller;
use super::error::ApiResult;
use super::extract::{check_name, off_thread, Cancel, Payload, Query, Unread};
use super::AppState;

const FILTER_KEYS: [&str; 6] = [
    "provider",
    "category",
    "resource_type",
    "engine",
    "label",
    "q",
];

/// Serialised catalog records are about this big; a buffer sized for them
/// up front is not regrown (and copied) a dozen times while a page of
/// definitions is written.
const RECORD_BYTES: usize = 1024;

/// `value` as a JSON response, written into a buffer of `capacity` bytes.
fn json_sized<T: serde::Serialize>(value: &T, capacity: usize) -> ApiResult<Response> {
    let mut body = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut body, value)
        .map_err(|e| Error::internal(format!("cannot serialise the response: {e}")))?;
    Ok((super::json_type(), body).into_response())
}

/// One catalog record as a JSON response: the bytes the record keeps of
/// itself, written by the first request that sent it and shared by every
/// later one, neither copied nor serialised again.
fn json_record(record: &Shared<PublishedVersion>) -> ApiResult<Response> {
    let body = record
        .json_bytes()
        .map_err(|e| Error::internal(format!("cannot serialise the response: {e}")))?;
    Ok((super::json_type(), bytes::Bytes::from_owner(body)).into_response())
}

/// The list and search filters from the query string.
fn filter(query: &Query) -> ApiResult<ListFilter> {
    let mut f = ListFilter {
        provider: query.get("provider").map(str::to_string),
        category: query.get("category").map(str::to_string),
        resource_type: query.get("resource_type").map(str::to_string),
        engine: query.get("engine").map(str::to_string),
        q: query.get("q").filter(|q| !q.is_empty()).map(str::to_string),
        ..ListFilter::default()
    };
    for label in query.all("label") {
        let (k, v) = label.split_once('=').ok_or_else(|| {
            Error::bad_request(format!(
                "label {}: expected label=KEY=VALUE",
                nestor_core::excerpt(label)
            ))
        })?;
        f.labels.insert(k.to_string(), v.to_string());
    }
    f.check()?;
    Ok(f)
}

/// The latest version of each name, filtered, one page at a time.
#[utoipa::path(get, path = "/api/v1/resources",
    params(("provider" = Option<String>, Query), ("category" = Option<String>, Query), ("resource_type" = Option<String>, Query),
           ("engine" = Option<String>, Query), ("label" = Option<String>, Query, description = "KEY=VALUE, repeatable"),
           ("q" = Option<String>, Query), ("limit" = Option<u32>, Query, description = "1..=500, default 50"), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{items, next_cursor}"), (status = 400, description = "BAD_REQUEST")))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
) -> ApiResult<Response> {
    caller.read_catalog(&state)?;
    query.allow(&[&FILTER_KEYS[..], &["limit", "cursor"]].concat())?;
    let page: Page<Shared<PublishedVersion>> = state
        .nestor()
        .list(&filter(&query)?, &query.page()?)
        .await?;
    json_sized(&page, (page.items.len() + 1) * RECORD_BYTES)
}

/// The latest version of a name, full.
#[utoipa::path(get, path = "/api/v1/resources/{name}", params(("name" = String, Path)),
    responses((status = 200, description = "the latest version"), (status = 404, description = "RESOURCE_NOT_FOUND or VERSION_NOT_FOUND")))]
pub(super) async fn latest(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    caller.read_catalog(&state)?;
    query.allow(&[])?;
    let latest = state.nestor().get(&name, &VersionSpec::Latest).await?;
    json_record(&latest)
}

/// Every version of a name, newest first.
#[utoipa::path(get, path = "/api/v1/resources/{name}/versions", params(("name" = String, Path)),
    responses((status = 200, description = "[{version, published_at, yanked, deprecated, git_commit}]"), (status = 404, description = "RESOURCE_NOT_FOUND")))]
pub(super) async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<VersionSummary>>> {
    caller.read_catalog(&state)?;
    query.allow(&[])?;
    Ok(Json(state.nestor().versions(&name).await?))
}

/// An exact version, `latest`, or the best match for a requirement.
#[utoipa::path(get, path = "/api/v1/resources/{name}/{version}",
    params(("name" = String, Path), ("version" = String, Path, description = "1.2.0, latest, or a URL-encoded requirement such as %5E1.2")),
    responses((status = 200, description = "the version"), (status = 404, description = "RESOURCE_NOT_FOUND or VERSION_NOT_FOUND")))]
pub(super) async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.read_catalog(&state)?;
    query.allow(&[])?;
    check_name("resource", &name)?;
    let spec = VersionSpec::parse(&version)
        .map_err(|e| Error::bad_request(format!("version {version:?}: {e}")))?;
    let found = state.nestor().get(&name, &spec).await?;
    json_record(&found)
}

/// Ranked search over names, descriptions, labels and types.
#[utoipa::path(get, path = "/api/v1/search", params(("q" = String, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, description = "{items: [{score, version}]}")))]
pub(super) async fn search(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
) -> ApiResult<Json<Value>> {
    caller.read_catalog(&state)?;
    query.allow(&[&FILTER_KEYS[..], &["limit"]].concat())?;
    let text = query.get("q").unwrap_or("").to_string();
    nestor_core::check_search_query(&text)?;
    let mut f = filter(&query)?;
    f.q = None;
    let limit = query.page()?.limit;
    let hits = state.nestor().search(&text, &f, limit).await?;
    Ok(Json(json!({"items": hits})))
}

/// The definitions of a body: a JSON object or array, or YAML documents.
fn definitions(payload: &Payload, cancel: &Cancel) -> ApiResult<Vec<ResourceDefinition>> {
    let mut out = Vec::new();
    let mut errors: Vec<FieldError> = Vec::new();
    if payload.yaml {
        let docs = split_documents(payload.text()?);
        if docs.is_empty() {
            return Err(Error::bad_request("request body holds no YAML document").into());
        }
        for raw in docs {
            cancel.check()?;
            let value = raw.value.map_err(|e| {
                Error::bad_request(format!("document {}: {}", raw.index, e.message))
            })?;
            match interpret(&value) {
                Document::Definition(d) => out.push(*d),
                Document::Invalid(mut errs) => {
                    locate_lines(&raw.text, raw.line, &mut errs);
                    errors.extend(prefix(raw.index, errs));
                }
                Document::Composition(_) => errors.push(FieldError::new(
                    format!("[{}]", raw.index),
                    "a composition: publish it under /api/v1/teams/{team}/compositions",
                )),
                Document::Foreign { api_version, kind } => errors.push(FieldError::new(
                    format!("[{}].apiVersion", raw.index),
                    format!("{api_version:?}/{kind:?} is not a Nestor resource definition"),
                )),
            }
        }
    } else {
        let value = payload.value()?;
        let items = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        for (i, item) in items.iter().enumerate() {
            cancel.check()?;
            match parse_definition(item) {
                Ok(d) => out.push(d),
                Err(errs) => errors.extend(prefix(i, errs)),
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation { errors }.into());
    }
    Ok(out)
}

fn prefix(index: usize, errors: Vec<FieldError>) -> impl Iterator<Item = FieldError> {
    errors.into_iter().map(move |mut e| {
        if index > 0 {
            e.field = if e.field.is_empty() {
                format!("[{index}]")
            } else {
                format!("[{index}].{}", e.field)
            };
        }
        e
    })
}

/// Publishes one definition (201 created, 200 unchanged) or several
/// (`{results: [...]}`, each a result or an error body).
#[utoipa::path(post, path = "/api/v1/resources",
    request_body(content = Object, description = "a definition (JSON), an array of them, or YAML documents (application/yaml)"),
    responses((status = 201, description = "created"), (status = 200, description = "unchanged"),
              (status = 409, description = "VERSION_IMMUTABLE"), (status = 422, description = "VALIDATION_FAILED, BREAKING_CHANGE, DEPENDENCY_NOT_FOUND")))]
pub(super) async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    acting: Acting,
    query: Query,
    body: Unread,
) -> ApiResult<Response> {
    caller.write_catalog()?;
    query.allow(&[])?;
    let payload = body.read(&state).await?;
    let defs = off_thread(&state, move |cancel| definitions(&payload, cancel)).await?;
    let actor = caller.actor();
    if defs.len() == 1 {
        let def = defs.into_iter().next().expect("one definition");
        let result = acting.nestor.publish(def, &actor).await?;
        let status = if result.outcome == PublishOutcome::Created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return Ok((status, Json(json!(result))).into_response());
    }
    let results: Vec<Value> = acting
        .nestor
        .publish_all(defs, &actor)
        .await?
        .into_iter()
        .map(|r| match r {
            Ok(r) => json!(r),
            Err(e) => {
                json!({"error": {"code": e.code(), "message": e.to_string(), "details": e.details()}})
            }
        })
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

/// Validates definitions or compositions without writing anything.
#[utoipa::path(post, path = "/api/v1/validate", request_body(content = Object, description = "JSON or YAML documents"),
    responses((status = 200, description = "{valid, documents: [{index, kind, name, errors}]}")))]
pub(super) async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    body: Unread,
) -> ApiResult<Json<Value>> {
    caller.read_catalog(&state)?;
    query.allow(&[])?;
    let payload = body.read(&state).await?;
    let docs = off_thread(&state, move |cancel| documents(&payload, cancel)).await?;
    validate_documents(&state, docs).await
}

/// Every document of a body, interpreted (the store-free checks).
fn documents(payload: &Payload, cancel: &Cancel) -> ApiResult<Vec<(usize, Document)>> {
    Ok(if payload.yaml {
        let mut docs = Vec::new();
        for raw in split_documents(payload.text()?) {
            cancel.check()?;
            let value = raw.value.map_err(|e| {
                Error::bad_request(format!("document {}: {}", raw.index, e.message))
            })?;
            let mut doc = interpret(&value);
            if let Document::Invalid(errs) = &mut doc {
                locate_lines(&raw.text, raw.line, errs);
            }
            docs.push((raw.index, doc));
        }
        docs
    } else {
        match payload.value()? {
            Value::Array(items) => items.iter().map(interpret).enumerate().collect(),
            one => vec![(0, interpret(&one))],
        }
    })
}

/// Checks the documents as a write would (against the catalog) and
/// answers `{valid, documents}`.
async fn validate_documents(
    state: &AppState,
    docs: Vec<(usize, Document)>,
) -> ApiResult<Json<Value>> {
    let checked = state
        .nestor()
        .check_documents(docs, CheckScope::Catalog)
        .await?;
    let valid = checked.iter().all(|d| d.errors.is_empty());
    Ok(Json(json!({"valid": valid, "documents": checked})))
}

async fn set_yanked(
    acting: &Acting,
    caller: &Caller,
    query: &Query,
    name: &str,
    version: &str,
    yanked: bool,
) -> ApiResult<Json<Value>> {
    caller.write_catalog()?;
    query.allow(&[])?;
    check_name("resource", name)?;
    let v = nestor_core::parse_version(version).map_err(Error::bad_request)?;
    let outcome = acting
        .nestor
        .yank(name, &v, yanked, &caller.actor())
        .await?;
    Ok(Json(json!(outcome)))
}

/// Yanks a version (platform role): still readable exactly, never chosen.
#[utoipa::path(post, path = "/api/v1/resources/{name}/{version}/yank", params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "{changed, version}"), (status = 404, description = "VERSION_NOT_FOUND")))]
pub(super) async fn yank(
    acting: Acting,
    caller: Caller,
    query: Query,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    set_yanked(&acting, &caller, &query, &name, &version, true).await
}

/// Restores a yanked version (platform role).
#[utoipa::path(post, path = "/api/v1/resources/{name}/{version}/unyank", params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "{changed, version}")))]
pub(super) async fn unyank(
    acting: Acting,
    caller: Caller,
    query: Query,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    set_yanked(&acting, &caller, &query, &name, &version, false).await
}

/// Counts and each source's last sync report.
#[utoipa::path(get, path = "/api/v1/status", responses((status = 200, description = "{versions, last_event, sources, syncs}")))]
pub(super) async fn status(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
) -> ApiResult<Json<Value>> {
    caller.read_catalog(&state)?;
    query.allow(&[])?;
    let summary = state
        .nestor()
        .status_for(|team| caller.sees_team(team))
        .await?;
    Ok(Json(json!({
        "versions": state.metrics().catalog_versions(state.nestor()).await,
        "last_event": summary.last_event,
        "engines": state.inner.engines.list().iter().filter(|e| e.healthy).count(),
        "sources": state.syncs().names(),
        "syncs": summary.syncs,
    })))
}
