//! The event log: a counter item hands out sequences, events live in
//! buckets of [`BUCKET`] consecutive sequences.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, ReturnValue, WriteRequest};
use nestor_core::{Error, Event, EventLog, EventType, NewEvent, Result, Timestamp};

use super::client::{backoff, unavailable, MAX_WRITE_ROUNDS};
use super::codec::{decode_body, encode_body, n, s, Item, ItemExt};
use super::DynamoStore;

/// Sequences per partition of the events table. A bucket holds at most
/// this many events, so a partition stays small and `read_after` reads
/// one or two partitions for a client that is nearly caught up.
pub(crate) const BUCKET: u64 = 1000;

/// The meta item holding the counter (`n`) and the lowest bucket that may
/// still hold events (`low_bucket`, raised by pruning).
fn counter_key() -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), s("counter")),
        ("sk".to_string(), s("events")),
    ])
}

struct Counter {
    last: u64,
    low_bucket: u64,
}

impl DynamoStore {
    async fn counter(&self) -> Result<Counter> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.meta)
            .set_key(Some(counter_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(match out.item {
            Some(item) => Counter {
                last: item.u64_attr("n").unwrap_or(0),
                low_bucket: item.u64_attr("low_bucket").unwrap_or(0),
            },
            None => Counter {
                last: 0,
                low_bucket: 0,
            },
        })
    }

    /// Events of one bucket with sequence > `after`, at most `limit`.
    async fn bucket_events(
        &self,
        bucket: u64,
        after: u64,
        limit: usize,
        into: &mut Vec<Event>,
    ) -> Result<()> {
        let mut start = None;
        loop {
            let remaining = limit.saturating_sub(into.len());
            if remaining == 0 {
                return Ok(());
            }
            let out = self
                .client
                .query()
                .table_name(&self.tables.events)
                .key_condition_expression("#b = :b AND seq > :after")
                .expression_attribute_names("#b", "bucket")
                .expression_attribute_values(":b", n(bucket))
                .expression_attribute_values(":after", n(after))
                .limit(remaining.min(1000) as i32)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Query", e))?;
            for item in out.items() {
                into.push(event_from_item(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(());
            }
        }
    }
}

fn event_from_item(item: &Item) -> Result<Event> {
    let kind = item.str_attr("type")?;
    let event_type = EventType::parse(kind)
        .ok_or_else(|| Error::internal(format!("stored event has unknown type {kind}")))?;
    Ok(Event {
        id: item.u64_attr("seq")?,
        event_type,
        source: item.str_attr("source")?.to_string(),
        subject: item.str_attr("subject")?.to_string(),
        timestamp: item.i64_or_zero("ts"),
        data: decode_body("event data", item.attr("data")?)?,
    })
}

impl DynamoStore {
    /// Hands out `count` consecutive sequences no other caller (on any
    /// replica) ever gets, and returns the last: `UpdateItem ADD n count`
    /// on the counter. Sequences handed out and never written leave a gap,
    /// which readers tolerate.
    pub(super) async fn allocate_sequences(&self, count: u64) -> Result<u64> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.meta)
            .set_key(Some(counter_key()))
            .update_expression("ADD n :count")
            .expression_attribute_values(":count", n(count))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| unavailable("UpdateItem", e))?;
        out.attributes
            .as_ref()
            .and_then(|a| a.get("n"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| Error::internal("event counter update returned no number"))
    }
}

/// The item an event is stored as under `seq`; `data` is encoded already.
pub(super) fn event_item(
    seq: u64,
    event_type: EventType,
    source: &str,
    subject: &str,
    timestamp: Timestamp,
    data: AttributeValue,
) -> Item {
    HashMap::from([
        ("bucket".to_string(), n(seq / BUCKET)),
        ("seq".to_string(), n(seq)),
        ("type".to_string(), s(event_type.as_str())),
        ("source".to_string(), s(source)),
        ("subject".to_string(), s(subject)),
        ("ts".to_string(), n(timestamp)),
        ("data".to_string(), data),
    ])
}

#[async_trait]
impl EventLog for DynamoStore {
    /// `UpdateItem ADD n 1` on the counter returns a sequence no other
    /// caller (on any replica) ever gets; the event is then put under it.
    /// A crash between the two leaves a gap, which readers tolerate.
    async fn append(&self, event: NewEvent) -> Result<Event> {
        let data = encode_body("event data", &event.data)?;
        let seq = self.allocate_sequences(1).await?;
        let event = Event::from_new(seq, event);
        let item = event_item(
            seq,
            event.event_type,
            &event.source,
            &event.subject,
            event.timestamp,
            data,
        );
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.events)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(seq)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(event),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                // The SDK retried a put whose first attempt landed: the item
                // is ours. Anything else means the counter was reset.
                let mut stored = Vec::new();
                self.bucket_events(seq / BUCKET, seq - 1, 1, &mut stored)
                    .await?;
                match stored.first() {
                    Some(found) if *found == event => Ok(event),
                    _ => Err(Error::internal(format!(
                        "event sequence {seq} was handed out twice"
                    ))),
                }
            }
            Err(e) => Err(unavailable("PutItem", e)),
        }
    }

    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        if limit == 0 {
            return Ok(events);
        }
        let counter = self.counter().await?;
        let mut bucket = (after.saturating_add(1) / BUCKET).max(counter.low_bucket);
        while events.len() < limit && bucket <= counter.last / BUCKET {
            self.bucket_events(bucket, after, limit, &mut events)
                .await?;
            bucket += 1;
        }
        Ok(events)
    }

    async fn last_sequence(&self) -> Result<u64> {
        Ok(self.counter().await?.last)
    }

    /// Walks buckets from the oldest, deleting events older than `before`,
    /// and stops at the first bucket that keeps an event (timestamps come
    /// from the appenders' clocks and grow with the sequence, up to clock
    /// skew). The counter is never touched, so sequences never repeat.
    async fn prune_before(&self, before: Timestamp) -> Result<u64> {
        let counter = self.counter().await?;
        let last_bucket = counter.last / BUCKET;
        let mut deleted = 0u64;
        let mut low = counter.low_bucket;
        for bucket in counter.low_bucket..=last_bucket {
            let mut events = Vec::new();
            self.bucket_events(bucket, 0, usize::MAX, &mut events)
                .await?;
            let (old, kept): (Vec<&Event>, Vec<&Event>) =
                events.iter().partition(|e| e.timestamp < before);
            for chunk in old.chunks(25) {
                self.delete_events(chunk).await?;
                deleted += chunk.len() as u64;
            }
            if !kept.is_empty() || bucket == last_bucket {
                break;
            }
            low = bucket + 1;
        }
        if low > counter.low_bucket {
            let raised = self
                .client
                .update_item()
                .table_name(&self.tables.meta)
                .set_key(Some(counter_key()))
                .update_expression("SET low_bucket = :low")
                .condition_expression("attribute_not_exists(low_bucket) OR low_bucket < :low")
                .expression_attribute_values(":low", n(low))
                .send()
                .await;
            if let Err(e) = raised {
                use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
                if !matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) {
                    return Err(unavailable("UpdateItem", e));
                }
            }
        }
        Ok(deleted)
    }
}

impl DynamoStore {
    async fn delete_events(&self, events: &[&Event]) -> Result<()> {
        let mut requests = Vec::new();
        for e in events {
            let delete = DeleteRequest::builder()
                .key("bucket", n(e.id / BUCKET))
                .key("seq", n(e.id))
                .build()
                .map_err(super::tables::build_error)?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        for round in 0..MAX_WRITE_ROUNDS {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.tables.events, requests)
                .send()
                .await
                .map_err(|e| unavailable("BatchWriteItem", e))?;
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.tables.events))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            backoff(round).await;
        }
        Err(super::client::contention("prune"))
    }
}
