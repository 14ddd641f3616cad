//! `kelp exec`: a command run in a running container, its stdout published as `Chunk`s and
//! its stderr as `Stderr`s (each stream cut after [`EXEC_OUTPUT_LIMIT`] bytes: one byte
//! more is sent, so the controller knows it was cut), then `End` with the exit code.
//!
//! The command runs through the exec helper ([`crate::runtime::exec`]), a single-threaded
//! child process, since libcontainer must not clone the multi-threaded agent. At the
//! deadline, or on `Cancel`, the agent hangs up on the helper, which kills the command.

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kelp_shared::wire::{ResponseBody, EXEC_OUTPUT_LIMIT};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;

use super::{Job, CHUNK};
use crate::link::request::Responder;
use crate::runtime::exec::{HelperResult, HELPER_COMMAND};

/// How long the helper gets to exit after being told to stop.
const HELPER_GRACE: Duration = Duration::from_secs(2);

/// One output stream of the command.
struct Output {
    pipe: Option<std::fs::File>,
    /// Bytes forwarded so far.
    sent: usize,
    stderr: bool,
}

impl Output {
    fn new(fd: OwnedFd, stderr: bool) -> io::Result<Self> {
        rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK)?;
        Ok(Self {
            pipe: Some(std::fs::File::from(fd)),
            sent: 0,
            stderr,
        })
    }

    /// Reads what the pipe holds and publishes it (up to the limit and one byte); false
    /// when a response could not be published.
    fn pump(&mut self, responder: &mut Responder) -> bool {
        let Some(pipe) = self.pipe.as_mut() else {
            return true;
        };
        let mut buf = vec![0u8; CHUNK];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return true;
                }
                Ok(n) => {
                    let room = (EXEC_OUTPUT_LIMIT + 1).saturating_sub(self.sent);
                    let keep = n.min(room);
                    if keep == 0 {
                        continue;
                    }
                    self.sent += keep;
                    let data = buf[..keep].to_vec();
                    let body = if self.stderr {
                        ResponseBody::Stderr(data)
                    } else {
                        ResponseBody::Chunk(data)
                    };
                    if !responder.send(body) {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => {
                    self.pipe = None;
                    return true;
                }
            }
        }
    }
}

/// Stops the helper: hangs up (it kills the command), then kills it if it lingers.
fn stop_helper(mut child: Child, control: UnixStream) {
    // Shut down, not just closed: a clone of the socket (the result reader) may live on.
    let _ = control.shutdown(std::net::Shutdown::Both);
    drop(control);
    let until = Instant::now() + HELPER_GRACE;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Answers an exec request.
pub fn serve(
    job: &Job,
    namespace: &str,
    pod: &str,
    container: &str,
    command: &[String],
    responder: &mut Responder,
) -> Result<(), String> {
    let located = job.locate(namespace, pod, container)?;
    let what = format!("container {container:?} of pod {}", located.pod_name());
    if command.is_empty() {
        return Err(format!("exec in {what}: no command given"));
    }
    if !located.run.as_ref().is_some_and(|r| r.running()) {
        return Err(format!("{what} is not running"));
    }
    let (control, helper_end) =
        UnixStream::pair().map_err(|e| format!("exec in {what}: socketpair: {e}"))?;
    // The pod's engine is the one its sandbox was started with.
    let sandbox: Option<crate::runtime::state::SandboxConfig> =
        crate::runtime::state::read_json(&located.paths.sandbox())
            .map_err(|e| format!("exec in {what}: {e}"))?;
    let mut helper = Command::new(&job.runtime().agent_exe);
    helper.arg(HELPER_COMMAND);
    match sandbox.and_then(|s| s.oci_runtime) {
        Some(binary) => helper
            .arg("--oci-runtime")
            .arg(binary)
            .arg("--root")
            .arg(located.paths.oci_root()),
        None => helper.arg("--root").arg(located.paths.libcontainer_root()),
    };
    let mut child = helper
        .arg("--container")
        .arg(container)
        .arg("--bundle")
        .arg(located.paths.bundle(container))
        .arg("--")
        .args(command)
        .stdin(Stdio::from(OwnedFd::from(helper_end)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("exec in {what}: starting the exec helper: {e}"))?;
    // An empty first chunk tells the controller the node has the request, however long the
    // command then stays silent.
    if !responder.send(ResponseBody::Chunk(Vec::new())) {
        stop_helper(child, control);
        return Err(format!(
            "exec in {what}: the response could not be published"
        ));
    }
    let pipes = (child.stdout.take(), child.stderr.take());
    let (Some(stdout), Some(stderr)) = pipes else {
        stop_helper(child, control);
        return Err(format!("exec in {what}: the helper has no output pipes"));
    };
    let outputs = Output::new(OwnedFd::from(stdout), false)
        .and_then(|out| Ok((out, Output::new(OwnedFd::from(stderr), true)?)));
    let (mut out, mut err) = match outputs {
        Ok(pair) => pair,
        Err(e) => {
            stop_helper(child, control);
            return Err(format!("exec in {what}: {e}"));
        }
    };
    let mut result_line = String::new();
    let reader = control.try_clone().and_then(|c| {
        rustix::fs::fcntl_setfl(&c, rustix::fs::OFlags::NONBLOCK)
            .map(|()| c)
            .map_err(io::Error::from)
    });
    let mut reader = match reader {
        Ok(reader) => BufReader::new(reader),
        Err(e) => {
            stop_helper(child, control);
            return Err(format!("exec in {what}: {e}"));
        }
    };
    let mut result: Option<HelperResult> = None;
    let mut hung_up = false;
    loop {
        if job.should_stop() {
            stop_helper(child, control);
            if job.cancelled() {
                return Ok(());
            }
            return Err(format!(
                "command {:?} in {what} did not finish before its deadline; it was killed",
                command.join(" ")
            ));
        }
        let wait = job.time_left().min(Duration::from_millis(200));
        let timeout = rustix::time::Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: wait.subsec_nanos() as _,
        };
        let mut fds: Vec<PollFd> = Vec::new();
        for output in [&out, &err] {
            if let Some(pipe) = &output.pipe {
                fds.push(PollFd::from_borrowed_fd(pipe.as_fd(), PollFlags::IN));
            }
        }
        if !hung_up {
            fds.push(PollFd::from_borrowed_fd(control.as_fd(), PollFlags::IN));
        }
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => {
                stop_helper(child, control);
                return Err(format!("exec in {what}: poll: {e}"));
            }
        }
        drop(fds);
        if !out.pump(responder) || !err.pump(responder) {
            stop_helper(child, control);
            return Err(format!("exec in {what}: the output could not be published"));
        }
        if !hung_up {
            // The helper writes one line when the command ended, then exits.
            match reader.read_line(&mut result_line) {
                Ok(0) => hung_up = true,
                Ok(_) if result_line.ends_with('\n') => {
                    result = serde_json::from_str(result_line.trim()).ok();
                    hung_up = true;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => hung_up = true,
            }
        }
        // Done once the helper reported (its command's own output is in: a background
        // process may hold the pipes open, and is not waited for), or once everything
        // closed without a report.
        let drained = out.pipe.is_none() && err.pipe.is_none();
        if hung_up && (result.is_some() || drained) {
            out.pump(responder);
            err.pump(responder);
            stop_helper(child, control);
            break;
        }
    }
    match result {
        Some(HelperResult::Exited { code }) => {
            if responder.send(ResponseBody::End {
                exit_code: Some(code),
            }) {
                Ok(())
            } else {
                Err("the exit code could not be published".into())
            }
        }
        Some(HelperResult::Failed { error }) => Err(format!(
            "cannot exec {:?} in {what}: {error}",
            command.join(" ")
        )),
        Some(HelperResult::Killed) | None => Err(format!(
            "exec in {what}: the exec helper ended without a result"
        )),
    }
}
