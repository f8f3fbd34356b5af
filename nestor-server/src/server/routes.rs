//! The route table: the router is built by adding one (method, path,
//! handler) at a time through [`Routes`], which keeps the list of what it
//! added. [`super::routes`] hands that list out, so the test that the
//! OpenAPI document names every route and nothing else reads the
//! router's own list rather than a copy of it. Every route that is not a
//! GET gets the audit trail's layer for refused writes.

use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{on, MethodFilter};
use axum::Router;

use super::AppState;

/// A router under construction and the routes it has.
pub(super) struct Routes {
    router: Router<AppState>,
    list: Vec<(Method, &'static str)>,
    /// The server's state, for the layer around writes; `None` when only
    /// the list is wanted.
    state: Option<AppState>,
}

impl Routes {
    pub(super) fn new(state: Option<AppState>) -> Routes {
        Routes {
            router: Router::new(),
            list: Vec::new(),
            state,
        }
    }

    /// `GET path`.
    pub(super) fn get<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.on(Method::GET, MethodFilter::GET, path, handler)
    }

    /// `POST path`.
    pub(super) fn post<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.on(Method::POST, MethodFilter::POST, path, handler)
    }

    /// `DELETE path`.
    pub(super) fn delete<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.on(Method::DELETE, MethodFilter::DELETE, path, handler)
    }

    fn on<H, T>(
        mut self,
        method: Method,
        filter: MethodFilter,
        path: &'static str,
        handler: H,
    ) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let mut route = on(filter, handler);
        if method != Method::GET {
            if let Some(state) = &self.state {
                // Writes refused for who asked are audited (audit.rs).
                route = route.route_layer(from_fn_with_state(state.clone(), super::audit::denied));
            }
        }
        // A second method on a path joins the first (axum merges them).
        self.router = self.router.route(path, route);
        self.list.push((method, path));
        self
    }

    /// The router, and what it routes.
    pub(super) fn finish(self) -> (Router<AppState>, Vec<(Method, &'static str)>) {
        (self.router, self.list)
    }
}
