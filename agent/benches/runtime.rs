//! Runtime benchmark: prints each figure beside its target (docs/benchmarks.md).
//!
//! ```sh
//! cargo bench -p kelp-agent --bench runtime                 # smoke size (CI)
//! KELP_BENCH_FULL=1 cargo bench -p kelp-agent --bench runtime
//! ```
//!
//! 1. create + start + wait + delete of `/bin/true`: through kelp's runtime path (spec built from
//!    a Pod, `config.json`, the pod's monitor creating it with libcontainer, exit seen in the
//!    state file, removal) against `crun run` and `runc run` on the same bundle, every run of
//!    each on a fresh overlay root mounted by the same `prepare_rootfs`, interleaved round by
//!    round. Target: kelp ≤ 1.2 × crun. Also printed: kelp's steps, and the ratio without the
//!    overlay root on either side.
//! 2. manifest to Running of a one-container static pod (reported).
//! 3. RSS of the agent and its monitors, idle with 1 pod and with 10 pods (reported).
//!
//! Runs as root, in a private mount namespace without the hybrid host's cgroup2 mount (crun
//! refuses the hybrid layout otherwise); kelp runs under the same conditions.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kelp_agent::image::ImageConfig;
use kelp_agent::runtime::protocol::{self, Request};
use kelp_agent::runtime::spec::{build_spec, EnvLookup, EtcFiles, SpecInput};
use kelp_agent::runtime::{
    fsutil, monitor, ContainerRequest, ContainerRuntime, MonitorRuntime, RuntimeConfig,
    SandboxRequest,
};
use kelp_shared::api::core::{ConfigMap, Pod, Secret};

const AGENT: &str = env!("CARGO_BIN_EXE_kelp-agent");

struct NoRefs;
impl EnvLookup for NoRefs {
    fn config_map(&self, _: &str) -> Option<&ConfigMap> {
        None
    }
    fn secret(&self, _: &str) -> Option<&Secret> {
        None
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A private mount namespace without the hybrid layout's cgroup2 mount.
fn private_mounts() {
    // Deprecated only for CLONE_FILES, which would invalidate open descriptors; not used here.
    #[allow(deprecated)]
    rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNS).expect("unshare(CLONE_NEWNS)");
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )
    .expect("make / private");
    let unified = Path::new("/sys/fs/cgroup/unified");
    if fsutil::mounts_under(unified)
        .unwrap()
        .iter()
        .any(|m| m == unified)
    {
        rustix::mount::unmount(unified, rustix::mount::UnmountFlags::DETACH)
            .expect("unmount the hybrid cgroup2 mount");
    }
}

/// A process's memory in KiB: resident (`VmRSS`, what `ps` and `top` show), its anonymous
/// part (heap and stacks: the process's own), and its proportional share (`Pss`: pages
/// shared with other processes, such as the binary's code the agent and every monitor map,
/// divided among them; summed over processes it counts each page once).
#[derive(Clone, Copy, Default)]
struct Memory {
    rss: u64,
    anon: u64,
    pss: u64,
}

impl std::ops::Add for Memory {
    type Output = Memory;
    fn add(self, o: Memory) -> Memory {
        Memory {
            rss: self.rss + o.rss,
            anon: self.anon + o.anon,
            pss: self.pss + o.pss,
        }
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS {} KiB (anonymous {} KiB), PSS {} KiB",
            self.rss, self.anon, self.pss
        )
    }
}

fn memory(pid: i32) -> Memory {
    let field = |file: &str, name: &str| -> u64 {
        let text = fs::read_to_string(format!("/proc/{pid}/{file}"))
            .unwrap_or_else(|e| panic!("reading /proc/{pid}/{file}: {e}"));
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/{file}"))
    };
    Memory {
        rss: field("status", "VmRSS:"),
        anon: field("status", "RssAnon:"),
        pss: field("smaps_rollup", "Pss:"),
    }
}

fn main() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the runtime benchmark creates containers: run it as root"
    );
    let full = std::env::var_os("KELP_BENCH_FULL").is_some();
    let iterations = if full { 50 } else { 5 };
    println!(
        "kelp-agent runtime benchmark ({} size: {iterations} runs each{})",
        if full { "full" } else { "smoke" },
        if full {
            ""
        } else {
            "; KELP_BENCH_FULL=1 for more"
        }
    );
    private_mounts();
    let base = PathBuf::from(format!("/var/tmp/kelp-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let layer = base.join("layer");
    fs::create_dir_all(&layer).unwrap();
    kelp_agent::image::build::busybox_rootfs(&layer)
        .expect("busybox rootfs (apt-get install busybox-static)");

    let mut config = RuntimeConfig::new(PathBuf::from(AGENT));
    config.state_dir = base.join("state");
    config.log_dir = base.join("logs");
    config.run_dir = PathBuf::from(format!("/run/kelp-bench-{}", std::process::id()));
    config.cgroup_parent = format!("/kelp-bench-{}", std::process::id());
    fsutil::ensure_tmpfs(&config.run_dir).unwrap();
    let runtime = MonitorRuntime::new(config.clone()).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        bench_create(&runtime, &config, &layer, iterations);
        bench_agent(&base, &config, full);
    }));
    for uid in runtime.sandboxes().unwrap_or_default() {
        let _ = runtime.remove_sandbox(&uid, None);
    }
    if let Ok(cg) = kelp_agent::cgroup::Cgroups::detect() {
        let _ = cg.kill_all(&config.cgroup_parent);
        let _ = cg.remove(&config.cgroup_parent);
    }
    // crun and runc also make their cgroups in the v1 `name=systemd` hierarchy, which
    // libcgroups does not manage: remove what they left there (empty directories only).
    remove_empty_tree(
        &Path::new("/sys/fs/cgroup/systemd").join(config.cgroup_parent.trim_start_matches('/')),
    );
    let _ = fsutil::unmount_all_under(&config.run_dir);
    let _ = fs::remove_dir_all(&config.run_dir);
    let _ = fsutil::unmount_all_under(&base);
    let _ = fs::remove_dir_all(&base);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn bench_create(runtime: &MonitorRuntime, config: &RuntimeConfig, layer: &Path, n: usize) {
    let pod: Pod = serde_yaml_ng::from_str(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bench, namespace: default, uid: bench-uid}\nspec:\n  containers:\n  - {name: t, image: busybox, command: [/bin/true]}\n",
    )
    .unwrap();
    let uid = "bench-uid";
    let info = runtime
        .ensure_sandbox(&SandboxRequest {
            uid: uid.into(),
            namespace: "default".into(),
            name: "bench".into(),
            hostname: "bench".into(),
            share_pid: false,
            network: Default::default(),
        })
        .unwrap();
    let paths = config.pod_paths(uid);
    let etc = EtcFiles {
        hosts: paths.etc().join("hosts"),
        resolv_conf: paths.etc().join("resolv.conf"),
        hostname: paths.etc().join("hostname"),
    };
    let namespaces = info.namespaces();
    let volumes = BTreeMap::new();
    let image = ImageConfig::default();
    let container = &pod.spec.as_ref().unwrap().containers[0];
    let rootfs = paths.bundle("t").join("rootfs");
    let cgroup = monitor::container_cgroup(&config.pod_cgroup(uid), "t");
    let bundle = paths.bundle("t");

    // kelp's steps, each timed: fresh root, spec + config.json + monitor request (libcontainer
    // create and start), exit recorded by the monitor, removal.
    let kelp = |attempt: u32, steps: &mut [Vec<Duration>; 4]| {
        let t0 = Instant::now();
        runtime.prepare_rootfs(uid, "t", &[layer]).unwrap();
        let t1 = Instant::now();
        let spec = build_spec(&SpecInput {
            pod: &pod,
            container,
            field_path: "spec.containers[0]".into(),
            image: &image,
            rootfs: &rootfs,
            namespaces: &namespaces,
            cgroups_path: cgroup.clone(),
            etc_files: &etc,
            volumes: &volumes,
            lookup: &NoRefs,
            node_name: "bench",
            node_allocatable: None,
            pod_ip: None,
            host_ip: None,
            pids_limit: Some(1024),
        })
        .unwrap();
        let pid = runtime
            .run_container(ContainerRequest {
                uid,
                name: "t",
                attempt,
                spec,
                log: config.log_dir.join("bench/t.log"),
                probes: Vec::new(),
            })
            .unwrap();
        let t2 = Instant::now();
        // Wait on the process itself (no polling interval; it may be gone already), then for
        // the monitor's record of its exit, which `Remove` needs.
        if let Ok(fd) = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid).unwrap(),
            rustix::process::PidfdFlags::empty(),
        ) {
            let mut fds = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::IN,
            )];
            let _ = rustix::event::poll(&mut fds, None);
        }
        loop {
            let runs = runtime.container_runs(uid).unwrap();
            if let Some(exit) = runs.get("t").and_then(|r| r.exit.clone()) {
                assert_eq!(exit.code, 0, "/bin/true failed in the kelp path");
                break;
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        let t3 = Instant::now();
        protocol::call(
            &paths.socket(),
            &Request::Remove { name: "t".into() },
            Duration::from_secs(30),
        )
        .unwrap();
        let t4 = Instant::now();
        for (v, d) in steps.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) {
            v.push(d);
        }
        t4 - t0
    };
    // crun and runc on the very bundle kelp wrote (same config.json, joining the same sandbox
    // namespaces), each run on a fresh overlay root made by the same `prepare_rootfs`.
    let tools: Vec<(&str, PathBuf)> = ["crun", "runc"]
        .into_iter()
        .map(|tool| match which(tool) {
            Ok(path) => (tool, path),
            Err(()) => panic!("{tool} is not installed: apt-get install {tool}"),
        })
        .collect();
    let oci = |tool: &str, path: &Path, i: usize| {
        let id = format!("kelp-bench-{tool}-{}-{i}", std::process::id());
        let t0 = Instant::now();
        runtime.prepare_rootfs(uid, "t", &[layer]).unwrap();
        let rooted = t0.elapsed();
        let status = Command::new(path)
            .args([
                "--root",
                &format!("/run/kelp-bench-{tool}-{}", std::process::id()),
            ])
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let elapsed = t0.elapsed();
        assert!(
            status.status.success(),
            "{tool} run failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        (elapsed, elapsed - rooted)
    };
    // Interleaved: round i runs every contender once, starting with a different one each
    // round, so a change of load on the machine hits all of them alike. Round 0 (kelp first:
    // it writes config.json) warms caches and is not counted.
    let contenders = 1 + tools.len();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); contenders];
    // The same without the overlay root, for the strictest comparison.
    let mut rootless: Vec<Vec<Duration>> = vec![Vec::new(); contenders];
    let mut kelp_steps: [Vec<Duration>; 4] = Default::default();
    let mut warm_up_steps: [Vec<Duration>; 4] = Default::default();
    for i in 0..n + 1 {
        for k in 0..contenders {
            let c = (i + k) % contenders;
            let d = if c == 0 {
                let steps = if i > 0 {
                    &mut kelp_steps
                } else {
                    &mut warm_up_steps
                };
                let total = kelp(i as u32, steps);
                (total, total - *steps[0].last().expect("a step was timed"))
            } else {
                let (tool, path) = &tools[c - 1];
                oci(tool, path, i)
            };
            if i > 0 {
                times[c].push(d.0);
                rootless[c].push(d.1);
            }
            // The agent's loop deletes ended runs' writable layers off the start path.
            runtime.collect_garbage(uid).unwrap();
        }
    }
    for (tool, _) in &tools {
        let _ = fs::remove_dir_all(format!("/run/kelp-bench-{tool}-{}", std::process::id()));
    }
    fsutil::unmount_all_under(&bundle).unwrap();
    let mut figures = vec![("kelp (monitor + libcontainer)", median(times[0].clone()))];
    for (c, (tool, _)) in tools.iter().enumerate() {
        figures.push((tool, median(times[c + 1].clone())));
    }
    let crun = figures[1].1;
    println!(
        "create + start + wait + delete of /bin/true on a fresh overlay root, median of {n} \
         interleaved rounds (load average {}):",
        loadavg()
    );
    for (name, d) in &figures {
        println!(
            "  {name:<32} {:>10}   {:.2}x crun",
            ms(*d),
            d.as_secs_f64() / crun.as_secs_f64()
        );
    }
    let labels = [
        "overlay root",
        "spec, config.json, create + start",
        "exit recorded",
        "removal",
    ];
    let parts: Vec<String> = labels
        .iter()
        .zip(kelp_steps)
        .map(|(label, v)| format!("{label} {}", ms(median(v))))
        .collect();
    println!("  kelp's steps (medians): {}", parts.join(", "));
    let (kelp_bare, crun_bare) = (median(rootless[0].clone()), median(rootless[1].clone()));
    println!(
        "  without the overlay root on either side: kelp {}, crun {} = {:.2}x (reported)",
        ms(kelp_bare),
        ms(crun_bare),
        kelp_bare.as_secs_f64() / crun_bare.as_secs_f64()
    );
    let ratio = figures[0].1.as_secs_f64() / crun.as_secs_f64();
    println!(
        "  kelp / crun = {ratio:.2} (target <= 1.20): {}",
        if ratio <= 1.2 { "met" } else { "MISSED" }
    );
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn which(tool: &str) -> Result<PathBuf, ()> {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
        .ok_or(())
}

fn bench_agent(base: &Path, config: &RuntimeConfig, full: bool) {
    // A node of its own: image imported, agent relisting every 100 ms.
    let node = base.join("node");
    let manifests = node.join("manifests");
    fs::create_dir_all(&manifests).unwrap();
    let rootfs = node.join("rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    kelp_agent::image::build::busybox_rootfs(&rootfs).unwrap();
    let dirs = |cmd: &mut Command| {
        cmd.arg("--state-dir")
            .arg(node.join("state"))
            .arg("--run-dir")
            .arg(config.run_dir.join("node"))
            .arg("--log-dir")
            .arg(node.join("logs"));
    };
    let tar = node.join("busybox.tar");
    let mut build = Command::new(AGENT);
    build
        .args(["image", "build"])
        .arg(&rootfs)
        .arg("-o")
        .arg(&tar);
    build.args(["--reference", "bench/busybox:1"]);
    assert!(build.status().unwrap().success());
    let mut import = Command::new(AGENT);
    import.args(["image", "import"]).arg(&tar);
    dirs(&mut import);
    assert!(import.stdout(Stdio::null()).status().unwrap().success());

    let mut run = Command::new(AGENT);
    run.arg("run").arg("--manifests").arg(&manifests);
    run.args([
        "--node-name",
        "bench",
        "--sync-period-ms",
        "100",
        "--cgroup-parent",
    ]);
    run.arg(format!("{}/node", config.cgroup_parent));
    // A bridge of this run's own (not the default kelp0 a node would use), removed when the
    // benchmark ends, however it ends.
    let bridge = Bridge(format!("kbench{}", std::process::id()));
    run.args(["--bridge", &bridge.0]);
    dirs(&mut run);
    let mut agent = run.stderr(Stdio::null()).spawn().unwrap();
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - {{name: c, image: bench/busybox:1, command: [sleep, '3600']}}\n"
        )
    };
    let running = |count: usize| -> bool {
        let out = {
            let mut c = Command::new(AGENT);
            c.args(["pods", "-o", "json"]);
            dirs(&mut c);
            c.output().unwrap()
        };
        let pods: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        pods.iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
            >= count
    };
    let t0 = Instant::now();
    fs::write(manifests.join("p0.yaml"), pod("p0")).unwrap();
    while !running(1) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "static pod never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let to_running = t0.elapsed();
    println!(
        "manifest to Running, one-container static pod: {} (relist period 100 ms; reported)",
        ms(to_running)
    );
    let monitors = || -> Vec<i32> {
        let mut pids = Vec::new();
        for e in fs::read_dir(config.run_dir.join("node/pods")).unwrap() {
            let p = e.unwrap().path().join("monitor.json");
            if let Ok(Some(info)) =
                kelp_agent::runtime::state::read_json::<kelp_agent::runtime::state::MonitorInfo>(&p)
            {
                pids.push(info.monitor.pid);
            }
        }
        pids
    };
    std::thread::sleep(Duration::from_secs(2));
    let report = |label: &str| {
        let m = monitors();
        let agent_mem = memory(agent.id() as i32);
        let mons: Vec<Memory> = m.iter().map(|&p| memory(p)).collect();
        let mons_total = mons.iter().fold(Memory::default(), |a, &b| a + b);
        println!(
            "memory {label}: agent {agent_mem} (budget: single-digit MiB); {} monitors {mons_total} (each ~{}); \
             all kelp processes PSS {:.1} MiB",
            m.len(),
            mons.first().copied().unwrap_or_default(),
            (agent_mem.pss + mons_total.pss) as f64 / 1024.0
        );
    };
    report("idle, 1 pod");
    for i in 1..10 {
        fs::write(manifests.join(format!("p{i}.yaml")), pod(&format!("p{i}"))).unwrap();
    }
    let t1 = Instant::now();
    while !running(10) {
        assert!(
            t1.elapsed() < Duration::from_secs(if full { 120 } else { 300 }),
            "10 pods never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    report("idle, 10 pods");
    let _ = agent.kill();
    let _ = agent.wait();
    let rt = {
        let mut c = config.clone();
        c.run_dir = config.run_dir.join("node");
        c.state_dir = node.join("state");
        c.log_dir = node.join("logs");
        c.cgroup_parent = format!("{}/node", config.cgroup_parent);
        MonitorRuntime::new(c).unwrap()
    };
    for uid in rt.sandboxes().unwrap() {
        rt.remove_sandbox(&uid, None).unwrap();
    }
}

/// The agent's pod bridge and its nftables table, removed on drop.
struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &format!("kelp_{}", self.0)])
            .stderr(Stdio::null())
            .status();
    }
}

/// Removes a tree of empty directories, deepest first (cgroup directories hold only
/// kernel files, which `rmdir` takes with them).
fn remove_empty_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}
