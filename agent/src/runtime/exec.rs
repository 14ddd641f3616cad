//! Running a command inside a running container: exec probes and `kelp exec`.
//!
//! Both go through libcontainer's tenant builder ([`spawn_tenant`]), or the OCI runtime
//! binary's `exec` for pods run by it ([`ExecVia`]), which joins the container's namespaces and
//! cgroup as its user, in its working directory, with its environment. libcontainer clones the calling process, so it must be called from a
//! single-threaded process: exec probes run it in the pod's monitor; `kelp exec` in a helper
//! process ([`helper_main`], the agent binary re-executed as `kelp-agent exec-helper`),
//! never in the multi-threaded agent.
//!
//! The helper's stdout and stderr become the command's; its stdin is a Unix socket to the
//! agent ([`HelperResult`] goes back on it as one JSON line when the command ends). When the
//! agent closes its end (a cancelled request, a deadline, the agent gone), the helper kills
//! the command.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

#[cfg(target_pointer_width = "64")]
use libcontainer::container::builder::ContainerBuilder;
#[cfg(target_pointer_width = "64")]
use libcontainer::syscall::syscall::SyscallType;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{
    pidfd_open, pidfd_send_signal, waitpid, Pid, PidfdFlags, Signal, WaitOptions,
};
use serde::{Deserialize, Serialize};

use crate::probe::check::ExecUser;

/// The hidden `kelp-agent` subcommand that runs [`helper_main`].
pub const HELPER_COMMAND: &str = "exec-helper";

/// How a command gets into a running container: which engine runs the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecVia {
    /// libcontainer's tenant builder; the pod's libcontainer state is under `root`.
    Libcontainer { root: PathBuf },
    /// The OCI runtime binary's `exec`, with the pod's state directory `root`.
    Binary { binary: PathBuf, root: PathBuf },
}

/// Starts `command` in the running container `container` as `user`, with the given stdio,
/// and returns its PID. The process is a child of the caller once the engine's intermediate
/// process is gone, so the caller must be a child subreaper to wait for it.
pub fn spawn_tenant(
    via: &ExecVia,
    container: &str,
    user: &ExecUser,
    command: &[String],
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> Result<Pid, String> {
    if command.is_empty() {
        return Err("no command given".into());
    }
    match via {
        ExecVia::Libcontainer { root } => {
            spawn_libcontainer(root, container, user, command, stdin, stdout, stderr)
        }
        ExecVia::Binary { binary, root } => {
            let oci = super::oci_binary::OciBinary::new(binary.clone(), root.clone());
            let pid = oci
                .exec_detached(
                    container,
                    &super::oci_binary::ExecAs {
                        uid: user.uid,
                        gid: user.gid,
                        additional_gids: &user.additional_gids,
                        cwd: user.cwd.as_deref(),
                    },
                    command,
                    [stdin, stdout, stderr],
                )
                .map_err(|e| format!("exec {command:?}: {e}"))?;
            Pid::from_raw(pid).ok_or_else(|| "the OCI runtime reported pid 0".to_string())
        }
    }
}

#[cfg(target_pointer_width = "64")]
fn spawn_libcontainer(
    root: &Path,
    container: &str,
    user: &ExecUser,
    command: &[String],
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> Result<Pid, String> {
    let built = ContainerBuilder::new(container.to_string(), SyscallType::Linux)
        .with_root_path(root)
        .map(|b| {
            b.with_stdin(stdin)
                .with_stdout(stdout)
                .with_stderr(stderr)
                .as_tenant()
                .with_container_args(command.to_vec())
                .with_user(Some(user.uid))
                .with_group(Some(user.gid))
                .with_additional_gids(user.additional_gids.clone())
                .with_cwd(user.cwd.clone())
                .with_detach(true)
        })
        .and_then(|b| b.build());
    remove_notify_sockets(&root.join(container));
    let pid = built.map_err(|e| format!("exec {command:?}: {e}"))?;
    Pid::from_raw(pid.as_raw()).ok_or_else(|| "libcontainer returned pid 0".to_string())
}

/// libcontainer does not build for 32-bit targets: such an agent runs every pod through the
/// OCI runtime binary.
#[cfg(not(target_pointer_width = "64"))]
fn spawn_libcontainer(
    _root: &Path,
    _container: &str,
    _user: &ExecUser,
    _command: &[String],
    _stdin: OwnedFd,
    _stdout: OwnedFd,
    _stderr: OwnedFd,
) -> Result<Pid, String> {
    Err("this agent is built without libcontainer (32-bit target)".into())
}

/// libcontainer's tenant builder leaves its notify socket behind, one per exec; removes them.
#[cfg(target_pointer_width = "64")]
fn remove_notify_sockets(container_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(container_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("tenant-notify-") && name.ends_with(".sock") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// How the command of an exec helper ended, sent to the agent as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HelperResult {
    /// The command ran and exited (128 + signal when killed by one).
    Exited {
        /// Its exit code.
        code: i32,
    },
    /// The command could not be started.
    Failed {
        /// Why (the engine's error).
        error: String,
    },
    /// The agent closed the control socket: the command was killed.
    Killed,
}

/// The exec helper's body: runs `command` in the container and waits for it, or kills it
/// when the agent hangs up. Its stdin must be the control socket.
pub fn helper_main(
    via: &ExecVia,
    container: &str,
    bundle: &Path,
    command: &[String],
) -> anyhow::Result<()> {
    let control = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let report = |result: &HelperResult| -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(result)?;
        line.push(b'\n');
        (&control).write_all(&line)?;
        Ok(())
    };
    let me = rustix::process::getpid();
    rustix::process::set_child_subreaper(Some(me))?;
    let user = match ExecUser::from_bundle(bundle) {
        Ok(user) => user,
        Err(e) => {
            return report(&HelperResult::Failed {
                error: e.to_string(),
            })
        }
    };
    let stdin = OwnedFd::from(File::open("/dev/null")?);
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
    let pid = match spawn_tenant(via, container, &user, command, stdin, stdout, stderr) {
        Ok(pid) => pid,
        Err(error) => return report(&HelperResult::Failed { error }),
    };
    let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(_) => {
            // Exited already: reap it.
            let code = wait_code(pid)?;
            return report(&HelperResult::Exited { code });
        }
    };
    loop {
        let mut fds = [
            PollFd::new(&pidfd, PollFlags::IN),
            PollFd::new(&control, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let exited = !fds[0].revents().is_empty();
        let hangup = !fds[1].revents().is_empty();
        if exited {
            let code = wait_code(pid)?;
            return report(&HelperResult::Exited { code });
        }
        if hangup {
            let mut buf = [0u8; 64];
            match (&control).read(&mut buf) {
                Ok(n) if n > 0 => continue,
                _ => {
                    let _ = pidfd_send_signal(&pidfd, Signal::KILL);
                    let _ = wait_code(pid);
                    let _ = report(&HelperResult::Killed);
                    return Ok(());
                }
            }
        }
    }
}

/// Waits for `pid` and returns its exit code (128 + signal when a signal ended it).
fn wait_code(pid: Pid) -> anyhow::Result<i32> {
    loop {
        match waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                return Ok(status
                    .exit_status()
                    .unwrap_or_else(|| 128 + status.terminating_signal().unwrap_or(0)))
            }
            Ok(None) => continue,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
