//! The container runtime: pods through youki's libcontainer, driven by a per-pod monitor.
//!
//! [`ContainerRuntime`] is the narrow interface the agent's pod workers use. Its implementation
//! here, [`MonitorRuntime`], starts one [`monitor`] process per pod (the agent binary
//! re-executed) which holds the pod's namespaces and is the parent of its containers, so that
//! libcontainer's forks never happen in the agent's threads and containers outlive an agent
//! restart. The agent prepares each container's bundle — an overlayfs root over the image's
//! shared read-only layers and a `config.json` — and asks the monitor to run it. Where
//! libcontainer does not build (32-bit targets), or when asked to, the monitor drives the
//! distribution's OCI runtime binary instead ([`oci_binary`]), with the same pod semantics.

pub mod exec;
pub mod fsutil;
pub mod monitor;
pub mod oci_binary;
pub mod protocol;
pub mod spec;
pub mod state;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;

use protocol::Request;
use state::{read_json, write_json, ContainerRun, MonitorInfo, PodPaths, SandboxConfig};

/// Where the runtime keeps things, and its limits.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// tmpfs: monitors' sockets, container state, bundles (`/run/kelp`).
    pub run_dir: PathBuf,
    /// Disk: writable layers and emptyDir volumes (`/var/lib/kelp-agent`).
    pub state_dir: PathBuf,
    /// Disk: container logs (`/var/log/kelp/pods`).
    pub log_dir: PathBuf,
    /// Root-relative cgroup under which every pod gets `pod-<uid>` (`/kelp`).
    pub cgroup_parent: String,
    /// The agent binary, re-executed as monitor.
    pub agent_exe: PathBuf,
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// How long a new monitor may take to set its sandbox up.
    pub monitor_timeout: Duration,
    /// How long one request to a monitor may take (container creation included).
    pub request_timeout: Duration,
    /// The OCI runtime binary (`runc`, `crun`, resolved to a path) that runs containers
    /// instead of libcontainer; always set on 32-bit targets, where libcontainer does not
    /// build ([`oci_binary`]).
    pub oci_runtime: Option<PathBuf>,
}

impl RuntimeConfig {
    /// Defaults for a node: `/run/kelp`, `/var/lib/kelp-agent`, `/var/log/kelp/pods`, `/kelp`.
    pub fn new(agent_exe: PathBuf) -> Self {
        Self {
            run_dir: "/run/kelp".into(),
            state_dir: "/var/lib/kelp-agent".into(),
            log_dir: "/var/log/kelp/pods".into(),
            cgroup_parent: "/kelp".into(),
            agent_exe,
            log_max_size: 10 * 1024 * 1024,
            log_max_files: 5,
            monitor_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            oci_runtime: None,
        }
    }

    pub fn pod_paths(&self, uid: &str) -> PodPaths {
        PodPaths::new(&self.run_dir, uid)
    }

    pub fn pod_cgroup(&self, uid: &str) -> String {
        format!("{}/pod-{uid}", self.cgroup_parent.trim_end_matches('/'))
    }

    /// The pod's directory of writable layers and emptyDir volumes, on disk.
    pub fn pod_data_dir(&self, uid: &str) -> PathBuf {
        self.state_dir.join("pods").join(uid)
    }

    /// The pod's log directory, named as the kubelet names it: `<namespace>_<name>_<uid>`.
    pub fn pod_log_dir(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.log_dir.join(format!("{namespace}_{name}_{uid}"))
    }
}

/// What a pod's sandbox is asked to be.
#[derive(Debug, Clone)]
pub struct SandboxRequest {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub hostname: String,
    pub share_pid: bool,
    pub network: state::PodNetwork,
}

/// One container run, ready to go: the spec, whose root is the one `prepare_rootfs` mounted.
pub struct ContainerRequest<'a> {
    pub uid: &'a str,
    pub name: &'a str,
    pub attempt: u32,
    pub spec: Spec,
    pub log: PathBuf,
    /// The container's probes, run by the monitor.
    pub probes: Vec<crate::probe::ProbeSpec>,
}

/// The runtime as the pod workers see it.
pub trait ContainerRuntime {
    /// Starts the pod's sandbox unless it already runs.
    fn ensure_sandbox(&self, request: &SandboxRequest) -> Result<MonitorInfo>;
    /// The pod's sandbox, if its monitor is alive.
    fn sandbox(&self, uid: &str) -> Result<Option<MonitorInfo>>;
    /// The pods that have a sandbox directory (alive or not).
    fn sandboxes(&self) -> Result<Vec<String>>;
    /// Mounts a fresh root filesystem for the next run of container `name`: an overlay with
    /// `lower_dirs` (image layers, top-most first) under a new writable layer. Returns it.
    fn prepare_rootfs(&self, uid: &str, name: &str, lower_dirs: &[&Path]) -> Result<PathBuf>;
    /// Creates and starts a container run on the root `prepare_rootfs` mounted; returns the
    /// PID of its first process.
    fn run_container(&self, request: ContainerRequest<'_>) -> Result<i32>;
    /// SIGTERM, then SIGKILL after `grace`.
    fn stop_container(&self, uid: &str, name: &str, grace: Duration) -> Result<()>;
    /// The last run of each container of the pod.
    fn container_runs(&self, uid: &str) -> Result<BTreeMap<String, ContainerRun>>;
    /// Deletes the writable layers of the pod's ended runs that `prepare_rootfs` moved aside.
    fn collect_garbage(&self, uid: &str) -> Result<()>;
    /// Kills what is left and removes every trace of the pod: processes, cgroups, mounts,
    /// per-pod files. Never deletes anything behind a mount point or a symlink.
    fn remove_sandbox(&self, uid: &str, log_dir: Option<&Path>) -> Result<()>;
}

/// [`ContainerRuntime`] over per-pod monitors and libcontainer.
pub struct MonitorRuntime {
    pub config: RuntimeConfig,
    /// Monitors this agent process started, reaped when they exit.
    children: Mutex<Vec<Child>>,
}

impl MonitorRuntime {
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        for dir in [&config.run_dir, &config.state_dir, &config.log_dir] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::create_dir_all(config.run_dir.join("pods"))?;
        Ok(Self {
            config,
            children: Mutex::new(Vec::new()),
        })
    }

    /// Reaps monitors this process started that have exited.
    pub fn reap_children(&self) {
        let mut children = self.children.lock().expect("children lock");
        children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    }

    fn call(&self, uid: &str, request: &Request) -> Result<protocol::Response> {
        let paths = self.config.pod_paths(uid);
        Ok(protocol::call(
            &paths.socket(),
            request,
            self.config.request_timeout,
        )?)
    }

    fn write_etc_files(&self, paths: &PodPaths, request: &SandboxRequest) -> Result<()> {
        let etc = paths.etc();
        fs::create_dir_all(&etc)?;
        fs::write(
            etc.join("hosts"),
            format!(
                "# Kubernetes-managed hosts file (kelp).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n127.0.1.1\t{}\n",
                request.hostname
            ),
        )?;
        fs::write(etc.join("hostname"), format!("{}\n", request.hostname))?;
        // Like the kubelet's dnsPolicy Default: the node's resolver configuration, skipping
        // systemd-resolved's local stub, which a pod cannot reach.
        let resolv = ["/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"]
            .iter()
            .find_map(|p| {
                let text = fs::read_to_string(p).ok()?;
                (!text.contains("nameserver 127.0.0.53")).then_some(text)
            })
            .unwrap_or_default();
        fs::write(etc.join("resolv.conf"), resolv)?;
        Ok(())
    }
}

impl ContainerRuntime for MonitorRuntime {
    fn ensure_sandbox(&self, request: &SandboxRequest) -> Result<MonitorInfo> {
        if let Some(info) = self.sandbox(&request.uid)? {
            return Ok(info);
        }
        let paths = self.config.pod_paths(&request.uid);
        if paths.dir.exists() {
            // A sandbox whose monitor died: its containers lost their parent. Start over.
            self.remove_sandbox(&request.uid, None)?;
        }
        fs::create_dir_all(paths.dir.join("containers"))?;
        self.write_etc_files(&paths, request)?;
        write_json(
            &paths.sandbox(),
            &SandboxConfig {
                pod_uid: request.uid.clone(),
                namespace: request.namespace.clone(),
                name: request.name.clone(),
                hostname: request.hostname.clone(),
                share_pid: request.share_pid,
                pod_cgroup: self.config.pod_cgroup(&request.uid),
                log_max_size: self.config.log_max_size,
                log_max_files: self.config.log_max_files,
                network: request.network.clone(),
                oci_runtime: self.config.oci_runtime.clone(),
            },
        )?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(paths.monitor_log())?;
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&self.config.agent_exe)
                .arg("monitor")
                .arg(&paths.dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0)
                .spawn()
                .with_context(|| format!("starting monitor {}", self.config.agent_exe.display()))?
        };
        let pid = child.id();
        self.children.lock().expect("children lock").push(child);
        let deadline = Instant::now() + self.config.monitor_timeout;
        loop {
            if let Some(info) = read_json::<MonitorInfo>(&paths.monitor())? {
                return Ok(info);
            }
            let exit = self.exit_status(pid);
            if exit.is_some() || state::start_time(pid as i32).is_none() {
                let log = fs::read_to_string(paths.monitor_log()).unwrap_or_default();
                let log = log.trim();
                bail!(
                    "monitor of pod {} ({} monitor) exited during setup ({}): {}",
                    request.name,
                    self.config.agent_exe.display(),
                    exit.map_or_else(|| "gone".to_string(), |s| s.to_string()),
                    if log.is_empty() {
                        "it wrote nothing"
                    } else {
                        log
                    }
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "monitor of pod {} not ready after {:?}",
                    request.name,
                    self.config.monitor_timeout
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn sandbox(&self, uid: &str) -> Result<Option<MonitorInfo>> {
        let paths = self.config.pod_paths(uid);
        Ok(read_json::<MonitorInfo>(&paths.monitor())?.filter(|info| info.monitor.alive()))
    }

    fn sandboxes(&self) -> Result<Vec<String>> {
        let mut uids = Vec::new();
        for entry in fs::read_dir(self.config.run_dir.join("pods"))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                uids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        uids.sort();
        Ok(uids)
    }

    fn prepare_rootfs(&self, uid: &str, name: &str, lower_dirs: &[&Path]) -> Result<PathBuf> {
        let paths = self.config.pod_paths(uid);
        let bundle = paths.bundle(name);
        let rootfs = bundle.join("rootfs");
        fsutil::unmount_all_under(&bundle)?;
        // Every run gets a fresh writable layer, as in Kubernetes. The last run's is moved
        // aside and deleted later by `collect_garbage`, off the start path.
        let data = self.config.pod_data_dir(uid);
        let layer = data.join("containers").join(name);
        if fs::symlink_metadata(&layer).is_ok() {
            let trash = data.join("trash");
            fs::create_dir_all(&trash)?;
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            fs::rename(&layer, trash.join(format!("{name}-{stamp}")))
                .with_context(|| format!("moving aside {}", layer.display()))?;
        }
        let (upper, work) = (layer.join("upper"), layer.join("work"));
        for d in [&rootfs, &upper, &work] {
            fs::create_dir_all(d)?;
        }
        fsutil::mount_overlay(lower_dirs, &upper, &work, &rootfs)?;
        Ok(rootfs)
    }

    fn run_container(&self, request: ContainerRequest<'_>) -> Result<i32> {
        let paths = self.config.pod_paths(request.uid);
        let bundle = paths.bundle(request.name);
        let rootfs = bundle.join("rootfs");
        if !fsutil::mounts_under(&rootfs)?.contains(&rootfs) {
            bail!("the root filesystem of {} is not prepared", request.name);
        }
        let mut spec = request.spec;
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_path(rootfs.clone());
        spec.set_root(Some(root));
        spec.save(bundle.join("config.json"))
            .with_context(|| format!("writing {}", bundle.join("config.json").display()))?;
        if let Some(parent) = request.log.parent() {
            fs::create_dir_all(parent)?;
        }
        let response = self.call(
            request.uid,
            &Request::Run {
                name: request.name.to_string(),
                attempt: request.attempt,
                bundle: bundle.clone(),
                log: request.log,
                probes: request.probes,
            },
        )?;
        response.pid.context("monitor answered without a PID")
    }

    fn stop_container(&self, uid: &str, name: &str, grace: Duration) -> Result<()> {
        self.call(
            uid,
            &Request::Stop {
                name: name.into(),
                grace_ms: grace.as_millis() as u64,
            },
        )?;
        Ok(())
    }

    fn container_runs(&self, uid: &str) -> Result<BTreeMap<String, ContainerRun>> {
        let dir = self.config.pod_paths(uid).dir.join("containers");
        let mut runs = BTreeMap::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(runs),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            if let Some(run) = read_json::<ContainerRun>(&entry.path().join("state.json"))? {
                runs.insert(run.name.clone(), run);
            }
        }
        Ok(runs)
    }

    fn collect_garbage(&self, uid: &str) -> Result<()> {
        let trash = self.config.pod_data_dir(uid).join("trash");
        match fs::read_dir(&trash) {
            Ok(entries) => {
                for entry in entries {
                    fsutil::remove_tree(&entry?.path())?;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("reading {}", trash.display())),
        }
    }

    fn remove_sandbox(&self, uid: &str, log_dir: Option<&Path>) -> Result<()> {
        let paths = self.config.pod_paths(uid);
        let sandbox: Option<SandboxConfig> = read_json(&paths.sandbox())?;
        if let Some(info) = read_json::<MonitorInfo>(&paths.monitor())? {
            if info.monitor.alive() {
                if let Err(e) = self.call(uid, &Request::Shutdown) {
                    tracing::warn!(pod = uid, "monitor shutdown: {e:#}");
                }
                let deadline = Instant::now() + Duration::from_secs(10);
                while info.monitor.alive() && Instant::now() < deadline {
                    self.reap_children();
                    std::thread::sleep(Duration::from_millis(2));
                }
                if info.monitor.alive() {
                    let _ = rustix::process::kill_process(
                        rustix::process::Pid::from_raw(info.monitor.pid).expect("pid > 0"),
                        rustix::process::Signal::KILL,
                    );
                }
            }
            if let Some(pause) = info.pause.filter(|p| p.alive()) {
                let _ = rustix::process::kill_process(
                    rustix::process::Pid::from_raw(pause.pid).expect("pid > 0"),
                    rustix::process::Signal::KILL,
                );
            }
        }
        self.reap_children();
        // The pair dies with the pod's namespace, but not at once: delete it now, so a new
        // sandbox of the pod can take the name and no veth outlives its pod.
        if let Some(network) = sandbox.as_ref().map(|s| &s.network) {
            if !network.host_network {
                crate::network::delete_veth(&network.host_veth)?;
            }
        }
        let cgroup = self.config.pod_cgroup(uid);
        let cgroups = crate::cgroup::Cgroups::detect()?;
        cgroups
            .kill_all(&cgroup)
            .with_context(|| format!("killing the processes left in cgroup {cgroup}"))?;
        fsutil::unmount_all_under(&paths.dir)?;
        let data = self.config.pod_data_dir(uid);
        fsutil::unmount_all_under(&data)?;
        cgroups
            .remove(&cgroup)
            .with_context(|| format!("removing cgroup {cgroup}"))?;
        if sandbox.as_ref().is_some_and(|s| s.oci_runtime.is_some()) {
            oci_binary::remove_cgroup_everywhere(&cgroup)?;
        }
        fsutil::remove_tree(&paths.dir)?;
        fsutil::remove_tree(&data)?;
        if let Some(dir) = log_dir {
            fsutil::remove_tree(dir)?;
        }
        Ok(())
    }
}

impl MonitorRuntime {
    /// How child `pid` ended, if it has.
    fn exit_status(&self, pid: u32) -> Option<std::process::ExitStatus> {
        let mut children = self.children.lock().expect("children lock");
        children
            .iter_mut()
            .find(|c| c.id() == pid)
            .and_then(|c| c.try_wait().ok().flatten())
    }
}
