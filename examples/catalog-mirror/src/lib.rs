//! A catalog mirror: the latest version of every definition on a Nestor
//! server, kept current from its event stream — the shape of any
//! processor that reacts to catalog changes (a portal's search index, a
//! cache next to a CI runner, a policy checker).
//!
//! The stream is opened *before* the catalog is listed, so a version
//! published while the list is read is not missed: its event arrives
//! after. An event names the definition that changed; the mirror asks the
//! server for that name's latest version rather than working it out from
//! the event, so the rule of what "latest" means (yanks, pre-releases)
//! stays in one place. The stream resumes by itself across dropped
//! connections and server restarts; [`Mirror::position`] is what to store
//! to resume after a restart of the mirror itself.
#![deny(missing_docs)]

use std::collections::BTreeMap;

use futures_util::StreamExt;
use nestor_client::{Client, EventQuery, EventStream};
use nestor_core::{ErrorCode, Event, ListFilter, PageRequest, PublishedVersion, Result};

/// The local copy.
pub struct Mirror {
    /// Where changes are read from.
    client: Client,
    /// `resource.*` events, from before the initial listing.
    events: EventStream,
    /// Name → its latest version, as the server last said.
    latest: BTreeMap<String, PublishedVersion>,
}

impl Mirror {
    /// Subscribes, then copies the whole catalog (every page).
    pub async fn start(client: Client) -> Result<Mirror> {
        let events = client.events(EventQuery::new().types("resource.*")).await?;
        let mut latest = BTreeMap::new();
        let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
        loop {
            let got = client.list_latest(&ListFilter::default(), &page).await?;
            latest.extend(got.items.into_iter().map(|v| (v.name().to_string(), v)));
            match got.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
        Ok(Mirror {
            client,
            events,
            latest,
        })
    }

    /// Waits for the next catalog event and applies it; answers the event.
    /// `None` when the stream has ended.
    pub async fn apply_next(&mut self) -> Option<Result<Event>> {
        let event = match self.events.next().await? {
            Ok(event) => event,
            Err(e) => return Some(Err(e)),
        };
        let name = event
            .subject
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        match self.client.latest(&name).await {
            Ok(v) => drop(self.latest.insert(name, v)),
            // Every version yanked: the name has no latest any more.
            Err(e) if e.code() == ErrorCode::VersionNotFound => drop(self.latest.remove(&name)),
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(event))
    }

    /// The latest version of `name` in the copy.
    pub fn get(&self, name: &str) -> Option<&PublishedVersion> {
        self.latest.get(name)
    }

    /// Every name's latest version, by name.
    pub fn versions(&self) -> impl Iterator<Item = &PublishedVersion> {
        self.latest.values()
    }

    /// The event sequence the copy is current to.
    pub fn position(&self) -> u64 {
        self.events.position()
    }
}
