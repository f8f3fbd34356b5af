//! The event log and the sync bookkeeping.
//!
//! Event ids come from `INTEGER PRIMARY KEY AUTOINCREMENT`: assigned inside
//! the writer's transaction (so strictly increasing across every process
//! sharing the file) and never reused, because SQLite remembers the greatest
//! id in `sqlite_sequence` even after pruning deletes the rows.
//!
//! A version's events (`resource.created`, `.updated`, `.deprecated`)
//! carry the whole version as their data, definition first. Their rows keep
//! only the text after the definition and the version's row id, and a read
//! joins the definition back in from `versions` (schema version 6): a cold
//! sync of 10,000 definitions then writes each definition once instead of
//! twice (a 25 MiB file instead of 41). A batch appends its events
//! [`EVENTS_PER_STATEMENT`] rows per statement.

use async_trait::async_trait;
use nestor_core::{
    Error, Event, EventLog, EventType, NewEvent, Result, SerializedEvent, SourceState, SyncReport,
    SyncStore, Timestamp,
};
use rusqlite::{params, OptionalExtension};

use super::{Context, SqliteStore};

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What the data of a version's event holds before the definition's JSON.
const VERSION_DATA_HEAD: &str = r#"{"definition":"#;

/// An event row before decoding.
struct EventRow {
    id: i64,
    event_type: String,
    source: String,
    subject: String,
    timestamp: i64,
    data: String,
    /// The version whose definition the data leaves out, and that
    /// definition (`None` if the row is missing: a damaged file).
    by_version: Option<(i64, Option<String>)>,
}

fn read_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    let version_id: Option<i64> = row.get(6)?;
    Ok(EventRow {
        id: row.get(0)?,
        event_type: row.get(1)?,
        source: row.get(2)?,
        subject: row.get(3)?,
        timestamp: row.get(4)?,
        data: row.get(5)?,
        by_version: version_id.map(|v| row.get(7).map(|d| (v, d))).transpose()?,
    })
}

/// The row's whole data text: as stored, or its version's definition put
/// back in front of the stored rest.
fn whole_data(id: i64, data: String, by_version: Option<(i64, Option<String>)>) -> Result<String> {
    match by_version {
        None => Ok(data),
        Some((_, Some(definition))) => Ok([VERSION_DATA_HEAD, &definition, &data].concat()),
        Some((version_id, None)) => Err(Error::StorageUnavailable {
            message: format!("event {id} refers to version row {version_id}, which is missing"),
            source: None,
        }),
    }
}

fn into_event(row: EventRow) -> Result<Event> {
    let EventRow {
        id,
        event_type,
        source,
        subject,
        timestamp,
        data,
        by_version,
    } = row;
    let data = whole_data(id, data, by_version)?;
    let event_type = EventType::parse(&event_type).ok_or_else(|| Error::StorageUnavailable {
        message: format!("unknown event type {event_type:?} in event {id}"),
        source: None,
    })?;
    let data = serde_json::from_str(&data).ctx("in a stored event")?;
    Ok(Event {
        id: id.unsigned_abs(),
        event_type,
        source,
        subject,
        timestamp,
        data,
    })
}

fn insert_event(tx: &rusqlite::Transaction<'_>, event: NewEvent) -> Result<Event> {
    let data = serde_json::to_string(&event.data).ctx("serialising event data")?;
    let id = insert_row(
        tx,
        event.event_type,
        &event.source,
        &event.subject,
        event.timestamp,
        &data,
    )?;
    Ok(Event::from_new(id, event))
}

/// Appends one event row inside `tx`; returns its sequence.
pub(super) fn insert_row(
    tx: &rusqlite::Transaction<'_>,
    event_type: EventType,
    source: &str,
    subject: &str,
    timestamp: Timestamp,
    data: &str,
) -> Result<u64> {
    tx.prepare_cached(
        "INSERT INTO events (event_type, source, subject, timestamp, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![event_type.as_str(), source, subject, timestamp, data]))
    .ctx("appending an event")?;
    Ok(tx.last_insert_rowid().unsigned_abs())
}

/// An event a batch appends once its versions are in: a version's event
/// keeps what follows the definition in its data (from `rest`) and the
/// version's row; any other keeps its whole data.
pub(super) struct BatchEvent {
    event: SerializedEvent,
    /// The version's row, and where the data after its definition starts.
    by_version: Option<(i64, usize)>,
}

impl BatchEvent {
    /// `event` of the version in row `version_row`, whose definition is
    /// `definition_json`: by reference when its data is that version's
    /// (definition first), whole otherwise.
    pub(super) fn of_version(
        event: SerializedEvent,
        version_row: i64,
        definition_json: &str,
    ) -> Self {
        let whole = event.data.get();
        let by_version = whole
            .strip_prefix(VERSION_DATA_HEAD)
            .and_then(|d| d.strip_prefix(definition_json))
            .map(|rest| (version_row, whole.len() - rest.len()));
        BatchEvent { event, by_version }
    }

    /// The stored data text.
    fn data(&self) -> &str {
        let whole = self.event.data.get();
        self.by_version.map_or(whole, |(_, at)| &whole[at..])
    }
}

/// How many events one statement appends: AUTOINCREMENT updates
/// `sqlite_sequence` once per statement, not once per row.
const EVENTS_PER_STATEMENT: usize = 64;

/// Appends `events` in order, [`EVENTS_PER_STATEMENT`] per statement.
pub(super) fn insert_batch_events(
    tx: &rusqlite::Transaction<'_>,
    events: &[BatchEvent],
) -> Result<()> {
    for chunk in events.chunks(EVENTS_PER_STATEMENT) {
        let rows = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO events (event_type, source, subject, timestamp, data, version_id) \
             VALUES {rows}"
        );
        let mut stmt = tx.prepare_cached(&sql).ctx("appending events")?;
        for (i, e) in chunk.iter().enumerate() {
            let at = i * 6;
            let event = &e.event;
            stmt.raw_bind_parameter(at + 1, event.event_type.as_str())
                .and_then(|()| stmt.raw_bind_parameter(at + 2, &event.source))
                .and_then(|()| stmt.raw_bind_parameter(at + 3, &event.subject))
                .and_then(|()| stmt.raw_bind_parameter(at + 4, event.timestamp))
                .and_then(|()| stmt.raw_bind_parameter(at + 5, e.data()))
                .and_then(|()| stmt.raw_bind_parameter(at + 6, e.by_version.map(|(id, _)| id)))
                .ctx("appending events")?;
        }
        stmt.raw_execute().ctx("appending events")?;
    }
    Ok(())
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn append(&self, event: NewEvent) -> Result<Event> {
        self.write(move |tx, _| insert_event(tx, event)).await
    }

    /// The whole batch in one transaction, ids increasing in order.
    async fn append_many(&self, events: Vec<NewEvent>) -> Result<Vec<Event>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |tx, _| events.into_iter().map(|e| insert_event(tx, e)).collect())
            .await
    }

    /// The JSON text is stored as it is, the batch in one transaction.
    async fn append_serialized(&self, events: Vec<SerializedEvent>) -> Result<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |tx, _| {
            events
                .iter()
                .map(|e| {
                    insert_row(
                        tx,
                        e.event_type,
                        &e.source,
                        &e.subject,
                        e.timestamp,
                        e.data.get(),
                    )
                })
                .collect()
        })
        .await
    }

    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.read(move |conn, _| {
            let rows = conn
                .prepare_cached(
                    "SELECT e.id, e.event_type, e.source, e.subject, e.timestamp, e.data, \
                     e.version_id, v.definition FROM events e \
                     LEFT JOIN versions v ON v.id = e.version_id \
                     WHERE e.id > ?1 ORDER BY e.id LIMIT ?2",
                )
                .and_then(|mut s| {
                    s.query_map(params![to_i64(after), to_i64(limit as u64)], read_event)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .ctx("reading events")?;
            rows.into_iter().map(into_event).collect()
        })
        .await
    }

    async fn last_sequence(&self) -> Result<u64> {
        self.read(|conn, _| {
            // sqlite_sequence keeps the greatest id ever handed out, pruned or not.
            let seq: Option<i64> = conn
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .ctx("reading the last event id")?;
            Ok(seq.unwrap_or(0).unsigned_abs())
        })
        .await
    }

    async fn prune_before(&self, before: Timestamp) -> Result<u64> {
        self.write(move |tx, _| {
            let deleted = tx
                .execute("DELETE FROM events WHERE timestamp < ?1", [before])
                .ctx("pruning events")?;
            Ok(deleted as u64)
        })
        .await
    }
}

#[async_trait]
impl SyncStore for SqliteStore {
    async fn source_state(&self, source: &str) -> Result<Option<SourceState>> {
        let source = source.to_string();
        self.read(move |conn, _| {
            let json: Option<String> = conn
                .prepare_cached("SELECT state FROM source_states WHERE source = ?1")
                .and_then(|mut s| s.query_row([&source], |r| r.get(0)).optional())
                .ctx("reading a source state")?;
            json.map(|j| serde_json::from_str(&j).ctx("in a stored source state"))
                .transpose()
        })
        .await
    }

    async fn save_source_state(&self, state: &SourceState) -> Result<()> {
        let json = serde_json::to_string(state).ctx("serialising a source state")?;
        let source = state.source.clone();
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO source_states (source, state) VALUES (?1, ?2) \
                 ON CONFLICT (source) DO UPDATE SET state = excluded.state",
                [&source, &json],
            )
            .ctx("saving a source state")?;
            Ok(())
        })
        .await
    }

    async fn record_sync(&self, report: &SyncReport) -> Result<()> {
        let json = serde_json::to_string(report).ctx("serialising a sync report")?;
        let source = report.source.clone();
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO sync_reports (source, report) VALUES (?1, ?2) \
                 ON CONFLICT (source) DO UPDATE SET report = excluded.report",
                [&source, &json],
            )
            .ctx("recording a sync report")?;
            Ok(())
        })
        .await
    }

    async fn last_syncs(&self) -> Result<Vec<SyncReport>> {
        self.read(|conn, _| {
            let rows = conn
                .prepare_cached("SELECT report FROM sync_reports ORDER BY source")
                .and_then(|mut s| {
                    s.query_map([], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .ctx("reading sync reports")?;
            rows.iter()
                .map(|j| serde_json::from_str(j).ctx("in a stored sync report"))
                .collect()
        })
        .await
    }
}
