//! The node's Secrets on disk, apart from the rest of its state: `<state-dir>/secrets/`
//! (mode 0700), one file per Secret a desired pod uses (mode 0600), holding the Secret object
//! exactly as the controller sent it. A file is named by the sha256 of its content (64 hex
//! digits), so no namespace or name ever becomes a path, and agent.redb refers to a Secret by
//! that digest: a changed Secret is a new file, written before the desired state that names
//! it is committed, and the old file goes after. Files are written atomically (temporary
//! file, fsync, rename, fsync of the directory) and only when missing or different: an idle
//! agent writes nothing.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A file or directory of the secrets store that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct SecretDirError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> SecretDirError + '_ {
    move |source| SecretDirError {
        path: path.to_path_buf(),
        source,
    }
}

/// The sha256 of a Secret file's content.
pub type Sha256Digest = [u8; 32];

/// The sha256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256::digest(bytes).into()
}

/// The 64 lowercase hex digits of a digest: the file's name.
pub fn hex(digest: &Sha256Digest) -> String {
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The secrets directory.
#[derive(Debug, Clone)]
pub struct SecretDir {
    dir: PathBuf,
}

impl SecretDir {
    /// Opens `dir`, creating it with mode 0700 (and setting that mode if it had another).
    pub fn open(dir: &Path) -> Result<Self, SecretDirError> {
        match fs::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() => {
                if meta.permissions().mode() & 0o7777 != 0o700 {
                    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(at(dir))?;
                }
            }
            Ok(_) => {
                return Err(SecretDirError {
                    path: dir.to_path_buf(),
                    source: io::Error::other("not a directory"),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(at(dir))?;
                // The umask may have taken bits away; never added any.
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(at(dir))?;
            }
            Err(e) => return Err(at(dir)(e)),
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The file of the Secret whose content has `digest`.
    pub fn file(&self, digest: &Sha256Digest) -> PathBuf {
        self.dir.join(hex(digest))
    }

    /// The content of the file named `digest` (not checked: see [`super::local_copy`]).
    pub fn read(&self, digest: &Sha256Digest) -> Result<Vec<u8>, SecretDirError> {
        let path = self.file(digest);
        fs::read(&path).map_err(at(&path))
    }

    /// Stores `bytes`, unless the file holds them already; returns their digest.
    pub fn put(&self, bytes: &[u8]) -> Result<Sha256Digest, SecretDirError> {
        let digest = sha256(bytes);
        let path = self.file(&digest);
        if fs::read(&path).is_ok_and(|old| old == bytes) {
            return Ok(digest);
        }
        let tmp = self.dir.join(format!(".tmp-{}", hex(&digest)));
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(at(&tmp))?;
        file.write_all(bytes).map_err(at(&tmp))?;
        file.sync_all().map_err(at(&tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(at(&path))?;
        self.sync_dir()?;
        Ok(digest)
    }

    /// Removes every file but those named by `keep` (left-over temporary files too); returns
    /// how many went.
    pub fn retain(&self, keep: &BTreeSet<Sha256Digest>) -> Result<usize, SecretDirError> {
        let keep: BTreeSet<String> = keep.iter().map(hex).collect();
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir).map_err(at(&self.dir))? {
            let entry = entry.map_err(at(&self.dir))?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| keep.contains(n)) {
                continue;
            }
            let path = entry.path();
            let result = if entry.file_type().map_err(at(&path))?.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            result.map_err(at(&path))?;
            removed += 1;
        }
        if removed > 0 {
            self.sync_dir()?;
        }
        Ok(removed)
    }

    fn sync_dir(&self) -> Result<(), SecretDirError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(at(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn directory_is_0700_and_files_0600() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("secrets");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let secrets = SecretDir::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700, "an existing directory is fixed");
        let digest = secrets.put(b"{\"kind\":\"Secret\"}").unwrap();
        assert_eq!(mode(&secrets.file(&digest)), 0o600);
        assert_eq!(secrets.read(&digest).unwrap(), b"{\"kind\":\"Secret\"}");
        assert_eq!(hex(&digest).len(), 64);

        let fresh = base.path().join("new/secrets");
        SecretDir::open(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
    }

    #[test]
    fn unchanged_content_is_not_written_again() {
        let base = tempfile::tempdir().unwrap();
        let secrets = SecretDir::open(&base.path().join("secrets")).unwrap();
        let digest = secrets.put(b"same").unwrap();
        let file = secrets.file(&digest);
        let before = fs::metadata(&file).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(secrets.put(b"same").unwrap(), digest);
        let after = fs::metadata(&file).unwrap();
        assert_eq!(
            before.modified().unwrap(),
            after.modified().unwrap(),
            "no write"
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(before.ino(), after.ino(), "not replaced");

        // An altered file is replaced.
        fs::write(&file, b"tampered").unwrap();
        secrets.put(b"same").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"same");
    }

    #[test]
    fn retain_removes_the_rest() {
        let base = tempfile::tempdir().unwrap();
        let secrets = SecretDir::open(&base.path().join("secrets")).unwrap();
        let a = secrets.put(b"a").unwrap();
        let b = secrets.put(b"b").unwrap();
        fs::write(secrets.path().join(".tmp-left-over"), b"x").unwrap();
        assert_eq!(secrets.retain(&BTreeSet::from([a])).unwrap(), 2);
        assert!(secrets.file(&a).exists());
        assert!(!secrets.file(&b).exists());
        assert_eq!(fs::read_dir(secrets.path()).unwrap().count(), 1);
        assert_eq!(secrets.retain(&BTreeSet::from([a])).unwrap(), 0);
    }
}
