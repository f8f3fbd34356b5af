//! [`Nestor`]: the one service API. Every operation the CLI, the HTTP API
//! and library users perform exists once, here, over one store handle; the
//! front-ends only translate to and from it.
//!
//! It is wiring, not a second layer of rules: each method calls the
//! service that owns the rule (catalog, composer, sync, orchestrator). It
//! is built once per process ([`Nestor::builder`]) and cheap to clone.
//!
//! # Layout
//! - `mod.rs`: the facade, its builder, and the services it wires.
//! - `catalog`: definitions (read, publish, check, diff, yank, sync) and
//!   team compositions.
//! - `check`: documents of any kind checked as a write would, nothing
//!   written.
//! - `deploy`: deployments (plan, apply, status, rollback, promote,
//!   delete), rendering one resource, the graph, events and engines.
//! - `governance`: policies (restored from the store on first use,
//!   evaluated without deploying).
//! - `teams`: teams with their compositions, deployments, quotas and
//!   policies.
//! - `audit`: who each write is recorded as ([`Nestor::acting_as`]), the
//!   recording every write method calls, and reading the trail.

mod audit;
mod catalog;
mod check;
mod deploy;
mod governance;
mod teams;

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{Actor, AuditLog};
use crate::catalog::CatalogService;
use crate::clock::{Clock, SystemClock};
use crate::composer::Composer;
use crate::cpu::Offload;
use crate::engine::EngineProvider;
use crate::error::{Error, Result};
use crate::executor::{DirectExecutor, Executor};
use crate::observer::Observer;
use crate::orchestrator::{LeaseSettings, Orchestrator};
use crate::policy::Policies;
use crate::store::Store;
use crate::sync::SyncService;

pub use catalog::{CheckScope, StatusSummary, YankOutcome};
pub use check::DocumentCheck;
pub use governance::{PolicyCheck, PolicySubject};
pub use teams::{QuotaUsage, Team, TeamPolicy};

/// Nestor as a library: catalog, compositions, sync and deployments over one
/// store, one engine provider and one executor.
///
/// ```ignore
/// let nestor = Nestor::builder()
///     .store(store)
///     .engines(engines)
///     .executor(executor)
///     .build()?;
/// let report = nestor.sync(source.as_ref()).await?;
/// let deployment = nestor.apply(&request, None).await?;
/// ```
#[derive(Clone)]
pub struct Nestor {
    inner: Arc<Inner>,
    /// Who this handle's writes are audited as; `None`: [`Actor::local`].
    actor: Option<Arc<Actor>>,
}

struct Inner {
    /// The one store handle every service shares.
    store: Arc<dyn Store>,
    /// Engines by name (render, list).
    engines: Arc<dyn EngineProvider>,
    /// Publishes and yanks definitions with every catalog rule.
    catalog: CatalogService,
    /// Validates and publishes compositions.
    composer: Composer,
    /// Syncs sources: definitions and compositions.
    sync: SyncService,
    /// Plans, applies and manages deployments.
    orchestrator: Orchestrator,
    /// Where every write is recorded, with its actor.
    audit: Arc<dyn AuditLog>,
    /// The time audit records carry.
    clock: Arc<dyn Clock>,
    /// The policies every publish, plan and apply passes.
    policies: Policies,
    /// Whether the synced sources' stored policies were compiled into
    /// `policies` (once per process, on the first operation needing them).
    policies_restored: std::sync::atomic::AtomicBool,
}

/// Builds a [`Nestor`]; `store`, `engines` and `executor` are required.
#[derive(Default)]
pub struct NestorBuilder {
    store: Option<Arc<dyn Store>>,
    engines: Option<Arc<dyn EngineProvider>>,
    executor: Option<Arc<dyn Executor>>,
    direct: Option<Arc<dyn DirectExecutor>>,
    clock: Option<Arc<dyn Clock>>,
    leases: Option<LeaseSettings>,
    wave_delay: Duration,
    observer: Option<Arc<dyn Observer>>,
    offload: Option<Arc<dyn Offload>>,
    audit: Option<Arc<dyn AuditLog>>,
    policies: Option<Policies>,
    quotas: Vec<crate::quota::Quota>,
}

impl NestorBuilder {
    /// The team quotas (docs/src/operator/quotas.md) every apply must fit
    /// in; the store enforces them atomically. Default: none.
    pub fn quotas(mut self, quotas: Vec<crate::quota::Quota>) -> Self {
        self.quotas = quotas;
        self
    }

    /// The policies (docs/src/platform/policies.md) every definition and
    /// composition publish and every plan and apply passes. The handle is
    /// shared: replacing a layer of it later (a sync) takes effect at once.
    /// Default: none.
    pub fn policies(mut self, policies: Policies) -> Self {
        self.policies = Some(policies);
        self
    }

    /// Where the audit trail is kept. Default: the store (every store
    /// keeps one); [`NoAudit`](crate::NoAudit) keeps nothing.
    pub fn audit(mut self, audit: Arc<dyn AuditLog>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The store (memory, SQLite, DynamoDB, or your own).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Where engines are found by name (the registry of `nestor-engines`).
    pub fn engines(mut self, engines: Arc<dyn EngineProvider>) -> Self {
        self.engines = Some(engines);
        self
    }

    /// What applies rendered artifacts (the GitOps executor).
    pub fn executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = Some(executor);
        self
    }

    /// What runs a tool itself for the resources it handles (the
    /// Terraform executor of `nestor-terraform`): those resources are
    /// applied wave by wave with real outputs; the rest go to `executor`.
    /// Default: none.
    pub fn direct_executor(mut self, direct: Arc<dyn DirectExecutor>) -> Self {
        self.direct = Some(direct);
        self
    }

    /// The clock every service reads (tests fix it). Default: the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Who runs deployments here and how long a lease lasts.
    pub fn leases(mut self, leases: LeaseSettings) -> Self {
        self.leases = Some(leases);
        self
    }

    /// The pause between two waves of a deployment. Default: none.
    pub fn wave_delay(mut self, delay: Duration) -> Self {
        self.wave_delay = delay;
        self
    }

    /// What watches the cluster after each commit (Argo CD): deployments
    /// stay `applying` until it reports them synced and healthy. Default:
    /// none (a deployment is done once committed).
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Where CPU-bound work (a sync's parsing, a batch's serialising, the
    /// policies of a large plan) runs.
    /// Default: [`default_offload`](crate::default_offload) (tokio's blocking pool with feature `rt`).
    pub fn offload(mut self, offload: Arc<dyn Offload>) -> Self {
        self.offload = Some(offload);
        self
    }

    /// Wires the services. A missing part is a `BAD_REQUEST` naming it.
    pub fn build(self) -> Result<Nestor> {
        let missing = |part: &str| Error::bad_request(format!("Nestor::builder() needs {part}"));
        let store = self.store.ok_or_else(|| missing("a store"))?;
        let engines = self.engines.ok_or_else(|| missing("engines"))?;
        let executor = self.executor.ok_or_else(|| missing("an executor"))?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let audit: Arc<dyn AuditLog> = match self.audit {
            Some(audit) => audit,
            None => store.clone(),
        };
        // Each loaded engine checks its engine configs of every version
        // published or checked.
        let policies = self.policies.unwrap_or_default();
        let mut catalog = CatalogService::new(store.clone())
            .with_clock(clock.clone())
            .with_engines(engines.clone())
            .with_policies(policies.clone());
        if let Some(offload) = &self.offload {
            catalog = catalog.with_offload(offload.clone());
        }
        let composer = Composer::new(store.clone())
            .with_clock(clock.clone())
            .with_policies(policies.clone());
        let sync = SyncService::new(catalog.clone())
            .with_composer(composer.clone())
            .with_policies(policies.clone());
        let mut orchestrator = Orchestrator::new(store.clone(), engines.clone(), executor)
            .with_clock(clock.clone())
            .with_wave_delay(self.wave_delay)
            .with_policies(policies.clone())
            .with_quotas(self.quotas);
        if let Some(leases) = self.leases {
            orchestrator = orchestrator.with_leases(leases);
        }
        if let Some(observer) = self.observer {
            orchestrator = orchestrator.with_observer(observer);
        }
        if let Some(direct) = self.direct {
            orchestrator = orchestrator.with_direct(direct);
        }
        if let Some(offload) = self.offload {
            orchestrator = orchestrator.with_offload(offload);
        }
        Ok(Nestor {
            inner: Arc::new(Inner {
                store,
                engines,
                catalog,
                composer,
                sync,
                orchestrator,
                audit,
                clock,
                policies,
                policies_restored: Default::default(),
            }),
            actor: None,
        })
    }
}

impl Nestor {
    /// A builder.
    pub fn builder() -> NestorBuilder {
        NestorBuilder::default()
    }

    /// The store behind every service (for what no operation covers:
    /// migrations, backups, tests).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The orchestrator (lease scans and resumes run from the server's
    /// background tasks).
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.inner.orchestrator
    }

    /// The catalog service.
    pub fn catalog(&self) -> &CatalogService {
        &self.inner.catalog
    }

    /// The policies every publish, plan and apply passes (replace a layer
    /// of them with [`Policies::set_layer`]).
    pub fn policies(&self) -> &Policies {
        &self.inner.policies
    }
}
