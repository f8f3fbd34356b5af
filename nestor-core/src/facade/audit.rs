//! The audit trail at the one door: every write of the facade records who
//! asked ([`Nestor::acting_as`]), what, on which subject and how it ended,
//! in the [`AuditLog`] the facade was built with.
//!
//! A record is written after the operation, whatever its outcome; a
//! failure to record is logged and does not undo a write that happened.

use std::sync::Arc;

use crate::audit::{Actor, AuditEntry, AuditOutcome, AuditPage, AuditPosition, AuditQuery};
use crate::error::Result;
use crate::model::{Change, Timestamp};

use super::Nestor;

impl Nestor {
    /// This facade acting for `actor`: every write through the returned
    /// handle is audited under that name, roles, request id and address.
    /// Cheap (the services are shared); front-ends call it per request.
    pub fn acting_as(&self, actor: Actor) -> Nestor {
        Nestor {
            inner: self.inner.clone(),
            actor: Some(Arc::new(actor)),
        }
    }

    /// Who the writes of this handle are recorded as ([`Actor::local`]
    /// unless [`Nestor::acting_as`] said otherwise).
    pub fn actor(&self) -> Actor {
        self.actor.as_deref().cloned().unwrap_or_else(Actor::local)
    }

    /// One page of the audit records passing `query`, newest first, with
    /// the cursor of the next page when one more record passes it (looked
    /// up with a one-record read, so a cursor never leads to an empty page).
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage> {
        query.effective_limit()?;
        let items = self.inner.audit.audit_records(query).await?;
        let next_cursor = match items.last() {
            Some(last) if items.len() == query.effective_limit()? => {
                let probe = AuditQuery {
                    after: Some(AuditPosition::of(last)),
                    limit: Some(1),
                    ..query.clone()
                };
                let more = self.inner.audit.audit_records(&probe).await?;
                (!more.is_empty()).then(|| AuditPosition::of(last).cursor())
            }
            _ => None,
        };
        Ok(AuditPage { items, next_cursor })
    }

    /// Removes audit records older than `before` (the server's retention
    /// task); how many.
    pub async fn prune_audit(&self, before: Timestamp) -> Result<u64> {
        self.inner.audit.prune_audit_before(before).await
    }

    /// Records a write the operations never saw: one a front-end refused
    /// before it reached them (401, 403, 429, a body that does not parse),
    /// or one it performs around them (a sync it triggers to run in the
    /// background), so attempts are in the trail too.
    pub async fn record_write(
        &self,
        action: &str,
        subject: &str,
        outcome: AuditOutcome,
        error: Option<String>,
    ) {
        self.write_audit(action, subject, outcome, error, vec![])
            .await;
    }

    /// Records the outcome of write `action` on `subject`.
    pub(super) async fn audited<T>(
        &self,
        action: &str,
        subject: &str,
        result: &Result<T>,
        changes: impl FnOnce(&T) -> Vec<Change>,
    ) {
        let (outcome, error, changes) = match result {
            Ok(value) => (AuditOutcome::Succeeded, None, changes(value)),
            Err(e) => (
                AuditOutcome::Failed,
                Some(e.code().as_str().to_string()),
                vec![],
            ),
        };
        self.write_audit(action, subject, outcome, error, changes)
            .await;
    }

    async fn write_audit(
        &self,
        action: &str,
        subject: &str,
        outcome: AuditOutcome,
        error: Option<String>,
        changes: Vec<Change>,
    ) {
        let entry = AuditEntry {
            timestamp: self.inner.clock.now(),
            actor: self.actor(),
            action: action.to_string(),
            subject: subject.to_string(),
            outcome,
            error,
            changes,
        };
        if let Err(e) = self.inner.audit.record_audit(entry).await {
            tracing::error!(action, subject, error = %e, "cannot record the audit entry");
        }
    }
}
