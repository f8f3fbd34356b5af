//! `POST /api/v1/render`: what one catalog resource renders to, on its
//! own (`nestor render --server`). Like a plan it writes nothing, and it
//! renders as a team: the caller must be able to read that team.

use axum::extract::State;
use axum::Json;
use nestor_core::{RenderResourceRequest, RenderedResource};

use super::auth::Caller;
use super::error::ApiResult;
use super::extract::{off_thread, Query, Unread};
use super::AppState;

/// Renders one resource through the engines, as the resource of a
/// deployment of `team` in `environment`; nothing is written.
#[utoipa::path(post, path = "/api/v1/render",
    request_body(content = Object, description = "{catalog_ref, engine, config, team, environment}"),
    responses((status = 200, description = "{resource, engine, artifacts: [{path, content, media_type}], outputs}")))]
pub(super) async fn render(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    body: Unread,
) -> ApiResult<Json<RenderedResource>> {
    query.allow(&[])?;
    caller.may_read_some_team()?;
    let payload = body.read(&state).await?;
    let request: RenderResourceRequest = off_thread(&state, move |_| payload.decode()).await?;
    caller.read_team(&request.team)?;
    Ok(Json(state.nestor().render(&request).await?))
}
