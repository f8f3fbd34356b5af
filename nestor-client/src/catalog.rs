//! The catalog routes: reads, search, publish, validate, yank, status and
//! sync triggers.

use nestor_core::{
    Error, ListFilter, Page, PageRequest, PublishResult, PublishedVersion, ResourceDefinition,
    Result, SearchHit, SyncReport, VersionSpec, VersionSummary,
};
use reqwest::Method;
use semver::Version;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{decode, Call, Client};
use crate::retry::Retry;
use crate::wire::{ServerStatus, ValidationReport, YankOutcome};

impl Client {
    /// The latest version of each name passing `filter`, one page
    /// (`GET /api/v1/resources`); follow `next_cursor` for the next.
    pub async fn list_latest(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> Result<Page<PublishedVersion>> {
        let mut call = self
            .get(&["api", "v1", "resources"])
            .query(filter_query(filter))
            .query([("limit", page.limit.to_string())]);
        if let Some(q) = filter.q.as_deref().filter(|q| !q.is_empty()) {
            call = call.query([("q", q)]);
        }
        if let Some(cursor) = &page.cursor {
            call = call.query([("cursor", cursor.as_str())]);
        }
        self.json(call).await
    }

    /// The latest version of `name`, full.
    pub async fn latest(&self, name: &str) -> Result<PublishedVersion> {
        self.json(self.get(&["api", "v1", "resources", name])).await
    }

    /// `name` at an exact version, `latest`, or the best match for a
    /// requirement (`^1.2`).
    pub async fn resolve(&self, name: &str, spec: &VersionSpec) -> Result<PublishedVersion> {
        match spec {
            VersionSpec::Latest => self.latest(name).await,
            other => {
                let version = other.to_string();
                self.json(self.get(&["api", "v1", "resources", name, &version]))
                    .await
            }
        }
    }

    /// Every version of `name`, newest first by semver; `RESOURCE_NOT_FOUND`
    /// for a name never published.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionSummary>> {
        self.json(self.get(&["api", "v1", "resources", name, "versions"]))
            .await
    }

    /// Ranked matches of `query` over names, descriptions, labels and types.
    pub async fn search(
        &self,
        query: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        #[derive(Deserialize)]
        struct Hits {
            items: Vec<SearchHit>,
        }
        let call = self
            .get(&["api", "v1", "search"])
            .query(filter_query(filter))
            .query([("q", query.to_string()), ("limit", limit.to_string())]);
        Ok(self.json::<Hits>(call).await?.items)
    }

    /// Publishes one definition (platform role): created, or unchanged when
    /// the same content is there. Retried: a repeat is answered unchanged.
    pub async fn publish(&self, definition: &ResourceDefinition) -> Result<PublishResult> {
        let call = self.publish_call().json(definition)?;
        self.json(call).await
    }

    /// Publishes YAML documents as written (platform role), in dependency
    /// and semver order; one result per document, in document order. See
    /// [`Client::publish_many`] for which errors are per document.
    pub async fn publish_yaml(&self, documents: &str) -> Result<Vec<Result<PublishResult>>> {
        let call = self.publish_call().yaml(documents);
        self.publish_batch(call).await
    }

    /// Publishes several definitions in one request (platform role), in
    /// dependency and semver order; one result per definition, in the
    /// order given. A definition the catalog refuses (invalid, immutable,
    /// breaking...) is an `Err` in its slot; the outer `Err` is a refusal
    /// of the whole request (token, store, server). The server answers a
    /// batch of one like [`Client::publish`]; its refusal is placed in the
    /// slot when it is about the document (see
    /// [`nestor_core::ErrorCode::aborts_batch`]).
    pub async fn publish_many(
        &self,
        definitions: &[ResourceDefinition],
    ) -> Result<Vec<Result<PublishResult>>> {
        let call = self.publish_call().json(&definitions)?;
        self.publish_batch(call).await
    }

    fn publish_call(&self) -> Call {
        self.call(Method::POST, &["api", "v1", "resources"], Retry::Safe)
    }

    async fn publish_batch(&self, call: Call) -> Result<Vec<Result<PublishResult>>> {
        let resp = match self.send(&call).await {
            Ok(resp) => resp,
            Err(e) if !e.code().aborts_batch() => return Ok(vec![Err(e)]),
            Err(e) => return Err(e),
        };
        let body: Value = decode(resp).await?;
        let Some(results) = body.get("results").and_then(Value::as_array) else {
            return Ok(vec![Ok(from_value(body)?)]);
        };
        Ok(results
            .iter()
            .map(|r| match r.get("error") {
                Some(e) => Err(error_body(e)),
                None => from_value(r.clone()),
            })
            .collect())
    }

    /// Validates documents without writing anything: YAML definitions or
    /// compositions, each checked as a publish would check it.
    pub async fn validate_yaml(&self, documents: &str) -> Result<ValidationReport> {
        let call = self
            .call(Method::POST, &["api", "v1", "validate"], Retry::Safe)
            .yaml(documents);
        self.json(call).await
    }

    /// Validates JSON documents (one object or an array) without writing.
    pub async fn validate_json(&self, documents: &Value) -> Result<ValidationReport> {
        let call = self
            .call(Method::POST, &["api", "v1", "validate"], Retry::Safe)
            .json(documents)?;
        self.json(call).await
    }

    /// Yanks `name@version` (platform role): still readable exactly, never
    /// chosen for `latest` or a requirement.
    pub async fn yank(&self, name: &str, version: &Version) -> Result<YankOutcome> {
        self.set_yanked(name, version, "yank").await
    }

    /// Restores a yanked version (platform role).
    pub async fn unyank(&self, name: &str, version: &Version) -> Result<YankOutcome> {
        self.set_yanked(name, version, "unyank").await
    }

    async fn set_yanked(&self, name: &str, version: &Version, action: &str) -> Result<YankOutcome> {
        let version = version.to_string();
        let call = self.call(
            Method::POST,
            &["api", "v1", "resources", name, &version, action],
            Retry::Safe,
        );
        self.json(call).await
    }

    /// Counts, the configured sources and each one's last sync report.
    pub async fn status(&self) -> Result<ServerStatus> {
        self.json(self.get(&["api", "v1", "status"])).await
    }

    /// The greatest event sequence so far.
    pub async fn last_event(&self) -> Result<u64> {
        Ok(self.status().await?.last_event)
    }

    /// Starts a sync of `source` (every source when `None`) in the
    /// background (platform role); answers the sources accepted. Sent once.
    pub async fn trigger_sync(&self, source: Option<&str>) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Accepted {
            accepted: Vec<String>,
        }
        let mut call = self.call(Method::POST, &["api", "v1", "sync"], Retry::Never);
        if let Some(source) = source {
            call = call.query([("source", source)]);
        }
        Ok(self.json::<Accepted>(call).await?.accepted)
    }

    /// Syncs `source` now and answers its report when it is done (platform
    /// role). Sent once.
    pub async fn sync(&self, source: &str) -> Result<SyncReport> {
        let call = self
            .call(Method::POST, &["api", "v1", "sync"], Retry::Never)
            .query([("source", source), ("wait", "true")])
            .long();
        self.json(call).await
    }
}

/// The list and search filters as query pairs.
fn filter_query(filter: &ListFilter) -> Vec<(String, String)> {
    let mut q = Vec::new();
    for (key, value) in [
        ("provider", &filter.provider),
        ("category", &filter.category),
        ("resource_type", &filter.resource_type),
        ("engine", &filter.engine),
    ] {
        if let Some(v) = value {
            q.push((key.to_string(), v.clone()));
        }
    }
    for (k, v) in &filter.labels {
        q.push(("label".into(), format!("{k}={v}")));
    }
    q
}

/// One item of a batch answer.
fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| Error::internal(format!("a publish answer this client cannot read: {e}")))
}

/// The core error of an inline error body `{code, message, details}`.
fn error_body(e: &Value) -> Error {
    match serde_json::from_value::<nestor_core::ErrorCode>(e["code"].clone()) {
        Ok(code) => Error::from_code(
            code,
            e["message"].as_str().unwrap_or_default(),
            &e["details"],
        ),
        Err(_) => Error::internal(format!("an error this client does not know: {e}")),
    }
}
