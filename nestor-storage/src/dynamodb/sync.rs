//! `SyncStore` on the meta table: one item per source state and one per
//! source's last report, under fixed partition keys so listing them is a
//! Query, never a Scan.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use nestor_core::{Result, SourceState, SyncReport, SyncStore};

use super::client::unavailable;
use super::codec::{decode_body, encode_body, s, ItemExt};
use super::DynamoStore;

const STATE_PK: &str = "source_state";
const REPORT_PK: &str = "sync_report";

impl DynamoStore {
    async fn put_meta(
        &self,
        pk: &str,
        sk: &str,
        what: &str,
        body: &impl serde::Serialize,
    ) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.tables.meta)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("body", encode_body(what, body)?)
            .send()
            .await
            .map_err(|e| unavailable("PutItem", e))?;
        Ok(())
    }

    /// Every item of one partition of the meta table, all pages, read
    /// consistently (sync reports, the team registry).
    pub(super) async fn meta_partition(
        &self,
        pk: &str,
    ) -> Result<Vec<std::collections::HashMap<String, AttributeValue>>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.meta)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Query", e))?;
            items.extend(out.items().iter().cloned());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}

#[async_trait]
impl SyncStore for DynamoStore {
    async fn source_state(&self, source: &str) -> Result<Option<SourceState>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.meta)
            .key("pk", s(STATE_PK))
            .key("sk", s(source))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        out.item
            .map(|item| decode_body("source state", item.attr("body")?))
            .transpose()
    }

    async fn save_source_state(&self, state: &SourceState) -> Result<()> {
        self.put_meta(STATE_PK, &state.source, "source state", state)
            .await
    }

    async fn record_sync(&self, report: &SyncReport) -> Result<()> {
        self.put_meta(REPORT_PK, &report.source, "sync report", report)
            .await
    }

    async fn last_syncs(&self) -> Result<Vec<SyncReport>> {
        self.meta_partition(REPORT_PK)
            .await?
            .iter()
            .map(|item| decode_body("sync report", item.attr("body")?))
            .collect()
    }
}
