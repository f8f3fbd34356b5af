//! A plain directory as a catalog source (local development).

use std::path::PathBuf;

use async_trait::async_trait;
use nestor_core::{
    is_source_file, CatalogSource, Error, FileChange, Result, SourceConfig, SourceHead,
    MAX_FILE_BYTES,
};

/// A folder read as it is on disk; its versions carry no git commit.
pub struct FolderSource {
    config: SourceConfig,
    root: PathBuf,
}

impl FolderSource {
    /// A source reading the folder at `config.url`.
    pub fn new(config: SourceConfig) -> Self {
        let root = PathBuf::from(config.url.strip_prefix("file://").unwrap_or(&config.url));
        FolderSource { config, root }
    }

    /// Catalog files with their size and modification time, sorted by path.
    fn scan(&self) -> Result<Vec<(String, u64, u128)>> {
        let files = crate::walk_files(&self.root, &[])
            .map_err(|e| Error::storage(format!("reading {}", self.root.display()), e))?;
        Ok(files
            .into_iter()
            .filter(|f| is_source_file(&f.rel, &self.config.path))
            .map(|f| (f.rel, f.len, f.modified_nanos))
            .collect())
    }
}

#[async_trait]
impl CatalogSource for FolderSource {
    fn config(&self) -> &SourceConfig {
        &self.config
    }

    async fn head(&self) -> Result<SourceHead> {
        if !self.root.is_dir() {
            return Err(Error::storage(
                format!("catalog folder {} does not exist", self.root.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let files = self.scan()?;
        Ok(SourceHead {
            id: fingerprint(&files),
            commit: None,
        })
    }

    async fn list_files(&self, _head: &SourceHead) -> Result<Vec<String>> {
        Ok(self.scan()?.into_iter().map(|(p, _, _)| p).collect())
    }

    async fn changed_files(
        &self,
        _from: &str,
        _to: &SourceHead,
    ) -> Result<Option<Vec<FileChange>>> {
        // A folder has no history to diff; the sync re-reads it whole.
        Ok(None)
    }

    async fn read_file(&self, _head: &SourceHead, path: &str) -> Result<Vec<u8>> {
        let full = self.root.join(path);
        let meta =
            std::fs::metadata(&full).map_err(|e| Error::storage(format!("reading {path}"), e))?;
        if meta.len() as usize > MAX_FILE_BYTES {
            return Err(Error::bad_request(format!(
                "{path} is {} bytes, larger than the {MAX_FILE_BYTES} byte limit for catalog files",
                meta.len()
            )));
        }
        std::fs::read(&full).map_err(|e| Error::storage(format!("reading {path}"), e))
    }
}

/// A stable fingerprint of a listing. Not cryptographic: it only has to
/// change when a file is added, removed, resized or touched.
fn fingerprint(files: &[(String, u64, u128)]) -> String {
    // FNV-1a, 64 bit, over path, size and mtime.
    let mut h: u64 = 0xcbf29ce484222325;
    for (path, size, mtime) in files {
        for b in path
            .bytes()
            .chain(size.to_le_bytes())
            .chain(mtime.to_le_bytes())
            .chain([0xff])
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("folder-{h:016x}-{}", files.len())
}
