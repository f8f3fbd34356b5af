//! What a catalog source offers the sync service: a head, its files, the
//! files changed between two heads, and file contents. The git repository
//! and the plain folder in `nestor-storage` implement it.

use async_trait::async_trait;

use crate::error::Result;
use crate::model::SourceConfig;

/// The state of a source at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHead {
    /// Identifies the content: a commit id, or a folder fingerprint. An
    /// unchanged id means nothing to do.
    pub id: String,
    /// The git commit, `None` for plain folders (their versions carry none).
    pub commit: Option<String>,
}

/// A file that changed between two heads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    /// Added or modified: read it again.
    Modified(String),
    /// Deleted (or renamed away): its versions are yanked.
    Deleted(String),
}

/// A catalog source: a git repository or a plain folder.
#[async_trait]
pub trait CatalogSource: Send + Sync {
    /// The source's configuration.
    fn config(&self) -> &SourceConfig;

    /// Brings the source up to date (fetch) and returns its head.
    async fn head(&self) -> Result<SourceHead>;

    /// Every catalog file ([`is_catalog_file`]) at `head`, as paths relative
    /// to the repository root.
    async fn list_files(&self, head: &SourceHead) -> Result<Vec<String>>;

    /// Catalog files changed from `from` (a previous head id) to `to`, or
    /// `None` when the source cannot tell (history rewritten, plain folder):
    /// the caller then reads everything.
    async fn changed_files(&self, from: &str, to: &SourceHead) -> Result<Option<Vec<FileChange>>>;

    /// A file's bytes at `head`.
    async fn read_file(&self, head: &SourceHead, path: &str) -> Result<Vec<u8>>;

    /// Many files at `head`, each with its own result, in the order asked.
    /// Sources override it to open their storage once for the lot.
    async fn read_files(&self, head: &SourceHead, paths: &[String]) -> Vec<Result<Vec<u8>>> {
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            out.push(self.read_file(head, p).await);
        }
        out
    }
}

/// Whether `path` (relative to the repository root) is a catalog file of a
/// source reading `base`: a `.yaml`/`.yml` file below it. Hidden folders
/// (`.github/`) are skipped.
pub fn is_catalog_file(path: &str, base: &str) -> bool {
    let base = base.trim_matches('/');
    let below = if base.is_empty() {
        Some(path)
    } else {
        path.strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('/'))
    };
    let Some(rest) = below else { return false };
    let yaml = rest.ends_with(".yaml") || rest.ends_with(".yml");
    yaml && !rest.split('/').any(|part| part.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_files_are_yaml_below_the_path() {
        assert!(is_catalog_file("resources/aws/rds.yaml", "resources/"));
        assert!(is_catalog_file("resources/aws/rds.yml", "resources"));
        assert!(is_catalog_file("x.yaml", ""));
        assert!(!is_catalog_file("resourcesX/a.yaml", "resources"));
        assert!(!is_catalog_file("resources/README.md", "resources"));
        assert!(!is_catalog_file(".github/workflows/ci.yaml", ""));
    }
}
