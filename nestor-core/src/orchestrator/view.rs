//! The dependency graph of deployments (`GET /graph`, `nestor graph`): the
//! resources of each deployment's latest revision, the edges between them,
//! the definitions they use and those definitions' catalog dependencies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{Deployment, ResourceStatus};
use crate::store::{DeploymentFilter, Store};
use crate::versioning::{CatalogRef, VersionSpec};

/// A node: a deployed resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GraphNode {
    /// `team/environment/name/resource`.
    pub id: String,
    /// Always `resource`.
    pub kind: String,
    /// The pinned definition (`aws-rds-mysql:1.2.0`).
    pub definition: String,
    /// The resource's status in that revision.
    pub status: ResourceStatus,
}

/// An edge: `deployment` (resource → resource, applied in that order),
/// `uses` (resource → definition) or `catalog` (definition → requirement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GraphEdge {
    /// Where it starts.
    pub from: String,
    /// Where it ends.
    pub to: String,
    /// `deployment`, `uses` or `catalog`.
    pub kind: String,
}

/// Nodes and edges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GraphView {
    /// Deployed resources.
    pub nodes: Vec<GraphNode>,
    /// Their relations.
    pub edges: Vec<GraphEdge>,
}

impl GraphView {
    /// Graphviz text: boxes for resources, solid deployment edges, dashed
    /// catalog ones.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph nestor {\n  rankdir=LR;\n");
        for n in &self.nodes {
            out.push_str(&format!("  {:?} [shape=box];\n", n.id));
        }
        for e in &self.edges {
            let style = if e.kind == "deployment" {
                ""
            } else {
                " [style=dashed]"
            };
            out.push_str(&format!("  {:?} -> {:?}{style};\n", e.from, e.to));
        }
        out.push_str("}\n");
        out
    }
}

/// The graph of the latest revision of every deployment that passes
/// `filter` and `visible` (a caller's team scope).
pub async fn deployment_graph(
    store: &dyn Store,
    filter: &DeploymentFilter,
    visible: impl Fn(&Deployment) -> bool,
) -> Result<GraphView> {
    let mut latest: BTreeMap<(String, String, String), Deployment> = BTreeMap::new();
    for d in store.list_deployments(filter).await? {
        if visible(&d) {
            // Listed newest first: the first seen of a key is its latest revision.
            latest
                .entry((d.team.clone(), d.environment.clone(), d.name.clone()))
                .or_insert(d);
        }
    }
    let mut view = GraphView::default();
    let edge = |from: String, to: String, kind: &str| GraphEdge {
        from,
        to,
        kind: kind.into(),
    };
    for d in latest.values() {
        let content = store.revision_content(&d.id).await?.unwrap_or_default();
        let prefix = format!("{}/{}/{}", d.team, d.environment, d.name);
        for r in &d.resources {
            let id = format!("{prefix}/{}", r.name);
            view.nodes.push(GraphNode {
                id: id.clone(),
                kind: "resource".into(),
                definition: r.catalog_ref.clone(),
                status: r.status,
            });
            view.edges.push(edge(id, r.catalog_ref.clone(), "uses"));
            let Ok(c) = CatalogRef::parse(&r.catalog_ref) else {
                continue;
            };
            if let Ok(v) = store.resolve(&c.name, &c.version).await {
                for dep in &v.definition.spec.dependencies {
                    let req = VersionSpec::parse(&dep.version)
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    view.edges.push(edge(
                        r.catalog_ref.clone(),
                        format!("{} {req}", dep.name),
                        "catalog",
                    ));
                }
            }
        }
        for e in &content.edges {
            view.edges.push(edge(
                format!("{prefix}/{}", e.from),
                format!("{prefix}/{}", e.to),
                "deployment",
            ));
        }
    }
    Ok(view)
}
