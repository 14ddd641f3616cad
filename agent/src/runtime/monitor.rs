//! The per-pod monitor: `kelp-agent monitor POD_DIR`, one process per pod, started by the agent
//! and outliving it.
//!
//! It is the pod's sandbox and the parent of the pod's containers:
//! - it unshares the network, IPC and UTS namespaces (and, for `shareProcessNamespace`, starts a
//!   `kelp-agent pause` child as PID 1 of a new PID namespace) which every container joins, sets
//!   the hostname and brings `lo` up;
//! - it creates and starts containers through libcontainer on the agent's request, in this
//!   single-threaded process (libcontainer forks and clones its caller: never from the agent's
//!   threads), or through the OCI runtime binary ([`super::oci_binary`]) when the pod's
//!   sandbox names one;
//! - it reaps them (pidfds in one `poll(2)` loop, no timer while idle) and records exit code, OOM
//!   kill and finish time under the run dir, so an agent that was down learns what happened;
//! - it copies their stdout and stderr into the CRI log files;
//! - it enforces stop grace periods: SIGTERM, then SIGKILL at the deadline;
//! - it runs the containers' probes ([`crate::probe`]) in the same loop, records what they
//!   find, and stops a container whose liveness or startup probe failed.
//!
//! It never decides anything: restarts, back-off and deletion are the agent's.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
#[cfg(target_pointer_width = "64")]
use libcontainer::container::builder::ContainerBuilder;
#[cfg(target_pointer_width = "64")]
use libcontainer::syscall::syscall::SyscallType;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{
    pidfd_open, pidfd_send_signal, waitpid, Pid, PidfdFlags, Signal, WaitOptions,
};

use super::exec::ExecVia;
use super::oci_binary::OciBinary;
use super::protocol::{Request, Response};
use super::state::{
    read_json, write_json, ContainerRun, Exit, MonitorInfo, PodPaths, ProcessId, SandboxConfig,
};
use crate::logs::{LogConfig, LogWriter, Stream};

/// The cgroup, below the pod's, that holds the monitor (and the pause process). The leading
/// underscore keeps it apart from containers' cgroups: container names are DNS labels.
pub const MONITOR_CGROUP: &str = "_monitor";

/// The cgroup of container `name` of the pod whose cgroup is `pod_cgroup`.
pub fn container_cgroup(pod_cgroup: &str, name: &str) -> String {
    format!("{}/{name}", pod_cgroup.trim_end_matches('/'))
}

struct Running {
    run: ContainerRun,
    pidfd: Option<OwnedFd>,
    stdout: Option<File>,
    stderr: Option<File>,
    log: LogWriter,
    kill_at: Option<Instant>,
    /// The run's probes, while it runs and has any.
    probing: Option<crate::probe::check::Probing>,
}

/// What creates, starts and deletes the pod's containers.
enum Engine {
    /// youki's libcontainer, in this process.
    #[cfg(target_pointer_width = "64")]
    Libcontainer,
    /// The distribution's OCI runtime binary, with the pod's state directory.
    Binary(OciBinary),
}

impl Engine {
    fn of(config: &SandboxConfig, paths: &PodPaths) -> Result<Self> {
        match &config.oci_runtime {
            Some(binary) => Ok(Engine::Binary(OciBinary::new(
                binary.clone(),
                paths.oci_root(),
            ))),
            #[cfg(target_pointer_width = "64")]
            None => Ok(Engine::Libcontainer),
            #[cfg(not(target_pointer_width = "64"))]
            None => anyhow::bail!(
                "{}: no OCI runtime binary, and this agent is built without libcontainer",
                paths.sandbox().display()
            ),
        }
    }
}

struct Monitor {
    paths: PodPaths,
    engine: Engine,
    config: SandboxConfig,
    /// Detected once: every exit reads the OOM counter, every removal removes a cgroup.
    cgroups: crate::cgroup::Cgroups,
    containers: BTreeMap<String, Running>,
    pause: Option<Child>,
}

/// `kelp-agent pause`: PID 1 of a pod's shared PID namespace. Holds the namespace and reaps
/// the orphans that are re-parented to it.
pub fn pause() -> ! {
    loop {
        match waitpid(None, WaitOptions::empty()) {
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_secs(10)),
        }
    }
}

/// `kelp-agent monitor POD_DIR`.
pub fn main(pod_dir: &Path) -> Result<()> {
    let paths = PodPaths {
        dir: pod_dir.to_path_buf(),
    };
    let config: SandboxConfig = read_json(&paths.sandbox())?
        .with_context(|| format!("{}: missing", paths.sandbox().display()))?;
    let me = std::process::id() as i32;
    let engine = Engine::of(&config, &paths)?;

    let monitor_cgroup = container_cgroup(&config.pod_cgroup, MONITOR_CGROUP);
    let cgroups = crate::cgroup::Cgroups::detect().context("detecting cgroups")?;
    cgroups
        .create(&monitor_cgroup)
        .and_then(|()| cgroups.add_process(&monitor_cgroup, me as u32))
        .with_context(|| format!("joining cgroup {monitor_cgroup}"))?;
    rustix::process::set_child_subreaper(Some(Pid::from_raw(me).expect("own pid")))
        .context("PR_SET_CHILD_SUBREAPER")?;

    use rustix::thread::UnshareFlags as U;
    let host_network = config.network.host_network;
    // A pod on the bridge: a netlink socket opened now stays in the host's namespace, to
    // create the pod's veth pair across both once the pod's namespace exists.
    let mut host_netlink = match config.network.pod_ip {
        Some(_) if !host_network => {
            Some(crate::network::netlink::Netlink::open().context("opening a netlink socket")?)
        }
        _ => None,
    };
    // The OCI runtime binary reads `/proc` (the host's) by the PIDs it sees: it must run in
    // the host's PID namespace, not in the pod's that the monitor's children join below.
    let host_pid_ns = match (&config.oci_runtime, config.share_pid) {
        (Some(_), true) => {
            Some(File::open("/proc/self/ns/pid").context("opening own PID namespace")?)
        }
        _ => None,
    };
    // `hostNetwork` pods keep the host's network and UTS namespaces (and so its hostname).
    let mut flags = U::NEWIPC;
    if !host_network {
        flags |= U::NEWNET | U::NEWUTS;
    }
    if config.share_pid {
        flags |= U::NEWPID;
    }
    // Deprecated only for CLONE_FILES, which would invalidate open descriptors; not used here.
    #[allow(deprecated)]
    rustix::thread::unshare(flags).context("unshare(net, ipc, uts) for the pod sandbox")?;
    if !host_network {
        rustix::system::sethostname(config.hostname.as_bytes())
            .with_context(|| format!("sethostname {:?}", config.hostname))?;
        loopback_up().context("bringing lo up in the pod's network namespace")?;
    }
    if let Some(host) = host_netlink.as_mut() {
        crate::network::attach_pod(host, &config.network)
            .context("connecting the pod to the node's bridge")?;
    }
    drop(host_netlink);

    let pause = if config.share_pid {
        let child = Command::new("/proc/self/exe")
            .arg("pause")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the pause process of the shared PID namespace")?;
        Some(child)
    } else {
        None
    };
    if let Some(ns) = host_pid_ns {
        // Only the pause process is the pod's PID 1; later children (runc, crun) are the
        // host's, and the containers join the pod's namespace by the spec's path.
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::ProcessID),
        )
        .context("setns back to the host's PID namespace for the OCI runtime")?;
    }

    let socket = paths.socket();
    let _ = fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("listening on {}", socket.display()))?;
    listener.set_nonblocking(true)?;
    let info = MonitorInfo {
        monitor: ProcessId::of(me).context("own /proc entry")?,
        pause: pause.as_ref().and_then(|c| ProcessId::of(c.id() as i32)),
    };
    write_json(&paths.monitor(), &info)?;

    let mut monitor = Monitor {
        paths,
        engine,
        config,
        cgroups,
        containers: BTreeMap::new(),
        pause,
    };
    monitor.serve(&listener)
}

/// Sets `lo` (index 1 in every network namespace) up: a new namespace starts with it down.
fn loopback_up() -> Result<()> {
    let mut links = crate::network::netlink::Netlink::open().context("netlink")?;
    links.set_up(1).context("set lo up")
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Monitor {
    fn serve(&mut self, listener: &UnixListener) -> Result<()> {
        loop {
            // Reap first: a container whose pidfd fired, or which exited while we were busy.
            self.reap();
            self.enforce_deadlines();
            self.run_probes();

            let names: Vec<String> = self.containers.keys().cloned().collect();
            let mut fds = vec![PollFd::new(listener, PollFlags::IN)];
            let mut owners = Vec::new(); // (container, 0 = pidfd, 1 = stdout, 2 = stderr)
            for name in &names {
                let c = &self.containers[name];
                if let Some(fd) = &c.pidfd {
                    fds.push(PollFd::new(fd, PollFlags::IN));
                    owners.push((name.clone(), 0));
                }
                if let Some(f) = &c.stdout {
                    fds.push(PollFd::new(f, PollFlags::IN));
                    owners.push((name.clone(), 1));
                }
                if let Some(f) = &c.stderr {
                    fds.push(PollFd::new(f, PollFlags::IN));
                    owners.push((name.clone(), 2));
                }
                // Probes in flight (3): `run_probes` moves them all on at the next turn.
                for (fd, flags) in c.probing.iter().flat_map(|p| p.fds()) {
                    fds.push(PollFd::from_borrowed_fd(fd, flags));
                    owners.push((name.clone(), 3));
                }
            }
            let timeout = self
                .containers
                .values()
                .filter_map(|c| c.kill_at)
                .chain(
                    self.containers
                        .values()
                        .filter_map(|c| c.probing.as_ref()?.next_wakeup()),
                )
                .min()
                .map(|at| {
                    let d = at.saturating_duration_since(Instant::now());
                    rustix::time::Timespec {
                        tv_sec: d.as_secs() as i64,
                        tv_nsec: d.subsec_nanos() as _,
                    }
                });
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e).context("poll"),
            }
            let listener_ready = !fds[0].revents().is_empty();
            let ready: Vec<(String, u8)> = fds[1..]
                .iter()
                .zip(owners)
                .filter(|(fd, _)| !fd.revents().is_empty())
                .map(|(_, owner)| owner)
                .collect();
            drop(fds);

            for (name, what) in ready {
                if what == 1 || what == 2 {
                    self.drain(&name, what);
                }
            }
            if listener_ready {
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if self.handle(stream)? {
                                return Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e).context("accept"),
                    }
                }
            }
        }
    }

    /// Copies what a container wrote into its log file; at end of file the stream is done.
    fn drain(&mut self, name: &str, what: u8) {
        let Some(c) = self.containers.get_mut(name) else {
            return;
        };
        let (file, stream) = match what {
            1 => (&mut c.stdout, Stream::Stdout),
            _ => (&mut c.stderr, Stream::Stderr),
        };
        let Some(f) = file else { return };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => {
                    let _ = c.log.finish(stream, SystemTime::now());
                    *file = None;
                    return;
                }
                Ok(n) => {
                    if let Err(e) = c.log.write(stream, &buf[..n], SystemTime::now()) {
                        eprintln!("monitor: log of {name}: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("monitor: reading output of {name}: {e}");
                    *file = None;
                    return;
                }
            }
        }
    }

    /// Reaps every exited container and records how it ended.
    fn reap(&mut self) {
        crate::probe::check::reap_leftovers();
        let cgroups = &self.cgroups;
        for (name, c) in self.containers.iter_mut() {
            let Some(process) = c.run.process else {
                continue;
            };
            if c.run.exit.is_some() {
                continue;
            }
            let pid = Pid::from_raw(process.pid).expect("recorded pid > 0");
            let status = match waitpid(Some(pid), WaitOptions::NOHANG) {
                Ok(Some((_, status))) => status,
                Ok(None) => continue,
                Err(e) => {
                    eprintln!("monitor: waitpid {name} ({}): {e}", process.pid);
                    continue;
                }
            };
            let signal = status.terminating_signal();
            let code = status
                .exit_status()
                .unwrap_or_else(|| 128 + signal.unwrap_or(0));
            let cgroup = container_cgroup(&self.config.pod_cgroup, name);
            let oom_killed = cgroups.oom_kills(&cgroup).is_ok_and(|n| n > 0);
            // With a shared PID namespace the container's other processes outlive its first
            // (in a PID namespace of its own, they die with it).
            if self.config.share_pid {
                if let Err(e) = cgroups.kill_all(&cgroup) {
                    eprintln!("monitor: killing what is left of {name}: {e}");
                }
            }
            c.run.exit = Some(Exit {
                code,
                signal,
                oom_killed,
            });
            c.run.finished_at = Some(now_rfc3339());
            c.pidfd = None;
            c.kill_at = None;
            // Probing ends with the run (attempts in flight are killed).
            if let Some(probing) = c.probing.take() {
                c.run.probes = Some(probing.record());
            }
            if let Err(e) = write_json(&self.paths.container_state(name), &c.run) {
                eprintln!("monitor: recording the exit of {name}: {e}");
            }
        }
    }

    fn enforce_deadlines(&mut self) {
        let now = Instant::now();
        for (name, c) in self.containers.iter_mut() {
            if c.kill_at.is_some_and(|at| at <= now) {
                c.kill_at = None;
                if let Some(fd) = &c.pidfd {
                    if let Err(e) = pidfd_send_signal(fd, Signal::KILL) {
                        eprintln!("monitor: SIGKILL {name}: {e}");
                    }
                }
            }
        }
    }

    /// Runs the probes that are due and moves those in flight on; records what changed in
    /// the run's state file (only then: healthy probes write nothing). A failed liveness or
    /// startup probe stops its container as the agent's `stop` does, with the probe's grace.
    fn run_probes(&mut self) {
        let now = Instant::now();
        let mut kills = Vec::new();
        for (name, c) in self.containers.iter_mut() {
            let Some(probing) = c.probing.as_mut() else {
                continue;
            };
            if let Some(kill) = probing.tick(now) {
                kills.push((name.clone(), kill));
            }
            let record = Some(probing.record());
            if c.run.probes != record {
                c.run.probes = record;
                if let Err(e) = write_json(&self.paths.container_state(name), &c.run) {
                    eprintln!("monitor: recording the probes of {name}: {e}");
                }
            }
        }
        for (name, kill) in kills {
            let response = self.stop(&name, kill.grace.as_millis() as u64);
            if let Some(e) = response.error {
                eprintln!(
                    "monitor: stopping {name} after its {:?} probe failed: {e}",
                    kill.kind
                );
            }
        }
    }

    /// Serves one request; `Ok(true)` when the monitor must exit.
    fn handle(&mut self, stream: UnixStream) -> Result<bool> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        let (response, exit) = match serde_json::from_str::<Request>(&line) {
            Err(e) => (Response::error(format!("bad request: {e}")), false),
            Ok(Request::Run {
                name,
                attempt,
                bundle,
                log,
                probes,
            }) => match self.run(&name, attempt, &bundle, &log, &probes) {
                Ok(pid) => (
                    Response {
                        pid: Some(pid),
                        ..Response::ok()
                    },
                    false,
                ),
                Err(e) => (Response::error(format!("{e:#}")), false),
            },
            Ok(Request::Stop { name, grace_ms }) => (self.stop(&name, grace_ms), false),
            Ok(Request::Remove { name }) => match self.remove(&name) {
                Ok(()) => (Response::ok(), false),
                Err(e) => (Response::error(format!("{e:#}")), false),
            },
            Ok(Request::Shutdown) => {
                self.shutdown();
                (Response::ok(), true)
            }
        };
        let mut out = serde_json::to_vec(&response)?;
        out.push(b'\n');
        let _ = (&stream).write_all(&out);
        Ok(exit)
    }

    fn run(
        &mut self,
        name: &str,
        attempt: u32,
        bundle: &Path,
        log: &Path,
        probes: &[crate::probe::ProbeSpec],
    ) -> Result<i32> {
        if self.containers.get(name).is_some_and(|c| c.run.running()) {
            anyhow::bail!("container {name} is running");
        }
        self.forget(name)?;
        let state_path = self.paths.container_state(name);
        let last = read_json::<ContainerRun>(&state_path)?
            .filter(|old| !old.running())
            .map(|mut old| {
                old.last = None;
                Box::new(old)
            });
        let mut run = ContainerRun {
            name: name.to_string(),
            attempt,
            last,
            ..Default::default()
        };
        let log_writer = LogWriter::open(
            log,
            LogConfig {
                max_size: self.config.log_max_size,
                max_files: self.config.log_max_files,
            },
        )
        .with_context(|| format!("opening log {}", log.display()))?;
        // Exec probes run as the container's user, in its working directory.
        let target = if probes.is_empty() {
            None
        } else {
            Some(crate::probe::check::Target {
                via: self.exec_via(),
                container: name.to_string(),
                pod_ip: crate::probe::check::Target::pod_ip_or_loopback(self.config.network.pod_ip),
                user: crate::probe::check::ExecUser::from_bundle(bundle)?,
            })
        };
        match self.create_and_start(name, bundle) {
            Ok((pid, stdout, stderr)) => {
                run.process = ProcessId::of(pid);
                run.started_at = Some(now_rfc3339());
                let pidfd = pidfd_open(Pid::from_raw(pid).expect("pid > 0"), PidfdFlags::empty())
                    .with_context(|| format!("pidfd_open {pid}"))?;
                let probing = target.map(|target| {
                    crate::probe::check::Probing::new(probes, Instant::now(), target)
                });
                run.probes = probing.as_ref().map(|p| p.record());
                write_json(&state_path, &run)?;
                self.containers.insert(
                    name.to_string(),
                    Running {
                        run,
                        pidfd: Some(pidfd),
                        stdout: Some(stdout),
                        stderr: Some(stderr),
                        log: log_writer,
                        kill_at: None,
                        probing,
                    },
                );
                Ok(pid)
            }
            Err(e) => {
                run.start_error = Some(format!("{e:#}"));
                run.finished_at = Some(now_rfc3339());
                write_json(&state_path, &run)?;
                let _ = self.delete_container(name);
                Err(e)
            }
        }
    }

    /// How exec probes get into the pod's containers.
    fn exec_via(&self) -> ExecVia {
        match &self.engine {
            #[cfg(target_pointer_width = "64")]
            Engine::Libcontainer => ExecVia::Libcontainer {
                root: self.paths.libcontainer_root(),
            },
            Engine::Binary(oci) => ExecVia::Binary {
                binary: oci.binary.clone(),
                root: oci.root.clone(),
            },
        }
    }

    fn create_and_start(&mut self, name: &str, bundle: &Path) -> Result<(i32, File, File)> {
        let (out_r, out_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let stdin = File::open("/dev/null")?;
        for fd in [&out_r, &err_r] {
            rustix::fs::fcntl_setfl(fd.as_fd(), rustix::fs::OFlags::NONBLOCK)?;
        }
        let (out_r, err_r) = (File::from(out_r), File::from(err_r));
        let pid = match &self.engine {
            #[cfg(target_pointer_width = "64")]
            Engine::Libcontainer => {
                Self::libcontainer_create_and_start(&self.paths, name, bundle, stdin, out_w, err_w)?
            }
            Engine::Binary(oci) => {
                let created = oci.create(name, bundle, [OwnedFd::from(stdin), out_w, err_w]);
                let pid = match created {
                    Ok(pid) => pid,
                    // The binary said why on the container's stderr (or stdout).
                    Err(e) => {
                        let said = [&err_r, &out_r]
                            .iter()
                            .map(|f| read_available(f))
                            .collect::<Vec<_>>()
                            .join(" ");
                        anyhow::bail!("{e}: {}", said.trim());
                    }
                };
                oci.start(name)?;
                pid
            }
        };
        Ok((pid, out_r, err_r))
    }

    #[cfg(target_pointer_width = "64")]
    fn libcontainer_create_and_start(
        paths: &PodPaths,
        name: &str,
        bundle: &Path,
        stdin: File,
        out_w: OwnedFd,
        err_w: OwnedFd,
    ) -> Result<i32> {
        let mut container = ContainerBuilder::new(name.to_string(), SyscallType::Linux)
            .with_root_path(paths.libcontainer_root())?
            .with_stdin(OwnedFd::from(stdin))
            .with_stdout(out_w)
            .with_stderr(err_w)
            .validate_id()?
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .context("libcontainer create")?;
        container.start().context("libcontainer start")?;
        Ok(container
            .pid()
            .context("libcontainer reported no pid")?
            .as_raw())
    }

    fn stop(&mut self, name: &str, grace_ms: u64) -> Response {
        let Some(c) = self.containers.get_mut(name) else {
            return Response::ok();
        };
        let Some(fd) = &c.pidfd else {
            return Response::ok();
        };
        let signal = if grace_ms == 0 {
            Signal::KILL
        } else {
            Signal::TERM
        };
        if let Err(e) = pidfd_send_signal(fd, signal) {
            return Response::error(format!("signal {name}: {e}"));
        }
        let deadline = Instant::now() + Duration::from_millis(grace_ms);
        c.kill_at = Some(c.kill_at.map_or(deadline, |at| at.min(deadline)));
        Response::ok()
    }

    /// Drops an exited container: its libcontainer state and cgroup, its state file.
    fn remove(&mut self, name: &str) -> Result<()> {
        if self.containers.get(name).is_some_and(|c| c.run.running()) {
            anyhow::bail!("container {name} is running; stop it first");
        }
        self.forget(name)?;
        match fs::remove_file(self.paths.container_state(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn forget(&mut self, name: &str) -> Result<()> {
        if let Some(mut c) = self.containers.remove(name) {
            for s in [Stream::Stdout, Stream::Stderr] {
                let _ = c.log.finish(s, SystemTime::now());
            }
        }
        self.delete_container(name)
    }

    /// Removes what the engine made for a container that no longer runs: its cgroup (after
    /// killing anything left in it, e.g. a run that failed between create and start) and its
    /// state directory. For libcontainer this is done here rather than by its `delete`, which
    /// re-detects every cgroup hierarchy from the mount table on each call (this is on every
    /// restart's path); the OCI runtime binary's own `delete` goes first, so its state is gone
    /// too, and what it may leave is removed the same way.
    fn delete_container(&self, name: &str) -> Result<()> {
        match &self.engine {
            // What it fails to remove is removed below; only that may fail the call.
            Engine::Binary(oci) => {
                if let Err(e) = oci.delete(name) {
                    eprintln!("monitor: {e}");
                }
            }
            #[cfg(target_pointer_width = "64")]
            Engine::Libcontainer => {}
        }
        let cgroup = container_cgroup(&self.config.pod_cgroup, name);
        if !self.cgroups.processes(&cgroup, true)?.is_empty() {
            self.cgroups
                .kill_all(&cgroup)
                .with_context(|| format!("killing what is left in cgroup {cgroup}"))?;
        }
        self.cgroups
            .remove(&cgroup)
            .with_context(|| format!("removing cgroup {cgroup}"))?;
        let dir = match &self.engine {
            Engine::Binary(oci) => oci.root.join(name),
            #[cfg(target_pointer_width = "64")]
            Engine::Libcontainer => self.paths.libcontainer_root().join(name),
        };
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", dir.display()))
            }
            _ => Ok(()),
        }
    }

    /// Kills whatever still runs, waits for it, removes every container.
    fn shutdown(&mut self) {
        for c in self.containers.values() {
            if let Some(fd) = &c.pidfd {
                let _ = pidfd_send_signal(fd, Signal::KILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.containers.values().any(|c| c.run.running()) && Instant::now() < deadline {
            self.reap();
            std::thread::sleep(Duration::from_millis(5));
        }
        let names: Vec<String> = self.containers.keys().cloned().collect();
        for name in names {
            let names_drain = [1u8, 2];
            for what in names_drain {
                self.drain(&name, what);
            }
            if let Err(e) = self.forget(&name) {
                eprintln!("monitor: removing {name}: {e:#}");
            }
        }
        if let Some(mut pause) = self.pause.take() {
            let _ = pause.kill();
            let _ = pause.wait();
        }
        let _ = fs::remove_file(self.paths.socket());
    }
}

/// What a non-blocking pipe holds now, as text.
fn read_available(mut f: &File) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 || out.len() > 64 * 1024 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}
