//! The second container engine: the distribution's OCI runtime binary (`runc` or `crun`).
//!
//! libcontainer 0.7 does not build for 32-bit targets (see `docs/runtime.md`), so there the
//! per-pod monitor drives the binary instead; on 64-bit nodes it is chosen with
//! `kelp-agent run --oci-runtime runc|crun|PATH`. Only the command-line interface every OCI
//! runtime shares is used: `create`, `start`, `state`, `kill`, `delete` and `exec`, each with
//! `--root` set to the pod's own state directory. Containers never get a terminal, so the
//! binary runs in pass-through mode: the descriptors it is given become the container's stdio,
//! and no console socket is needed. The cgroup manager is the binary's default, cgroupfs: the
//! spec's `cgroupsPath` is a path (`/kelp/pod-<uid>/<container>`), as libcontainer gets it.
//!
//! The monitor stays the parent of the containers: it is a child subreaper, so when `create`
//! exits, the container's first process is re-parented to it, and it reaps the process and
//! signals it through a pidfd as it does with libcontainer.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Deserialize;

/// What can go wrong driving the binary; every variant names the command.
#[derive(Debug, thiserror::Error)]
pub enum OciBinaryError {
    #[error("{binary} {command} {id}: cannot run it: {source}")]
    Spawn {
        binary: PathBuf,
        command: &'static str,
        id: String,
        source: io::Error,
    },
    #[error("{binary} {command} {id} failed ({status}): {stderr}")]
    Failed {
        binary: PathBuf,
        command: &'static str,
        id: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{binary} {command} {id}: {message}")]
    Answer {
        binary: PathBuf,
        command: &'static str,
        id: String,
        message: String,
    },
}

/// `state`'s answer, the fields the OCI runtime spec defines.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct State {
    pub id: String,
    /// `creating`, `created`, `running` or `stopped`.
    pub status: String,
    /// The container's first process, as the binary's PID namespace sees it (0 when stopped).
    #[serde(default)]
    pub pid: i32,
    pub bundle: PathBuf,
}

/// Who an exec runs as, where.
#[derive(Debug, Clone)]
pub struct ExecAs<'a> {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: &'a [u32],
    /// The container's working directory when `None`.
    pub cwd: Option<&'a Path>,
}

/// One OCI runtime binary with one state directory (`--root`).
#[derive(Debug, Clone)]
pub struct OciBinary {
    pub binary: PathBuf,
    pub root: PathBuf,
}

/// Finds the binary: a path is used as it is, a bare name (`runc`, `crun`) is looked up in
/// `PATH` and then in `/usr/sbin` and `/usr/bin`, where Debian installs them.
pub fn resolve(name: &Path) -> Result<PathBuf, String> {
    if name.components().count() > 1 {
        return if name.is_file() {
            Ok(name.to_path_buf())
        } else {
            Err(format!("OCI runtime {} not found", name.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "OCI runtime {} not found in PATH or /usr/sbin, /usr/bin \
                 (Debian: apt-get install runc, or crun)",
                name.display()
            )
        })
}

impl OciBinary {
    pub fn new(binary: PathBuf, root: PathBuf) -> Self {
        Self { binary, root }
    }

    fn command(&self, command: &str) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root).arg(command);
        c
    }

    /// Runs a command to its end with its output captured; an exit status other than 0 is an
    /// error carrying what it wrote on stderr.
    fn output(
        &self,
        mut command: Command,
        name: &'static str,
        id: &str,
    ) -> Result<Output, OciBinaryError> {
        let output =
            command
                .stdin(Stdio::null())
                .output()
                .map_err(|source| OciBinaryError::Spawn {
                    binary: self.binary.clone(),
                    command: name,
                    id: id.into(),
                    source,
                })?;
        if !output.status.success() {
            return Err(OciBinaryError::Failed {
                binary: self.binary.clone(),
                command: name,
                id: id.into(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(output)
    }

    /// `create --bundle BUNDLE --pid-file FILE ID` with the container's stdio. The binary's
    /// own errors go to `stderr` too, that is into the container's log pipe: the caller reads
    /// them from there when this fails. Returns the PID the binary wrote (in its own PID
    /// namespace).
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        stdio: [OwnedFd; 3],
    ) -> Result<i32, OciBinaryError> {
        fs::create_dir_all(&self.root).map_err(|source| OciBinaryError::Spawn {
            binary: self.binary.clone(),
            command: "create",
            id: id.into(),
            source,
        })?;
        let pid_file = self.root.join(format!("{id}.pid"));
        let _ = fs::remove_file(&pid_file);
        let mut c = self.command("create");
        c.arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id);
        // The binary's own errors went to the container's log pipe.
        self.run_for_pid(c, "create", id, &pid_file, stdio, "")
    }

    /// `start ID`: the created container runs its process.
    pub fn start(&self, id: &str) -> Result<(), OciBinaryError> {
        let mut c = self.command("start");
        c.arg(id);
        self.output(c, "start", id).map(drop)
    }

    /// `state ID`; `None` when the binary does not know the container.
    pub fn state(&self, id: &str) -> Result<Option<State>, OciBinaryError> {
        let mut c = self.command("state");
        c.arg(id);
        match self.output(c, "state", id) {
            Ok(output) => serde_json::from_slice(&output.stdout)
                .map(Some)
                .map_err(|e| OciBinaryError::Answer {
                    binary: self.binary.clone(),
                    command: "state",
                    id: id.into(),
                    message: format!("unreadable answer: {e}"),
                }),
            Err(OciBinaryError::Failed { stderr, .. })
                if stderr.contains("does not exist") || stderr.contains("not found") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `kill ID SIGNAL` (a signal number).
    pub fn kill(&self, id: &str, signal: i32) -> Result<(), OciBinaryError> {
        let mut c = self.command("kill");
        c.arg(id).arg(signal.to_string());
        self.output(c, "kill", id).map(drop)
    }

    /// `delete --force ID`: kills what is left, removes its cgroup and state. A container the
    /// binary does not know is already deleted.
    pub fn delete(&self, id: &str) -> Result<(), OciBinaryError> {
        if !self.root.join(id).exists() {
            return Ok(());
        }
        let mut c = self.command("delete");
        c.arg("--force").arg(id);
        match self.output(c, "delete", id) {
            Err(OciBinaryError::Failed { stderr, .. })
                if stderr.contains("does not exist") || stderr.contains("not found") =>
            {
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// `exec --detach --pid-file FILE --user U:G [--additional-gids G] [--cwd DIR] ID CMD…`
    /// with the given stdio; the process gets the container's environment (the binary takes
    /// the container's process as the base). Returns its PID as the binary's PID namespace
    /// sees it; the process is re-parented to the caller's nearest child subreaper.
    pub fn exec_detached(
        &self,
        id: &str,
        user: &ExecAs<'_>,
        command: &[String],
        stdio: [OwnedFd; 3],
    ) -> Result<i32, OciBinaryError> {
        let pid_file = self.root.join(format!(
            "{id}.exec-{}-{}.pid",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        let mut c = self.command("exec");
        c.arg("--detach")
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--user")
            .arg(format!("{}:{}", user.uid, user.gid));
        if let Some(cwd) = user.cwd {
            c.arg("--cwd").arg(cwd);
        }
        for gid in user.additional_gids {
            c.arg("--additional-gids").arg(gid.to_string());
        }
        c.arg(id).args(command);
        // Errors land in the command's stderr, which is where an exec's caller looks.
        self.run_for_pid(c, "exec", id, &pid_file, stdio, "see the command's output")
    }

    /// Runs `c` (a `create` or `exec` with `--pid-file pid_file`) with the given stdio and
    /// returns the PID the binary wrote; the PID file is removed. `failed_stderr` says where
    /// the binary's error message went when it fails.
    fn run_for_pid(
        &self,
        mut c: Command,
        command: &'static str,
        id: &str,
        pid_file: &Path,
        stdio: [OwnedFd; 3],
        failed_stderr: &str,
    ) -> Result<i32, OciBinaryError> {
        let [stdin, stdout, stderr] = stdio;
        let status = c
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .status()
            .map_err(|source| OciBinaryError::Spawn {
                binary: self.binary.clone(),
                command,
                id: id.into(),
                source,
            })?;
        let text = fs::read_to_string(pid_file);
        let _ = fs::remove_file(pid_file);
        if !status.success() {
            return Err(OciBinaryError::Failed {
                binary: self.binary.clone(),
                command,
                id: id.into(),
                status,
                stderr: failed_stderr.into(),
            });
        }
        text.ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .filter(|pid| *pid > 0)
            .ok_or_else(|| OciBinaryError::Answer {
                binary: self.binary.clone(),
                command,
                id: id.into(),
                message: format!("no PID in {}", pid_file.display()),
            })
    }
}

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Removes cgroup `path` (root-relative) and its descendants, deepest first, from the
/// hierarchies of a cgroup v1 host that kelp's own cgroup code does not manage: systemd's
/// named `name=systemd` one and, on a hybrid layout, the controller-less v2 tree at
/// `unified`. runc places containers in every mounted hierarchy, creating their parents (the
/// pod's cgroup), and its `delete` removes only the container's own. Hierarchies where the
/// path is already gone are left alone; on a pure v2 host there is nothing to do. The
/// directories must hold no process (the pod's processes are killed through the controllers
/// first).
pub fn remove_cgroup_everywhere(path: &str) -> io::Result<()> {
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        return Ok(());
    }
    let rel = path.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == ".." || c == ".") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad cgroup path {path:?}"),
        ));
    }
    let Some(hierarchies) = read_dir_if_any(root)? else {
        return Ok(());
    };
    for hierarchy in hierarchies {
        let hierarchy = hierarchy?;
        // Symlinks (cpu -> cpu,cpuacct) name a hierarchy listed under its own name too.
        if hierarchy.file_type()?.is_dir() {
            remove_cgroup_dir(&hierarchy.path().join(rel))?;
        }
    }
    Ok(())
}

/// The entries of `dir`, or `None` when it does not exist.
fn read_dir_if_any(dir: &Path) -> io::Result<Option<fs::ReadDir>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn remove_cgroup_dir(dir: &Path) -> io::Result<()> {
    let Some(entries) = read_dir_if_any(dir)? else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_cgroup_dir(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io::Error::new(
            e.kind(),
            format!("removing cgroup {}: {e}", dir.display()),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_names_what_is_missing() {
        let e = resolve(Path::new("kelp-no-such-oci-runtime")).unwrap_err();
        assert!(e.contains("kelp-no-such-oci-runtime"), "{e}");
        let e = resolve(Path::new("/nonexistent/runc")).unwrap_err();
        assert!(e.contains("/nonexistent/runc"), "{e}");
        assert_eq!(resolve(Path::new("/bin/sh")).unwrap(), Path::new("/bin/sh"));
    }

    #[test]
    fn state_answer_parses() {
        let s: State = serde_json::from_str(
            r#"{"ociVersion":"1.0.2-dev","id":"c","pid":42,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00Z","owner":""}"#,
        )
        .unwrap();
        assert_eq!(
            (s.id.as_str(), s.pid, s.status.as_str()),
            ("c", 42, "running")
        );
    }
}
