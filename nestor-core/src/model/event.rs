//! Events: the one log behind SSE, replay, audit and cache invalidation (docs/src/reference/events.md).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::Timestamp;

/// The event types (docs/src/reference/events.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// The first version of a name.
    #[serde(rename = "resource.created")]
    ResourceCreated,
    /// A new version of an existing name.
    #[serde(rename = "resource.updated")]
    ResourceUpdated,
    /// A version was yanked.
    #[serde(rename = "resource.yanked")]
    ResourceYanked,
    /// A version was published deprecated.
    #[serde(rename = "resource.deprecated")]
    ResourceDeprecated,
    /// The first version of a team composition.
    #[serde(rename = "composition.created")]
    CompositionCreated,
    /// A new version of a team composition.
    #[serde(rename = "composition.updated")]
    CompositionUpdated,
    /// A deployment began.
    #[serde(rename = "deployment.started")]
    DeploymentStarted,
    /// A deployment's status or a resource's status changed.
    #[serde(rename = "deployment.updated")]
    DeploymentUpdated,
    /// A deployment succeeded.
    #[serde(rename = "deployment.completed")]
    DeploymentCompleted,
    /// A deployment failed.
    #[serde(rename = "deployment.failed")]
    DeploymentFailed,
    /// A drift check found resources whose real state no longer matches
    /// the applied configuration (`data.drift` lists their addresses).
    #[serde(rename = "deployment.drifted")]
    DeploymentDrifted,
    /// A source sync finished (possibly with per-document errors).
    #[serde(rename = "sync.completed")]
    SyncCompleted,
    /// A source sync could not run (the source was unreachable).
    #[serde(rename = "sync.failed")]
    SyncFailed,
}

impl EventType {
    /// Every type.
    pub const ALL: [EventType; 13] = [
        EventType::ResourceCreated,
        EventType::ResourceUpdated,
        EventType::ResourceYanked,
        EventType::ResourceDeprecated,
        EventType::CompositionCreated,
        EventType::CompositionUpdated,
        EventType::DeploymentStarted,
        EventType::DeploymentUpdated,
        EventType::DeploymentCompleted,
        EventType::DeploymentFailed,
        EventType::DeploymentDrifted,
        EventType::SyncCompleted,
        EventType::SyncFailed,
    ];

    /// The wire name, e.g. `resource.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ResourceCreated => "resource.created",
            EventType::ResourceUpdated => "resource.updated",
            EventType::ResourceYanked => "resource.yanked",
            EventType::ResourceDeprecated => "resource.deprecated",
            EventType::CompositionCreated => "composition.created",
            EventType::CompositionUpdated => "composition.updated",
            EventType::DeploymentStarted => "deployment.started",
            EventType::DeploymentUpdated => "deployment.updated",
            EventType::DeploymentCompleted => "deployment.completed",
            EventType::DeploymentFailed => "deployment.failed",
            EventType::DeploymentDrifted => "deployment.drifted",
            EventType::SyncCompleted => "sync.completed",
            EventType::SyncFailed => "sync.failed",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<EventType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// An event before the log gives it a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Who caused it: a source name, `api`, `cli`...
    pub source: String,
    /// What it is about, e.g. `aws-rds-mysql:1.2.0`.
    pub subject: String,
    /// When it happened.
    pub timestamp: Timestamp,
    /// The full object.
    pub data: Value,
}

/// An event as stored in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Strictly increasing across all replicas sharing a store; the SSE id.
    pub id: u64,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Who caused it.
    pub source: String,
    /// What it is about.
    pub subject: String,
    /// When it happened.
    pub timestamp: Timestamp,
    /// The full object.
    pub data: Value,
}

impl Event {
    /// Gives a new event its sequence.
    pub fn from_new(id: u64, event: NewEvent) -> Event {
        Event {
            id,
            event_type: event.event_type,
            source: event.source,
            subject: event.subject,
            timestamp: event.timestamp,
            data: event.data,
        }
    }
}

/// An event whose data is JSON text already: what a bulk writer (a cold
/// sync's thousands of `resource.created`) appends through
/// [`EventLog::append_serialized`](crate::EventLog::append_serialized)
/// without building a [`Value`] tree per event only for the store to
/// serialise it again. Once appended it is indistinguishable from a
/// [`NewEvent`] with the same data.
#[derive(Debug, Clone, Serialize)]
pub struct SerializedEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Who caused it.
    pub source: String,
    /// What it is about.
    pub subject: String,
    /// When it happened.
    pub timestamp: Timestamp,
    /// The full object, as JSON text.
    pub data: Box<RawValue>,
}

impl SerializedEvent {
    /// An event carrying `data` serialised.
    pub fn new(
        event_type: EventType,
        source: impl Into<String>,
        subject: impl Into<String>,
        timestamp: Timestamp,
        data: &impl Serialize,
    ) -> serde_json::Result<SerializedEvent> {
        Ok(SerializedEvent {
            event_type,
            source: source.into(),
            subject: subject.into(),
            timestamp,
            data: serde_json::value::to_raw_value(data)?,
        })
    }

    /// The same event with its data parsed into a value tree, for stores
    /// that keep values and for readers of stores that keep text (data
    /// that is not JSON is an internal error: only this type writes it).
    pub fn into_new(self) -> crate::error::Result<NewEvent> {
        let data = serde_json::from_str(self.data.get())
            .map_err(|e| crate::error::Error::internal(format!("event data is not JSON: {e}")))?;
        Ok(NewEvent {
            event_type: self.event_type,
            source: self.source,
            subject: self.subject,
            timestamp: self.timestamp,
            data,
        })
    }
}
