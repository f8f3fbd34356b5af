//! Table names and `migrate`: creating the tables and their indexes
//! idempotently and waiting until DynamoDB reports them usable.

use std::time::Duration;

use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::operation::update_table::UpdateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, GlobalSecondaryIndexUpdate,
    IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType,
    TableDescription, TableStatus,
};
use aws_sdk_dynamodb::Client;
use nestor_core::{Error, Result};

use super::client::unavailable;

/// The GSI of the catalog table listing names with a latest version, in
/// name order.
pub(crate) const BY_NAME_INDEX: &str = "by_name";
/// The GSI of the deployments table listing a team's revisions by time.
pub(crate) const BY_TEAM_INDEX: &str = "by_team";

/// How often `migrate` polls a table that is being created.
const POLL: Duration = Duration::from_millis(250);
/// How long `migrate` waits for tables and indexes to become ACTIVE.
const WAIT_FOR_ACTIVE: Duration = Duration::from_secs(300);

/// The names of the tables under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    /// Versions, their bodies and one item per name (see the module docs).
    pub catalog: String,
    /// The event log, by sequence bucket.
    pub events: String,
    /// Counters, sync state and reports, registries.
    pub meta: String,
    /// Team compositions.
    pub compositions: String,
    /// Deployments, their revisions, content and idempotency keys.
    pub deployments: String,
    /// Deployment leases, one item per claimed deployment.
    pub leases: String,
}

impl Tables {
    /// Table names for `prefix`; DynamoDB allows `[A-Za-z0-9_.-]`, 3 to 255
    /// characters, so the prefix is checked here rather than at first use.
    pub fn new(prefix: &str) -> Result<Tables> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 200
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            return Err(Error::bad_request(format!(
                "invalid DynamoDB table prefix {prefix:?}: use 1 to 200 of A-Z a-z 0-9 _ - ."
            )));
        }
        Ok(Tables {
            catalog: format!("{prefix}-catalog"),
            events: format!("{prefix}-events"),
            meta: format!("{prefix}-meta"),
            compositions: format!("{prefix}-compositions"),
            deployments: format!("{prefix}-deployments"),
            leases: format!("{prefix}-leases"),
        })
    }

    /// Every table with its key schema and indexes.
    fn specs(&self) -> Vec<TableSpec<'_>> {
        let string_pair = |name| TableSpec {
            name,
            hash: ("pk", S),
            range: Some(("sk", S)),
            indexes: vec![],
        };
        vec![
            TableSpec {
                indexes: vec![IndexSpec {
                    name: BY_NAME_INDEX,
                    hash: ("list_pk", S),
                    range: ("pk", S),
                }],
                ..string_pair(&self.catalog)
            },
            TableSpec {
                name: &self.events,
                hash: ("bucket", N),
                range: Some(("seq", N)),
                indexes: vec![],
            },
            string_pair(&self.meta),
            string_pair(&self.compositions),
            TableSpec {
                indexes: vec![IndexSpec {
                    name: BY_TEAM_INDEX,
                    hash: ("team", S),
                    range: ("created", S),
                }],
                ..string_pair(&self.deployments)
            },
            TableSpec {
                name: &self.leases,
                hash: ("deployment_id", S),
                range: None,
                indexes: vec![],
            },
        ]
    }

    /// Every table name.
    pub fn all(&self) -> [&str; 6] {
        [
            &self.catalog,
            &self.events,
            &self.meta,
            &self.compositions,
            &self.deployments,
            &self.leases,
        ]
    }
}

const S: ScalarAttributeType = ScalarAttributeType::S;
const N: ScalarAttributeType = ScalarAttributeType::N;

struct TableSpec<'a> {
    name: &'a str,
    hash: (&'static str, ScalarAttributeType),
    /// `None` for a table keyed by its partition key alone.
    range: Option<(&'static str, ScalarAttributeType)>,
    indexes: Vec<IndexSpec>,
}

struct IndexSpec {
    name: &'static str,
    hash: (&'static str, ScalarAttributeType),
    range: (&'static str, ScalarAttributeType),
}

fn key_schema(hash: &str, range: Option<&str>) -> Result<Vec<KeySchemaElement>> {
    let element = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(build_error)
    };
    let mut schema = vec![element(hash, KeyType::Hash)?];
    if let Some(range) = range {
        schema.push(element(range, KeyType::Range)?);
    }
    Ok(schema)
}

fn attribute(name: &str, kind: &ScalarAttributeType) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind.clone())
        .build()
        .map_err(build_error)
}

fn index(spec: &IndexSpec) -> Result<GlobalSecondaryIndex> {
    GlobalSecondaryIndex::builder()
        .index_name(spec.name)
        .set_key_schema(Some(key_schema(spec.hash.0, Some(spec.range.0))?))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_error)
}

/// A request the SDK refused to build: a bug here, not an outage.
pub(crate) fn build_error(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("invalid DynamoDB request: {e}"))
}

/// Creates every missing table and index and waits until all are ACTIVE.
/// Safe to run again, and from several replicas at once: "already exists"
/// answers count as success.
pub(crate) async fn migrate(client: &Client, tables: &Tables) -> Result<()> {
    for spec in tables.specs() {
        match describe(client, spec.name).await? {
            None => create(client, &spec).await?,
            Some(existing) => add_missing_indexes(client, &spec, &existing).await?,
        }
    }
    for spec in tables.specs() {
        wait_until_active(client, spec.name).await?;
    }
    Ok(())
}

async fn describe(client: &Client, table: &str) -> Result<Option<TableDescription>> {
    match client.describe_table().table_name(table).send().await {
        Ok(out) => Ok(out.table),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(DescribeTableError::ResourceNotFoundException(_))
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(unavailable("DescribeTable", e)),
    }
}

async fn create(client: &Client, spec: &TableSpec<'_>) -> Result<()> {
    let mut attributes = vec![attribute(spec.hash.0, &spec.hash.1)?];
    if let Some((name, kind)) = &spec.range {
        attributes.push(attribute(name, kind)?);
    }
    let mut indexes = Vec::new();
    for ix in &spec.indexes {
        for (name, kind) in [&ix.hash, &ix.range] {
            if !attributes.iter().any(|a| a.attribute_name() == *name) {
                attributes.push(attribute(name, kind)?);
            }
        }
        indexes.push(index(ix)?);
    }
    let request = client
        .create_table()
        .table_name(spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(
            spec.hash.0,
            spec.range.as_ref().map(|r| r.0),
        )?))
        .set_attribute_definitions(Some(attributes))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes));
    match request.send().await {
        Ok(_) => {
            tracing::info!(target: "nestor_storage::dynamodb", table = spec.name, "created table");
            Ok(())
        }
        // Another replica created it between our describe and create.
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable("CreateTable", e)),
    }
}

/// An upgrade path: a table from an older release that lacks an index
/// gets it (DynamoDB backfills it online).
async fn add_missing_indexes(
    client: &Client,
    spec: &TableSpec<'_>,
    existing: &TableDescription,
) -> Result<()> {
    for ix in &spec.indexes {
        let present = existing
            .global_secondary_indexes()
            .iter()
            .any(|g| g.index_name() == Some(ix.name));
        if present {
            continue;
        }
        wait_until_active(client, spec.name).await?;
        let create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
            .index_name(ix.name)
            .set_key_schema(Some(key_schema(ix.hash.0, Some(ix.range.0))?))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(build_error)?;
        let result = client
            .update_table()
            .table_name(spec.name)
            .set_attribute_definitions(Some(vec![
                attribute(ix.hash.0, &ix.hash.1)?,
                attribute(ix.range.0, &ix.range.1)?,
            ]))
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder().create(create).build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(target: "nestor_storage::dynamodb", table = spec.name, index = ix.name, "adding index")
            }
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateTableError::ResourceInUseException(_))
                ) => {}
            Err(e) => return Err(unavailable("UpdateTable", e)),
        }
    }
    Ok(())
}

async fn wait_until_active(client: &Client, table: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_ACTIVE;
    loop {
        if let Some(t) = describe(client, table).await? {
            let table_active = t.table_status() == Some(&TableStatus::Active);
            let indexes_active = t
                .global_secondary_indexes()
                .iter()
                .all(|g| g.index_status() == Some(&IndexStatus::Active));
            if table_active && indexes_active {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::StorageUnavailable {
                message: format!(
                    "DynamoDB table {table} did not become ACTIVE within {WAIT_FOR_ACTIVE:?}"
                ),
                source: None,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Deletes every table of the prefix, ignoring those already gone.
pub(crate) async fn delete_all(client: &Client, tables: &Tables) -> Result<()> {
    for table in tables.all() {
        if let Err(e) = client.delete_table().table_name(table).send().await {
            use aws_sdk_dynamodb::operation::delete_table::DeleteTableError;
            if !matches!(
                e.as_service_error(),
                Some(DeleteTableError::ResourceNotFoundException(_))
            ) {
                return Err(unavailable("DeleteTable", e));
            }
        }
    }
    Ok(())
}
