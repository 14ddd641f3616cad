//! Tests against the machine's real cgroups, as root: cgroup v1 on the development machines,
//! cgroup v2 in the test VM (`vm/run.sh -- <test binary> cgroup`). Every test works below a
//! cgroup of its own, `/kelp-test-<pid>-<n>`, which a guard kills and removes even when the
//! test fails. A missing prerequisite fails the test with a message; nothing is skipped.

use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use super::*;

/// A unique test cgroup, killed and removed on drop.
struct TestCgroup {
    cgroups: Cgroups,
    base: String,
}

impl TestCgroup {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        assert!(
            rustix::process::geteuid().is_root(),
            "cgroup tests need root: they create cgroups under {DEFAULT_CGROUP_ROOT}"
        );
        let cgroups = Cgroups::detect().expect("cgroups must be mounted at /sys/fs/cgroup");
        let base = format!(
            "/kelp-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        TestCgroup { cgroups, base }
    }

    fn path(&self, sub: &str) -> String {
        format!("{}{sub}", self.base)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let killed = self.cgroups.kill_all(&self.base);
        let removed = self.cgroups.remove(&self.base);
        if !std::thread::panicking() {
            killed.expect("cleanup: kill_all");
            removed.expect("cleanup: remove");
        } else if let Err(err) = killed.and(removed) {
            eprintln!("cleanup of {} failed: {err}", self.base);
        }
    }
}

/// A child process reaped by a thread of its own, so that a killed one does not linger as
/// a zombie of the test process.
struct Spawned {
    pid: u32,
    waiter: JoinHandle<ExitStatus>,
}

fn spawn(program: &str, args: &[&str]) -> Spawned {
    let mut child = Command::new(program)
        .args(args)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {program} (is it installed?): {err}"));
    Spawned {
        pid: child.id(),
        waiter: std::thread::spawn(move || child.wait().expect("wait")),
    }
}

fn killed_by_sigkill(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[test]
fn detection_agrees_with_mountinfo() {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let from_mountinfo =
        version_from_mountinfo(&mountinfo).expect("no cgroup filesystem is mounted");
    let detected = detect().unwrap();
    assert_eq!(detected, from_mountinfo);
    assert_eq!(Cgroups::detect().unwrap().version(), detected);
    // The test VM (vm/run.sh sets KELP_VM=1) is cgroup v2 only; our machines are hybrid v1.
    let expected = if std::env::var_os("KELP_VM").is_some() {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    };
    assert_eq!(detected, expected, "KELP_VM={:?}", std::env::var("KELP_VM"));
}

#[test]
fn mountinfo_parsing() {
    let hybrid = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    assert_eq!(version_from_mountinfo(hybrid), Some(CgroupVersion::V1));
    let unified =
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(version_from_mountinfo(unified), Some(CgroupVersion::V2));
    assert_eq!(
        version_from_mountinfo("22 1 0:5 / /proc rw - proc proc rw\n"),
        None
    );
}

#[test]
fn invalid_paths_are_rejected() {
    for bad in ["", "/", "/kelp/../etc", ".."] {
        assert!(
            matches!(RelPath::parse(bad), Err(CgroupError::InvalidPath { .. })),
            "{bad:?}"
        );
    }
    assert_eq!(RelPath::parse("kelp//pod-1/").unwrap().text, "/kelp/pod-1");
}

#[test]
fn create_add_list_kill_remove_leaves_nothing() {
    let t = TestCgroup::new();
    let cg = &t.cgroups;
    let pod = t.path("/pod-1");
    let monitor = t.path("/pod-1/monitor");
    let container = t.path("/pod-1/ctr");
    cg.create(&monitor).unwrap();
    cg.create(&container).unwrap();
    cg.create(&container).expect("create is idempotent");
    for dir in cg.dirs(&monitor).unwrap() {
        assert!(dir.is_dir(), "{} missing", dir.display());
    }
    if cg.version() == CgroupVersion::V2 {
        let root = PathBuf::from(DEFAULT_CGROUP_ROOT);
        let offered = read_words(&root.join("cgroup.controllers")).unwrap();
        for parent in [t.path(""), pod.clone()] {
            let enabled =
                read_words(&cg.dirs(&parent).unwrap()[0].join("cgroup.subtree_control")).unwrap();
            for controller in V2_CONTROLLERS.iter().filter(|c| offered.contains(**c)) {
                assert!(
                    enabled.contains(*controller),
                    "{controller} not enabled in {parent}"
                );
            }
        }
        let leaf = read_words(&cg.dirs(&monitor).unwrap()[0].join("cgroup.subtree_control"));
        assert!(
            leaf.unwrap().is_empty(),
            "a leaf must keep no controllers enabled"
        );
    }

    let a = spawn("sleep", &["600"]);
    let b = spawn("sleep", &["600"]);
    cg.add_process(&monitor, a.pid).unwrap();
    cg.add_process(&container, b.pid).unwrap();
    assert_eq!(cg.processes(&monitor, false).unwrap(), vec![a.pid]);
    assert_eq!(cg.processes(&pod, false).unwrap(), Vec::<u32>::new());
    let mut both = vec![a.pid, b.pid];
    both.sort_unstable();
    assert_eq!(cg.processes(&pod, true).unwrap(), both);

    match cg.remove(&pod) {
        Err(CgroupError::Populated { pids, .. }) => assert_eq!(pids, both),
        other => panic!("remove of a populated cgroup: {other:?}"),
    }

    cg.kill_all(&pod).unwrap();
    assert!(cg.processes(&pod, true).unwrap().is_empty());
    assert!(killed_by_sigkill(a.waiter.join().unwrap()));
    assert!(killed_by_sigkill(b.waiter.join().unwrap()));

    cg.remove(&pod).unwrap();
    for dir in cg.dirs(&pod).unwrap() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    cg.remove(&pod).expect("removing an absent cgroup is fine");
    cg.kill_all(&pod)
        .expect("killing in an absent cgroup is fine");
}

#[test]
fn kill_all_with_freezer_kills_forking_processes() {
    // Exercised on v2 too, where kill_all itself would use cgroup.kill.
    let t = TestCgroup::new();
    let cg = &t.cgroups;
    let path = t.path("/forker");
    cg.create(&path).unwrap();
    // A shell that keeps forking children until it is killed.
    let mut sh = Command::new("sh")
        .args(["-c", "read _; while :; do sleep 600 & sleep 0.01; done"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("cannot run sh");
    cg.add_process(&path, sh.id()).unwrap();
    writeln!(sh.stdin.take().unwrap()).unwrap();
    let sh_pid = sh.id();
    let waiter = std::thread::spawn(move || sh.wait().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while cg.processes(&path, false).unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "the shell did not fork");
        thread::sleep(Duration::from_millis(20));
    }
    let rel = RelPath::parse(&path).unwrap();
    cg.kill_with_freezer(&rel).unwrap();
    assert!(cg.processes(&path, true).unwrap().is_empty());
    assert!(killed_by_sigkill(waiter.join().unwrap()), "sh {sh_pid}");
    cg.remove(&path).unwrap();
}

/// Sets a 32 MiB memory limit (no swap) on `path`, directly in cgroupfs.
fn limit_memory(cg: &Cgroups, path: &str) {
    const LIMIT: &str = "33554432";
    match cg.version() {
        CgroupVersion::V2 => {
            let dir = cg.dirs(path).unwrap().remove(0);
            fs::write(dir.join("memory.max"), LIMIT)
                .expect("memory.max: the memory controller must be enabled");
            if dir.join("memory.swap.max").exists() {
                fs::write(dir.join("memory.swap.max"), "0").unwrap();
            }
        }
        CgroupVersion::V1 => {
            let rel = RelPath::parse(path).unwrap();
            let dir = cg
                .v1_dir(ControllerType::Memory, &rel)
                .expect("the memory cgroup hierarchy must be mounted");
            fs::write(dir.join("memory.limit_in_bytes"), LIMIT).unwrap();
            if dir.join("memory.memsw.limit_in_bytes").exists() {
                fs::write(dir.join("memory.memsw.limit_in_bytes"), LIMIT).unwrap();
            }
        }
    }
}

#[test]
fn oom_kill_is_counted() {
    let t = TestCgroup::new();
    let cg = &t.cgroups;
    let path = t.path("/pod/hog");
    cg.create(&path).unwrap();
    limit_memory(cg, &path);
    assert_eq!(cg.oom_kills(&path).unwrap(), 0);

    // `tail` keeps a newline-free input in memory: 200 MiB against a 32 MiB limit.
    let mut sh = Command::new("sh")
        .args(["-c", "read _; head -c 200M /dev/zero | tail"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot run sh");
    cg.add_process(&path, sh.id()).unwrap();
    writeln!(sh.stdin.take().unwrap()).unwrap();
    let status = sh.wait().unwrap();
    assert!(
        !status.success(),
        "the hog should have been killed: {status:?}"
    );

    assert!(cg.oom_kills(&path).unwrap() >= 1);
    assert!(
        cg.oom_kills(&t.path("/pod")).unwrap() >= 1,
        "a parent counts its subtree's OOM kills"
    );
    let stats = cg.stats(&path).unwrap();
    assert_eq!(stats.memory.limit_bytes, Some(32 << 20));
    assert!(stats.oom_kills >= Some(1));
}

#[test]
fn stats_through_libcgroups_and_fallback_agree() {
    let t = TestCgroup::new();
    let cg = &t.cgroups;
    let path = t.path("/busy");
    cg.create(&path).unwrap();
    let mut sh = Command::new("sh")
        .args([
            "-c",
            "read _; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 600",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("cannot run sh");
    cg.add_process(&path, sh.id()).unwrap();
    writeln!(sh.stdin.take().unwrap()).unwrap();
    let waiter = std::thread::spawn(move || sh.wait().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while cg.processes(&path, false).unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the shell never got to sleep");
        thread::sleep(Duration::from_millis(20));
    }
    // Let the shell settle into wait(2).
    thread::sleep(Duration::from_millis(300));

    let rel = RelPath::parse(&path).unwrap();
    let manager = cg.manager(&rel).unwrap();
    let raw = manager.stats();
    assert!(
        raw.is_ok(),
        "libcgroups stats() failed here: {:?}",
        raw.err()
    );
    let stats = cg.stats(&path).unwrap();
    let fallback = match cg.version() {
        CgroupVersion::V1 => stats::read_v1(cg, &rel).unwrap(),
        CgroupVersion::V2 => stats::read_v2(&cg.v2_dir(&rel)).unwrap(),
    };
    assert!(stats.cpu.usage_ns > 0, "{stats:?}");
    assert!(stats.cpu.user_ns + stats.cpu.system_ns > 0, "{stats:?}");
    assert!(
        stats.cpu.user_ns <= stats.cpu.usage_ns * 2,
        "units: {stats:?}"
    );
    assert!(stats.memory.usage_bytes > 0, "{stats:?}");
    assert!(stats.memory.working_set_bytes <= stats.memory.usage_bytes);
    assert_eq!(stats.memory.limit_bytes, None);
    assert_eq!(stats.pids.current, 2);
    assert_eq!(stats.oom_kills, Some(0));
    // The processes sleep now: CPU counters stand still between the two reads.
    assert_eq!(fallback.cpu, stats.cpu);
    assert_eq!(fallback.pids, stats.pids);
    assert_eq!(fallback.memory.limit_bytes, stats.memory.limit_bytes);

    cg.kill_all(&path).unwrap();
    assert!(killed_by_sigkill(waiter.join().unwrap()));
}
