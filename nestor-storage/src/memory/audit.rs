//! The memory store's audit log: a vector in order of recording.

use async_trait::async_trait;
use nestor_core::{audit_id, AuditEntry, AuditLog, AuditQuery, AuditRecord, Result, Timestamp};

use super::MemoryStore;

#[async_trait]
impl AuditLog for MemoryStore {
    async fn record_audit(&self, entry: AuditEntry) -> Result<AuditRecord> {
        let mut inner = self.lock();
        inner.audit_count += 1;
        let record = AuditRecord {
            id: audit_id(inner.audit_count),
            entry,
        };
        inner.audit.push(record.clone());
        Ok(record)
    }

    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let limit = query.effective_limit()?;
        let inner = self.lock();
        let mut found: Vec<AuditRecord> = inner
            .audit
            .iter()
            .filter(|r| query.admits(r))
            .cloned()
            .collect();
        found.sort_by(|a, b| (b.entry.timestamp, &b.id).cmp(&(a.entry.timestamp, &a.id)));
        found.truncate(limit);
        Ok(found)
    }

    async fn prune_audit_before(&self, before: Timestamp) -> Result<u64> {
        let mut inner = self.lock();
        let len = inner.audit.len();
        inner.audit.retain(|r| r.entry.timestamp >= before);
        Ok((len - inner.audit.len()) as u64)
    }
}
