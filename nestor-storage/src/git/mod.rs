//! Catalog sources: git repositories ([`GitSource`], via libgit2) and plain
//! folders ([`FolderSource`]) — what the core's sync service reads.
//!
//! A repository on this machine (a local path) is read in place: its
//! branch head is resolved and its objects read directly, with no copy. A
//! remote one gets a bare mirror in a cache folder, and
//! fetches the configured branch into it on every [`CatalogSource::head`];
//! files are read from the commit, never from a working tree, so what is
//! synced is exactly what was committed. The diff between two commits names
//! the files an incremental sync re-reads.
//!
//! A folder source (local development) is read as it is on disk. Its head is
//! a fingerprint of the catalog files' paths, sizes and modification times,
//! so an untouched folder costs one directory walk and no parsing.

mod folder;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use git2::{FetchOptions, Oid, Repository};
use nestor_core::{
    is_source_file, CatalogSource, Error, FileChange, Result, SourceConfig, SourceHead,
    MAX_FILE_BYTES,
};

pub use folder::FolderSource;

/// A catalog source backed by a git repository (any URL libgit2 clones,
/// local paths included).
pub struct GitSource {
    config: SourceConfig,
    mirror: PathBuf,
    /// The repository itself when it is on this machine: read in place, no
    /// mirror, no fetch (a fetch from a local path still packs every
    /// object, which dominated a cold sync of a large catalog).
    local: Option<PathBuf>,
}

fn git_err(context: impl std::fmt::Display, e: git2::Error) -> Error {
    Error::storage(format!("git: {context}: {}", e.message()), e)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("git task failed: {e}")))?
}

impl GitSource {
    /// A source for `config`, mirrored under `cache_dir`.
    pub fn new(config: SourceConfig, cache_dir: &Path) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        config.url.hash(&mut h);
        let safe: String = config
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mirror = cache_dir.join(format!("{safe}-{:016x}.git", h.finish()));
        let local = local_repository(&config.url);
        GitSource {
            config,
            mirror,
            local,
        }
    }

    /// Where objects are read: the local repository or the mirror.
    fn objects(&self) -> PathBuf {
        self.local.clone().unwrap_or_else(|| self.mirror.clone())
    }

    fn open_mirror(&self) -> Result<Repository> {
        if self.mirror.exists() {
            return Repository::open_bare(&self.mirror)
                .map_err(|e| git_err("opening the mirror", e));
        }
        crate::private::create_private_dir(&self.mirror)
            .map_err(|e| Error::storage(format!("creating {}", self.mirror.display()), e))?;
        let repo =
            Repository::init_bare(&self.mirror).map_err(|e| git_err("creating the mirror", e))?;
        repo.remote("origin", &remote_url(&self.config.url))
            .map_err(|e| git_err("adding the remote", e))?;
        Ok(repo)
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.config.branch)
    }
}

/// The path of a git repository on this machine named by `url`, if it is one.
fn local_repository(url: &str) -> Option<PathBuf> {
    let path = Path::new(url.strip_prefix("file://").unwrap_or(url));
    if url.contains("://") && !url.starts_with("file://") {
        return None;
    }
    Repository::open(path).ok().map(|r| r.path().to_path_buf())
}

/// Relative local paths are made absolute so the mirror can fetch from them.
fn remote_url(url: &str) -> String {
    let path = Path::new(url);
    if !url.contains("://") && !url.contains('@') && path.exists() {
        if let Ok(abs) = path.canonicalize() {
            return abs.to_string_lossy().into_owned();
        }
    }
    url.to_string()
}

fn commit_tree<'r>(repo: &'r Repository, id: &str) -> Result<git2::Tree<'r>> {
    let oid = Oid::from_str(id).map_err(|e| git_err(format!("bad commit id {id}"), e))?;
    let commit = repo
        .find_commit(oid)
        .map_err(|e| git_err(format!("commit {id}"), e))?;
    commit
        .tree()
        .map_err(|e| git_err("reading the commit's tree", e))
}

#[async_trait]
impl CatalogSource for GitSource {
    fn config(&self) -> &SourceConfig {
        &self.config
    }

    async fn head(&self) -> Result<SourceHead> {
        let this = GitSource {
            config: self.config.clone(),
            mirror: self.mirror.clone(),
            local: self.local.clone(),
        };
        blocking(move || {
            if let Some(path) = &this.local {
                let repo = Repository::open(path)
                    .map_err(|e| git_err(format!("opening {}", this.config.url), e))?;
                let branch = format!("refs/heads/{}", this.config.branch);
                let reference = repo.find_reference(&branch).map_err(|e| {
                    git_err(
                        format!(
                            "branch {:?} not found in {}",
                            this.config.branch, this.config.url
                        ),
                        e,
                    )
                })?;
                let commit = reference
                    .peel_to_commit()
                    .map_err(|e| git_err("resolving the branch head", e))?;
                let id = commit.id().to_string();
                return Ok(SourceHead {
                    id: id.clone(),
                    commit: Some(id),
                });
            }
            let repo = this.open_mirror()?;
            let mut remote = repo
                .find_remote("origin")
                .map_err(|e| git_err("finding the remote", e))?;
            let refspec = format!(
                "+refs/heads/{0}:{1}",
                this.config.branch,
                this.tracking_ref()
            );
            let mut opts = FetchOptions::new();
            opts.download_tags(git2::AutotagOption::None);
            remote
                .fetch(&[refspec.as_str()], Some(&mut opts), None)
                .map_err(|e| {
                    git_err(
                        format!("fetching {} from {}", this.config.branch, this.config.url),
                        e,
                    )
                })?;
            let reference = repo.find_reference(&this.tracking_ref()).map_err(|e| {
                git_err(
                    format!(
                        "branch {:?} not found in {}",
                        this.config.branch, this.config.url
                    ),
                    e,
                )
            })?;
            let commit = reference
                .peel_to_commit()
                .map_err(|e| git_err("resolving the branch head", e))?;
            let id = commit.id().to_string();
            Ok(SourceHead {
                id: id.clone(),
                commit: Some(id),
            })
        })
        .await
    }

    async fn list_files(&self, head: &SourceHead) -> Result<Vec<String>> {
        let (mirror, base, id) = (self.objects(), self.config.path.clone(), head.id.clone());
        blocking(move || {
            let repo =
                Repository::open(&mirror).map_err(|e| git_err("opening the repository", e))?;
            let tree = commit_tree(&repo, &id)?;
            let mut files = Vec::new();
            tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
                if entry.kind() == Some(git2::ObjectType::Blob) {
                    let path = format!("{dir}{}", entry.name().unwrap_or_default());
                    if is_source_file(&path, &base) {
                        files.push(path);
                    }
                }
                git2::TreeWalkResult::Ok
            })
            .map_err(|e| git_err("walking the tree", e))?;
            files.sort();
            Ok(files)
        })
        .await
    }

    async fn changed_files(&self, from: &str, to: &SourceHead) -> Result<Option<Vec<FileChange>>> {
        let (mirror, base, from, to) = (
            self.objects(),
            self.config.path.clone(),
            from.to_string(),
            to.id.clone(),
        );
        blocking(move || {
            let repo =
                Repository::open(&mirror).map_err(|e| git_err("opening the repository", e))?;
            // The previous head may be gone (force push, gc): read everything.
            let Ok(old) = commit_tree(&repo, &from) else {
                return Ok(None);
            };
            let new = commit_tree(&repo, &to)?;
            let diff = repo
                .diff_tree_to_tree(Some(&old), Some(&new), None)
                .map_err(|e| git_err("diffing", e))?;
            let mut changes = Vec::new();
            for delta in diff.deltas() {
                let old_path = delta
                    .old_file()
                    .path()
                    .map(|p| p.to_string_lossy().into_owned());
                let new_path = delta
                    .new_file()
                    .path()
                    .map(|p| p.to_string_lossy().into_owned());
                if delta.status() != git2::Delta::Added {
                    if let Some(p) = old_path.filter(|p| is_source_file(p, &base)) {
                        if delta.status() == git2::Delta::Deleted || new_path.as_ref() != Some(&p) {
                            changes.push(FileChange::Deleted(p));
                        }
                    }
                }
                if delta.status() != git2::Delta::Deleted {
                    if let Some(p) = new_path.filter(|p| is_source_file(p, &base)) {
                        changes.push(FileChange::Modified(p));
                    }
                }
            }
            Ok(Some(changes))
        })
        .await
    }

    async fn read_file(&self, head: &SourceHead, path: &str) -> Result<Vec<u8>> {
        let mut files = self.read_files(head, &[path.to_string()]).await;
        files
            .pop()
            .unwrap_or_else(|| Err(Error::internal("no result for a file read")))
    }

    /// Reads on every core, each thread with its own handle on the
    /// repository: inflating thousands of loose objects is CPU work.
    async fn read_files(&self, head: &SourceHead, paths: &[String]) -> Vec<Result<Vec<u8>>> {
        let (repo_path, id, paths) = (self.objects(), head.id.clone(), paths.to_vec());
        let count = paths.len();
        let read = blocking(move || {
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, 8);
            let chunk = paths.len().div_ceil(threads).max(256);
            let read_chunk = |chunk: &[String]| -> Result<Vec<Result<Vec<u8>>>> {
                let repo = Repository::open(&repo_path)
                    .map_err(|e| git_err("opening the repository", e))?;
                let tree = commit_tree(&repo, &id)?;
                let odb = repo
                    .odb()
                    .map_err(|e| git_err("opening the object database", e))?;
                let mut folders = Folders::new(&repo, tree);
                let mut loose = LooseObjects::new(&repo);
                Ok(chunk
                    .iter()
                    .map(|p| read_blob(&repo, &odb, &mut loose, &mut folders, p))
                    .collect())
            };
            if paths.len() <= chunk {
                return read_chunk(&paths);
            }
            std::thread::scope(|scope| {
                let handles: Vec<_> = paths
                    .chunks(chunk)
                    .map(|c| scope.spawn(move || read_chunk(c)))
                    .collect();
                let mut out = Vec::with_capacity(paths.len());
                for h in handles {
                    out.extend(
                        h.join()
                            .map_err(|_| Error::internal("a git reader thread panicked"))??,
                    );
                }
                Ok(out)
            })
        })
        .await;
        match read {
            Ok(files) => files,
            // The repository itself failed: every file shares the cause.
            Err(e) => (0..count)
                .map(|_| {
                    Err(Error::StorageUnavailable {
                        message: e.to_string(),
                        source: None,
                    })
                })
                .collect(),
        }
    }
}

/// The folders of a commit's tree, each looked up once. libgit2 caches
/// no tree over 4 KiB, so looking every file up from the root would read,
/// inflate and parse its folder's tree again for each file: for folders of
/// a hundred files, three times the work of reading the files themselves.
struct Folders<'r> {
    repo: &'r Repository,
    root: git2::Tree<'r>,
    trees: std::collections::HashMap<String, git2::Tree<'r>>,
}

impl<'r> Folders<'r> {
    fn new(repo: &'r Repository, root: git2::Tree<'r>) -> Self {
        Folders {
            repo,
            root,
            trees: std::collections::HashMap::new(),
        }
    }

    /// The blob id of the file at `path`.
    fn blob_id(&mut self, path: &str) -> std::result::Result<Oid, git2::Error> {
        let Some((folder, name)) = path.rsplit_once('/') else {
            return self.root.get_path(Path::new(path)).map(|e| e.id());
        };
        let tree = match self.trees.entry(folder.to_string()) {
            std::collections::hash_map::Entry::Occupied(t) => t.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let entry = self.root.get_path(Path::new(folder))?;
                slot.insert(self.repo.find_tree(entry.id())?)
            }
        };
        match tree.get_name(name) {
            Some(entry) => Ok(entry.id()),
            // The same error, and message, as a lookup from the root.
            None => self.root.get_path(Path::new(path)).map(|e| e.id()),
        }
    }
}

/// One file of a tree, refused before loading when it is over the limit.
fn read_blob(
    repo: &Repository,
    odb: &git2::Odb<'_>,
    loose: &mut LooseObjects,
    folders: &mut Folders<'_>,
    path: &str,
) -> Result<Vec<u8>> {
    let id = folders
        .blob_id(path)
        .map_err(|e| git_err(format!("{path} not found"), e))?;
    if let Some(content) = loose.read_blob(id, path)? {
        return Ok(content);
    }
    let (size, _) = odb
        .read_header(id)
        .map_err(|e| git_err(format!("reading {path}"), e))?;
    check_size(path, size)?;
    let blob = repo
        .find_blob(id)
        .map_err(|e| git_err(format!("reading {path}"), e))?;
    Ok(blob.content().to_vec())
}

fn check_size(path: &str, size: usize) -> Result<()> {
    if size > MAX_FILE_BYTES {
        return Err(Error::bad_request(format!(
            "{path} is {size} bytes, larger than the {MAX_FILE_BYTES} byte limit for catalog files"
        )));
    }
    Ok(())
}

/// Reads loose blobs straight from their files (`objects/ab/cdef…`, zlib
/// of `blob <size>\0<content>`): one open, one read and one inflation
/// each, with the inflater reused. Through libgit2 a size check before
/// loading costs a header read, so each file was opened and inflated twice,
/// and its streaming reader maps every file, which costs more still.
/// The size is checked from the header before the content is inflated, and
/// the hash of what was read is checked as libgit2's own reads check it.
/// Anything else (a packed object, an alternate, a damaged file) is left
/// to libgit2, which reads it or reports it as it always has.
struct LooseObjects {
    dir: PathBuf,
    inflater: flate2::Decompress,
}

impl LooseObjects {
    fn new(repo: &Repository) -> Self {
        LooseObjects {
            dir: repo.path().join("objects"),
            inflater: flate2::Decompress::new(true),
        }
    }

    /// The blob's content, or `None` when it is not a sound loose blob.
    fn read_blob(&mut self, id: Oid, path: &str) -> Result<Option<Vec<u8>>> {
        use flate2::{FlushDecompress, Status};
        let hex = id.to_string();
        let Ok(compressed) = std::fs::read(self.dir.join(&hex[..2]).join(&hex[2..])) else {
            return Ok(None);
        };
        // The header: "blob", a space, the size in decimal, a NUL.
        self.inflater.reset(true);
        let mut head = [0u8; 32];
        if self
            .inflater
            .decompress(&compressed, &mut head, FlushDecompress::None)
            .is_err()
        {
            return Ok(None);
        }
        let produced = self.inflater.total_out() as usize;
        let Some(nul) = head[..produced].iter().position(|&b| b == 0) else {
            return Ok(None);
        };
        let size = match std::str::from_utf8(&head[..nul])
            .ok()
            .and_then(|h| h.strip_prefix("blob "))
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(size) => size,
            None => return Ok(None),
        };
        check_size(path, size)?;
        let mut content = Vec::with_capacity(size);
        content.extend_from_slice(&head[nul + 1..produced]);
        if content.len() > size {
            return Ok(None);
        }
        let consumed = self.inflater.total_in() as usize;
        let status = if content.len() == size {
            // Nothing left but the end of the stream; one spare byte tells
            // a longer stream apart.
            let mut spare = [0u8; 1];
            self.inflater
                .decompress(&compressed[consumed..], &mut spare, FlushDecompress::Finish)
                .ok()
                .filter(|_| self.inflater.total_out() as usize == produced)
        } else {
            self.inflater
                .decompress_vec(
                    &compressed[consumed..],
                    &mut content,
                    FlushDecompress::Finish,
                )
                .ok()
        };
        let sound = status == Some(Status::StreamEnd)
            && content.len() == size
            && hash_blob(&content).as_slice() == id.as_bytes();
        Ok(sound.then_some(content))
    }
}

/// The object id git gives `content` as a blob: the SHA-1 of
/// `blob <size>\0<content>`. It checks that the file read is the object
/// named, as libgit2's reads do; libgit2 hashes with collision detection,
/// which guards the writing of objects and costs ~5× more, where this read
/// only has to notice a damaged file.
fn hash_blob(content: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("blob {}\0", content.len()));
    hasher.update(content);
    hasher.finalize().into()
}

/// Opens the right kind of source for a configuration: a plain folder when
/// `url` is an existing directory that is not a git repository, a git
/// source otherwise. Git mirrors live under `cache_dir`.
pub fn open_source(config: SourceConfig, cache_dir: &Path) -> Box<dyn CatalogSource> {
    let path = Path::new(&config.url);
    let is_local_dir = !config.url.contains("://") && path.is_dir();
    if is_local_dir && Repository::open(path).is_err() {
        Box::new(FolderSource::new(config))
    } else {
        Box::new(GitSource::new(config, cache_dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit_files(dir: &Path, files: &[(&str, &str)]) -> String {
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = Repository::init_opts(dir, &opts).unwrap();
        for (path, content) in files {
            let full = dir.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, content).unwrap();
        }
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("test", "test@example.com").unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "files", &tree, &[])
            .unwrap()
            .to_string()
    }

    /// The loose-object check names each content as git does (libgit2's
    /// own hash of the same bytes), from the empty blob to one that spans
    /// many SHA-1 blocks.
    #[test]
    fn a_blob_is_named_as_git_names_it() {
        for content in [&b""[..], b"a", b"apiVersion: x\n", &[0xa5; 4099][..]] {
            let git = Oid::hash_object(git2::ObjectType::Blob, content).unwrap();
            assert_eq!(hash_blob(content).as_slice(), git.as_bytes());
        }
    }

    /// Files at the root, in shared and nested folders, in any order, each
    /// read from its own folder's tree; a missing file or folder is that
    /// file's error only.
    #[tokio::test]
    async fn read_files_finds_every_file_whatever_its_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let repo_dir = tmp.path().join("repo");
        let mut files: Vec<(String, String)> = (0..300)
            .map(|i| (format!("a/{}/f{i}.yaml", i % 3), format!("n: {i}\n")))
            .collect();
        files.push(("top.yaml".into(), "top\n".into()));
        files.push(("a/b/c/deep.yaml".into(), "deep\n".into()));
        let borrowed: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        let commit = commit_files(&repo_dir, &borrowed);
        let (source, head) = source_at(tmp.path(), &repo_dir, commit);
        // Reversed: folders interleave and come back.
        let mut paths: Vec<String> = files.iter().rev().map(|(p, _)| p.clone()).collect();
        paths.insert(5, "a/1/missing.yaml".into());
        paths.insert(9, "nowhere/x.yaml".into());
        let read = source.read_files(&head, &paths).await;
        assert_eq!(read.len(), paths.len());
        for (path, got) in paths.iter().zip(&read) {
            match files.iter().find(|(p, _)| p == path) {
                Some((_, content)) => {
                    assert_eq!(got.as_ref().unwrap(), content.as_bytes(), "{path}")
                }
                None => {
                    let e = got.as_ref().unwrap_err().to_string();
                    assert!(e.contains(&format!("{path} not found")), "{path}: {e}");
                }
            }
        }
    }

    fn source_at(tmp: &Path, repo_dir: &Path, commit: String) -> (GitSource, SourceHead) {
        let source = GitSource::new(
            SourceConfig::new("t", repo_dir.to_string_lossy()),
            &tmp.join("cache"),
        );
        let head = SourceHead {
            id: commit.clone(),
            commit: Some(commit),
        };
        (source, head)
    }

    fn loose_path(repo_dir: &Path, path: &str) -> PathBuf {
        let repo = Repository::open(repo_dir).unwrap();
        let tree = repo.head().unwrap().peel_to_tree().unwrap();
        let hex = tree.get_path(Path::new(path)).unwrap().id().to_string();
        repo_dir
            .join(".git/objects")
            .join(&hex[..2])
            .join(&hex[2..])
    }

    /// Loose and packed objects read the same; a damaged loose object and
    /// one over the size limit are that file's error, as libgit2 reported
    /// them before loose objects were read directly.
    #[tokio::test]
    async fn loose_packed_damaged_and_oversized_blobs() {
        let tmp = tempfile::tempdir().unwrap();
        let big = "x".repeat(MAX_FILE_BYTES + 1);
        let long = "a line of text\n".repeat(500);
        let files = [
            ("empty.yaml", ""),
            ("one.yaml", "1"),
            ("short.yaml", "just fits in the header\n"),
            ("long.yaml", long.as_str()),
            ("big.yaml", big.as_str()),
            ("damaged.yaml", "original content\n"),
        ];
        let paths: Vec<String> = files.iter().map(|(p, _)| p.to_string()).collect();

        let loose_dir = tmp.path().join("loose");
        let commit = commit_files(&loose_dir, &files);
        // Replace one object's file with a sound zlib stream of other content.
        let damaged = loose_path(&loose_dir, "damaged.yaml");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, b"blob 16\0tampered content").unwrap();
        let _ = std::fs::remove_file(&damaged);
        std::fs::write(&damaged, z.finish().unwrap()).unwrap();
        let (source, head) = source_at(tmp.path(), &loose_dir, commit);
        let loose = source.read_files(&head, &paths).await;

        let packed_dir = tmp.path().join("packed");
        let commit = commit_files(&packed_dir, &files);
        {
            let repo = Repository::open(&packed_dir).unwrap();
            let mut pack = repo.packbuilder().unwrap();
            pack.insert_commit(Oid::from_str(&commit).unwrap()).unwrap();
            pack.write(&packed_dir.join(".git/objects/pack"), 0)
                .unwrap();
        }
        for entry in std::fs::read_dir(packed_dir.join(".git/objects")).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().len() == 2 {
                std::fs::remove_dir_all(entry.path()).unwrap();
            }
        }
        let (source, head) = source_at(tmp.path(), &packed_dir, commit);
        let packed = source.read_files(&head, &paths).await;

        for (i, (path, content)) in files.iter().enumerate() {
            let packed = &packed[i];
            let loose = &loose[i];
            match *path {
                "big.yaml" => {
                    for got in [loose, packed] {
                        let e = got.as_ref().unwrap_err().to_string();
                        assert!(e.contains("larger than"), "{path}: {e}");
                    }
                }
                "damaged.yaml" => {
                    assert_eq!(packed.as_ref().unwrap(), content.as_bytes());
                    let e = loose.as_ref().unwrap_err().to_string();
                    assert!(e.contains("reading damaged.yaml"), "{e}");
                }
                _ => {
                    assert_eq!(loose.as_ref().unwrap(), content.as_bytes(), "{path}");
                    assert_eq!(packed.as_ref().unwrap(), content.as_bytes(), "{path}");
                }
            }
        }
    }
}
