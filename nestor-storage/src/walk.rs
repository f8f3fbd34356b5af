//! The one directory walker: every reader of local files (the folder
//! catalog source, `nestor catalog validate|publish PATH`, the annotation
//! scan of `nestor generate`) sees a folder by the same rules, so a file
//! one of them reads is never one another silently skips:
//!
//! - hidden entries (a name starting with `.`: `.git`, `.github`, editor
//!   files) are skipped with everything below them;
//! - symbolic links are not followed, so a link loop cannot hang a sync;
//! - folders named in `skip_dirs` (build output, dependencies) are skipped;
//! - files come back sorted by their path relative to the root, with `/`
//!   separators on every platform.
//!
//! Built on `walkdir`; which files a sync reads is the core's rule
//! (`nestor_core::is_source_file`), applied by the callers.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// One regular file found below the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkedFile {
    /// Its path relative to the root, `/`-separated.
    pub rel: String,
    /// Its full path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
    /// Its modification time, in nanoseconds since the Unix epoch (0 when
    /// the platform does not say).
    pub modified_nanos: u128,
}

/// Every regular file below `root` by the rules above. A folder that cannot
/// be read is an error naming it.
pub fn walk_files(root: &Path, skip_dirs: &[&str]) -> std::io::Result<Vec<WalkedFile>> {
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            let top = e.depth() == 0;
            top || !(name.starts_with('.')
                || e.file_type().is_dir() && skip_dirs.contains(&name.as_ref()))
        });
    let mut out = Vec::new();
    for entry in walker {
        let entry = entry.map_err(|e| {
            let at = e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            std::io::Error::other(format!("reading {at}: {e}"))
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let meta = entry.metadata().map_err(std::io::Error::other)?;
        let modified_nanos = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        out.push(WalkedFile {
            rel: rel_path(root, entry.path()),
            path: entry.into_path(),
            len: meta.len(),
            modified_nanos,
        });
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// `path` relative to `root`, `/`-separated.
fn rel_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, rel).unwrap();
    }

    #[test]
    fn hidden_and_skipped_folders_are_left_out_and_paths_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for rel in [
            "b/z.yaml",
            "a.yaml",
            ".git/config",
            "b/.hidden.yaml",
            "target/x.rs",
            "b/target.yaml",
        ] {
            write(dir.path(), rel);
        }
        let rels: Vec<String> = walk_files(dir.path(), &["target"])
            .unwrap()
            .into_iter()
            .map(|f| f.rel)
            .collect();
        assert_eq!(rels, ["a.yaml", "b/target.yaml", "b/z.yaml"]);
        let all = walk_files(dir.path(), &[]).unwrap();
        assert_eq!(all.len(), 4, "target/ is walked when not skipped");
        assert_eq!(all[0].len, "a.yaml".len() as u64);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_loop_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a/x.yaml");
        std::os::unix::fs::symlink(dir.path(), dir.path().join("a/loop")).unwrap();
        let rels: Vec<String> = walk_files(dir.path(), &[])
            .unwrap()
            .into_iter()
            .map(|f| f.rel)
            .collect();
        assert_eq!(rels, ["a/x.yaml"]);
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = walk_files(&missing, &[]).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
