//! Deployments survive the loss of their runner (issue 6): leases, resume
//! at the first wave not yet rendered, fencing of a runner that lost its
//! lease, and the GitOps executor's idempotent re-apply. Two orchestrators
//! on one store stand for two replicas; the real GitOps executor commits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nestor_core::*;
use nestor_storage::{GitOpsConfig, GitOpsExecutor};
use serde_json::json;

use crate::orchestrator::{commits, env, Env, JsonEngine};

/// Counts renders per resource; never returns for the resource named in
/// `hang_on` (a runner stuck or dying mid-wave).
#[derive(Clone, Default)]
struct Counting {
    renders: Arc<Mutex<BTreeMap<String, usize>>>,
    hang_on: Option<&'static str>,
}

impl Counting {
    fn count(&self, resource: &str) -> usize {
        self.renders
            .lock()
            .unwrap()
            .get(resource)
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait]
impl Engine for Counting {
    fn info(&self) -> EngineInfo {
        JsonEngine("terraform").info()
    }

    async fn render(&self, request: &RenderRequest) -> Result<RenderOutput> {
        *self
            .renders
            .lock()
            .unwrap()
            .entry(request.resource.clone())
            .or_default() += 1;
        if self.hang_on == Some(request.resource.as_str()) {
            std::future::pending::<()>().await;
        }
        JsonEngine("terraform").render(request).await
    }
}

/// A replica: its own engines and leases, the shared store and repository.
fn replica(e: &Env, owner: &str, engine: &Counting, clock: Arc<dyn Clock>) -> Orchestrator {
    let engines: BTreeMap<String, Arc<dyn Engine>> = BTreeMap::from([(
        "terraform".to_string(),
        Arc::new(engine.clone()) as Arc<dyn Engine>,
    )]);
    let executor = Arc::new(GitOpsExecutor::open(GitOpsConfig::local(e.repo.path())).unwrap());
    Orchestrator::new(e.store.clone(), Arc::new(engines), executor)
        .with_clock(clock)
        .with_leases(LeaseSettings {
            owner: owner.into(),
            ttl: TTL,
        })
}

const TTL: Duration = Duration::from_millis(300);

/// Three resources in three waves: first → second → third.
fn chain() -> DeploymentRequest {
    serde_json::from_value(json!({
        "team": "alpha", "environment": "dev", "name": "chain",
        "resources": [
            {"name": "first", "catalog_ref": "cache", "engine": "terraform"},
            {"name": "second", "catalog_ref": "cache", "engine": "terraform", "depends_on": ["first"]},
            {"name": "third", "catalog_ref": "cache", "engine": "terraform", "depends_on": ["second"]}
        ]
    }))
    .unwrap()
}

const ID: &str = "alpha.dev.chain.r1";

/// Polls until `ok` holds, for at most 5 s.
async fn until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Replica A (with `clock`) applying [`chain`] until its engine hangs in
/// the second wave; returns A's engine and its run.
async fn stuck_in_wave_two(
    e: &Env,
    clock: Arc<dyn Clock>,
) -> (Counting, tokio::task::JoinHandle<Result<Deployment>>) {
    let engine = Counting {
        hang_on: Some("second"),
        ..Default::default()
    };
    let a = replica(e, "replica-a", &engine, clock);
    let running = tokio::spawn(async move { a.apply(&chain(), None).await });
    until("replica A to start the second wave", async || {
        engine.count("second") == 1
    })
    .await;
    (engine, running)
}

#[tokio::test]
async fn a_runner_that_stops_between_waves_is_resumed_at_the_next_wave() {
    let e = env().await;
    let b_engine = Counting::default();
    let b = replica(&e, "replica-b", &b_engine, Arc::new(SystemClock));
    let (a_engine, running) = stuck_in_wave_two(&e, Arc::new(SystemClock)).await;
    let stored = e.store.revision_content(ID).await.unwrap().unwrap();
    assert!(
        stored.artifacts.contains_key("first"),
        "the first wave's artifacts are stored before the second starts"
    );
    // Replica A dies: no more heartbeats, its lease is never released.
    running.abort();
    let died = Instant::now();

    assert_eq!(
        b.resume(ID).await.unwrap(),
        None,
        "a live lease is not taken over"
    );
    until("the lease to expire", async || {
        b.orphans(false).await.unwrap() == [ID]
    })
    .await;
    let expired_after = died.elapsed();
    assert!(
        expired_after <= TTL + Duration::from_millis(500),
        "the lease lapsed {expired_after:?} after its runner died (ttl {TTL:?})"
    );
    let d = b.resume(ID).await.unwrap().expect("replica B claims it");
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{d:?}");

    assert_eq!(a_engine.count("first"), 1);
    assert_eq!(b_engine.count("first"), 0, "wave 1 is not rendered again");
    assert_eq!(b_engine.count("second"), 1, "B resumes at wave 2");
    assert_eq!(b_engine.count("third"), 1);
    let first = d.resources.iter().find(|r| r.name == "first").unwrap();
    assert_eq!(first.status, ResourceStatus::Applied);
    assert_eq!(
        first.outputs.get("host"),
        Some(&json!({"value": "ref://first/host"}))
    );

    let history = GitOpsExecutor::open(GitOpsConfig::local(e.repo.path()))
        .unwrap()
        .history(&d.key(), 100)
        .unwrap();
    assert_eq!(history.len(), 1, "one commit: {history:?}");
    assert_eq!(
        history[0].paths,
        [
            "alpha/dev/chain/first/terraform.json",
            "alpha/dev/chain/second/terraform.json",
            "alpha/dev/chain/third/terraform.json",
        ],
        "one commit holds each resource exactly once"
    );
    assert!(history[0].message.contains(ID));
    assert_eq!(d.commit.as_deref(), Some(history[0].commit.as_str()));
    assert!(
        e.store.leases().await.unwrap().is_empty(),
        "B released the lease"
    );
    assert!(b.orphans(true).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_deployment_cancelled_while_its_runner_is_gone_is_recorded_as_cancelled() {
    let e = env().await;
    let b = replica(&e, "replica-b", &Counting::default(), Arc::new(SystemClock));
    let (_, running) = stuck_in_wave_two(&e, Arc::new(SystemClock)).await;
    running.abort();
    let cancelled = b.delete(ID).await.unwrap();
    assert_eq!(cancelled.status, DeploymentStatus::Cancelled);
    until("the lease to expire", async || {
        b.orphans(false).await.unwrap() == [ID]
    })
    .await;
    let d = b.resume(ID).await.unwrap().unwrap();
    assert_eq!(d.status, DeploymentStatus::Cancelled);
    let statuses: Vec<_> = d
        .resources
        .iter()
        .map(|r| (r.name.as_str(), r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("first", ResourceStatus::Rendering),
            ("second", ResourceStatus::Cancelled),
            ("third", ResourceStatus::Cancelled),
        ]
    );
    let events = e.store.read_after(0, 1_000).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.event_type, EventType::DeploymentFailed);
    assert_eq!(last.data["status"], "cancelled");
    assert!(commits(e.repo.path()).is_empty(), "nothing was committed");
    assert!(e.store.leases().await.unwrap().is_empty());
}

/// A clock running `behind` the real one: its leases look expired to
/// everyone else (a runner that was paused past its lease).
struct Behind(Duration);

impl Clock for Behind {
    fn now(&self) -> Timestamp {
        self.now_millis() / 1000
    }

    fn now_millis(&self) -> i64 {
        SystemClock.now_millis() - self.0.as_millis() as i64
    }
}

#[tokio::test]
async fn a_runner_that_lost_its_lease_stops_without_committing() {
    let e = env().await;
    let b = replica(&e, "replica-b", &Counting::default(), Arc::new(SystemClock));
    let (_, running) = stuck_in_wave_two(&e, Arc::new(Behind(Duration::from_secs(600)))).await;
    let d = b
        .resume(ID)
        .await
        .unwrap()
        .expect("A's lease looks expired");
    assert_eq!(d.status, DeploymentStatus::Succeeded);
    let a_result = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("A notices at its next heartbeat")
        .unwrap();
    let err = a_result.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict, "{err}");
    assert_eq!(commits(e.repo.path()).len(), 1, "only B committed");
    let stored = e.store.get_deployment(ID).await.unwrap().unwrap();
    assert_eq!(stored.status, DeploymentStatus::Succeeded);
}

#[tokio::test]
async fn an_abandoned_claim_without_a_revision_is_cleaned_up() {
    let e = env().await;
    let engine = Counting::default();
    let b = replica(&e, "replica-b", &engine, Arc::new(SystemClock));
    // A runner claimed revision 1 and died before recording it.
    e.store
        .claim_lease(ID, "replica-a", 0, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.orphans(false).await.unwrap(), [ID]);
    assert_eq!(b.resume(ID).await.unwrap(), None, "nothing to run");
    assert!(e.store.leases().await.unwrap().is_empty());
    let d = b.apply(&chain(), None).await.unwrap();
    assert_eq!((d.revision, d.status), (1, DeploymentStatus::Succeeded));
}

#[tokio::test]
async fn a_deployment_recorded_without_a_lease_is_found_by_a_full_scan() {
    let e = env().await;
    let engine = Counting::default();
    let b = replica(&e, "replica-b", &engine, Arc::new(SystemClock));
    let mut d = nestor_core::testing::deployment(ID, "dev", 1, 0);
    d.name = "chain".into();
    e.store
        .create_deployment(&d, &RevisionContent::default(), None)
        .await
        .unwrap();
    assert!(b.orphans(false).await.unwrap().is_empty());
    assert_eq!(b.orphans(true).await.unwrap(), [ID]);
}

#[tokio::test]
async fn re_applying_a_committed_revision_makes_no_new_commit() {
    let repo = tempfile::tempdir().unwrap();
    let executor = GitOpsExecutor::open(GitOpsConfig::local(repo.path())).unwrap();
    let target = ApplyTarget {
        key: DeploymentKey {
            team: "alpha".into(),
            environment: "dev".into(),
            name: "chain".into(),
        },
        revision: 1,
        deployment_id: ID.into(),
    };
    let files = BTreeMap::from([(
        "first".to_string(),
        vec![Artifact {
            path: "main.tf.json".into(),
            content: "{}".into(),
            media_type: "application/json".into(),
        }],
    )]);
    let once = executor.apply(&target, &files).await.unwrap();
    let other = ApplyTarget {
        revision: 2,
        deployment_id: "alpha.dev.chain.r2".into(),
        ..target.clone()
    };
    executor.apply(&other, &BTreeMap::new()).await.unwrap();
    let again = executor.apply(&target, &files).await.unwrap();
    assert_eq!(once, again, "the receipt names the first commit");
    assert_eq!(commits(repo.path()).len(), 2);
}
