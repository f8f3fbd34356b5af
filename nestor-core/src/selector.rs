//! Which events a reader wants (`GET /api/v1/events?filter=&types=`,
//! `nestor events --filter --types`): the one rule both the server's
//! stream and the CLI's local tail apply, and which events belong to one
//! team.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{Event, EventType};

/// Which events a reader wants: `KEY:VALUE` filters (values of one key
/// are alternatives; every key must match) and type patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSelector {
    /// key → accepted values (values of one key are alternatives; keys all must match).
    filters: BTreeMap<String, Vec<String>>,
    /// Type patterns (`resource.*`, `deployment.completed`); empty = all.
    types: Vec<String>,
}

/// The keys a filter may name.
const FILTER_KEYS: [&str; 8] = [
    "provider",
    "category",
    "resource_type",
    "name",
    "team",
    "environment",
    "source",
    "subject",
];

impl EventSelector {
    /// From `KEY:VALUE` filters and comma-separated type patterns (the
    /// query of `GET /events`, and `nestor events` on a local store).
    pub fn from_parts(filters: &[&str], types: &[&str]) -> Result<EventSelector, String> {
        let mut s = EventSelector::default();
        for f in filters {
            let (k, v) = f
                .split_once(':')
                .ok_or_else(|| format!("filter {f:?}: expected KEY:VALUE"))?;
            if !FILTER_KEYS.contains(&k) {
                return Err(format!(
                    "filter key {k:?} is unknown (known: {})",
                    FILTER_KEYS.join(", ")
                ));
            }
            s.filters
                .entry(k.to_string())
                .or_default()
                .push(v.to_string());
        }
        for t in types
            .iter()
            .flat_map(|t| t.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let known = match t.strip_suffix('*') {
                Some(prefix) => EventType::ALL
                    .iter()
                    .any(|e| e.as_str().starts_with(prefix)),
                None => EventType::parse(t).is_some(),
            };
            if !known {
                return Err(format!("types: {t:?} matches no event type"));
            }
            s.types.push(t.to_string());
        }
        Ok(s)
    }

    /// Whether an event passes the type patterns and every filter key.
    pub fn matches(&self, e: &Event) -> bool {
        let ty = e.event_type.as_str();
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|p| {
                p.strip_suffix('*')
                    .map_or(p == ty, |prefix| ty.starts_with(prefix))
            });
        type_ok
            && self
                .filters
                .iter()
                .all(|(k, values)| field(e, k).is_some_and(|v| values.contains(&v)))
    }
}

impl Event {
    /// The team an event belongs to, for deployment and composition events.
    pub fn team(&self) -> Option<&str> {
        let d = &self.data;
        d.get("team")
            .or_else(|| d.pointer("/composition/metadata/team"))
            .and_then(Value::as_str)
    }
}

impl EventType {
    /// Whether events of this type belong to one team (deployments,
    /// compositions), so only readers of that team may see them; catalog
    /// and sync events are everyone's.
    pub fn is_team_scoped(self) -> bool {
        matches!(
            self,
            EventType::CompositionCreated
                | EventType::CompositionUpdated
                | EventType::DeploymentStarted
                | EventType::DeploymentUpdated
                | EventType::DeploymentCompleted
                | EventType::DeploymentFailed
                | EventType::DeploymentDrifted
        )
    }
}

/// A filterable field of an event.
fn field(e: &Event, key: &str) -> Option<String> {
    let d = &e.data;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    match key {
        "source" => Some(e.source.clone()),
        "subject" => Some(e.subject.clone()),
        "team" => e.team().map(str::to_string),
        "environment" => s(d.get("environment")),
        "name" => s(d
            .pointer("/definition/metadata/name")
            .or_else(|| d.pointer("/composition/metadata/name"))
            .or_else(|| d.get("name"))),
        other => s(d.pointer(&format!("/definition/metadata/{other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(event_type: EventType, data: Value) -> Event {
        Event {
            id: 1,
            event_type,
            source: "cli".into(),
            subject: "s".into(),
            timestamp: 0,
            data,
        }
    }

    #[test]
    fn filters_and_type_patterns_select_events() {
        let s = EventSelector::from_parts(&["team:alpha", "team:beta"], &["deployment.*"]).unwrap();
        let alpha = event(EventType::DeploymentStarted, json!({"team": "alpha"}));
        assert!(s.matches(&alpha));
        let gamma = event(EventType::DeploymentStarted, json!({"team": "gamma"}));
        assert!(!s.matches(&gamma), "no value of the key matches");
        let sync = event(EventType::SyncCompleted, json!({"team": "alpha"}));
        assert!(!s.matches(&sync), "the type pattern does not match");
        let name = EventSelector::from_parts(&["name:db"], &[]).unwrap();
        let published = event(
            EventType::ResourceCreated,
            json!({"definition": {"metadata": {"name": "db"}}}),
        );
        assert!(name.matches(&published));
        assert!(EventSelector::from_parts(&["colour:blue"], &[]).is_err());
        assert!(EventSelector::from_parts(&["team"], &[]).is_err());
        assert!(EventSelector::from_parts(&[], &["nothing.*"]).is_err());
    }

    #[test]
    fn deployment_and_composition_events_belong_to_a_team() {
        let c = event(
            EventType::CompositionCreated,
            json!({"composition": {"metadata": {"team": "beta"}}}),
        );
        assert_eq!(c.team(), Some("beta"));
        assert!(c.event_type.is_team_scoped());
        assert!(!EventType::ResourceYanked.is_team_scoped());
    }
}
