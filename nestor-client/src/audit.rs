//! The audit trail route (admin role).

use nestor_core::{AuditPage, AuditQuery, Result};

use crate::client::Client;

impl Client {
    /// One page of the audit trail passing `query`, newest first
    /// (`GET /api/v1/audit`, admin role). Its `after` is sent as the
    /// page's `cursor`: give the previous page's last record's position,
    /// or parse `next_cursor` with [`nestor_core::AuditPosition::parse`].
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage> {
        let mut q: Vec<(&str, String)> = Vec::new();
        for (key, value) in [
            ("actor", &query.actor),
            ("subject", &query.subject),
            ("action", &query.action),
        ] {
            if let Some(v) = value {
                q.push((key, v.clone()));
            }
        }
        for (key, value) in [("since", query.since), ("until", query.until)] {
            if let Some(t) = value {
                q.push((key, t.to_string()));
            }
        }
        if let Some(limit) = query.limit {
            q.push(("limit", limit.to_string()));
        }
        if let Some(after) = &query.after {
            q.push(("cursor", after.cursor()));
        }
        self.json(self.get(&["api", "v1", "audit"]).query(q)).await
    }
}
