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

    /// Every file a sync reads ([`is_source_file`]: catalog files and
    /// policy files) at `head`, as paths relative to the repository root.
    async fn list_files(&self, head: &SourceHead) -> Result<Vec<String>>;

    /// Source files ([`is_source_file`]) changed from `from` (a previous head id) to `to`, or
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
    let Some(rest) = below(path, base) else {
        return false;
    };
    let yaml = rest.ends_with(".yaml") || rest.ends_with(".yml");
    yaml && !rest.split('/').any(|part| part.starts_with('.'))
}

/// Whether `path` is a policy file of a source reading `base`: a policy
/// module ([`is_policy_module`]) below `base/policies/`.
pub fn is_policy_file(path: &str, base: &str) -> bool {
    below(path, base)
        .and_then(|r| r.strip_prefix("policies/"))
        .is_some_and(is_policy_module)
}

/// Whether a file at `path` (relative to a policy folder) is a policy to
/// enforce: a `.rego` file, not a test (`*_test.rego`, which only `nestor
/// policy test` runs), outside hidden folders.
pub fn is_policy_module(path: &str) -> bool {
    is_rego_file(path) && !path.ends_with("_test.rego")
}

/// Whether `path` (relative to a folder) is a Rego file, tests included,
/// outside hidden folders: what `nestor policy test` reads.
pub fn is_rego_file(path: &str) -> bool {
    path.ends_with(".rego") && !path.split('/').any(|part| part.starts_with('.'))
}

/// Whether a sync of a source reading `base` reads `path`: a catalog file
/// or a policy file.
pub fn is_source_file(path: &str, base: &str) -> bool {
    is_catalog_file(path, base) || is_policy_file(path, base)
}

/// `path` relative to `base`, if it is below it.
fn below<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    let base = base.trim_matches('/');
    if base.is_empty() {
        Some(path)
    } else {
        path.strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('/'))
    }
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

    #[test]
    fn policy_files_are_rego_below_the_policies_folder() {
        assert!(is_policy_file("policies/labels.rego", ""));
        assert!(is_policy_file(
            "catalog/policies/teams/alpha/x.rego",
            "catalog"
        ));
        assert!(!is_policy_file("policies/labels_test.rego", ""));
        assert!(!is_policy_file("other/labels.rego", ""));
        assert!(!is_policy_file("policies/.hidden/x.rego", ""));
        assert!(!is_policy_file("policies/labels.yaml", ""));
        assert!(is_source_file("policies/labels.rego", ""));
        assert!(is_source_file("x.yaml", ""));
    }
}
