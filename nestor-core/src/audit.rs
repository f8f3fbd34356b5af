//! The audit trail: who did what to which subject, from where, and how it
//! ended — one [`AuditRecord`] per write, kept apart from the event log.
//!
//! Events say what changed, for subscribers, and are pruned after days;
//! the audit trail says who asked, for auditors, and is kept for months
//! ([`DEFAULT_AUDIT_RETENTION`]). Records are written by the [`Nestor`]
//! facade (every write goes through it, so no front-end can forget one)
//! with the [`Actor`] the front-end hands it: the static token's `name` or
//! the OIDC subject, its roles, the request id and the client's address.
//!
//! Stores implement [`AuditLog`]; memory, SQLite and DynamoDB pass the
//! conformance suite in `testing::audit`.
//!
//! [`Nestor`]: crate::Nestor

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Change, Timestamp};

/// How long records are kept by default: 400 days, a year and a margin.
pub const DEFAULT_AUDIT_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(400 * 24 * 3600);

/// Who performs an operation, as the front-end authenticated them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Actor {
    /// The static token's `name`, the OIDC `sub`, `local` (the CLI on its
    /// own store), `server` (a server's own work: pollers, start-up and
    /// background syncs), `webhook` (a signed git webhook), or `anonymous`
    /// when nobody was authenticated.
    pub name: String,
    /// The roles it acted with (`admin`, `platform`, `team:alpha`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The request's id (`X-Request-Id`), when there was a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The client's address (`127.0.0.1:53422`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

impl Actor {
    /// An actor called `name` with `roles`.
    pub fn new(name: impl Into<String>, roles: Vec<String>) -> Actor {
        Actor {
            name: name.into(),
            roles,
            ..Actor::default()
        }
    }

    /// The embedded CLI or a library user acting on their own store.
    pub fn local() -> Actor {
        Actor::new("local", vec!["admin".into()])
    }

    /// With the request's id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Actor {
        self.request_id = Some(id.into());
        self
    }

    /// With the client's address.
    pub fn with_client(mut self, client: impl Into<String>) -> Actor {
        self.client = Some(client.into());
        self
    }
}

/// How an audited operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// It was done (or was already so: an unchanged publish).
    Succeeded,
    /// It was refused or failed; the record carries the error code.
    Failed,
    /// The caller was not allowed (401/403 before the operation ran).
    Denied,
}

impl AuditOutcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Succeeded => "succeeded",
            AuditOutcome::Failed => "failed",
            AuditOutcome::Denied => "denied",
        }
    }

    /// From the wire name.
    pub fn parse(s: &str) -> Option<AuditOutcome> {
        match s {
            "succeeded" => Some(AuditOutcome::Succeeded),
            "failed" => Some(AuditOutcome::Failed),
            "denied" => Some(AuditOutcome::Denied),
            _ => None,
        }
    }
}

/// One audited write, before the store numbered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditEntry {
    /// When it ended (seconds since the epoch).
    pub timestamp: Timestamp,
    /// Who asked.
    pub actor: Actor,
    /// What was asked, `area.verb`: `resource.publish`, `resource.yank`,
    /// `resource.unyank`, `catalog.sync` (a sync run), `catalog.trigger`
    /// (a background sync asked for), `composition.publish`,
    /// `deployment.apply`, `deployment.rollback`, `deployment.promote`,
    /// `deployment.delete`, `auth.reload`.
    pub action: String,
    /// What it was done to: `aws-rds-mysql:1.2.0`, `alpha/web-app:1.0.0`,
    /// `alpha.staging.checkout.r3`, a source's name.
    pub subject: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The error code when it failed or was denied (`VERSION_IMMUTABLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For definitions: the changes against the predecessor, classified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// A stored entry: its id orders records of the same second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditRecord {
    /// Unique and increasing in the store that numbered it (within one
    /// replica); with the timestamp, the order of the trail.
    pub id: String,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Which records to read: every given field must match (`actor`,
/// `action` and `subject` exactly; an `action` ending in `.*` as a prefix),
/// `since <= timestamp < until`. Newest first, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuditQuery {
    /// The actor's name.
    pub actor: Option<String>,
    /// The subject.
    pub subject: Option<String>,
    /// The action, or `area.*`.
    pub action: Option<String>,
    /// Not before (seconds since the epoch, inclusive).
    pub since: Option<Timestamp>,
    /// Before (exclusive).
    pub until: Option<Timestamp>,
    /// At most this many (default [`AuditQuery::DEFAULT_LIMIT`], at most
    /// [`AuditQuery::MAX_LIMIT`]).
    pub limit: Option<usize>,
    /// Only records after this one in the trail's order (older, or as old
    /// with a smaller id): the position the previous page ended at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<AuditPosition>,
}

/// Where a page of the trail ended: the last record's timestamp and id.
/// Its text form (`<timestamp>.<id>`) is the API's opaque `cursor`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AuditPosition {
    /// The record's timestamp.
    pub timestamp: Timestamp,
    /// The record's id.
    pub id: String,
}

impl AuditPosition {
    /// The position of `record`.
    pub fn of(record: &AuditRecord) -> AuditPosition {
        AuditPosition {
            timestamp: record.entry.timestamp,
            id: record.id.clone(),
        }
    }

    /// Reads a cursor; `BAD_REQUEST` for one this store did not give.
    pub fn parse(cursor: &str) -> Result<AuditPosition> {
        let bad = || {
            Error::bad_request(format!(
                "cursor {} is not one a page of the audit trail gave",
                crate::excerpt(cursor)
            ))
        };
        let (t, id) = cursor.split_once('.').ok_or_else(bad)?;
        let timestamp = t.parse().map_err(|_| bad())?;
        if id.is_empty() || id.len() > 40 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(AuditPosition {
            timestamp,
            id: id.to_string(),
        })
    }

    /// The cursor text.
    pub fn cursor(&self) -> String {
        format!("{}.{}", self.timestamp, self.id)
    }
}

/// One page of the trail, newest first; `next_cursor` when more records
/// pass the query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditPage {
    /// The records.
    pub items: Vec<AuditRecord>,
    /// Give it as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl AuditQuery {
    /// Records returned when no limit is given.
    pub const DEFAULT_LIMIT: usize = 100;
    /// The largest limit accepted.
    pub const MAX_LIMIT: usize = 1000;

    /// The limit to apply, or `BAD_REQUEST` for one out of range.
    pub fn effective_limit(&self) -> Result<usize> {
        match self.limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(n) if (1..=Self::MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(Error::bad_request(format!(
                "limit {n} is out of range (1 to {})",
                Self::MAX_LIMIT
            ))),
        }
    }

    /// Reads the time `text` given for `key` (`since`, `until`): seconds
    /// since the epoch or an RFC 3339 time (`2026-01-31T12:00:00Z`), as
    /// the CLI and the API take it; `BAD_REQUEST` for anything else.
    pub fn parse_time(key: &str, text: &str) -> Result<Timestamp> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<Timestamp>() {
            return Ok(seconds);
        }
        let at = humantime::parse_rfc3339_weak(text).map_err(|_| {
            Error::bad_request(format!(
                "{key} must be seconds since the epoch or an RFC 3339 time (2026-01-31T12:00:00Z), got {}",
                crate::excerpt(text)
            ))
        })?;
        Ok(match at.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_secs() as Timestamp,
            Err(e) => -(e.duration().as_secs() as Timestamp),
        })
    }

    /// Whether `entry` passes the query (the rule every store applies, in
    /// its query or after it).
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        let action_ok = match self.action.as_deref() {
            None => true,
            Some(a) => match a.strip_suffix(".*") {
                Some(prefix) => entry
                    .action
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.')),
                None => entry.action == a,
            },
        };
        action_ok
            && self.actor.as_deref().is_none_or(|a| entry.actor.name == a)
            && self.subject.as_deref().is_none_or(|s| entry.subject == s)
            && self.since.is_none_or(|t| entry.timestamp >= t)
            && self.until.is_none_or(|t| entry.timestamp < t)
    }

    /// Whether `record` passes the query, its position included (what
    /// stores that filter after reading apply).
    pub fn admits(&self, record: &AuditRecord) -> bool {
        self.matches(&record.entry)
            && self.after.as_ref().is_none_or(|p| {
                (record.entry.timestamp, record.id.as_str()) < (p.timestamp, p.id.as_str())
            })
    }
}

/// Where audit records are kept. Append-only: nothing but retention
/// ([`AuditLog::prune_audit_before`]) removes a record.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Stores `entry` and returns it numbered.
    async fn record_audit(&self, entry: AuditEntry) -> Result<AuditRecord>;

    /// Records passing `query`, newest first (by timestamp, then id).
    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;

    /// Removes records older than `before`; returns how many.
    async fn prune_audit_before(&self, before: Timestamp) -> Result<u64>;
}

/// Keeps nothing: the default of a [`crate::Nestor`] built without an
/// audit log (a library user who wants none).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAudit;

#[async_trait]
impl AuditLog for NoAudit {
    async fn record_audit(&self, entry: AuditEntry) -> Result<AuditRecord> {
        Ok(AuditRecord {
            id: String::new(),
            entry,
        })
    }

    async fn audit_records(&self, _query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        Ok(vec![])
    }

    async fn prune_audit_before(&self, _before: Timestamp) -> Result<u64> {
        Ok(0)
    }
}

/// The id of the `n`th record of a store: zero-padded so ids sort as
/// text in the order they were given.
pub fn audit_id(n: u64) -> String {
    format!("{n:020}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str, actor: &str, t: Timestamp) -> AuditEntry {
        AuditEntry {
            timestamp: t,
            actor: Actor::new(actor, vec![]),
            action: action.into(),
            subject: "s".into(),
            outcome: AuditOutcome::Succeeded,
            error: None,
            changes: vec![],
        }
    }

    #[test]
    fn a_query_matches_exactly_or_by_area_within_its_window() {
        let q = AuditQuery {
            action: Some("deployment.*".into()),
            since: Some(10),
            until: Some(20),
            ..Default::default()
        };
        assert!(q.matches(&entry("deployment.apply", "ci", 10)));
        assert!(!q.matches(&entry("deployment.apply", "ci", 20)));
        assert!(!q.matches(&entry("deploymentx.apply", "ci", 15)));
        assert!(!q.matches(&entry("resource.publish", "ci", 15)));
        let q = AuditQuery {
            actor: Some("ci".into()),
            action: Some("resource.publish".into()),
            ..Default::default()
        };
        assert!(q.matches(&entry("resource.publish", "ci", 1)));
        assert!(!q.matches(&entry("resource.publish", "cd", 1)));
        assert!(AuditQuery {
            limit: Some(0),
            ..Default::default()
        }
        .effective_limit()
        .is_err());
    }

    #[test]
    fn a_cursor_reads_back_and_admits_only_what_follows_it() {
        let record = |t, id: u64| AuditRecord {
            id: audit_id(id),
            entry: entry("resource.publish", "ci", t),
        };
        let at = AuditPosition::of(&record(20, 7));
        assert_eq!(AuditPosition::parse(&at.cursor()).unwrap(), at);
        let q = AuditQuery {
            after: Some(at),
            ..Default::default()
        };
        assert!(q.admits(&record(20, 6)), "as old, a smaller id");
        assert!(q.admits(&record(19, 99)), "older");
        assert!(!q.admits(&record(20, 7)), "not the position itself");
        assert!(!q.admits(&record(21, 1)), "not newer");
        for bad in ["", "x", "20", "20.", "a.1", "20.1x", "20.-1"] {
            let e = AuditPosition::parse(bad).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::BadRequest, "{bad:?}");
        }
    }

    #[test]
    fn times_are_seconds_or_rfc_3339() {
        assert_eq!(
            AuditQuery::parse_time("since", "1700000000").unwrap(),
            1_700_000_000
        );
        assert_eq!(
            AuditQuery::parse_time("since", "2026-01-31T12:00:00Z").unwrap(),
            1_769_860_800
        );
        let e = AuditQuery::parse_time("since", "yesterday").unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::BadRequest);
        assert!(e.to_string().contains("since must be"), "{e}");
    }
}
