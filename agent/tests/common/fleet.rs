//! A fleet on one machine for end-to-end tests of the MQTT link: a LAN (a bridge in the root
//! network namespace holding the broker's address), "test hosts" (network namespaces joined
//! to it by veth pairs), each running a real `kelp-agent` with its own directories, cgroup
//! parent and pod bridge, a real `kelp server`, and a real Mosquitto. Every name carries the
//! test's tag and the process id, so runs side by side do not meet; everything is removed on
//! drop, also when the test failed. (A test declares it beside `common`:
//! `#[path = "common/fleet.rs"] mod fleet;`.)
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{kelp_bin, Node, AGENT, BUSYBOX, TEST_EVICTION_HARD};

/// Runs a command that must succeed; returns its stdout.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (iproute2, nftables and util-linux are needed)",
                args[0]
            )
        });
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn short_pid() -> u32 {
    std::process::id() % 100_000
}

/// Fails loudly unless the tools the fleet tests use are installed.
pub fn require_tools() {
    for (tool, arg, package) in [
        ("ip", "-V", "iproute2"),
        ("nft", "--version", "nftables"),
        ("nsenter", "--version", "util-linux"),
        ("mosquitto", "-h", "mosquitto"),
        ("mosquitto_passwd", "-h", "mosquitto"),
    ] {
        assert!(
            Command::new(tool).arg(arg).output().is_ok(),
            "{tool} is missing: apt-get install {package}"
        );
    }
}

/// Polls `check` every 100 ms until it gives Some; panics after `timeout` with `what` and
/// the output of `context`.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The test's LAN: bridge `kf<tag><pid>` in the root namespace with `10.L.S.1/24`, where L
/// comes from the process id and S is the test's subnet number.
pub struct Lan {
    pub bridge: String,
    pub net: [u8; 3],
}

impl Lan {
    pub fn new(tag: char, subnet: u8) -> Self {
        require_tools();
        let lan = Self {
            bridge: format!("kf{tag}{}", short_pid()),
            net: [10, (50 + std::process::id() % 50) as u8, subnet],
        };
        quiet(&["ip", "link", "del", &lan.bridge]);
        run(&["ip", "link", "add", &lan.bridge, "type", "bridge"]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", lan.gateway()),
            "dev",
            &lan.bridge,
        ]);
        run(&["ip", "link", "set", &lan.bridge, "up"]);
        lan
    }

    /// The LAN's address in the root namespace (where the brokers listen).
    pub fn gateway(&self) -> Ipv4Addr {
        self.ip(1)
    }

    pub fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], host)
    }

    /// A TCP port free on the gateway address now.
    pub fn free_port(&self) -> u16 {
        TcpListener::bind((self.gateway(), 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        quiet(&["ip", "link", "del", &self.bridge]);
    }
}

/// A test host: network namespace `kelp-fleet-<tag><i>-<pid>` whose `eth0` (`10.L.S.(10+i)`)
/// is one end of a veth pair; the other end (`kf<tag><i>h<pid>`) is on the LAN bridge.
pub struct Host {
    pub netns: String,
    pub veth: String,
    pub ip: Ipv4Addr,
}

impl Host {
    pub fn new(lan: &Lan, tag: char, index: u8) -> Self {
        let host = Self {
            netns: format!("kelp-fleet-{tag}{index}-{}", std::process::id()),
            veth: format!("kf{tag}{index}h{}", short_pid()),
            ip: lan.ip(10 + index),
        };
        host.remove();
        run(&["ip", "netns", "add", &host.netns]);
        run(&[
            "ip",
            "link",
            "add",
            &host.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &host.netns,
        ]);
        run(&["ip", "link", "set", &host.veth, "master", &lan.bridge]);
        run(&["ip", "link", "set", &host.veth, "up"]);
        host.ip_cmd(&["addr", "add", &format!("{}/24", host.ip), "dev", "eth0"]);
        host.ip_cmd(&["link", "set", "eth0", "up"]);
        host.ip_cmd(&["link", "set", "lo", "up"]);
        host.ip_cmd(&["route", "add", "default", "via", &lan.gateway().to_string()]);
        host
    }

    /// `ip -n NETNS ARGS`.
    pub fn ip_cmd(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "-n", &self.netns];
        all.extend_from_slice(args);
        run(&all)
    }

    /// A command run in the host's network namespace (only that namespace: the mounts and
    /// cgroups are the machine's, as the agent's are).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.netns))
            .arg("--")
            .arg(program);
        c
    }

    pub fn nft(&self, args: &[&str]) -> String {
        let out = self.command("nft").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "nft {args:?} in {}: {}",
            self.netns,
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Cuts the host's link: its LAN end goes down, so nothing passes either way and no
    /// peer learns of it (no RST, no FIN).
    pub fn cut(&self) {
        run(&["ip", "link", "set", &self.veth, "down"]);
    }

    pub fn restore(&self) {
        run(&["ip", "link", "set", &self.veth, "up"]);
    }

    fn remove(&self) {
        quiet(&["ip", "netns", "del", &self.netns]);
        quiet(&["ip", "link", "del", &self.veth]);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A Mosquitto broker on the LAN's address with password authentication: user
/// `kelp-controller` (password `controller-secret`), and nodes added with [`Mosquitto::add_user`].
pub struct Mosquitto {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    child: Option<Child>,
}

pub const MOSQUITTO_CONTROLLER: (&str, &str) = ("kelp-controller", "controller-secret");

impl Mosquitto {
    pub fn start(lan: &Lan, tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("kelp-fleet-mqtt-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let addr = SocketAddr::from((lan.gateway(), lan.free_port()));
        let mut broker = Self {
            dir,
            addr,
            child: None,
        };
        let passwd = broker.dir.join("passwd");
        let out = Command::new("mosquitto_passwd")
            .arg("-c")
            .arg("-b")
            .arg(&passwd)
            .args([MOSQUITTO_CONTROLLER.0, MOSQUITTO_CONTROLLER.1])
            .output()
            .unwrap();
        assert!(out.status.success(), "mosquitto_passwd: {out:?}");
        fs::write(
            broker.dir.join("mosquitto.conf"),
            format!(
                "listener {} {}\nallow_anonymous false\npassword_file {}\npersistence false\nlog_type all\nlog_timestamp_format %H:%M:%S\n",
                addr.port(),
                addr.ip(),
                passwd.display()
            ),
        )
        .unwrap();
        // mosquitto drops root for user `mosquitto` unless told otherwise: keep its files
        // readable.
        fs::set_permissions(&broker.dir, fs::Permissions::from_mode(0o755)).unwrap();
        broker.resume();
        broker
    }

    /// A Mosquitto whose password and ACL files `kelp server` keeps (`--mosquitto-passwd`,
    /// `--mosquitto-acl`: [`Mosquitto::managed_args`]). The files start with the controller
    /// alone, as an operator would install them before the server's first start.
    pub fn start_managed(lan: &Lan, tag: &str) -> Self {
        let mut broker = Self::start(lan, tag);
        broker.stop();
        fs::write(
            broker.dir.join("acl"),
            format!(
                "user {}\ntopic readwrite kelp/v1/#\n",
                MOSQUITTO_CONTROLLER.0
            ),
        )
        .unwrap();
        let conf = broker.dir.join("mosquitto.conf");
        let mut text = fs::read_to_string(&conf).unwrap();
        text.push_str(&format!("acl_file {}\n", broker.dir.join("acl").display()));
        fs::write(&conf, text).unwrap();
        broker.resume();
        broker
    }

    /// `kelp server`'s flags to keep this broker's files.
    pub fn managed_args(&self) -> Vec<String> {
        vec![
            "--mqtt-url".to_string(),
            self.controller_url(),
            "--mosquitto-passwd".to_string(),
            self.dir.join("passwd").display().to_string(),
            "--mosquitto-acl".to_string(),
            self.dir.join("acl").display().to_string(),
        ]
    }

    /// The controller's `--mqtt-url`.
    pub fn controller_url(&self) -> String {
        format!(
            "mqtt://{}:{}@{}",
            MOSQUITTO_CONTROLLER.0, MOSQUITTO_CONTROLLER.1, self.addr
        )
    }

    /// Adds (or changes) a user, and has the running broker reload its password file.
    pub fn add_user(&self, user: &str, password: &str) {
        let out = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(self.dir.join("passwd"))
            .args([user, password])
            .output()
            .unwrap();
        assert!(out.status.success(), "mosquitto_passwd: {out:?}");
        if let Some(child) = &self.child {
            run(&["kill", "-HUP", &child.id().to_string()]);
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    pub fn resume(&mut self) {
        assert!(self.child.is_none());
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("mosquitto.log"))
            .unwrap();
        self.child = Some(
            Command::new("mosquitto")
                .arg("-c")
                .arg(self.dir.join("mosquitto.conf"))
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start listening on {}:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A `kelp server`: started with [`Server::start`], killed with `kill -9` on drop.
pub struct Server {
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub args: Vec<String>,
    child: Option<Child>,
    /// What the server printed on stdout.
    pub printed: Vec<String>,
}

impl Server {
    /// `kelp server --data-dir DATA_DIR ARGS`, logging (KELP_LOG=info) to `DATA_DIR.log`;
    /// returns once it printed that its API listens.
    pub fn start(data_dir: &Path, args: &[String]) -> Self {
        let mut server = Self {
            data_dir: data_dir.to_owned(),
            config: data_dir.with_extension("kubeconfig"),
            log: data_dir.with_extension("log"),
            args: args.to_vec(),
            child: None,
            printed: Vec::new(),
        };
        server.restart();
        server
    }

    /// Starts the server again (after [`Server::kill9`]) with the same data dir and flags.
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new(kelp_bin())
            .arg("server")
            .arg("--disable-agent")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--write-config")
            .arg(&self.config)
            .args(&self.args)
            // The test machines' disks may be nearly full: DiskPressure (and its taint, which
            // refuses BestEffort pods) only when they truly are.
            .args(["--eviction-hard", TEST_EVICTION_HARD])
            .env(
                "KELP_LOG",
                std::env::var("KELP_TEST_SERVER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start kelp server");
        let stdout = child.stdout.take().unwrap();
        self.child = Some(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    panic!(
                        "kelp server did not print its address within 30 s:\n{}",
                        fs::read_to_string(&self.log).unwrap_or_default()
                    )
                });
            self.printed.push(line.clone());
            if line.starts_with("kelp server listening on ") {
                return;
            }
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.log).unwrap_or_default())
    }

    pub fn kelp(&self, args: &[&str]) -> Output {
        Command::new(kelp_bin())
            .args(args)
            .env("KELP_CONFIG", &self.config)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kelp(args);
        assert!(
            out.status.success(),
            "kelp {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `kelp apply -f` of `yaml`, written beside the data dir.
    pub fn apply(&self, name: &str, yaml: &str) {
        let file = self.data_dir.with_file_name(format!("{name}.yaml"));
        fs::write(&file, yaml).unwrap();
        self.ok(&["apply", "-f", file.to_str().unwrap()]);
    }

    /// `kelp get KIND -o json`'s items (empty when the call fails: the server may be
    /// restarting).
    pub fn items(&self, kind: &str) -> Vec<Value> {
        let out = self.kelp(&["get", kind, "-o", "json"]);
        if !out.status.success() {
            return Vec::new();
        }
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// The Ready condition's status of every Node ("True", "Unknown", ...).
    pub fn node_ready(&self) -> std::collections::BTreeMap<String, String> {
        self.items("nodes")
            .iter()
            .map(|n| {
                let ready = n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == "Ready")
                    .and_then(|c| c["status"].as_str())
                    .unwrap_or("")
                    .to_string();
                (
                    n["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    ready,
                )
            })
            .collect()
    }

    /// What an operator sees: `kelp get nodes` and `kelp get pods -o wide`, and the log's end.
    pub fn describe(&self) -> String {
        let log = self.log_text();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        format!(
            "kelp get nodes:\n{}\nkelp get pods -o wide:\n{}\nserver log (last lines):\n{}",
            text(&self.kelp(&["get", "nodes"]).stdout),
            text(&self.kelp(&["get", "pods", "-o", "wide"]).stdout),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Per container `(pod, container)`: (monitor pid, container pid, restart count).
pub type Processes = std::collections::BTreeMap<(String, String), (i32, i32, i32)>;

/// A joined node on a test host: a [`Node`] (its directories, cgroup parent, agent, and
/// their cleanup) whose agent runs in the host's network namespace with `--join-file`, its
/// own pod bridge and `--node-ip` the host's address.
pub struct FleetNode {
    /// The node's name in the cluster.
    pub name: String,
    pub node: Node,
    pub join: PathBuf,
    pub bridge: String,
    pub keepalive_secs: Option<u64>,
    /// More flags for `kelp-agent run`.
    pub agent_args: Vec<String>,
    /// Holds the host's netns and link; dropped after the node (fields drop in order).
    pub host: Host,
}

impl FleetNode {
    /// Node `name` on `host`, joined with `join` (written by `kelp node add`); the agent is
    /// not started.
    pub fn new(name: &str, host: Host, join: PathBuf, tag: char, index: u8) -> Self {
        let node = Node::new(&format!("fleet-{tag}{index}"));
        Self {
            name: name.to_string(),
            node,
            join,
            bridge: format!("kp{tag}{index}{}", short_pid()),
            keepalive_secs: None,
            agent_args: Vec::new(),
            host,
        }
    }

    /// Starts `kelp-agent run` inside the host's network namespace (only that one: nsenter
    /// execs the agent, so the child is the agent itself).
    pub fn start_agent(&mut self) {
        assert!(
            self.node.agent.is_none(),
            "{}: agent already running",
            self.name
        );
        let n = &self.node;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.agent_log)
            .unwrap();
        let mut cmd = self.host.command(AGENT);
        cmd.arg("run")
            .arg("--state-dir")
            .arg(&n.state_dir)
            .arg("--run-dir")
            .arg(&n.run_dir)
            .arg("--log-dir")
            .arg(&n.log_dir)
            .arg("--manifests")
            .arg(&n.manifests)
            .args(["--node-name", &self.name])
            .args(["--cgroup-parent", &n.cgroup_parent])
            .args(["--sync-period-ms", "100", "--backoff-scale", "0.1"])
            .arg("--registries")
            .arg(&n.registries)
            .arg("--join-file")
            .arg(&self.join)
            .args(["--bridge", &self.bridge])
            .args(["--node-ip", &self.host.ip.to_string()]);
        if let Some(k) = self.keepalive_secs {
            cmd.args(["--mqtt-keepalive-secs", &k.to_string()]);
        }
        cmd.args(&self.agent_args);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.node.agent = Some(child);
    }

    /// The agent's log, without the colours tracing gives it.
    pub fn log(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.node.agent_log).unwrap_or_default())
    }

    /// The agent's log from `mark` (an earlier `log().len()`) on.
    pub fn log_since(&self, mark: usize) -> String {
        let log = self.log();
        let mut at = mark.min(log.len());
        while !log.is_char_boundary(at) {
            at -= 1;
        }
        log[at..].to_string()
    }

    /// The generations the agent took, in the order its log says it did.
    pub fn received_generations(&self) -> Vec<u64> {
        self.log()
            .lines()
            .filter(|l| l.contains("desired state received"))
            .filter_map(|l| {
                let at = l.find("generation=")? + "generation=".len();
                l[at..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// Per running container of the node, `(pod, container) -> (monitor pid, container pid,
    /// restart count)`, from `kelp-agent pods` and the pods' monitors.
    pub fn processes(&self) -> Processes {
        let mut out = std::collections::BTreeMap::new();
        for pod in self.node.pods() {
            let monitor = self.node.monitor(&pod.uid).monitor.pid;
            let runs = self.node.runs(&pod.uid);
            for c in pod.status.container_statuses.iter().flatten() {
                let pid = runs
                    .get(&c.name)
                    .and_then(|r| r.process.as_ref().map(|p| p.pid))
                    .unwrap_or(0);
                out.insert(
                    (pod.name.clone(), c.name.clone()),
                    (monitor, pid, c.restart_count),
                );
            }
        }
        out
    }
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The join file's password (to provision the node's Mosquitto user).
pub fn join_password(join: &Path) -> String {
    let parsed = kelp_shared::join::JoinFile::parse(&fs::read_to_string(join).unwrap())
        .expect("a join file kelp node add wrote parses");
    parsed.password
}

/// A pod bound to `node` running `command` in busybox.
pub fn pod_yaml(name: &str, node: &str, command: &str, restart_policy: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  restartPolicy: {restart_policy}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {}\n    command: [sh, -c, {command:?}]\n",
        BUSYBOX
    )
}

/// The API's pods: name -> (node, phase, pod IP, total restarts).
pub fn api_pods(
    server: &Server,
) -> std::collections::BTreeMap<String, (String, String, String, u64)> {
    server
        .items("pods")
        .iter()
        .map(|p| {
            let restarts = p["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["restartCount"].as_u64().unwrap_or(0))
                .sum();
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                (
                    p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                    p["status"]["phase"].as_str().unwrap_or("").to_string(),
                    p["status"]["podIP"].as_str().unwrap_or("").to_string(),
                    restarts,
                ),
            )
        })
        .collect()
}
