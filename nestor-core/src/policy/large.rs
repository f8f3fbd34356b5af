//! A large plan's `resources` array, built in runs on the CPU pool's
//! lanes (each run its own items, concatenated in order) rather than on
//! the calling task while the lanes wait for the policies to evaluate.

use std::ops::Range;
use std::sync::Arc;

use super::input::{deployment_document, deployment_input, DeploymentFields, Items};
use super::{DefinitionDocuments, PolicyInput, PolicyResource};
use crate::cpu::{self, Offload};
use crate::error::Result;

/// From how many resources the array is built on the lanes: below it,
/// building it costs less than handing it off.
const RUNS_FROM: usize = 512;

/// The resources an input lists, readable from any lane.
pub trait ResourceList: Send + Sync + 'static {
    /// How many.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`th, as policies see it.
    fn resource(&self, i: usize) -> PolicyResource<'_>;
}

/// [`deployment_input`] of `list`, its `resources` array built in one run
/// per lane of `offload` when it is large; the same document either way.
pub async fn deployment_input_on(
    offload: &dyn Offload,
    fields: &DeploymentFields<'_>,
    list: Arc<dyn ResourceList>,
    documents: &DefinitionDocuments,
) -> Result<PolicyInput> {
    let count = list.len();
    let lanes = offload.parallelism().clamp(1, 8);
    if count < RUNS_FROM || lanes < 2 {
        let listed: Vec<PolicyResource<'_>> = (0..count).map(|i| list.resource(i)).collect();
        return deployment_input(fields, &listed, documents);
    }
    let run = count.div_ceil(lanes);
    let runs: Vec<Range<usize>> = (0..count)
        .step_by(run)
        .map(|start| start..(start + run).min(count))
        .collect();
    let documents = documents.clone();
    let built = cpu::map(offload, runs, 1, move |run| {
        let mut items = Items::new(&documents);
        run.map(|i| items.item(&list.resource(i)))
            .collect::<Result<Vec<_>>>()
    })
    .await;
    let mut all = Vec::with_capacity(count);
    for run in built {
        all.extend(run?);
    }
    deployment_document(fields, regorus::Value::from(all), count)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::cpu::CountingLanes;
    use crate::model::PublishedVersion;
    use crate::policy::ResourceInputs;

    /// Resources over two versions, every other one's inputs rendered.
    struct Listed {
        names: Vec<String>,
        pinned: [PublishedVersion; 2],
        config: BTreeMap<String, serde_json::Value>,
        rendered: BTreeMap<String, serde_json::Value>,
    }

    impl ResourceList for Listed {
        fn len(&self) -> usize {
            self.names.len()
        }

        fn resource(&self, i: usize) -> PolicyResource<'_> {
            PolicyResource {
                name: &self.names[i],
                engine: if i.is_multiple_of(3) {
                    "helm"
                } else {
                    "terraform"
                },
                inputs: if i.is_multiple_of(2) {
                    ResourceInputs::AsWritten(&self.config)
                } else {
                    ResourceInputs::Rendered(Cow::Borrowed(&self.rendered))
                },
                pinned: &self.pinned[i % 2],
            }
        }
    }

    fn listed(n: usize) -> Listed {
        let version = |v: &str| {
            let yaml = format!(
                "apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\n\
                 metadata: {{name: thing, version: \"{v}\", provider: aws, category: test, resource_type: thing}}\n\
                 spec:\n  supported_engines: [terraform, helm]\n  optional_inputs:\n    \
                 - {{name: size, type: string, default: small}}\n"
            );
            let def = crate::parse::parse_definition_yaml(&yaml).unwrap();
            PublishedVersion::new(def, 0, None)
        };
        Listed {
            names: (0..n).map(|i| format!("r{i}")).collect(),
            pinned: [version("1.0.0"), version("2.0.0")],
            config: BTreeMap::new(),
            rendered: BTreeMap::from([("size".to_string(), json!("large"))]),
        }
    }

    #[tokio::test]
    async fn a_large_list_is_built_in_runs_into_the_same_document() {
        let labels = BTreeMap::new();
        let params = BTreeMap::from([("p".to_string(), json!(1))]);
        let fields = DeploymentFields {
            team: "alpha",
            environment: "prod",
            name: "d",
            labels: &labels,
            composition: None,
            params: &params,
        };
        for n in [RUNS_FROM - 1, RUNS_FROM, 2 * RUNS_FROM + 1] {
            let list = Arc::new(listed(n));
            let listed: Vec<PolicyResource<'_>> = (0..n).map(|i| list.resource(i)).collect();
            let alone = deployment_input(&fields, &listed, &DefinitionDocuments::default());
            let lanes = CountingLanes::new(3);
            let documents = DefinitionDocuments::default();
            let built = deployment_input_on(&lanes, &fields, list.clone(), &documents).await;
            let (alone, built) = (alone.unwrap(), built.unwrap());
            assert_eq!(built.to_json(), alone.to_json(), "{n} resources");
            assert_eq!(built.resources(), n);
            let jobs = if n < RUNS_FROM { 0 } else { 3 };
            assert_eq!(lanes.jobs(), jobs, "{n} resources");
        }
    }
}
