//! # nestor-argocd
//!
//! The [`Observer`] that asks Argo CD what became of a committed
//! deployment: `GET /api/v1/applications/{name}` for the team's
//! Application (sync status, the revision it synced, the last sync
//! operation, conditions, per-object health), and `GET
//! /api/v1/applications/{name}/resource-tree` when Argo CD keeps object
//! health out of the Application (`status.resourceHealthSource: appTree`,
//! the default since Argo CD 3.0).
//!
//! # Layout
//! - [`ArgoCdObserver`]: settings, the HTTP calls, and how each answer
//!   maps to an [`Observation`] or an [`ObserveError`].
//! - `status` (private): Argo CD's Application JSON read into an
//!   observation, written against the field names of Argo CD's own types.
//!
//! # Design decisions
//! - A crate of its own, beside the core rather than inside
//!   `nestor-storage`: the core knows no HTTP, and storage is what Nestor
//!   persists and reads as a source of truth (stores, git). An HTTP client
//!   of a cluster's API pulls other dependencies (reqwest, rustls) that an
//!   embedder committing to git without Argo CD should not compile. The
//!   server depends on it; library users opt in.
//! - One look per call, no waiting inside: the orchestrator owns the
//!   schedule (backoff, timeout, takeover).
//! - Answers are classified once: 5xx, 429, timeouts and refused
//!   connections are transient (looked at again); 401/403 and unreadable
//!   answers are permanent; 404 means Argo CD has not created the
//!   Application yet (the root Application syncs `argocd/` first), which
//!   is waiting, not failure.
#![deny(missing_docs)]

mod status;

use std::time::Duration;

use async_trait::async_trait;
use nestor_core::{
    cluster_names, Observation, ObserveError, ObserveSchedule, ObserveTarget, Observer,
};

/// Where Argo CD is and how to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoCdSettings {
    /// The API server (`https://argocd.example.com`).
    pub server: String,
    /// Bearer token (an account or project token), if any.
    pub token: Option<String>,
    /// The namespace Argo CD runs in, where the team Applications live.
    pub namespace: String,
    /// Accept any certificate (test installations only).
    pub insecure_tls: bool,
    /// First pause between looks.
    pub poll: Duration,
    /// How long after the commit every object must be healthy.
    pub health_timeout: Duration,
}

/// Reads deployments' outcomes from Argo CD's API.
pub struct ArgoCdObserver {
    settings: ArgoCdSettings,
    client: reqwest::Client,
}

impl ArgoCdObserver {
    /// An observer with its HTTP client (10 s per request).
    pub fn new(settings: ArgoCdSettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .danger_accept_invalid_certs(settings.insecure_tls)
            .build()
            .map_err(|e| format!("argocd: building the HTTP client: {e}"))?;
        Ok(ArgoCdObserver { settings, client })
    }

    /// GETs `path` (with `query`) and returns its JSON body.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<serde_json::Value>, ObserveError> {
        let url = format!("{}{path}", self.settings.server.trim_end_matches('/'));
        let mut request = self.client.get(&url).query(query);
        if let Some(token) = &self.settings.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ObserveError::Transient(format!("GET {url}: {}", without_url(&e))))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(ObserveError::Transient(format!(
                "Argo CD answered {status} for GET {url}"
            )));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ObserveError::Permanent(format!(
                "Argo CD refused the token ({status} for GET {url}); check argocd.token (or ARGOCD_AUTH_TOKEN) and the account's RBAC (applications, get)"
            )));
        }
        if !status.is_success() {
            return Err(ObserveError::Permanent(format!(
                "Argo CD answered {status} for GET {url}"
            )));
        }
        let body = response.json().await.map_err(|e| {
            ObserveError::Permanent(format!(
                "GET {url}: not Argo CD's JSON: {}",
                without_url(&e)
            ))
        })?;
        Ok(Some(body))
    }
}

/// reqwest's message without the URL it repeats.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else if e.is_decode() {
        "could not decode the body".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[async_trait]
impl Observer for ArgoCdObserver {
    fn name(&self) -> &str {
        "argocd"
    }

    fn schedule(&self) -> ObserveSchedule {
        ObserveSchedule::new(self.settings.poll, self.settings.health_timeout)
    }

    async fn observe(&self, target: &ObserveTarget) -> Result<Observation, ObserveError> {
        let names = cluster_names(&target.key.team, &target.key.environment);
        let app = &names.application;
        let ns = self.settings.namespace.as_str();
        // The first look asks Argo CD to compare with the repository now,
        // rather than at its next poll of git (3 minutes by default).
        let mut query = vec![("appNamespace", ns)];
        if target.attempt == 0 {
            query.push(("refresh", "normal"));
        }
        let Some(application) = self
            .get(&format!("/api/v1/applications/{app}"), &query)
            .await?
        else {
            return Ok(Observation {
                note: Some(format!(
                    "Argo CD has no Application {app} in {ns} yet (is the root Application syncing argocd/?)"
                )),
                ..Observation::default()
            });
        };
        let mut seen = status::observation(&application);
        if status::health_in_tree(&application) {
            let tree = self
                .get(
                    &format!("/api/v1/applications/{app}/resource-tree"),
                    &[("appNamespace", ns)],
                )
                .await?
                .unwrap_or_default();
            status::apply_tree(&mut seen, &tree);
        }
        Ok(seen)
    }
}
