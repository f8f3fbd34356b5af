//! Git sync end to end: real git repositories made in temp dirs, the real
//! sync service, a real store.

use std::path::Path;
use std::sync::Arc;

use git2::{Repository, Signature};
use nestor_core::{
    CatalogService, CatalogStore, SourceConfig, SyncReport, SyncService, VersionSpec,
};
use nestor_storage::{open_source, MemoryStore};
use tempfile::TempDir;

/// A git repository on disk that tests write and commit to.
pub struct TestRepo {
    pub dir: TempDir,
    repo: Repository,
}

impl TestRepo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = Repository::init_opts(dir.path(), &opts).unwrap();
        TestRepo { dir, repo }
    }

    pub fn url(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) {
        let full = self.dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.dir.path().join(path)).unwrap();
    }

    /// Stages everything (additions, changes, deletions) and commits.
    pub fn commit(&self, message: &str) -> String {
        let mut index = self.repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Signature::now("test", "test@example.com").unwrap();
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .unwrap()
            .to_string()
    }
}

pub fn def_yaml(name: &str, version: &str, extra_inputs: &str, deps: &str) -> String {
    format!(
        r#"apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata:
  name: {name}
  version: "{version}"
  provider: aws
  category: database
  resource_type: mysql
  description: "{name} for tests"
spec:
  supported_engines: [terraform]
  required_inputs:
    - name: instance_class
      type: string
      validation:
        pattern: "^db\\.[a-z0-9]+\\.[a-z]+$"
  optional_inputs:
    - name: backup_retention_period
      type: integer
      default: 7
      validation: {{min: 1, max: 35}}
{extra_inputs}  outputs:
    - name: endpoint
      type: string
  dependencies: [{deps}]
"#
    )
}

struct Env {
    store: Arc<dyn CatalogStore>,
    sync: SyncService,
    cache: TempDir,
}

impl Env {
    fn new() -> Self {
        let store: Arc<dyn CatalogStore> = Arc::new(MemoryStore::new());
        let sync = SyncService::new(CatalogService::new(store.clone()));
        Env {
            store,
            sync,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    async fn sync(&self, config: SourceConfig) -> SyncReport {
        let source = open_source(config, self.cache.path());
        self.sync
            .sync(source.as_ref())
            .await
            .expect("the source is readable")
    }

    async fn latest(&self, name: &str) -> String {
        self.store
            .latest(name)
            .await
            .unwrap()
            .map(|v| v.version().to_string())
            .unwrap_or_default()
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn sync_publishes_in_dependency_and_semver_order_and_records_origin() {
    let repo = TestRepo::new();
    // File order and document order are both "wrong" on purpose.
    repo.write(
        "resources/a-db.yaml",
        format!(
            "{}---\n{}",
            def_yaml("db", "1.1.0", "", r#"{name: net, version: "^1.5"}"#),
            def_yaml("db", "1.0.0", "", r#"{name: net, version: "^1.5"}"#)
        ),
    );
    repo.write(
        "resources/z-net.yaml",
        format!(
            "{}---\n{}",
            def_yaml("net", "1.6.0", "", ""),
            def_yaml("net", "1.5.0", "", "")
        ),
    );
    repo.write("README.md", "not a catalog file");
    repo.write("other/ignored.yaml", def_yaml("ignored", "1.0.0", "", ""));
    let commit = repo.commit("initial");

    let env = Env::new();
    let mut config = SourceConfig::new("platform", repo.url());
    config.path = "resources/".into();
    let report = env.sync(config).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        report.published,
        ["net:1.5.0", "net:1.6.0", "db:1.0.0", "db:1.1.0"],
        "dependencies first, ascending semver"
    );
    assert_eq!(report.commit.as_deref(), Some(commit.as_str()));
    assert_eq!(report.files_read, 2, "only YAML below path is read");
    assert_eq!(env.latest("db").await, "1.1.0");
    assert_eq!(
        env.latest("ignored").await,
        "",
        "files outside path are ignored"
    );

    let db = env
        .store
        .resolve("db", &VersionSpec::parse("1.0.0").unwrap())
        .await
        .unwrap();
    let origin = db.origin.as_ref().expect("origin recorded");
    assert_eq!(origin.git_commit.as_deref(), Some(commit.as_str()));
    assert_eq!(origin.git_path, "resources/a-db.yaml");
    assert_eq!(origin.git_repository, repo.url());
    assert_eq!(
        env.store.last_syncs().await.unwrap(),
        vec![report],
        "the report is stored"
    );
}

#[tokio::test]
async fn unchanged_head_does_no_work_and_a_diff_rereads_only_changed_files() {
    let repo = TestRepo::new();
    repo.write("db.yaml", def_yaml("db", "1.0.0", "", ""));
    repo.write("net.yaml", def_yaml("net", "1.0.0", "", ""));
    repo.write("cache.yaml", def_yaml("cache", "1.0.0", "", ""));
    repo.commit("initial");
    let env = Env::new();
    let config = SourceConfig::new("platform", repo.url());
    assert_eq!(env.sync(config.clone()).await.published.len(), 3);
    let events_before = env.store.last_sequence().await.unwrap();

    let again = env.sync(config.clone()).await;
    assert_eq!(
        (again.files_read, again.published.len(), again.unchanged),
        (0, 0, 0),
        "unchanged head: nothing read"
    );
    assert_eq!(
        env.store.last_sequence().await.unwrap(),
        events_before,
        "and nothing announced"
    );

    let extra = "    - name: storage_gb\n      type: integer\n      default: 20\n";
    repo.write(
        "db.yaml",
        format!(
            "{}---\n{}",
            def_yaml("db", "1.0.0", "", ""),
            def_yaml("db", "1.1.0", extra, "")
        ),
    );
    repo.write("notes.txt", "unrelated change");
    repo.commit("db 1.1.0");
    let incremental = env.sync(config.clone()).await;
    assert_eq!(
        incremental.files_read, 1,
        "only the file the diff names is parsed"
    );
    assert_eq!(incremental.published, ["db:1.1.0"]);
    assert_eq!(incremental.unchanged, 1);
    assert_eq!(env.latest("db").await, "1.1.0");
}

#[tokio::test]
async fn vanished_files_and_documents_yank_their_versions_and_return_restores_them() {
    let repo = TestRepo::new();
    repo.write(
        "db.yaml",
        format!(
            "{}---\n{}",
            def_yaml("db", "1.0.0", "", ""),
            def_yaml("db", "1.0.1", "", "")
        ),
    );
    repo.write("net.yaml", def_yaml("net", "1.0.0", "", ""));
    repo.commit("initial");
    let env = Env::new();
    let config = SourceConfig::new("platform", repo.url());
    env.sync(config.clone()).await;

    repo.remove("net.yaml");
    repo.write("db.yaml", def_yaml("db", "1.0.0", "", ""));
    repo.commit("drop net and db 1.0.1");
    let report = env.sync(config.clone()).await;
    assert_eq!(sorted(report.yanked), ["db:1.0.1", "net:1.0.0"]);
    assert_eq!(env.latest("db").await, "1.0.0");
    assert_eq!(
        env.latest("net").await,
        "",
        "no latest once every version is yanked"
    );
    let exact = env
        .store
        .resolve("net", &VersionSpec::parse("1.0.0").unwrap())
        .await
        .unwrap();
    assert!(
        exact.yanked,
        "a yanked version stays readable by exact version"
    );

    repo.write("net.yaml", def_yaml("net", "1.0.0", "", ""));
    repo.commit("net is back");
    env.sync(config).await;
    assert_eq!(
        env.latest("net").await,
        "1.0.0",
        "the same content coming back restores the version"
    );
}

#[tokio::test]
async fn a_document_that_fails_to_publish_never_yanks_what_its_file_holds() {
    let repo = TestRepo::new();
    repo.write("db.yaml", def_yaml("db", "1.0.0", "", ""));
    repo.commit("initial");
    let env = Env::new();
    let config = SourceConfig::new("platform", repo.url());
    env.sync(config.clone()).await;

    // A typo fix without a version bump: refused as immutable, and the
    // published version stays where consumers find it.
    repo.write(
        "db.yaml",
        def_yaml("db", "1.0.0", "", "").replace("db for tests", "db for tests, typo fixed"),
    );
    repo.commit("edit in place");
    let report = env.sync(config.clone()).await;
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(report.errors[0].code, "VERSION_IMMUTABLE");
    assert!(report.yanked.is_empty(), "{:?}", report.yanked);
    assert_eq!(env.latest("db").await, "1.0.0");

    // A breaking change without a major bump beside it: refused, and
    // neither version is yanked.
    // (1.1.0 adds a required input, which needs 2.0.0.)
    let breaking = def_yaml("db", "1.1.0", "", "").replace(
        "  required_inputs:\n",
        "  required_inputs:\n    - name: region\n      type: string\n",
    );
    repo.write(
        "db.yaml",
        format!("{}---\n{breaking}", def_yaml("db", "1.0.0", "", "")),
    );
    repo.commit("a breaking 1.1.0");
    let report = env.sync(config.clone()).await;
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(report.errors[0].code, "BREAKING_CHANGE");
    assert!(report.yanked.is_empty(), "{:?}", report.yanked);
    assert_eq!(env.latest("db").await, "1.0.0");

    // Dropping the refused document again: nothing to yank, no failure.
    repo.write("db.yaml", def_yaml("db", "1.0.0", "", ""));
    repo.commit("drop 1.1.0");
    let report = env.sync(config).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.yanked.is_empty(), "{:?}", report.yanked);
    assert_eq!(env.latest("db").await, "1.0.0");
}

#[tokio::test]
async fn moving_a_file_yanks_nothing() {
    let repo = TestRepo::new();
    repo.write("old/db.yaml", def_yaml("db", "1.0.0", "", ""));
    repo.commit("initial");
    let env = Env::new();
    let config = SourceConfig::new("platform", repo.url());
    env.sync(config.clone()).await;
    repo.remove("old/db.yaml");
    repo.write("new/db.yaml", def_yaml("db", "1.0.0", "", ""));
    repo.commit("move");
    let report = env.sync(config).await;
    assert!(report.yanked.is_empty(), "{:?}", report.yanked);
    assert_eq!(report.unchanged, 1);
    assert_eq!(env.latest("db").await, "1.0.0");
}

fn alias_bomb() -> String {
    let mut s = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let p = i - 1;
        s.push_str(&format!(
            "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    s
}

#[tokio::test]
async fn bad_documents_are_reported_and_never_block_the_rest() {
    let repo = TestRepo::new();
    repo.write("good.yaml", def_yaml("good", "1.0.0", "", ""));
    repo.write(
        "broken.yaml",
        "apiVersion: catalog.nestor.io/v1\nkind: [unclosed\n",
    );
    repo.write("bomb.yaml", alias_bomb());
    repo.write(
        "deep.yaml",
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
    );
    repo.write("latin1.yaml", b"name: caf\xe9\n");
    repo.write("huge.yaml", vec![b'#'; 50 * 1024 * 1024]);
    repo.write("badsemver.yaml", def_yaml("badsemver", "1.2", "", ""));
    repo.write(
        "badregex.yaml",
        def_yaml("badregex", "1.0.0", "", "").replace("^db\\\\.[a-z0-9]+", "^db\\\\.[a-z0-9+"),
    );
    repo.write(
        "mixed.yaml",
        format!(
            "{}---\n{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: not-ours}}\n",
            def_yaml("typo", "1.0.0", "", "").replace("required_inputs", "requried_inputs"),
            def_yaml("second", "1.0.0", "", "")
        ),
    );
    repo.commit("all sorts");
    let env = Env::new();
    let report = env.sync(SourceConfig::new("platform", repo.url())).await;
    assert_eq!(
        sorted(report.published.clone()),
        ["good:1.0.0", "second:1.0.0"],
        "valid documents still publish"
    );

    let error = |file: &str| {
        report
            .errors
            .iter()
            .find(|e| e.file == file)
            .unwrap_or_else(|| panic!("no error for {file}: {:?}", report.errors))
    };
    let all_text = |file: &str| {
        error(file)
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(
        all_text("broken.yaml").contains("invalid YAML"),
        "{}",
        all_text("broken.yaml")
    );
    assert!(
        all_text("bomb.yaml").contains("invalid YAML"),
        "{}",
        all_text("bomb.yaml")
    );
    assert!(
        all_text("deep.yaml").contains("invalid YAML"),
        "{}",
        all_text("deep.yaml")
    );
    assert!(
        all_text("latin1.yaml").contains("UTF-8"),
        "{}",
        all_text("latin1.yaml")
    );
    assert!(
        all_text("huge.yaml").contains("limit"),
        "{}",
        all_text("huge.yaml")
    );
    assert_eq!(error("badsemver.yaml").errors[0].field, "metadata.version");
    let regex = error("badregex.yaml");
    assert_eq!(
        regex.errors[0].field,
        "spec.required_inputs[0].validation.pattern"
    );
    assert!(regex.errors[0].message.contains("does not compile"));
    let typo = error("mixed.yaml");
    assert_eq!((typo.document, typo.line), (0, 1));
    assert_eq!(typo.code, "VALIDATION_FAILED");
    let unknown = typo
        .errors
        .iter()
        .find(|e| e.message.contains("requried_inputs"))
        .expect("the typo is named");
    assert!(
        unknown.message.contains("did you mean \"required_inputs\""),
        "{}",
        unknown.message
    );
    assert_eq!(
        unknown.line,
        Some(12),
        "the error points at the line of the typo"
    );
    assert!(
        !report
            .errors
            .iter()
            .any(|e| e.document == 2 && e.file == "mixed.yaml"),
        "foreign documents are skipped"
    );
    assert_eq!(report.errors.len(), 8);
}

#[tokio::test]
async fn breaking_changes_and_conflicting_sources_are_reported_per_document() {
    let platform = TestRepo::new();
    platform.write("db.yaml", def_yaml("db", "1.0.0", "", ""));
    platform.commit("initial");
    let team = TestRepo::new();
    team.write(
        "db.yaml",
        def_yaml("db", "1.0.0", "", "").replace("for tests", "from another team"),
    );
    let required = "    - name: region\n      type: string\n";
    team.write(
        "db-next.yaml",
        def_yaml("db", "1.1.0", "", "").replace(
            "  optional_inputs:",
            &format!("{required}  optional_inputs:"),
        ),
    );
    team.commit("conflicting");

    let env = Env::new();
    assert_eq!(
        env.sync(SourceConfig::new("platform", platform.url()))
            .await
            .published,
        ["db:1.0.0"]
    );
    let report = env.sync(SourceConfig::new("team", team.url())).await;
    assert!(report.published.is_empty());
    let codes: Vec<(&str, &str)> = report
        .errors
        .iter()
        .map(|e| (e.file.as_str(), e.code.as_str()))
        .collect();
    assert_eq!(
        sorted_pairs(codes),
        [
            ("db-next.yaml", "BREAKING_CHANGE"),
            ("db.yaml", "VERSION_IMMUTABLE")
        ]
    );
    let breaking = report
        .errors
        .iter()
        .find(|e| e.code == "BREAKING_CHANGE")
        .unwrap();
    assert!(
        breaking.errors.iter().any(|e| e.message.contains("2.0.0")),
        "the smallest valid version is named"
    );
    let db = env
        .store
        .resolve("db", &VersionSpec::parse("1.0.0").unwrap())
        .await
        .unwrap();
    assert_eq!(
        db.definition.metadata.description, "db for tests",
        "the first publish wins"
    );
}

fn sorted_pairs<'a>(mut v: Vec<(&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
    v.sort();
    v
}

#[tokio::test]
async fn a_plain_folder_syncs_without_commits_and_notices_changes() {
    let dir = tempfile::tempdir().unwrap();
    let write =
        |name: &str, content: String| std::fs::write(dir.path().join(name), content).unwrap();
    write("db.yaml", def_yaml("db", "1.0.0", "", ""));
    let env = Env::new();
    let config = SourceConfig::new("local", dir.path().to_string_lossy());
    let first = env.sync(config.clone()).await;
    assert_eq!(first.published, ["db:1.0.0"]);
    let db = env.store.latest("db").await.unwrap().unwrap();
    assert_eq!(
        db.origin.as_ref().unwrap().git_commit,
        None,
        "folder versions carry no commit"
    );
    assert_eq!(
        env.sync(config.clone()).await.files_read,
        0,
        "an untouched folder reads nothing"
    );

    write("net.yaml", def_yaml("net", "1.0.0", "", ""));
    let second = env.sync(config.clone()).await;
    assert_eq!(second.published, ["net:1.0.0"]);
    std::fs::remove_file(dir.path().join("net.yaml")).unwrap();
    assert_eq!(env.sync(config).await.yanked, ["net:1.0.0"]);
}

#[tokio::test]
async fn an_unreachable_source_fails_the_sync_and_says_so() {
    let env = Env::new();
    let missing = Path::new("/nonexistent/nestor/repo");
    let source = open_source(
        SourceConfig::new("gone", missing.to_string_lossy()),
        env.cache.path(),
    );
    let err = env.sync.sync(source.as_ref()).await.unwrap_err();
    assert_eq!(err.code(), nestor_core::ErrorCode::StorageUnavailable);
    let events = env.store.read_after(0, 10).await.unwrap();
    assert_eq!(events.last().unwrap().event_type.as_str(), "sync.failed");

    let repo = TestRepo::new();
    repo.write("db.yaml", def_yaml("db", "1.0.0", "", ""));
    repo.commit("initial");
    let mut config = SourceConfig::new("wrong-branch", repo.url());
    config.branch = "production".into();
    let err = env
        .sync
        .sync(open_source(config, env.cache.path()).as_ref())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("\"production\" not found"),
        "{err}"
    );
}

#[tokio::test]
async fn compositions_in_a_source_publish_after_the_definitions_they_use() {
    let repo = TestRepo::new();
    let composition = |name: &str, input: &str| {
        format!(
            "apiVersion: composer.nestor.io/v1\nkind: Composition\nmetadata: {{name: {name}, team: alpha, version: \"1.0.0\"}}\nspec:\n  resources:\n    - {{name: db, type: db, config: {{{input}: db.t3.micro}}}}\n"
        )
    };
    // The composition file sorts first, the definition it uses last.
    repo.write(
        "a-compositions.yaml",
        format!(
            "{}---\n{}",
            composition("web", "instance_class"),
            composition("typo", "instance_klass")
        ),
    );
    repo.write("z-db.yaml", def_yaml("db", "1.0.0", "", ""));
    repo.commit("compositions");
    let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
    let sync = SyncService::new(CatalogService::new(store.clone()))
        .with_composer(nestor_core::Composer::new(store.clone()));
    let cache = tempfile::tempdir().unwrap();
    let report = sync
        .sync(open_source(SourceConfig::new("team", repo.url()), cache.path()).as_ref())
        .await
        .unwrap();
    assert_eq!(report.published, ["db:1.0.0", "alpha/web:1.0.0"]);
    assert_eq!(report.errors.len(), 1);
    assert_eq!(
        (report.errors[0].document, report.errors[0].code.as_str()),
        (1, "VALIDATION_FAILED")
    );
    assert!(
        report.errors[0].errors[0]
            .message
            .contains("instance_klass"),
        "{:?}",
        report.errors[0]
    );
    use nestor_core::CompositionStore;
    assert_eq!(
        store.list_compositions(Some("alpha")).await.unwrap().len(),
        1
    );
}

/// A source of many files, parsed in parallel shares: a dependency whose
/// file sorts last still publishes before the definition that needs it,
/// each bad document is reported with its own file, and deletions anywhere
/// yank what their files held.
#[tokio::test]
async fn a_source_of_many_files_syncs_whole() {
    let repo = TestRepo::new();
    let count = 1300;
    for i in 0..count {
        let folder = i % 7;
        repo.write(
            &format!("defs/{folder}/m-{i:04}.yaml"),
            def_yaml(&format!("m-{i:04}"), "1.0.0", "", ""),
        );
    }
    // `a-app` sorts first and needs `z-db`, which sorts last.
    repo.write(
        "a/app.yaml",
        def_yaml("a-app", "1.0.0", "", "{name: z-db, version: \"^1.0\"}"),
    );
    repo.write("z/db.yaml", def_yaml("z-db", "1.0.0", "", ""));
    repo.write("defs/3/broken-middle.yaml", "metadata: [unclosed\n");
    repo.write(
        "defs/6/zz-invalid.yaml",
        def_yaml("Bad_Name", "1.0.0", "", ""),
    );
    repo.commit("many files");
    let env = Env::new();
    let config = SourceConfig::new("platform", repo.url());
    let report = env.sync(config.clone()).await;

    assert_eq!(report.files_read, count + 4);
    assert_eq!(report.published.len(), count + 2, "{:?}", report.errors);
    let a = report.published.iter().position(|s| s == "a-app:1.0.0");
    let z = report.published.iter().position(|s| s == "z-db:1.0.0");
    assert!(z < a, "the dependency publishes first: {z:?} {a:?}");
    let mut bad: Vec<&str> = report.errors.iter().map(|e| e.file.as_str()).collect();
    bad.sort();
    assert_eq!(bad, ["defs/3/broken-middle.yaml", "defs/6/zz-invalid.yaml"]);
    assert_eq!(env.latest("m-1299").await, "1.0.0");

    repo.remove("defs/0/m-0000.yaml");
    repo.remove("defs/6/m-1294.yaml");
    repo.commit("two gone");
    let report = env.sync(config).await;
    assert_eq!(sorted(report.yanked), ["m-0000:1.0.0", "m-1294:1.0.0"]);
}
