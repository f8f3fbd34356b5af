//! Files only their owner reads: every directory a store or the GitOps
//! executor creates is mode 0700 and every database file 0600, whatever
//! the process's umask. The store holds deployments and events; a
//! world-readable copy next to a shared machine's other users is a leak
//! even when no secret is in it (names, outputs, history).
//!
//! SQLite gives a database's `-wal` and `-shm` files the mode of the
//! database file, so creating the file 0600 before SQLite opens it covers
//! all three. Git writes its objects through libgit2, which honours only
//! the umask, so a repository is protected by its 0700 directory.

use std::io;
use std::path::Path;

/// Creates `dir` and any missing parents, each new one mode 0700 (an
/// existing directory keeps its mode: it is the operator's).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes sure `file` exists with mode 0600: created so when missing,
/// tightened when it exists wider (a database written by an older
/// version), together with its SQLite companions `-wal` and `-shm`.
pub fn ensure_private_file(file: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    drop(options.open(file)?);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut path = file.as_os_str().to_owned();
            path.push(suffix);
            let path = std::path::PathBuf::from(path);
            match std::fs::metadata(&path) {
                Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_directories_are_0700_and_files_0600_even_when_they_existed_wider() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let db = dir.join("nestor.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        let fresh = dir.join("fresh.db");
        ensure_private_file(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o600);
    }
}
