//! hostPath volumes: the `type` checks of the kubelet (`hostpath.checkType`), creating what
//! `DirectoryOrCreate` and `FileOrCreate` ask for.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Why a hostPath cannot be used: the message the kubelet gives.
#[derive(Debug)]
pub enum HostPathError {
    /// The path exists but is not of the asked type, or is missing for a type that needs it:
    /// `hostPath type check failed: /x is not a directory`.
    TypeCheck(String),
    /// The `type` is not one Kubernetes knows.
    UnknownType(String),
    /// Creating the directory or file failed.
    Create(io::Error),
}

impl std::fmt::Display for HostPathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TypeCheck(m) => write!(f, "hostPath type check failed: {m}"),
            Self::UnknownType(t) => write!(
                f,
                "unsupported value {t:?}: supported values: \"\", \"BlockDevice\", \
                 \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \
                 \"FileOrCreate\", \"Socket\""
            ),
            Self::Create(e) => write!(f, "{e}"),
        }
    }
}

/// Checks (and for the `...OrCreate` types makes) `path` as the hostPath `type` asks. The
/// empty type checks nothing; a missing path is then created as a directory, as containerd
/// does before bind-mounting it. Symlinks are followed, as the kubelet's `os.Stat` does.
pub fn check(path: &Path, type_: &str) -> Result<(), HostPathError> {
    let shown = path.display();
    let meta = match fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(HostPathError::Create(e)),
    };
    let fail = |what: &str| Err(HostPathError::TypeCheck(format!("{shown} {what}")));
    match (type_, meta) {
        ("" | "DirectoryOrCreate", None) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(HostPathError::Create),
        ("", Some(_)) => Ok(()),
        ("FileOrCreate", None) => {
            // Without O_EXCL: another creator winning the race is fine. The parent must exist,
            // as with the kubelet.
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(HostPathError::Create)?;
            // The process umask must not narrow it.
            fs::set_permissions(path, fs::Permissions::from_mode(0o644))
                .map_err(HostPathError::Create)
        }
        ("Directory" | "File" | "Socket" | "CharDevice" | "BlockDevice", None) => {
            fail("does not exist")
        }
        ("Directory" | "DirectoryOrCreate", Some(m)) if !m.is_dir() => fail("is not a directory"),
        ("File" | "FileOrCreate", Some(m)) if !m.is_file() => fail("is not a file"),
        ("Socket", Some(m)) if !m.file_type().is_socket() => fail("is not a socket file"),
        ("CharDevice", Some(m)) if !m.file_type().is_char_device() => {
            fail("is not a character device")
        }
        ("BlockDevice", Some(m)) if !m.file_type().is_block_device() => {
            fail("is not a block device")
        }
        (
            "Directory" | "DirectoryOrCreate" | "File" | "FileOrCreate" | "Socket" | "CharDevice"
            | "BlockDevice",
            Some(_),
        ) => Ok(()),
        (other, _) => Err(HostPathError::UnknownType(other.to_owned())),
    }
}
