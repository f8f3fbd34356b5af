//! The CLI's one way to the data: [`Backend`], implemented in-process on
//! the local store ([`Embedded`]) and over HTTP against `nestor serve`
//! ([`Remote`]). Commands that use it print the same output either way,
//! because both hand back the same core types and the printing is shared.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nestor_core::{
    CatalogService, Composer, Composition, Deployment, DeploymentFilter, DeploymentRequest, Event,
    FieldError, ListFilter, Page, PageRequest, Plan, PublishOutcome, PublishedComposition,
    PublishedVersion, ResourceDefinition, SearchHit, Store, VersionSpec, VersionSummary,
};
use semver::Version;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What the remote-capable commands need.
#[async_trait]
pub(super) trait Backend: Send + Sync {
    /// The latest version of each name, one page.
    async fn list_latest(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> anyhow::Result<Page<PublishedVersion>>;
    /// A version spec of a name.
    async fn resolve(&self, name: &str, spec: &VersionSpec) -> anyhow::Result<PublishedVersion>;
    /// Every version of a name, newest first (empty when unknown).
    async fn versions(&self, name: &str) -> anyhow::Result<Vec<VersionSummary>>;
    /// Ranked matches.
    async fn search(
        &self,
        query: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> anyhow::Result<Vec<SearchHit>>;
    /// Yanks or restores; whether anything changed.
    async fn set_yanked(&self, name: &str, version: &Version, yanked: bool)
        -> anyhow::Result<bool>;
    /// One deployment.
    async fn deployment(&self, id: &str) -> anyhow::Result<Deployment>;
    /// Deployments passing a filter, newest first.
    async fn deployments(&self, filter: &DeploymentFilter) -> anyhow::Result<Vec<Deployment>>;
    /// The greatest event sequence so far.
    async fn last_event(&self) -> anyhow::Result<u64>;
    /// Events after `after`, oldest first, waiting up to `wait` for some.
    async fn events_after(&self, after: u64, wait: Duration) -> anyhow::Result<Vec<Event>>;
    /// Publishes one definition: `Ok(Ok(outcome))`, `Ok(Err(refusal))` for
    /// an error about this definition, `Err` when the catalog itself failed
    /// (storage, internal, unreachable, not allowed).
    async fn publish(
        &self,
        definition: ResourceDefinition,
    ) -> anyhow::Result<Result<PublishOutcome, Refusal>>;
    /// The newest version of each composition of a team (`None`: every team).
    async fn compositions(&self, team: Option<&str>) -> anyhow::Result<Vec<PublishedComposition>>;
    /// A version spec of a team's composition.
    async fn composition(
        &self,
        team: &str,
        name: &str,
        spec: &VersionSpec,
    ) -> anyhow::Result<PublishedComposition>;
    /// Publishes a composition under its `metadata.team`: the outcome and
    /// its waves, or why it was refused (like [`Backend::publish`]).
    async fn publish_composition(
        &self,
        composition: Composition,
    ) -> anyhow::Result<Result<(PublishOutcome, Vec<Vec<String>>), Refusal>>;
}

/// Why one definition was not published: its SPEC §12 error body.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    pub code: String,
    pub message: String,
    pub details: Value,
    /// The field errors it carries (the message alone when none).
    pub field_errors: Vec<FieldError>,
}

impl From<&nestor_core::Error> for Refusal {
    fn from(e: &nestor_core::Error) -> Refusal {
        Refusal {
            code: e.code().to_string(),
            message: e.to_string(),
            details: e.details(),
            field_errors: e.field_errors(),
        }
    }
}

impl From<RemoteError> for Refusal {
    fn from(r: RemoteError) -> Refusal {
        let field_errors = if r.field_errors.is_empty() {
            vec![FieldError::new("", r.message.clone())]
        } else {
            r.field_errors
        };
        Refusal {
            code: r.code,
            message: r.message,
            details: r.details,
            field_errors,
        }
    }
}

/// A remote answer: `Ok(Err(refusal))` for an error about the item sent,
/// `Err` for one about the server or the caller.
fn refusal<T>(result: anyhow::Result<T>) -> anyhow::Result<Result<T, Refusal>> {
    match result {
        Ok(t) => Ok(Ok(t)),
        Err(e) => match e.downcast::<RemoteError>() {
            Ok(r) if !ABORTS.contains(&r.code.as_str()) => Ok(Err(r.into())),
            Ok(r) => Err(r.into()),
            Err(e) => Err(e),
        },
    }
}

impl Refusal {
    /// The error body `{code, message, details}`.
    pub(super) fn to_json(&self) -> Value {
        serde_json::json!({"code": self.code, "message": self.message, "details": self.details})
    }
}

/// In-process, on the local store.
pub(super) struct Embedded {
    pub store: Arc<dyn Store>,
    pub catalog: CatalogService,
    pub composer: Composer,
}

#[async_trait]
impl Backend for Embedded {
    async fn list_latest(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> anyhow::Result<Page<PublishedVersion>> {
        Ok(self.store.list_latest(filter, page).await?)
    }

    async fn resolve(&self, name: &str, spec: &VersionSpec) -> anyhow::Result<PublishedVersion> {
        Ok(self.store.resolve(name, spec).await?)
    }

    async fn versions(&self, name: &str) -> anyhow::Result<Vec<VersionSummary>> {
        Ok(self.store.versions(name).await?)
    }

    async fn search(
        &self,
        query: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> anyhow::Result<Vec<SearchHit>> {
        Ok(self.store.search(query, filter, limit).await?)
    }

    async fn set_yanked(
        &self,
        name: &str,
        version: &Version,
        yanked: bool,
    ) -> anyhow::Result<bool> {
        Ok(self
            .catalog
            .set_yanked(name, version, yanked, "cli")
            .await?)
    }

    async fn deployment(&self, id: &str) -> anyhow::Result<Deployment> {
        Ok(self
            .store
            .get_deployment(id)
            .await?
            .ok_or_else(|| nestor_core::Error::DeploymentNotFound { id: id.into() })?)
    }

    async fn deployments(&self, filter: &DeploymentFilter) -> anyhow::Result<Vec<Deployment>> {
        Ok(self.store.list_deployments(filter).await?)
    }

    async fn last_event(&self) -> anyhow::Result<u64> {
        Ok(self.store.last_sequence().await?)
    }

    async fn events_after(&self, after: u64, wait: Duration) -> anyhow::Result<Vec<Event>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let events = self.store.read_after(after, 500).await?;
            if !events.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(events);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn publish(
        &self,
        definition: ResourceDefinition,
    ) -> anyhow::Result<Result<PublishOutcome, Refusal>> {
        use nestor_core::Error;
        match self.catalog.publish(definition, None, "cli").await {
            Ok(r) => Ok(Ok(r.outcome)),
            Err(e @ (Error::StorageUnavailable { .. } | Error::Internal { .. })) => Err(e.into()),
            Err(e) => Ok(Err((&e).into())),
        }
    }

    async fn compositions(&self, team: Option<&str>) -> anyhow::Result<Vec<PublishedComposition>> {
        Ok(self.store.list_compositions(team).await?)
    }

    async fn composition(
        &self,
        team: &str,
        name: &str,
        spec: &VersionSpec,
    ) -> anyhow::Result<PublishedComposition> {
        Ok(self.composer.get(team, name, spec).await?)
    }

    async fn publish_composition(
        &self,
        composition: Composition,
    ) -> anyhow::Result<Result<(PublishOutcome, Vec<Vec<String>>), Refusal>> {
        use nestor_core::Error;
        match self.composer.publish(composition, None, "cli").await {
            Ok(p) => Ok(Ok((p.outcome, p.waves))),
            Err(e @ (Error::StorageUnavailable { .. } | Error::Internal { .. })) => Err(e.into()),
            Err(e) => Ok(Err((&e).into())),
        }
    }
}

/// An error answered by the server: its SPEC §12 code and message, printed
/// like a local error (`error[CODE]: message`).
#[derive(Debug)]
pub struct RemoteError {
    /// The SPEC §12 code.
    pub code: String,
    /// The server's message.
    pub message: String,
    /// `details.validation_errors`, when present.
    pub field_errors: Vec<FieldError>,
    /// `details`, as answered.
    pub details: Value,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

/// Over HTTP, against `nestor serve`.
pub(super) struct Remote {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    pub(super) fn new(base: &str, token: Option<String>) -> anyhow::Result<Remote> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Remote {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// Syncs a source configured on the server and answers its report.
    pub(super) async fn sync(&self, source: &str) -> anyhow::Result<nestor_core::SyncReport> {
        self.call(
            self.request(reqwest::Method::POST, "/api/v1/sync")
                .query(&[("source", source), ("wait", "true")])
                .timeout(Duration::from_secs(600)),
        )
        .await
    }

    /// Plans a deployment request on the server.
    pub(super) async fn plan(&self, request: &DeploymentRequest) -> anyhow::Result<Plan> {
        self.call(
            self.request(reqwest::Method::POST, "/api/v1/plan")
                .json(request)
                .timeout(LONG),
        )
        .await
    }

    /// Starts a deployment: the server answers as soon as its revision is
    /// recorded (the apply goes on there).
    pub(super) async fn start_deployment(
        &self,
        request: &DeploymentRequest,
    ) -> anyhow::Result<Deployment> {
        self.call(
            self.request(reqwest::Method::POST, "/api/v1/deployments")
                .json(request)
                .timeout(LONG),
        )
        .await
    }

    /// Rolls a deployment back (the server answers when it is done).
    pub(super) async fn rollback(&self, id: &str, to: Option<u64>) -> anyhow::Result<Deployment> {
        let mut req = self
            .request(
                reqwest::Method::POST,
                &format!("/api/v1/deployments/{}/rollback", encode(id)),
            )
            .timeout(LONG);
        if let Some(to) = to {
            req = req.query(&[("to", to)]);
        }
        self.call(req).await
    }

    /// Deploys to `to` what last succeeded in `from` (answers when done).
    pub(super) async fn promote(
        &self,
        team: &str,
        name: &str,
        from: &str,
        to: &str,
    ) -> anyhow::Result<Deployment> {
        self.call(
            self.request(reqwest::Method::POST, "/api/v1/deployments/promote")
                .json(&serde_json::json!({"team": team, "name": name, "from": from, "to": to}))
                .timeout(LONG),
        )
        .await
    }

    /// The dependency graph of a team's deployments.
    pub(super) async fn graph(
        &self,
        team: &str,
        environment: Option<&str>,
    ) -> anyhow::Result<nestor_core::GraphView> {
        let mut q = vec![("team", team)];
        if let Some(e) = environment {
            q.push(("environment", e));
        }
        self.call(
            self.request(reqwest::Method::GET, "/api/v1/graph")
                .query(&q),
        )
        .await
    }

    /// The server's engines.
    pub(super) async fn engines<T: DeserializeOwned>(&self) -> anyhow::Result<Vec<T>> {
        self.call(self.request(reqwest::Method::GET, "/api/v1/engines"))
            .await
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(60));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn call<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {}: {e}", self.base))?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| {
            anyhow::anyhow!(
                "{} answered {status} with a body that is not JSON: {e}",
                self.base
            )
        })?;
        if !status.is_success() {
            let e = &body["error"];
            let field_errors = serde_json::from_value(e["details"]["validation_errors"].clone())
                .unwrap_or_default();
            return Err(RemoteError {
                code: e["code"].as_str().unwrap_or("INTERNAL_ERROR").to_string(),
                message: e["message"].as_str().unwrap_or("no message").to_string(),
                field_errors,
                details: e["details"].clone(),
            }
            .into());
        }
        Ok(serde_json::from_value(body)?)
    }

    fn filter_query(filter: &ListFilter) -> Vec<(String, String)> {
        let mut q = Vec::new();
        for (k, v) in [
            ("provider", &filter.provider),
            ("category", &filter.category),
            ("resource_type", &filter.resource_type),
            ("engine", &filter.engine),
        ] {
            if let Some(v) = v {
                q.push((k.to_string(), v.clone()));
            }
        }
        for (k, v) in &filter.labels {
            q.push(("label".into(), format!("{k}={v}")));
        }
        q
    }
}

fn encode(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[async_trait]
impl Backend for Remote {
    async fn list_latest(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> anyhow::Result<Page<PublishedVersion>> {
        let mut q = Self::filter_query(filter);
        if let Some(text) = &filter.q {
            q.push(("q".into(), text.clone()));
        }
        q.push(("limit".into(), page.limit.to_string()));
        if let Some(c) = &page.cursor {
            q.push(("cursor".into(), c.clone()));
        }
        self.call(
            self.request(reqwest::Method::GET, "/api/v1/resources")
                .query(&q),
        )
        .await
    }

    async fn resolve(&self, name: &str, spec: &VersionSpec) -> anyhow::Result<PublishedVersion> {
        let path = match spec {
            VersionSpec::Latest => format!("/api/v1/resources/{}", encode(name)),
            other => format!(
                "/api/v1/resources/{}/{}",
                encode(name),
                encode(&other.to_string())
            ),
        };
        self.call(self.request(reqwest::Method::GET, &path)).await
    }

    async fn versions(&self, name: &str) -> anyhow::Result<Vec<VersionSummary>> {
        match self
            .call(self.request(
                reqwest::Method::GET,
                &format!("/api/v1/resources/{}/versions", encode(name)),
            ))
            .await
        {
            Err(e)
                if e.downcast_ref::<RemoteError>()
                    .is_some_and(|r| r.code == "RESOURCE_NOT_FOUND") =>
            {
                Ok(vec![])
            }
            other => other,
        }
    }

    async fn search(
        &self,
        query: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> anyhow::Result<Vec<SearchHit>> {
        let mut q = Self::filter_query(filter);
        q.push(("q".into(), query.to_string()));
        q.push(("limit".into(), limit.to_string()));
        #[derive(serde::Deserialize)]
        struct Hits {
            items: Vec<SearchHit>,
        }
        let hits: Hits = self
            .call(
                self.request(reqwest::Method::GET, "/api/v1/search")
                    .query(&q),
            )
            .await?;
        Ok(hits.items)
    }

    async fn set_yanked(
        &self,
        name: &str,
        version: &Version,
        yanked: bool,
    ) -> anyhow::Result<bool> {
        let action = if yanked { "yank" } else { "unyank" };
        let body: Value = self
            .call(self.request(
                reqwest::Method::POST,
                &format!("/api/v1/resources/{}/{version}/{action}", encode(name)),
            ))
            .await?;
        Ok(body["changed"].as_bool().unwrap_or(false))
    }

    async fn deployment(&self, id: &str) -> anyhow::Result<Deployment> {
        self.call(self.request(
            reqwest::Method::GET,
            &format!("/api/v1/deployments/{}", encode(id)),
        ))
        .await
    }

    async fn deployments(&self, filter: &DeploymentFilter) -> anyhow::Result<Vec<Deployment>> {
        let mut q: BTreeMap<&str, String> = BTreeMap::new();
        for (k, v) in [
            ("team", &filter.team),
            ("environment", &filter.environment),
            ("name", &filter.name),
        ] {
            if let Some(v) = v {
                q.insert(k, v.clone());
            }
        }
        if let Some(s) = filter.status {
            q.insert("status", s.as_str().to_string());
        }
        #[derive(serde::Deserialize)]
        struct Items {
            items: Vec<Deployment>,
        }
        let items: Items = self
            .call(
                self.request(reqwest::Method::GET, "/api/v1/deployments")
                    .query(&q),
            )
            .await?;
        Ok(items.items)
    }

    async fn last_event(&self) -> anyhow::Result<u64> {
        let status: Value = self
            .call(self.request(reqwest::Method::GET, "/api/v1/status"))
            .await?;
        Ok(status["last_event"].as_u64().unwrap_or(0))
    }

    async fn events_after(&self, after: u64, wait: Duration) -> anyhow::Result<Vec<Event>> {
        let mut resp = self
            .request(reqwest::Method::GET, "/api/v1/events")
            .header("last-event-id", after.to_string())
            .timeout(wait + Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {}: {e}", self.base))?;
        if !resp.status().is_success() {
            return self
                .call(self.request(reqwest::Method::GET, "/api/v1/events"))
                .await;
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = String::new();
        let mut events = Vec::new();
        loop {
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if block
                    .lines()
                    .any(|l| l.trim() == "event: resync" || l.trim() == "event:resync")
                {
                    return Ok(events);
                }
                if let Ok(e) = serde_json::from_str::<Event>(&data) {
                    events.push(e);
                }
            }
            if !events.is_empty() && !buf.contains('\n') {
                return Ok(events);
            }
            match tokio::time::timeout_at(deadline, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return Ok(events),
            }
        }
    }

    async fn publish(
        &self,
        definition: ResourceDefinition,
    ) -> anyhow::Result<Result<PublishOutcome, Refusal>> {
        let body = serde_yaml::to_string(&definition)?;
        let req = self
            .request(reqwest::Method::POST, "/api/v1/resources")
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(body);
        #[derive(serde::Deserialize)]
        struct Published {
            outcome: PublishOutcome,
        }
        Ok(refusal(self.call::<Published>(req).await)?.map(|p| p.outcome))
    }

    async fn compositions(&self, team: Option<&str>) -> anyhow::Result<Vec<PublishedComposition>> {
        let Some(team) = team else {
            anyhow::bail!("--all works only on the local store: the server lists one team's compositions at a time (--team)");
        };
        self.call(self.request(
            reqwest::Method::GET,
            &format!("/api/v1/teams/{}/compositions", encode(team)),
        ))
        .await
    }

    async fn composition(
        &self,
        team: &str,
        name: &str,
        spec: &VersionSpec,
    ) -> anyhow::Result<PublishedComposition> {
        let path = match spec {
            VersionSpec::Latest => {
                format!(
                    "/api/v1/teams/{}/compositions/{}",
                    encode(team),
                    encode(name)
                )
            }
            other => format!(
                "/api/v1/teams/{}/compositions/{}/{}",
                encode(team),
                encode(name),
                encode(&other.to_string())
            ),
        };
        self.call(self.request(reqwest::Method::GET, &path)).await
    }

    async fn publish_composition(
        &self,
        composition: Composition,
    ) -> anyhow::Result<Result<(PublishOutcome, Vec<Vec<String>>), Refusal>> {
        let body = serde_yaml::to_string(&composition)?;
        let req = self
            .request(
                reqwest::Method::POST,
                &format!(
                    "/api/v1/teams/{}/compositions",
                    encode(&composition.metadata.team)
                ),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(body);
        #[derive(serde::Deserialize)]
        struct Published {
            outcome: PublishOutcome,
            waves: Vec<Vec<String>>,
        }
        Ok(refusal(self.call::<Published>(req).await)?.map(|p| (p.outcome, p.waves)))
    }
}

/// How long a request that runs a deployment on the server may take.
const LONG: Duration = Duration::from_secs(600);

/// Remote error codes about the server or the caller rather than one item:
/// they stop a command instead of being reported per item.
const ABORTS: [&str; 6] = [
    "STORAGE_UNAVAILABLE",
    "INTERNAL_ERROR",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "BAD_REQUEST",
    "RATE_LIMITED",
];
