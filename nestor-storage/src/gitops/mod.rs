//! The GitOps executor (docs/src/product/deploying.md): every apply is one commit in a git
//! repository that Argo CD syncs.
//!
//! Layout: `{team}/{environment}/{name}/{resource}/{file}`, plus one Argo CD
//! `Application` per team and environment at `argocd/{team}--{environment}.yaml`
//! pointing at `{team}/{environment}`, and one `AppProject` per team at
//! `argocd/projects/{team}.yaml` (names from `nestor_core::naming`; what
//! they hold and why in the `argocd` module). The commit is built in memory from
//! the branch head (an index read from its tree, the deployment's folder
//! replaced), so the working tree is never half-written; a non-bare
//! repository's checkout is refreshed afterwards. History is never
//! rewritten: a rollback is a new commit. With a remote, the commit is
//! pushed; a failed push moves the branch back, leaving the repository as
//! it was. An apply whose files equal what the branch already holds makes
//! no commit (an empty commit would only move every Application to a new
//! revision): the receipt says so and names the commit holding them.

mod argocd;

pub use argocd::{EXCLUDE as ARGOCD_EXCLUDE, INCLUDE as ARGOCD_INCLUDE};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use git2::{IndexEntry, IndexTime, Repository, Signature};
use nestor_core::{
    cluster_names, ApplyReceipt, ApplyTarget, Artifact, DeploymentKey, Error, Executor, FieldError,
    Result, MAX_LABEL, MAX_PATH_SEGMENT,
};

/// Settings of the GitOps executor (the `gitops:` section of nestor.yaml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitOpsConfig {
    /// Local repository path; created (non-bare) when missing.
    pub repo: PathBuf,
    /// Branch to commit to.
    pub branch: String,
    /// Remote URL to push to after each commit, if any.
    pub remote: Option<String>,
    /// Commit author name.
    pub author_name: String,
    /// Commit author e-mail.
    pub author_email: String,
    /// The namespace Argo CD runs in: where the Applications and AppProjects
    /// Nestor writes live (`argocd`).
    pub argocd_namespace: String,
}

impl GitOpsConfig {
    /// A local repository at `repo` on branch `main`, no remote.
    pub fn local(repo: impl Into<PathBuf>) -> Self {
        GitOpsConfig {
            repo: repo.into(),
            branch: "main".into(),
            remote: None,
            author_name: "nestor".into(),
            author_email: "nestor@localhost".into(),
            argocd_namespace: "argocd".into(),
        }
    }
}

/// Commits deployments to a GitOps repository.
pub struct GitOpsExecutor {
    config: Arc<GitOpsConfig>,
    /// Applies are serialised: two commits built from the same head would
    /// otherwise race on the branch.
    lock: tokio::sync::Mutex<()>,
}

/// One commit that changed a deployment's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderChange {
    /// The commit id.
    pub commit: String,
    /// Its message (`nestor: {team}/{env}/{name} revision {n} ({id})`).
    pub message: String,
    /// The files under the folder it added, changed or removed, sorted.
    pub paths: Vec<String>,
}

fn git_err(context: impl std::fmt::Display, e: git2::Error) -> Error {
    Error::storage(format!("gitops: {context}: {}", e.message()), e)
}

impl GitOpsExecutor {
    /// Opens (or creates) the repository.
    pub fn open(config: GitOpsConfig) -> Result<Self> {
        if Repository::open(&config.repo).is_err() {
            crate::private::create_private_dir(&config.repo)
                .map_err(|e| Error::storage(format!("creating {}", config.repo.display()), e))?;
            let mut opts = git2::RepositoryInitOptions::new();
            opts.initial_head(&config.branch);
            Repository::init_opts(&config.repo, &opts)
                .map_err(|e| git_err("creating the repository", e))?;
        }
        Ok(GitOpsExecutor {
            config: Arc::new(config),
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The commits of the branch, newest first (at most `limit` looked at),
    /// that changed files under `{team}/{environment}/{name}/`: an audit of
    /// what each apply wrote. Blocking (reads the repository).
    pub fn history(&self, key: &DeploymentKey, limit: usize) -> Result<Vec<FolderChange>> {
        let repo = Repository::open(&self.config.repo)
            .map_err(|e| git_err("opening the repository", e))?;
        let refname = format!("refs/heads/{}", self.config.branch);
        let Some(mut commit) = repo
            .find_reference(&refname)
            .ok()
            .and_then(|r| r.peel_to_commit().ok())
        else {
            return Ok(vec![]);
        };
        let prefix = format!("{}/{}/{}/", key.team, key.environment, key.name);
        let mut out = Vec::new();
        for _ in 0..limit {
            let tree = commit.tree().map_err(|e| git_err("reading a tree", e))?;
            let parent = commit.parent(0).ok();
            let parent_tree = match &parent {
                Some(p) => Some(p.tree().map_err(|e| git_err("reading a tree", e))?),
                None => None,
            };
            let diff = repo
                .diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), None)
                .map_err(|e| git_err("diffing a commit", e))?;
            let mut paths: Vec<String> = diff
                .deltas()
                .filter_map(|d| d.new_file().path().or(d.old_file().path()))
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| p.starts_with(&prefix))
                .collect();
            if !paths.is_empty() {
                paths.sort();
                out.push(FolderChange {
                    commit: commit.id().to_string(),
                    message: commit.message().unwrap_or_default().to_string(),
                    paths,
                });
            }
            match parent {
                Some(p) => commit = p,
                None => break,
            }
        }
        Ok(out)
    }

    /// The repository's path.
    pub fn path(&self) -> &Path {
        &self.config.repo
    }
}

/// Why `segment` cannot be one folder or file name in the repository:
/// empty, `.`/`..`, a separator, or longer than `max`.
fn segment_problem(segment: &str, max: usize) -> Option<String> {
    if segment.is_empty() || segment == "." || segment == ".." {
        return Some(format!("{segment:?} is not a file name"));
    }
    if segment.contains(['/', '\\', '\0']) {
        return Some(format!("{segment:?} holds a path separator"));
    }
    if segment.len() > max {
        return Some(format!(
            "{}… is {} characters; names in the GitOps repository may have at most {max}",
            &segment[..segment.floor_char_boundary(40)],
            segment.len()
        ));
    }
    None
}

/// Refuses a team, environment, name or resource that cannot be a folder
/// of the repository (or a Kubernetes label, which each of them becomes).
fn check_folder(field: &str, value: &str) -> Result<()> {
    match segment_problem(value, MAX_LABEL) {
        None => Ok(()),
        Some(problem) => Err(Error::Validation {
            errors: vec![FieldError::new(field, problem)],
        }),
    }
}

/// An index entry for `content`, written as a blob first: an in-memory
/// index has no repository to write blobs for it.
fn entry(repo: &Repository, path: &str, content: &[u8]) -> Result<IndexEntry> {
    let id = repo
        .blob(content)
        .map_err(|e| git_err(format!("writing {path}"), e))?;
    Ok(IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: 0o100644,
        uid: 0,
        gid: 0,
        file_size: content.len() as u32,
        id,
        flags: path.len().min(0xfff) as u16,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    })
}

/// The URL Argo CD clones: the remote, else the local repository.
fn repo_url(config: &GitOpsConfig) -> String {
    config.remote.clone().unwrap_or_else(|| {
        let abs = config
            .repo
            .canonicalize()
            .unwrap_or_else(|_| config.repo.clone());
        format!("file://{}", abs.display())
    })
}

fn commit(
    config: &GitOpsConfig,
    target: &ApplyTarget,
    files: &BTreeMap<String, Vec<Artifact>>,
) -> Result<ApplyReceipt> {
    let k = &target.key;
    check_folder("team", &k.team)?;
    check_folder("environment", &k.environment)?;
    check_folder("name", &k.name)?;
    let repo = Repository::open(&config.repo).map_err(|e| git_err("opening the repository", e))?;
    let refname = format!("refs/heads/{}", config.branch);
    for _ in 0..8 {
        let parent = repo
            .find_reference(&refname)
            .ok()
            .and_then(|r| r.peel_to_commit().ok());
        if let Some(done) = parent
            .as_ref()
            .and_then(|p| find_applied(p, &target.message()))
        {
            // This revision was committed before (by a runner that stopped
            // before recording it): re-applying it changes nothing.
            let (_, paths) = layout(target, files)?;
            return Ok(ApplyReceipt {
                commit: Some(done.to_string()),
                paths,
                unchanged: false,
            });
        }
        match commit_on(config, &repo, &refname, parent, target, files) {
            // Another process moved the branch between our read and our
            // commit: build again on the new head.
            Err(CommitError::Moved) => continue,
            Err(CommitError::Failed(e)) => return Err(e),
            Ok(receipt) => return Ok(receipt),
        }
    }
    Err(Error::Conflict {
        message: format!("gitops: branch {} keeps moving; try again", config.branch),
    })
}

/// How many commits back an apply looks for its own earlier commit.
const APPLIED_LOOKBACK: usize = 1_000;

/// The commit among the last [`APPLIED_LOOKBACK`] first-parent commits from
/// `head` whose message is `message` (messages name the deployment id, so
/// they are unique per revision).
fn find_applied(head: &git2::Commit<'_>, message: &str) -> Option<git2::Oid> {
    let mut current = Some(head.clone());
    for _ in 0..APPLIED_LOOKBACK {
        let c = current?;
        if c.message() == Some(message) {
            return Some(c.id());
        }
        current = c.parent(0).ok();
    }
    None
}

/// Where each resource's files go: the deployment's folder and the paths.
fn layout(
    target: &ApplyTarget,
    files: &BTreeMap<String, Vec<Artifact>>,
) -> Result<(String, BTreeMap<String, Vec<String>>)> {
    let k = &target.key;
    let prefix = format!("{}/{}/{}", k.team, k.environment, k.name);
    let mut paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (resource, artifacts) in files {
        check_folder(&format!("resources.{resource}"), resource)?;
        for a in artifacts {
            let problem = if a.path.starts_with('/') {
                Some("it is absolute".to_string())
            } else {
                a.path
                    .split('/')
                    .find_map(|s| segment_problem(s, MAX_PATH_SEGMENT))
            };
            if let Some(problem) = problem {
                return Err(Error::EngineFailed {
                    engine: resource.clone(),
                    message: format!(
                        "artifact path {:?} cannot be a file in the resource's folder: {problem}",
                        a.path
                    ),
                });
            }
            paths
                .entry(resource.clone())
                .or_default()
                .push(format!("{prefix}/{resource}/{}", a.path));
        }
    }
    Ok((prefix, paths))
}

/// Why one commit attempt failed.
enum CommitError {
    /// The branch moved since it was read.
    Moved,
    /// Anything else.
    Failed(Error),
}

impl From<Error> for CommitError {
    fn from(e: Error) -> Self {
        CommitError::Failed(e)
    }
}

/// Builds the commit on `parent` and moves the branch to it if it still
/// points at `parent`; pushes when a remote is configured.
fn commit_on(
    config: &GitOpsConfig,
    repo: &Repository,
    refname: &str,
    parent: Option<git2::Commit<'_>>,
    target: &ApplyTarget,
    files: &BTreeMap<String, Vec<Artifact>>,
) -> std::result::Result<ApplyReceipt, CommitError> {
    let k = &target.key;
    let mut index = git2::Index::new().map_err(|e| git_err("creating an index", e))?;
    if let Some(p) = &parent {
        index
            .read_tree(&p.tree().map_err(|e| git_err("reading the head tree", e))?)
            .map_err(|e| git_err("reading the head tree", e))?;
    }
    let (prefix, paths) = layout(target, files)?;
    index
        .remove_dir(Path::new(&prefix), 0)
        .map_err(|e| git_err("clearing the deployment's folder", e))?;
    for (resource, artifacts) in files {
        for a in artifacts {
            let path = format!("{prefix}/{resource}/{}", a.path);
            index
                .add(&entry(repo, &path, a.content.as_bytes())?)
                .map_err(|e| git_err(format!("staging {path}"), e))?;
        }
    }
    let names = cluster_names(&k.team, &k.environment);
    let url = repo_url(config);
    let argo = argocd::ArgoObjects {
        repo_url: &url,
        branch: &config.branch,
        argocd_namespace: &config.argocd_namespace,
    };
    let app = argo.application(&k.team, &k.environment, &names);
    let project = argo.project(&k.team, &names);
    for (path, text) in [
        (&names.application_file, app),
        (&names.project_file, project),
    ] {
        index
            .add(&entry(repo, path, text.as_bytes())?)
            .map_err(|e| git_err(format!("staging {path}"), e))?;
    }
    let tree_id = index
        .write_tree_to(repo)
        .map_err(|e| git_err("writing the tree", e))?;
    if let Some(p) = parent.as_ref().filter(|p| p.tree_id() == tree_id) {
        // Nothing to change: the branch already holds exactly these files.
        return Ok(ApplyReceipt {
            commit: Some(p.id().to_string()),
            paths,
            unchanged: true,
        });
    }
    let tree = repo
        .find_tree(tree_id)
        .map_err(|e| git_err("reading the new tree", e))?;
    let sig = Signature::now(&config.author_name, &config.author_email)
        .map_err(|e| git_err("author", e))?;
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let id = match repo.commit(
        Some(refname),
        &sig,
        &sig,
        &target.message(),
        &tree,
        &parents,
    ) {
        Ok(id) => id,
        Err(e) if e.code() == git2::ErrorCode::Modified => return Err(CommitError::Moved),
        Err(e) => return Err(git_err("committing", e).into()),
    };

    if let Some(remote) = &config.remote {
        if let Err(e) = push(repo, remote, refname) {
            // Leave the repository as it was before the apply.
            match &parent {
                Some(p) => {
                    repo.reference(refname, p.id(), true, "nestor: push failed, undo")
                        .map_err(|e| git_err("undoing", e))?;
                }
                None => {
                    if let Ok(mut r) = repo.find_reference(refname) {
                        let _ = r.delete();
                    }
                }
            }
            return Err(e.into());
        }
    }
    refresh_checkout(repo, refname);
    Ok(ApplyReceipt {
        commit: Some(id.to_string()),
        paths,
        unchanged: false,
    })
}

fn push(repo: &Repository, url: &str, refname: &str) -> Result<()> {
    let mut remote = repo
        .remote_anonymous(url)
        .map_err(|e| git_err(format!("remote {url}"), e))?;
    let mut rejected = None;
    let mut callbacks = git2::RemoteCallbacks::new();
    callbacks.push_update_reference(|r, status| {
        if let Some(s) = status {
            rejected = Some(format!("{r}: {s}"));
        }
        Ok(())
    });
    let mut opts = git2::PushOptions::new();
    opts.remote_callbacks(callbacks);
    remote
        .push(&[format!("{refname}:{refname}")], Some(&mut opts))
        .map_err(|e| git_err(format!("pushing to {url}"), e))?;
    drop(opts);
    match rejected {
        Some(why) => Err(Error::StorageUnavailable {
            message: format!("gitops: push to {url} rejected: {why}"),
            source: None,
        }),
        None => Ok(()),
    }
}

/// Keeps a non-bare repository's files in step with the branch when it is
/// checked out, so people browsing it see what was committed.
fn refresh_checkout(repo: &Repository, refname: &str) {
    if repo.is_bare() {
        return;
    }
    let on_branch = repo
        .head()
        .ok()
        .and_then(|h| h.name().map(str::to_string))
        .is_none_or(|h| h == refname);
    if on_branch {
        let _ = repo.set_head(refname);
        let mut opts = git2::build::CheckoutBuilder::new();
        opts.force().remove_untracked(false);
        let _ = repo.checkout_head(Some(&mut opts));
    }
}

#[async_trait]
impl Executor for GitOpsExecutor {
    async fn apply(
        &self,
        target: &ApplyTarget,
        files: &BTreeMap<String, Vec<Artifact>>,
    ) -> Result<ApplyReceipt> {
        let _guard = self.lock.lock().await;
        let (config, target, files) = (self.config.clone(), target.clone(), files.clone());
        tokio::task::spawn_blocking(move || commit(&config, &target, &files))
            .await
            .map_err(|e| Error::internal(format!("gitops task failed: {e}")))?
    }

    async fn contains(&self, revision: &str, commit: &str) -> Result<bool> {
        if revision == commit {
            return Ok(true);
        }
        let (config, revision, commit) = (
            self.config.clone(),
            revision.to_string(),
            commit.to_string(),
        );
        tokio::task::spawn_blocking(move || descends(&config, &revision, &commit))
            .await
            .map_err(|e| Error::internal(format!("gitops task failed: {e}")))?
    }
}

/// Whether `revision` is `commit` or one of its descendants. A revision
/// this repository does not hold (pushed by another replica) is fetched
/// from the remote first, when there is one.
fn descends(config: &GitOpsConfig, revision: &str, commit: &str) -> Result<bool> {
    let repo = Repository::open(&config.repo).map_err(|e| git_err("opening the repository", e))?;
    let (Ok(rev), Ok(ours)) = (git2::Oid::from_str(revision), git2::Oid::from_str(commit)) else {
        return Ok(false);
    };
    if repo.find_commit(rev).is_err() {
        let Some(url) = &config.remote else {
            return Ok(false);
        };
        let refspec = format!("+refs/heads/{b}:refs/remotes/nestor/{b}", b = config.branch);
        let mut remote = repo
            .remote_anonymous(url)
            .map_err(|e| git_err(format!("remote {url}"), e))?;
        remote
            .fetch(&[refspec], None, None)
            .map_err(|e| git_err(format!("fetching from {url}"), e))?;
        if repo.find_commit(rev).is_err() {
            return Ok(false);
        }
    }
    repo.graph_descendant_of(rev, ours)
        .map_err(|e| git_err("comparing commits", e))
}
