//! Deployment leases: one holder until expiry, lost leases, racing claims
//! (on one handle and across handles).

use std::sync::Arc;

use crate::*;

/// A lease is held by one owner until it expires — even its own owner
/// cannot claim it again — and claims of other deployments are independent.
pub async fn leases_are_exclusive_until_they_expire(store: Arc<dyn Store>) {
    assert!(store.leases().await.unwrap().is_empty());
    let a = store
        .claim_lease("d1", "replica-a", 1_000, 500)
        .await
        .unwrap()
        .expect("a fresh lease is free");
    assert_eq!(
        (a.owner.as_str(), a.epoch, a.expires_at_ms),
        ("replica-a", 1, 1_500)
    );
    for owner in ["replica-b", "replica-a"] {
        assert_eq!(
            store.claim_lease("d1", owner, 1_499, 500).await.unwrap(),
            None,
            "{owner} cannot claim a live lease"
        );
    }
    let other = store
        .claim_lease("d2", "replica-b", 1_000, 500)
        .await
        .unwrap()
        .expect("leases are per deployment");
    assert_eq!(store.leases().await.unwrap(), [a.clone(), other]);

    let renewed = store.renew_lease(&a, 1_400, 500).await.unwrap();
    assert_eq!((renewed.epoch, renewed.expires_at_ms), (1, 1_900));
    assert_eq!(
        store
            .claim_lease("d1", "replica-b", 1_600, 500)
            .await
            .unwrap(),
        None,
        "a renewed lease holds past its first expiry"
    );
    let b = store
        .claim_lease("d1", "replica-b", 1_900, 500)
        .await
        .unwrap()
        .expect("an expired lease can be taken over");
    assert_eq!(
        (b.owner.as_str(), b.epoch, b.expires_at_ms),
        ("replica-b", 2, 2_400)
    );
}

/// A holder that lost its lease can neither renew nor release it; the
/// holder's release frees it at once.
pub async fn lost_leases_cannot_be_renewed_or_released(store: Arc<dyn Store>) {
    let a = store
        .claim_lease("d1", "replica-a", 0, 100)
        .await
        .unwrap()
        .unwrap();
    let late = store.renew_lease(&a, 5_000, 100).await.unwrap();
    assert_eq!(
        late.expires_at_ms, 5_100,
        "an expired lease nobody claimed can still be renewed"
    );
    let b = store
        .claim_lease("d1", "replica-b", 6_000, 100)
        .await
        .unwrap()
        .unwrap();
    let err = store.renew_lease(&late, 6_001, 100).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict, "{err}");
    store.release_lease(&late).await.unwrap();
    assert_eq!(
        store.leases().await.unwrap(),
        std::slice::from_ref(&b),
        "a stale release leaves the new holder's lease alone"
    );
    store.release_lease(&b).await.unwrap();
    assert!(store.leases().await.unwrap().is_empty());
    let c = store
        .claim_lease("d1", "replica-c", 6_001, 100)
        .await
        .unwrap()
        .expect("a released lease is free at once");
    assert_eq!(c.owner, "replica-c");
    let err = store.renew_lease(&b, 6_002, 100).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
}

/// Of 16 replicas claiming one expired lease at once, exactly one wins.
pub async fn concurrent_claims_one_wins(store: Arc<dyn Store>) {
    store
        .claim_lease("d1", "replica-old", 0, 10)
        .await
        .unwrap()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_lease("d1", &format!("replica-{i}"), 1_000, 1_000)
                .await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        if let Some(lease) = t.await.unwrap().unwrap() {
            winners.push(lease);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    assert_eq!(winners[0].epoch, 2);
    assert_eq!(store.leases().await.unwrap(), winners);
}

/// Sixteen claimers spread over several handles on one store (processes or
/// replicas), for a new lease and then for the same lease once expired:
/// one claim wins each time, and every handle sees the winner's lease.
pub async fn claims_across_handles_one_wins(handles: &[Arc<dyn Store>]) {
    for (now_ms, epoch) in [(0, 1), (1_000, 2)] {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = handles[i % handles.len()].clone();
            tasks.push(tokio::spawn(async move {
                store
                    .claim_lease("d1", &format!("replica-{i}"), now_ms, 1_000)
                    .await
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            winners.extend(task.await.unwrap().unwrap());
        }
        assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
        assert_eq!(winners[0].epoch, epoch);
        for store in handles {
            assert_eq!(store.leases().await.unwrap(), winners);
        }
    }
}
