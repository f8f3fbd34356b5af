//! Deployment leases on the leases table (partition key `deployment_id`,
//! no sort key): one item per claimed deployment, with `owner`, `epoch`
//! and `expires_at_ms` (milliseconds since the Unix epoch). Never cached:
//! every claim reads the item strongly consistent.
//!
//! Every write is one conditional single-item request, so DynamoDB decides
//! each race (`owner`, `epoch` and `expires_at_ms` go through expression
//! attribute names: `OWNER` is a reserved word):
//! - **claim**: a consistent `GetItem`, then a `PutItem` conditional on
//!   `attribute_not_exists(deployment_id)` (no item was read, epoch 1) or on
//!   `epoch = :old AND expires_at_ms <= :now` (the read item had expired:
//!   its epoch + 1). A failed condition means another replica claimed or
//!   renewed it first: `None`.
//! - **renew**: `UpdateItem` of `expires_at_ms`, conditional on the holder's
//!   `owner` and `epoch`; a failed condition is `lease_lost`.
//! - **release**: `DeleteItem` with the same condition; a failed condition
//!   means the lease was no longer the caller's, which is fine.
//!
//! A lost answer resent by the SDK is harmless for renew (the condition
//! still holds) and release (nothing left to delete), and for a claim it
//! looks like another replica's win: the caller sees `None`, and the
//! orphaned lease expires and is claimed again after its TTL.

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use nestor_core::{lease_lost, Error, Lease, Result};

use super::client::unavailable;
use super::codec::{n, s, Item, ItemExt};
use super::DynamoStore;

/// The key attribute of the leases table.
const KEY: &str = "deployment_id";

fn lease_item(lease: &Lease) -> Item {
    Item::from([
        (KEY.to_string(), s(&lease.deployment_id)),
        ("owner".to_string(), s(&lease.owner)),
        ("epoch".to_string(), n(lease.epoch)),
        ("expires_at_ms".to_string(), n(lease.expires_at_ms)),
    ])
}

fn lease_from_item(item: &Item) -> Result<Lease> {
    Ok(Lease {
        deployment_id: item.str_attr(KEY)?.to_string(),
        owner: item.str_attr("owner")?.to_string(),
        epoch: item.u64_attr("epoch")?,
        expires_at_ms: item.i64_attr("expires_at_ms")?,
    })
}

impl DynamoStore {
    /// See `DeploymentStore::claim_lease`.
    pub(super) async fn claim_lease_item(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.leases)
            .key(KEY, s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        let stored = out.item.as_ref().map(lease_from_item).transpose()?;
        let epoch = match &stored {
            Some(held) if !held.is_expired(now_ms) => return Ok(None),
            Some(expired) => expired.epoch.checked_add(1).ok_or_else(|| {
                Error::internal(format!("the lease epoch of deployment {id} overflowed"))
            })?,
            None => 1,
        };
        let lease = Lease {
            deployment_id: id.into(),
            owner: owner.into(),
            epoch,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.leases)
            .set_item(Some(lease_item(&lease)));
        let put = match &stored {
            None => put.condition_expression(format!("attribute_not_exists({KEY})")),
            Some(expired) => put
                .condition_expression("#e = :old AND #x <= :now")
                .expression_attribute_names("#e", "epoch")
                .expression_attribute_names("#x", "expires_at_ms")
                .expression_attribute_values(":old", n(expired.epoch))
                .expression_attribute_values(":now", n(now_ms)),
        };
        match put.send().await {
            Ok(_) => Ok(Some(lease)),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(unavailable("PutItem", e)),
        }
    }

    /// See `DeploymentStore::renew_lease`.
    pub(super) async fn renew_lease_item(
        &self,
        lease: &Lease,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Lease> {
        let renewed = Lease {
            expires_at_ms: now_ms.saturating_add(ttl_ms),
            ..lease.clone()
        };
        let sent = self
            .client
            .update_item()
            .table_name(&self.tables.leases)
            .key(KEY, s(&lease.deployment_id))
            .update_expression("SET #x = :x")
            .condition_expression("#o = :o AND #e = :e")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#e", "epoch")
            .expression_attribute_names("#x", "expires_at_ms")
            .expression_attribute_values(":x", n(renewed.expires_at_ms))
            .expression_attribute_values(":o", s(&lease.owner))
            .expression_attribute_values(":e", n(lease.epoch))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(renewed),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(lease_lost(lease))
            }
            Err(e) => Err(unavailable("UpdateItem", e)),
        }
    }

    /// See `DeploymentStore::release_lease`.
    pub(super) async fn release_lease_item(&self, lease: &Lease) -> Result<()> {
        let sent = self
            .client
            .delete_item()
            .table_name(&self.tables.leases)
            .key(KEY, s(&lease.deployment_id))
            .condition_expression("#o = :o AND #e = :e")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#e", "epoch")
            .expression_attribute_values(":o", s(&lease.owner))
            .expression_attribute_values(":e", n(lease.epoch))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable("DeleteItem", e)),
        }
    }

    /// See `DeploymentStore::leases`: a paginated, strongly consistent
    /// Scan (the table holds one small item per running deployment).
    pub(super) async fn lease_items(&self) -> Result<Vec<Lease>> {
        let mut leases = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.tables.leases)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Scan", e))?;
            for item in out.items() {
                leases.push(lease_from_item(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        leases.sort_by(|a, b| a.deployment_id.cmp(&b.deployment_id));
        Ok(leases)
    }
}
