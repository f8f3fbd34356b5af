//! The parts the core's own tests stand on, all in memory: a catalog
//! source over a map of files, an engine rendering JSON, and an executor
//! that records what each apply gave it. The real ones (git, the bundled
//! WebAssembly engines, the GitOps executor) are tested in nestor-storage,
//! nestor-engines and nestor-server; here the core's rules are what is
//! under test, so every part is one the test can see through.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use nestor_core::*;
use nestor_storage::MemoryStore;
use serde_json::{json, Value};

/// A catalog source whose files the test sets; every change is a new head.
pub struct MapSource {
    config: SourceConfig,
    files: Mutex<(u64, BTreeMap<String, String>)>,
}

impl MapSource {
    pub fn new(name: &str) -> Self {
        MapSource {
            config: SourceConfig {
                name: name.into(),
                url: format!("memory://{name}"),
                branch: "main".into(),
                path: String::new(),
                poll_interval: Duration::from_secs(60),
                webhook_secret: None,
            },
            files: Mutex::new((0, BTreeMap::new())),
        }
    }

    /// Writes (or, with `None`, deletes) a file: the next head differs.
    pub fn set(&self, path: &str, content: Option<&str>) {
        let mut files = self.files.lock().unwrap();
        files.0 += 1;
        match content {
            Some(c) => files.1.insert(path.into(), c.into()),
            None => files.1.remove(path),
        };
    }
}

#[async_trait]
impl CatalogSource for MapSource {
    fn config(&self) -> &SourceConfig {
        &self.config
    }

    async fn head(&self) -> Result<SourceHead> {
        let id = format!("head-{}", self.files.lock().unwrap().0);
        Ok(SourceHead {
            id: id.clone(),
            commit: Some(id),
        })
    }

    async fn list_files(&self, _head: &SourceHead) -> Result<Vec<String>> {
        Ok(self.files.lock().unwrap().1.keys().cloned().collect())
    }

    async fn changed_files(
        &self,
        _from: &str,
        _to: &SourceHead,
    ) -> Result<Option<Vec<FileChange>>> {
        Ok(None)
    }

    async fn read_file(&self, _head: &SourceHead, path: &str) -> Result<Vec<u8>> {
        let files = self.files.lock().unwrap();
        files
            .1
            .get(path)
            .map(|c| c.clone().into_bytes())
            .ok_or_else(|| Error::internal(format!("{path} vanished")))
    }
}

/// Renders `{resource}.json` holding the inputs it was given; each declared
/// output is reachable as `ref://{resource}/{output}`.
pub struct JsonEngine(pub &'static str);

#[async_trait]
impl Engine for JsonEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            name: self.0.into(),
            version: "1.0.0".into(),
            description: "renders its inputs as JSON".into(),
        }
    }

    async fn render(&self, request: &RenderRequest) -> Result<RenderOutput> {
        let content = serde_json::to_string_pretty(&json!({
            "resource": request.resource,
            "inputs": request.inputs,
            "wave": request.context.wave,
        }))
        .map_err(|e| Error::internal(e.to_string()))?;
        let outputs = request
            .definition
            .spec
            .outputs
            .iter()
            .map(|o| {
                let reach = Reach::value(format!("ref://{}/{}", request.resource, o.name));
                (o.name.clone(), reach)
            })
            .collect();
        Ok(RenderOutput {
            artifacts: vec![Artifact {
                path: format!("{}.json", request.resource),
                content,
                media_type: "application/json".into(),
            }],
            outputs,
        })
    }
}

/// One apply as the executor received it.
#[derive(Debug, Clone)]
pub struct Applied {
    pub target: ApplyTarget,
    pub files: BTreeMap<String, Vec<Artifact>>,
}

/// Records every apply and answers with a commit named after its count.
#[derive(Default)]
pub struct RecordingExecutor {
    pub applied: Mutex<Vec<Applied>>,
}

#[async_trait]
impl Executor for RecordingExecutor {
    async fn apply(
        &self,
        target: &ApplyTarget,
        files: &BTreeMap<String, Vec<Artifact>>,
    ) -> Result<ApplyReceipt> {
        let mut applied = self.applied.lock().unwrap();
        applied.push(Applied {
            target: target.clone(),
            files: files.clone(),
        });
        Ok(ApplyReceipt {
            commit: Some(format!("commit-{}", applied.len())),
            paths: files
                .iter()
                .map(|(r, a)| (r.clone(), a.iter().map(|a| a.path.clone()).collect()))
                .collect(),
            unchanged: false,
        })
    }
}

/// A facade over a fresh memory store, the JSON engine as `terraform` and
/// `helm`, and a recording executor.
pub fn nestor() -> (Nestor, Arc<RecordingExecutor>) {
    nestor_with(Policies::none())
}

/// [`nestor`] with `policies`.
pub fn nestor_with(policies: Policies) -> (Nestor, Arc<RecordingExecutor>) {
    nestor_over(Arc::new(MemoryStore::new()), policies, vec![])
}

/// A facade over `store` (shared by several, as by the processes of one
/// deployment) with `policies` and `quotas`.
pub fn nestor_over(
    store: Arc<dyn Store>,
    policies: Policies,
    quotas: Vec<Quota>,
) -> (Nestor, Arc<RecordingExecutor>) {
    let engines: BTreeMap<String, Arc<dyn Engine>> = ["terraform", "helm"]
        .into_iter()
        .map(|n| (n.to_string(), Arc::new(JsonEngine(n)) as Arc<dyn Engine>))
        .collect();
    let executor = Arc::new(RecordingExecutor::default());
    let nestor = Nestor::builder()
        .store(store)
        .engines(Arc::new(engines))
        .executor(executor.clone())
        .policies(policies)
        .quotas(quotas)
        .build()
        .expect("every part is given");
    (nestor, executor)
}

/// A definition document with `outputs` (YAML flow list) and a description.
pub fn definition(name: &str, version: &str, description: &str, outputs: &str) -> String {
    format!(
        "apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\nmetadata: {{name: {name}, version: \"{version}\", description: \"{description}\", provider: aws, category: test, resource_type: {name}}}\nspec:\n  supported_engines: [terraform, helm]\n  inputs: [{{name: size, type: string, default: small}}, {{name: env, type: object, default: {{}}}}]\n  outputs: {outputs}\n"
    )
}

/// The value of `path` (`a.b`) in a JSON artifact.
pub fn field(artifact: &Artifact, path: &str) -> Value {
    let mut value: Value = serde_json::from_str(&artifact.content).expect("JSON artifact");
    for key in path.split('.') {
        value = value[key].take();
    }
    value
}
