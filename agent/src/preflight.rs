//! Preflight checks of the node: cgroups, memory controller, overlayfs, namespaces, root.
//!
//! [`run`] inspects the machine through the roots in [`Env`] (so tests point them at a fake
//! tree) and returns a [`Report`]: one line per problem, each either
//! [`Severity::Blocking`] (the agent refuses to start: no cgroups, no overlayfs, missing
//! namespaces, not root) or [`Severity::Warning`] (pods run, with a stated loss, such as no
//! memory limits while the memory controller is off).
//!
//! The Raspberry Pi case is the reason this exists: Raspberry Pi OS boots with the memory
//! controller disabled, and the fix is one edit of `cmdline.txt` plus a reboot, which the
//! report spells out with the file that exists on that image.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::cgroup::{version_from_mountinfo, CgroupVersion};

/// Kernel parameters that turn the memory controller on, on a Raspberry Pi.
pub const PI_MEMORY_PARAMS: &str = "cgroup_enable=memory cgroup_memory=1";

/// Where the machine's state is read from. [`Env::host`] is the real machine.
#[derive(Debug, Clone)]
pub struct Env {
    /// procfs (`/proc`).
    pub proc: PathBuf,
    /// sysfs (`/sys`); cgroups are read at `<sys>/fs/cgroup`.
    pub sys: PathBuf,
    /// Directories that may hold a Raspberry Pi `cmdline.txt`, preferred first
    /// (`/boot/firmware` since Bookworm, `/boot` on older images).
    pub boot_dirs: Vec<PathBuf>,
    /// Kernel modules (`/lib/modules`), to tell a loadable overlay module from none.
    pub lib_modules: PathBuf,
    /// Effective user id of the agent.
    pub uid: u32,
}

impl Env {
    /// The running machine.
    pub fn host() -> Self {
        Env {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
            boot_dirs: vec![PathBuf::from("/boot/firmware"), PathBuf::from("/boot")],
            lib_modules: PathBuf::from("/lib/modules"),
            uid: rustix::process::geteuid().as_raw(),
        }
    }
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The agent cannot work: it refuses to start.
    Blocking,
    /// Pods run, with the loss the message states.
    Warning,
}

/// One problem, printed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Blocking => "error",
            Severity::Warning => "warning",
        };
        write!(f, "preflight: {level}: {}", self.message)
    }
}

/// The outcome of [`run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The cgroup version found, if cgroups are mounted at all.
    pub cgroup_version: Option<CgroupVersion>,
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when at least one problem forbids starting the agent.
    pub fn blocking(&self) -> bool {
        self.problems
            .iter()
            .any(|p| p.severity == Severity::Blocking)
    }

    /// Prints the problems to stderr, one line each (`preflight: error: …`,
    /// `preflight: warning: …`).
    pub fn print(&self) {
        eprint!("{self}");
    }

    fn blocking_problem(&mut self, message: String) {
        self.problems.push(Problem {
            severity: Severity::Blocking,
            message,
        });
    }

    fn warning(&mut self, message: String) {
        self.problems.push(Problem {
            severity: Severity::Warning,
            message,
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Runs every check against `env`.
pub fn run(env: &Env) -> Report {
    let mut report = Report::default();
    check_root(env, &mut report);
    check_cgroups(env, &mut report);
    check_overlay(env, &mut report);
    check_namespaces(env, &mut report);
    report
}

fn check_root(env: &Env, report: &mut Report) {
    if env.uid != 0 {
        report.blocking_problem(format!(
            "kelp-agent must run as root (it runs as uid {}): creating containers, cgroups \
             and network namespaces needs it",
            env.uid
        ));
    }
}

fn check_cgroups(env: &Env, report: &mut Report) {
    let mountinfo = fs::read_to_string(env.proc.join("self/mountinfo")).unwrap_or_default();
    let Some(version) = version_from_mountinfo(&mountinfo) else {
        report.blocking_problem(
            "no cgroup filesystem is mounted at /sys/fs/cgroup: containers cannot be run \
             without cgroups (mount cgroup2 there, as systemd does)"
                .to_owned(),
        );
        return;
    };
    report.cgroup_version = Some(version);
    let controllers = match version {
        CgroupVersion::V1 => v1_controllers(&env.proc),
        CgroupVersion::V2 => words(&env.sys.join("fs/cgroup/cgroup.controllers")),
    };
    let has = |name: &str| controllers.iter().any(|c| c == name);

    if !has("memory") {
        report.warning(format!(
            "the memory cgroup controller is disabled: pods start, but their memory limits \
             are not enforced and OOM kills are not reported; {}",
            memory_fix(env)
        ));
    }
    if !has("cpu") {
        report.warning(
            "the cpu cgroup controller is not available: pods start, but their CPU requests \
             and limits are not enforced"
                .to_owned(),
        );
    }
    if !has("pids") {
        report.warning(
            "the pids cgroup controller is not available: pods start, but a fork bomb in a \
             pod can exhaust the node's process table"
                .to_owned(),
        );
    }
}

/// v1 controllers that are enabled and mounted, from `/proc/cgroups`
/// (`subsys_name hierarchy num_cgroups enabled`).
fn v1_controllers(proc: &Path) -> Vec<String> {
    let text = fs::read_to_string(proc.join("cgroups")).unwrap_or_default();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields[..] {
                [name, hierarchy, _, "1"] if hierarchy != "0" => Some(name.to_owned()),
                _ => None,
            }
        })
        .collect()
}

/// The exact fix for a disabled memory controller on this machine.
fn memory_fix(env: &Env) -> String {
    let cmdline = env
        .boot_dirs
        .iter()
        .map(|dir| dir.join("cmdline.txt"))
        .find(|file| file.is_file());
    let model = fs::read_to_string(env.proc.join("device-tree/model")).unwrap_or_default();
    let is_pi = model.contains("Raspberry Pi") || cmdline.is_some();
    if !is_pi {
        return "to fix: add `cgroup_enable=memory` to the kernel command line (and remove \
                any `cgroup_disable=memory`), then reboot"
            .to_owned();
    }
    match cmdline {
        Some(file) => {
            let current = fs::read_to_string(&file).unwrap_or_default();
            if current.contains("cgroup_enable=memory") {
                format!(
                    "to fix: {} already has `cgroup_enable=memory`: reboot to apply it",
                    file.display()
                )
            } else {
                format!(
                    "to fix: append ` {PI_MEMORY_PARAMS}` to the single line of {}, then reboot",
                    file.display()
                )
            }
        }
        None => format!(
            "to fix: append ` {PI_MEMORY_PARAMS}` to the single line of cmdline.txt on the \
             boot partition (/boot/firmware/cmdline.txt, or /boot/cmdline.txt on older \
             images), then reboot"
        ),
    }
}

fn check_overlay(env: &Env, report: &mut Report) {
    let filesystems = fs::read_to_string(env.proc.join("filesystems")).unwrap_or_default();
    let loaded = filesystems
        .lines()
        .any(|line| line.split_whitespace().last() == Some("overlay"));
    if loaded {
        return;
    }
    let release = fs::read_to_string(env.proc.join("sys/kernel/osrelease")).unwrap_or_default();
    let modules = env.lib_modules.join(release.trim());
    let loadable = fs::read_dir(modules.join("kernel/fs/overlayfs"))
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("overlay.ko"))
        })
        .unwrap_or(false);
    if loadable {
        report.warning(
            "the overlay filesystem is not loaded yet (its module exists and loads on first \
             use); to load it now and at every boot: `modprobe overlay && echo overlay > \
             /etc/modules-load.d/kelp.conf`"
                .to_owned(),
        );
    } else {
        report.blocking_problem(
            "the kernel has no overlay filesystem (CONFIG_OVERLAY_FS, `modprobe overlay` \
             finds no module): container images cannot be mounted"
                .to_owned(),
        );
    }
}

/// The namespaces every pod uses.
const NAMESPACES: [&str; 5] = ["mnt", "uts", "ipc", "pid", "net"];

fn check_namespaces(env: &Env, report: &mut Report) {
    let ns = env.proc.join("self/ns");
    let missing: Vec<&str> = NAMESPACES
        .into_iter()
        .filter(|name| fs::symlink_metadata(ns.join(name)).is_err())
        .collect();
    if !missing.is_empty() {
        report.blocking_problem(format!(
            "the kernel lacks namespaces pods need: {} (see {})",
            missing.join(", "),
            ns.display()
        ));
    }
}

fn words(file: &Path) -> Vec<String> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V2_MOUNTINFO: &str =
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    const PROC_CGROUPS: &str = "\
#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t1\t1
cpu\t1\t1\t1
cpuacct\t2\t1\t1
memory\t4\t58\t1
pids\t8\t1\t1
";
    const FILESYSTEMS: &str = "nodev\tsysfs\nnodev\tproc\nnodev\tcgroup2\n\text4\nnodev\toverlay\n";
    const PI_MODEL: &str = "Raspberry Pi 4 Model B Rev 1.4\0";
    const PI_CMDLINE: &str = "console=serial0,115200 console=tty1 root=PARTUUID=1-02 rootwait\n";

    /// A fake machine in a temporary directory: healthy until a test breaks something.
    struct Fake {
        dir: tempfile::TempDir,
        env: Env,
    }

    impl Fake {
        fn new(version: CgroupVersion) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            let env = Env {
                proc: root.join("proc"),
                sys: root.join("sys"),
                boot_dirs: vec![root.join("boot/firmware"), root.join("boot")],
                lib_modules: root.join("lib/modules"),
                uid: 0,
            };
            let fake = Fake { dir, env };
            match version {
                CgroupVersion::V1 => {
                    fake.write("proc/self/mountinfo", V1_MOUNTINFO);
                    fake.write("proc/cgroups", PROC_CGROUPS);
                }
                CgroupVersion::V2 => {
                    fake.write("proc/self/mountinfo", V2_MOUNTINFO);
                    // On v2 the hierarchy column is 0: it must not be read.
                    fake.write("proc/cgroups", &PROC_CGROUPS.replace("\t4\t", "\t0\t"));
                    fake.write(
                        "sys/fs/cgroup/cgroup.controllers",
                        "cpuset cpu io memory hugetlb pids rdma misc\n",
                    );
                }
            }
            fake.write("proc/filesystems", FILESYSTEMS);
            fake.write("proc/sys/kernel/osrelease", "6.6.51+rpt-rpi-v8\n");
            for ns in NAMESPACES {
                fake.write(&format!("proc/self/ns/{ns}"), "");
            }
            fake
        }

        fn write(&self, rel: &str, text: &str) {
            let path = self.dir.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        fn remove(&self, rel: &str) {
            fs::remove_file(self.dir.path().join(rel)).unwrap();
        }

        fn root(&self) -> &Path {
            self.dir.path()
        }

        /// A Raspberry Pi with the memory controller disabled (the Raspberry Pi OS default).
        fn pi_without_memory(version: CgroupVersion) -> Self {
            let fake = Fake::new(version);
            fake.write("proc/device-tree/model", PI_MODEL);
            match version {
                CgroupVersion::V1 => fake.write(
                    "proc/cgroups",
                    &PROC_CGROUPS.replace("memory\t4\t58\t1", "memory\t0\t1\t0"),
                ),
                CgroupVersion::V2 => fake.write(
                    "sys/fs/cgroup/cgroup.controllers",
                    "cpuset cpu io pids rdma misc\n",
                ),
            }
            fake
        }
    }

    fn lines(report: &Report) -> Vec<String> {
        report.problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn healthy_v1() {
        let report = run(&Fake::new(CgroupVersion::V1).env);
        assert_eq!(report.problems, vec![], "{report}");
        assert_eq!(report.cgroup_version, Some(CgroupVersion::V1));
        assert!(!report.blocking());
    }

    #[test]
    fn healthy_v2() {
        let report = run(&Fake::new(CgroupVersion::V2).env);
        assert_eq!(report.problems, vec![], "{report}");
        assert_eq!(report.cgroup_version, Some(CgroupVersion::V2));
    }

    #[test]
    fn pi_without_memory_controller_names_boot_firmware_cmdline() {
        for version in [CgroupVersion::V1, CgroupVersion::V2] {
            let fake = Fake::pi_without_memory(version);
            fake.write("boot/firmware/cmdline.txt", PI_CMDLINE);
            fake.write(
                "boot/cmdline.txt",
                "# moved to /boot/firmware/cmdline.txt\n",
            );
            let report = run(&fake.env);
            let file = fake.root().join("boot/firmware/cmdline.txt");
            assert_eq!(
                lines(&report),
                vec![format!(
                    "preflight: warning: the memory cgroup controller is disabled: pods \
                     start, but their memory limits are not enforced and OOM kills are not \
                     reported; to fix: append ` cgroup_enable=memory cgroup_memory=1` to the \
                     single line of {}, then reboot",
                    file.display()
                )],
                "{version}"
            );
            assert!(!report.blocking());
        }
    }

    #[test]
    fn older_pi_image_uses_boot_cmdline() {
        let fake = Fake::pi_without_memory(CgroupVersion::V1);
        fake.remove("proc/device-tree/model");
        fake.write("boot/cmdline.txt", PI_CMDLINE);
        let report = run(&fake.env);
        assert_eq!(report.problems.len(), 1, "{report}");
        let message = &report.problems[0].message;
        let file = fake.root().join("boot/cmdline.txt");
        assert!(
            message.contains(&format!(
                "` cgroup_enable=memory cgroup_memory=1` to the single line of {}, then reboot",
                file.display()
            )),
            "{message}"
        );
    }

    #[test]
    fn pi_with_params_already_in_cmdline_needs_a_reboot() {
        let fake = Fake::pi_without_memory(CgroupVersion::V2);
        fake.write(
            "boot/firmware/cmdline.txt",
            &PI_CMDLINE.replace('\n', " cgroup_enable=memory cgroup_memory=1\n"),
        );
        let report = run(&fake.env);
        assert!(
            report.problems[0].message.ends_with("reboot to apply it"),
            "{report}"
        );
    }

    #[test]
    fn memory_controller_off_elsewhere_gives_the_generic_fix() {
        let fake = Fake::new(CgroupVersion::V2);
        fake.write("sys/fs/cgroup/cgroup.controllers", "cpu io pids\n");
        let report = run(&fake.env);
        assert_eq!(report.problems.len(), 1, "{report}");
        assert!(report.problems[0]
            .message
            .contains("add `cgroup_enable=memory` to the kernel"));
    }

    #[test]
    fn missing_cpu_and_pids_controllers_are_warnings() {
        let fake = Fake::new(CgroupVersion::V2);
        fake.write("sys/fs/cgroup/cgroup.controllers", "memory io\n");
        let report = run(&fake.env);
        assert_eq!(report.problems.len(), 2, "{report}");
        assert!(!report.blocking());
    }

    #[test]
    fn no_overlay_is_blocking() {
        let fake = Fake::new(CgroupVersion::V1);
        fake.write(
            "proc/filesystems",
            &FILESYSTEMS.replace("nodev\toverlay\n", ""),
        );
        let report = run(&fake.env);
        assert!(report.blocking());
        assert_eq!(report.problems.len(), 1, "{report}");
        assert!(lines(&report)[0].starts_with("preflight: error: the kernel has no overlay"));
    }

    #[test]
    fn loadable_overlay_module_is_a_warning() {
        let fake = Fake::new(CgroupVersion::V1);
        fake.write(
            "proc/filesystems",
            &FILESYSTEMS.replace("nodev\toverlay\n", ""),
        );
        fake.write(
            "lib/modules/6.6.51+rpt-rpi-v8/kernel/fs/overlayfs/overlay.ko.xz",
            "",
        );
        let report = run(&fake.env);
        assert!(!report.blocking(), "{report}");
        assert!(report.problems[0].message.contains("modprobe overlay"));
    }

    #[test]
    fn not_root_is_blocking() {
        let mut fake = Fake::new(CgroupVersion::V2);
        fake.env.uid = 1000;
        let report = run(&fake.env);
        assert!(report.blocking());
        assert_eq!(report.problems.len(), 1, "{report}");
        assert!(lines(&report)[0].contains("must run as root (it runs as uid 1000)"));
    }

    #[test]
    fn missing_namespaces_and_mounts_are_blocking() {
        let fake = Fake::new(CgroupVersion::V1);
        fake.remove("proc/self/ns/net");
        fake.remove("proc/self/ns/pid");
        fake.write(
            "proc/self/mountinfo",
            "22 1 0:5 / /proc rw - proc proc rw\n",
        );
        let report = run(&fake.env);
        assert_eq!(report.cgroup_version, None);
        let lines = lines(&report);
        assert_eq!(lines.len(), 2, "{report}");
        assert!(lines[0].starts_with("preflight: error: no cgroup filesystem"));
        assert!(
            lines[1].contains("namespaces pods need: pid, net"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn this_machine_has_no_blocking_problem() {
        let report = run(&Env::host());
        report.print();
        assert!(!report.blocking(), "{report}");
        assert!(report.cgroup_version.is_some());
    }
}
