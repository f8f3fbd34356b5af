//! `CompositionStore` on the compositions table: partition = team,
//! sort = `name#version-key`, so one team's compositions are one Query and
//! a composition's versions a `begins_with` Query in semver order.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use nestor_core::{CompositionStore, Error, PublishOutcome, PublishedComposition, Result};
use semver::Version;

use super::client::unavailable;
use super::codec::{decode_body, encode_body, s, version_key, Item, ItemExt};
use super::DynamoStore;

/// Meta partition registering every team that has a composition, so
/// listing all teams' compositions needs no Scan.
const TEAMS_PK: &str = "composition_team";

fn sort_key(name: &str, version: &Version) -> String {
    // Names are DNS labels: `#` never occurs in one, so `name#` prefixes
    // exactly that name's versions.
    format!("{name}#{}", version_key(version))
}

impl DynamoStore {
    async fn team_items(&self, team: &str, prefix: Option<&str>) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.compositions)
                .expression_attribute_values(":t", s(team))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            query = match prefix {
                Some(p) => query
                    .key_condition_expression("pk = :t AND begins_with(sk, :p)")
                    .expression_attribute_values(":p", s(p)),
                None => query.key_condition_expression("pk = :t"),
            };
            let out = query.send().await.map_err(|e| unavailable("Query", e))?;
            items.extend(out.items().iter().cloned());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    async fn composition_teams(&self) -> Result<Vec<String>> {
        self.meta_partition(TEAMS_PK)
            .await?
            .iter()
            .map(|item| Ok(item.str_attr("sk")?.to_string()))
            .collect()
    }
}

fn item_version(item: &Item) -> Result<Version> {
    item.str_attr("version")?
        .parse()
        .map_err(|e| Error::internal(format!("stored composition version: {e}")))
}

#[async_trait]
impl CompositionStore for DynamoStore {
    async fn insert_composition(&self, c: PublishedComposition) -> Result<PublishOutcome> {
        let m = &c.composition.metadata;
        let body = encode_body("composition", &c)?;
        // Registering the team first is idempotent and keeps listing
        // complete even if the insert below fails.
        self.client
            .put_item()
            .table_name(&self.tables.meta)
            .item("pk", s(TEAMS_PK))
            .item("sk", s(&m.team))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", e))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.compositions)
            .item("pk", s(&m.team))
            .item("sk", s(sort_key(&m.name, &m.version)))
            .item("name", s(&m.name))
            .item("version", s(m.version.to_string()))
            .item("hash", s(&c.content_hash))
            .item("body", body)
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(PublishOutcome::Created),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                let existing = self.get_composition(&m.team, &m.name, &m.version).await?;
                match existing {
                    Some(existing) if existing.content_hash == c.content_hash => {
                        Ok(PublishOutcome::Unchanged)
                    }
                    _ => Err(Error::VersionImmutable {
                        name: format!("{}/{}", m.team, m.name),
                        version: m.version.to_string(),
                    }),
                }
            }
            Err(e) => Err(unavailable("PutItem", e)),
        }
    }

    async fn get_composition(
        &self,
        team: &str,
        name: &str,
        version: &Version,
    ) -> Result<Option<PublishedComposition>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.compositions)
            .key("pk", s(team))
            .key("sk", s(sort_key(name, version)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        out.item
            .map(|item| decode_body("composition", item.attr("body")?))
            .transpose()
    }

    async fn composition_versions(&self, team: &str, name: &str) -> Result<Vec<Version>> {
        let items = self.team_items(team, Some(&format!("{name}#"))).await?;
        let mut versions = items.iter().map(item_version).collect::<Result<Vec<_>>>()?;
        versions.sort_by(|a, b| b.cmp(a));
        Ok(versions)
    }

    async fn list_compositions(&self, team: Option<&str>) -> Result<Vec<PublishedComposition>> {
        let teams = match team {
            Some(t) => vec![t.to_string()],
            None => self.composition_teams().await?,
        };
        let mut out = Vec::new();
        for team in teams {
            // name → (newest version, its item); names come in order.
            let mut newest: std::collections::BTreeMap<String, (Version, Item)> =
                Default::default();
            for item in self.team_items(&team, None).await? {
                let version = item_version(&item)?;
                let name = item.str_attr("name")?.to_string();
                if newest.get(&name).is_none_or(|(v, _)| *v < version) {
                    newest.insert(name, (version, item));
                }
            }
            for (_, (_, item)) in newest {
                out.push(decode_body("composition", item.attr("body")?)?);
            }
        }
        Ok(out)
    }
}
