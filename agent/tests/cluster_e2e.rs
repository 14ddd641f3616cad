//! A one-node cluster, end to end: the real `kelp server` (API, store, embedded MQTT broker),
//! `kelp node add` writing the join file, a real `kelp-agent run --join-file` on its own
//! bridge, and `kelp apply` of a pod bound to the node: it runs, and its status (phase, pod
//! IP, node) comes back into `kelp get pods -o wide`. As root; needs the `kelp` binary built
//! beside `kelp-agent` (`cargo test --workspace` builds both).

mod common;
mod registry;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{kelp_bin, Node, BUSYBOX, TEST_EVICTION_HARD};

struct Server {
    child: Child,
    config: PathBuf,
}

impl Server {
    fn start(dir: &Path, cluster_cidr: &str) -> Self {
        Self::start_with(dir, cluster_cidr, &["--mqtt-listen", "127.0.0.1:0"])
    }

    fn start_with(dir: &Path, cluster_cidr: &str, extra: &[&str]) -> Self {
        let config = dir.join("kelp.yaml");
        let mut child = Command::new(kelp_bin())
            .arg("server")
            .arg("--disable-agent")
            .arg("--data-dir")
            .arg(dir.join("controller"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .args(["--cluster-cidr", cluster_cidr])
            .arg("--write-config")
            .arg(&config)
            // The test machines' disks may be nearly full: DiskPressure (and its taint, which
            // refuses BestEffort pods) only when they truly are.
            .args(["--eviction-hard", TEST_EVICTION_HARD])
            .env("KELP_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kelp server");
        let stdout = child.stdout.take().unwrap();
        // From here on the server is owned by a value whose drop kills and reaps it.
        let server = Self { child, config };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("kelp server printed its address within 30 s");
            if line.starts_with("kelp server listening on ") {
                return server;
            }
        }
    }

    fn kelp(&self, args: &[&str]) -> Output {
        Command::new(kelp_bin())
            .args(args)
            .env("KELP_CONFIG", &self.config)
            .output()
            .unwrap()
    }

    /// Writes `yaml` to `DIR/NAME.yaml` and `kelp apply`s it.
    fn apply(&self, dir: &Path, name: &str, yaml: &str) {
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        self.ok(&["apply", "-f", file.to_str().unwrap()]);
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kelp(args);
        assert!(
            out.status.success(),
            "kelp {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pod `web` on node e2e: one busybox container that sleeps.
fn sleeping_web_pod() -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  nodeName: e2e\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
    )
}

/// Waits until `kelp get nodes` shows node e2e Ready.
fn wait_node_ready(node: &Node, server: &Server) {
    node.wait_for("node e2e Ready in the API", Duration::from_secs(60), |_| {
        let out = server.kelp(&["get", "nodes"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("e2e ") && l.contains(" Ready"))
            .then_some(())
    });
}

/// Waits until `kelp get pods` shows pod web Running (`what` names the wait).
fn wait_web_running(node: &Node, server: &Server, what: &str) {
    node.wait_for(what, Duration::from_secs(90), |_| {
        let out = server.kelp(&["get", "pods"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("Running"))
            .then_some(())
    });
}

/// The node's bridge and nftables table, removed on drop.
struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &format!("kelp_{}", self.0)])
            .output();
    }
}

#[test]
fn pod_applied_to_the_api_runs_on_its_node_and_reports_back() {
    let bridge = Bridge(format!("kbcl{}", std::process::id() % 100_000));
    let octet = 200 + std::process::id() % 50;
    let mut node = Node::new("cluster");
    // The lower half of 10.{octet}/16: the seed's myblog test takes the upper half.
    let server = Server::start(&node.base, &format!("10.{octet}.0.0/17"));
    let join = node.base.join("join.yaml");
    server.ok(&["node", "add", "e2e", "-o", join.to_str().unwrap()]);
    let refused = server.kelp(&["node", "add", "e2e", "-o", "/dev/null"]);
    assert!(!refused.status.success(), "a taken node name is refused");

    node.extra_args = vec![
        "--join-file".into(),
        join.display().to_string(),
        "--bridge".into(),
        bridge.0.clone(),
    ];
    node.start_agent();
    wait_node_ready(&node, &server);

    let pod = sleeping_web_pod();
    server.apply(&node.base, "web", &pod);

    let row = node.wait_for(
        "web Running in kelp get pods -o wide",
        Duration::from_secs(90),
        |_| {
            let text = String::from_utf8_lossy(&server.kelp(&["get", "pods", "-o", "wide"]).stdout)
                .into_owned();
            text.lines()
                .find(|l| l.starts_with("web ") && l.contains("Running"))
                .map(str::to_string)
        },
    );
    // The node's pod network is the CIDR the controller gave it (the first /24).
    let node_json = server.ok(&["get", "node", "e2e", "-o", "json"]);
    let node_object: serde_json::Value = serde_json::from_str(&node_json).unwrap();
    assert_eq!(
        node_object["spec"]["podCIDR"],
        format!("10.{octet}.0.0/24"),
        "{node_json}"
    );
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert!(
        cols.iter()
            .any(|c| c.starts_with(&format!("10.{octet}.0."))),
        "the pod's IP from the node's CIDR: {row}"
    );
    assert!(cols.contains(&"e2e"), "its node: {row}");
    // On the node: the pod the controller assigned, under its API name and UID.
    let on_node = node.pods();
    assert_eq!(on_node.len(), 1);
    assert_eq!(on_node[0].name, "web");

    // A second agent with the same join file is refused and says why; the first one, its
    // Node and its pod carry on untouched.
    let web_monitor = node.monitor(&on_node[0].uid).monitor.pid;
    let mut twin = Node::new("cluster-twin");
    let twin_bridge = Bridge(format!("kbtw{}", std::process::id() % 100_000));
    twin.extra_args = vec![
        "--join-file".into(),
        join.display().to_string(),
        "--bridge".into(),
        twin_bridge.0.clone(),
    ];
    twin.start_agent();
    let mut twin_agent = twin.agent.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = twin_agent.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = twin_agent.kill();
            let _ = twin_agent.wait();
            panic!(
                "the second agent with the name still runs after 30 s:\n{}",
                std::fs::read_to_string(&twin.agent_log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&twin.agent_log).unwrap();
    assert!(!status.success(), "the twin exits with an error: {log}");
    assert!(
        log.contains("another kelp-agent is already running as node \"e2e\""),
        "the twin says why: {log}"
    );
    assert!(twin.pods().is_empty(), "the twin started nothing");
    std::thread::sleep(Duration::from_secs(2));
    let nodes = server.ok(&["get", "nodes"]);
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("e2e ") && l.contains(" Ready")),
        "the node stays Ready: {nodes}"
    );
    let pods = server.ok(&["get", "pods"]);
    assert!(
        pods.lines()
            .any(|l| l.starts_with("web ") && l.contains("Running") && l.contains(" 0 ")),
        "web keeps running, never restarted: {pods}"
    );
    assert_eq!(
        node.monitor(&on_node[0].uid).monitor.pid,
        web_monitor,
        "same monitor"
    );
    drop(twin_bridge);

    // Deleted in the API: the node stops it.
    server.ok(&["delete", "pod", "web"]);
    node.wait_for("web gone from the node", Duration::from_secs(60), |n| {
        n.pods().is_empty().then_some(())
    });
}

/// A child process killed and reaped on drop (a followed `kelp logs -f`).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn kelp_logs_and_exec_are_answered_by_the_pods_node() {
    let mut node = Node::new("requests");
    let server = Server::start(&node.base, "10.42.0.0/16");
    let join = node.base.join("join.yaml");
    server.ok(&["node", "add", "e2e", "-o", join.to_str().unwrap()]);
    node.extra_args = vec!["--join-file".into(), join.display().to_string()];
    node.start_agent();
    wait_node_ready(&node, &server);

    // `c` prints three lines, then one more each time /tmp/go appears.
    let script = "echo one; echo two; echo three; while true; do if [ -f /tmp/go ]; then rm /tmp/go; echo later; fi; sleep 1; done";
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  nodeName: e2e\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, {script:?}]\n  - name: side\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
    );
    server.apply(&node.base, "web", &pod);
    node.wait_for("web Running in the API", Duration::from_secs(90), |_| {
        text(&server.kelp(&["get", "pods"]).stdout)
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("2/2") && l.contains("Running"))
            .then_some(())
    });

    // The lines the container printed, from its node.
    let logs = node.wait_for("web's three lines", Duration::from_secs(30), |_| {
        let out = server.kelp(&["logs", "web", "-c", "c"]);
        let stdout = text(&out.stdout);
        (out.status.success() && stdout.contains("three")).then_some(stdout)
    });
    assert_eq!(logs, "one\ntwo\nthree\n");
    assert_eq!(
        server.ok(&["logs", "web", "-c", "c", "--tail", "1"]),
        "three\n"
    );
    // No -c: the first container, said on stderr as kubectl does.
    let out = server.kelp(&["logs", "pod/web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "one\ntwo\nthree\n");
    assert!(
        text(&out.stderr).contains("Defaulted container \"c\" out of: c, side"),
        "{}",
        text(&out.stderr)
    );

    // exec: stdout, stderr and the exit code of a command run in the container.
    let out = server.kelp(&[
        "exec",
        "web",
        "-c",
        "c",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(text(&out.stdout), "out\n");
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("err\n"), "{stderr}");
    assert!(
        stderr.contains("command terminated with exit code 3"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(3));
    // It runs inside the container: its root is the image's, its hostname the pod's.
    assert_eq!(
        server.ok(&["exec", "web", "-c", "side", "--", "hostname"]),
        "web\n"
    );

    // logs -f streams a line printed after it started.
    let follow = Command::new(kelp_bin())
        .args(["logs", "-f", "web", "-c", "c"])
        .env("KELP_CONFIG", &server.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut follow = Killed(follow);
    let stdout = follow.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|l| l == "three") {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("logs -f printed the first lines: {seen:?}"));
        seen.push(line);
    }
    server.ok(&["exec", "web", "-c", "c", "--", "touch", "/tmp/go"]);
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("logs -f streams the line printed later");
    assert_eq!(line, "later");
    assert!(follow.0.try_wait().unwrap().is_none(), "still following");
    drop(follow);

    // Errors name what is missing.
    let out = server.kelp(&["exec", "web", "-c", "nope", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("container nope is not valid for pod web"),
        "{}",
        text(&out.stderr)
    );
    let out = server.kelp(&["logs", "web", "-c", "c", "--previous"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("previous terminated container \"c\" in pod default/web not found"),
        "{}",
        text(&out.stderr)
    );
    let out = server.kelp(&["exec", "web", "-c", "c", "--", "/no/such/binary"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/no/such/binary"),
        "{}",
        text(&out.stderr)
    );
    // A command silent for longer than the node is given to start answering (15 s) is
    // waited for.
    assert_eq!(
        server.ok(&[
            "exec",
            "web",
            "-c",
            "side",
            "--",
            "sh",
            "-c",
            "sleep 17; echo done"
        ]),
        "done\n"
    );

    // A command past its deadline is killed, and said so.
    let started = Instant::now();
    let out = server.kelp(&[
        "exec",
        "web",
        "-c",
        "c",
        "--timeout",
        "1",
        "--",
        "sleep",
        "37",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("did not finish before its deadline; it was killed"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    let ps = server.ok(&["exec", "web", "-c", "c", "--", "ps"]);
    assert!(!ps.contains("sleep 37"), "the killed command is gone: {ps}");
    let out = server.kelp(&["logs", "nosuch"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("pods \"nosuch\" not found"),
        "{}",
        text(&out.stderr)
    );

    // A node that does not answer: an error naming it, in bounded time (the node's pods
    // are removed when `node` drops).
    node.kill_agent();
    let started = Instant::now();
    let out = server.kelp(&["logs", "web", "-c", "c"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("node \"e2e\""),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn static_pods_show_in_the_api_as_read_only_mirror_pods() {
    let mut node = Node::new("mirror");
    let server = Server::start(&node.base, "10.42.0.0/16");
    let join = node.base.join("join.yaml");
    server.ok(&["node", "add", "e2e", "-o", join.to_str().unwrap()]);
    let manifest = node.manifests.join("static.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: local\n  labels:\n    app: local\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
        ),
    )
    .unwrap();
    node.extra_args = vec!["--join-file".into(), join.display().to_string()];
    node.start_agent();

    // The static pod `local` runs on node e2e as `local-e2e`, and shows in the API with its
    // status, the mirror annotation and the Node as owner.
    node.wait_for(
        "local-e2e Running in the API",
        Duration::from_secs(90),
        |_| {
            let out = server.kelp(&["get", "pods", "-o", "wide"]);
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| {
                    l.starts_with("local-e2e ") && l.contains("Running") && l.contains(" e2e ")
                })
                .then_some(())
        },
    );
    let json = server.ok(&["get", "pod", "local-e2e", "-o", "json"]);
    let mirror: serde_json::Value = serde_json::from_str(&json).unwrap();
    let on_node = node.pods();
    assert_eq!(on_node.len(), 1, "one pod on the node, not a second copy");
    assert_eq!(
        mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"],
        on_node[0].uid.as_str(),
        "{json}"
    );
    assert_eq!(mirror["metadata"]["ownerReferences"][0]["kind"], "Node");
    assert_eq!(mirror["metadata"]["labels"]["app"], "local");

    // Read-only in the API.
    let refused = server.kelp(&["delete", "pod", "local-e2e"]);
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(
        !refused.status.success(),
        "deleting a mirror pod is refused"
    );
    assert!(
        err.contains("mirror of a static pod of node \"e2e\""),
        "says why: {err}"
    );
    let change = node.base.join("change.yaml");
    std::fs::write(
        &change,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: local-e2e\n  labels:\n    app: other\nspec:\n  nodeName: e2e\n  containers:\n  - name: c\n    image: {BUSYBOX}\n"
        ),
    )
    .unwrap();
    let refused = server.kelp(&["apply", "-f", change.to_str().unwrap()]);
    assert!(
        !refused.status.success(),
        "changing a mirror pod is refused: {}",
        String::from_utf8_lossy(&refused.stdout)
    );

    // The manifest removed on the node: the pod stops and its mirror goes.
    std::fs::remove_file(&manifest).unwrap();
    node.wait_for(
        "local-e2e gone from the API",
        Duration::from_secs(60),
        |n| {
            let out = server.kelp(&["get", "pods"]);
            (n.pods().is_empty() && !String::from_utf8_lossy(&out.stdout).contains("local-e2e"))
                .then_some(())
        },
    );
}

/// Mosquitto with a TLS listener (a CA and server certificate made by `openssl` for
/// 127.0.0.1) and a password file; killed on drop.
struct TlsBroker {
    dir: PathBuf,
    port: u16,
    /// With [`TlsBroker::start_for_certificates`]: the plain listener the controller uses.
    plain_port: u16,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TlsBroker {
    fn start(dir: &Path) -> Self {
        Self::start_with(dir, false)
    }

    /// Mosquitto whose TLS listener requires a client certificate and takes its common
    /// name as the user (`use_identity_as_username`), with a plain listener for the
    /// controller's password login; its password and ACL files are `kelp server`'s to keep
    /// (they start with the controller alone). `e2e.pem`/`e2e.key` are a client certificate
    /// for node e2e from the same CA.
    fn start_for_certificates(dir: &Path) -> Self {
        Self::start_with(dir, true)
    }

    fn start_with(dir: &Path, client_certs: bool) -> Self {
        let dir = dir.join("mosquitto");
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl is missing: apt-get install openssl");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=kelp-test-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat());
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat());
        std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "ext",
        ]);
        // Mosquitto drops root for its own user before it reads the key.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        if client_certs {
            run(&[
                &["req"][..],
                &ec,
                &["-keyout", "e2e.key", "-out", "e2e.csr", "-subj", "/CN=e2e"],
            ]
            .concat());
            std::fs::write(dir.join("client-ext"), "extendedKeyUsage=clientAuth\n").unwrap();
            run(&[
                "x509",
                "-req",
                "-in",
                "e2e.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "e2e.pem",
                "-days",
                "1",
                "-extfile",
                "client-ext",
            ]);
        }
        let out = Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(dir.join("passwd"))
            .args(["kelp", "controller-secret"])
            .output()
            .expect("mosquitto_passwd is missing: apt-get install mosquitto");
        assert!(out.status.success(), "mosquitto_passwd: {out:?}");
        let port = free_port();
        let plain_port = free_port();
        let d = dir.display();
        let tls = format!(
            "listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
        );
        let config = if client_certs {
            std::fs::write(dir.join("acl"), "user kelp\ntopic readwrite kelp/v1/#\n").unwrap();
            format!(
                "per_listener_settings false\nallow_anonymous false\npassword_file {d}/passwd\nacl_file {d}/acl\npersistence false\nlistener {plain_port} 127.0.0.1\n{tls}require_certificate true\nuse_identity_as_username true\n"
            )
        } else {
            format!("{tls}allow_anonymous false\npassword_file {d}/passwd\npersistence false\n")
        };
        std::fs::write(dir.join("mosquitto.conf"), config).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let broker = Self {
            dir,
            port,
            plain_port,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    /// Adds a user and has Mosquitto read its password file again.
    fn add_user(&self, user: &str, password: &str) {
        let out = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(self.dir.join("passwd"))
            .args([user, password])
            .output()
            .unwrap();
        assert!(out.status.success(), "mosquitto_passwd: {out:?}");
        let out = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .output()
            .unwrap();
        assert!(out.status.success());
        std::thread::sleep(Duration::from_millis(300));
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn controller_and_node_speak_tls_to_an_external_broker() {
    let mut node = Node::new("tls");
    let broker = TlsBroker::start(&node.base);
    let ca = broker.dir.join("ca.pem");
    let url = format!("mqtts://kelp:controller-secret@127.0.0.1:{}", broker.port);
    let server = Server::start_with(
        &node.base,
        "10.42.0.0/16",
        &["--mqtt-url", &url, "--mqtt-ca", ca.to_str().unwrap()],
    );
    let join = node.base.join("join.yaml");
    server.ok(&["node", "add", "e2e", "-o", join.to_str().unwrap()]);
    let join_file =
        kelp_shared::join::JoinFile::parse(&std::fs::read_to_string(&join).unwrap()).unwrap();
    assert_eq!(
        join_file.broker_url,
        format!("mqtts://127.0.0.1:{}", broker.port)
    );
    assert_eq!(
        join_file.ca_pem.as_deref().map(str::trim),
        Some(std::fs::read_to_string(&ca).unwrap().trim()),
        "the join file carries the broker's CA"
    );
    broker.add_user("e2e", &join_file.password);

    node.extra_args = vec!["--join-file".into(), join.display().to_string()];
    node.start_agent();
    wait_node_ready(&node, &server);
    let pod = sleeping_web_pod();
    server.apply(&node.base, "web", &pod);
    wait_web_running(&node, &server, "web Running over TLS");
    server.ok(&["delete", "pod", "web"]);
}

/// The lines of `kelp describe`'s Events section.
fn event_lines(describe: &str) -> Vec<String> {
    describe
        .split_once("\nEvents:")
        .map(|(_, events)| events.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Events travel from the node (its outbox, the `events` topic) through the hub into the
/// controller's in-memory event store, and out through the API to `kelp describe` and
/// `kelp get events`; a client's posted event joins them.
#[test]
fn a_crash_looping_pods_events_reach_kelp_describe_from_its_node() {
    let mut node = Node::new("events");
    let server = Server::start(&node.base, "10.43.0.0/16");
    let join = node.base.join("join.yaml");
    server.ok(&["node", "add", "e2e", "-o", join.to_str().unwrap()]);
    node.extra_args = vec!["--join-file".into(), join.display().to_string()];
    node.start_agent();
    wait_node_ready(&node, &server);

    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: crash\nspec:\n  nodeName: e2e\n  restartPolicy: Always\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, 'exit 1']\n"
    );
    server.apply(&node.base, "crash", &pod);

    // The node's events, aggregated: one BackOff line per (reason, message) whatever the
    // number of restarts, Started counted up, all from kelp-agent.
    let lines = node.wait_for(
        "BackOff, and Started more than once, in kelp describe pod crash",
        Duration::from_secs(90),
        |_| {
            let lines = event_lines(&text(&server.kelp(&["describe", "pod", "crash"]).stdout));
            let backoff = lines.iter().any(|l| {
                l.contains("Warning")
                    && l.contains("BackOff")
                    && l.contains("kelp-agent")
                    && l.contains("Back-off restarting failed container c in pod crash_default")
            });
            let restarted = lines
                .iter()
                .any(|l| l.contains("Started") && l.contains("(x"));
            (backoff && restarted).then_some(lines)
        },
    );
    for reason in ["Pulled", "Created", "Started"] {
        let found: Vec<&String> = lines
            .iter()
            .filter(|l| {
                l.split_whitespace().take(2).collect::<Vec<_>>() == ["Normal", reason]
                    && l.contains("kelp-agent")
            })
            .collect();
        // Pulled twice when the first start pulled the image ("Successfully pulled", then
        // "already present on machine"); each message is one aggregate.
        assert!(
            found.len() == 1 || (reason == "Pulled" && found.len() == 2),
            "one Normal {reason} line per message: {lines:#?}"
        );
    }
    assert_eq!(
        lines.iter().filter(|l| l.contains("BackOff")).count(),
        1,
        "BackOff is one aggregate: {lines:#?}"
    );

    // The same events through kelp get, with the node as their source.
    let wide = server.ok(&["get", "events", "-o", "wide"]);
    assert!(
        wide.lines().any(|l| l.contains("BackOff")
            && l.contains("pod/crash")
            && l.contains("kelp-agent, e2e")),
        "{wide}"
    );
    let uid = serde_json::from_str::<serde_json::Value>(
        &server.ok(&["get", "pod", "crash", "-o", "json"]),
    )
    .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let selected: serde_json::Value = serde_json::from_str(&server.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.uid={uid},reason=Started"),
        "-o",
        "json",
    ]))
    .unwrap();
    let items = selected["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{selected:#}");
    assert_eq!(items[0]["involvedObject"]["name"], "crash");
    assert_eq!(items[0]["source"]["host"], "e2e");
    assert!(items[0]["count"].as_u64().unwrap() > 1, "{selected:#}");

    // Counts keep going up as the pod keeps crashing (each batch adds only what is new).
    let count = items[0]["count"].as_u64().unwrap();
    node.wait_for("Started counted again", Duration::from_secs(60), |_| {
        let list: serde_json::Value = serde_json::from_str(&server.ok(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.uid={uid},reason=Started"),
            "-o",
            "json",
        ]))
        .ok()?;
        (list["items"][0]["count"].as_u64()? > count).then_some(())
    });
    server.ok(&["delete", "pod", "crash"]);

    // A client's event goes to the same store, aggregated: a field engineer's note about the
    // node shows in kelp describe node, counted.
    let note = node.base.join("note.yaml");
    std::fs::write(
        &note,
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: e2e.fan\n  namespace: default\ninvolvedObject:\n  kind: Node\n  name: e2e\nreason: Maintenance\nmessage: fan replaced\ntype: Normal\nsource:\n  component: field-engineer\n",
    )
    .unwrap();
    server.ok(&["create", "-f", note.to_str().unwrap()]);
    server.ok(&["create", "-f", note.to_str().unwrap()]);
    let lines = event_lines(&server.ok(&["describe", "node", "e2e"]));
    assert!(
        lines.iter().any(|l| l.contains("Normal")
            && l.contains("Maintenance")
            && l.contains("(x2 over")
            && l.contains("field-engineer")
            && l.contains("fan replaced")),
        "{lines:#?}"
    );
}

/// The seed's myblog pod (§2.5: namespace `luffy`, containers `mysql` and `myblog`), its
/// images pulled from a real local registry (Debian's docker-registry), runs on the node it
/// names: `kelp get pods -o wide` shows it Running with its NODE and IP, `kelp logs` shows the
/// database's output and `kelp exec` in the blog container reaches the database over the
/// pod's localhost. (busybox plays MySQL and the blog, as in the runtime's seed test.)
#[test]
fn seed_myblog_pod_from_the_local_registry_runs_on_its_node() {
    let reg = registry::Registry::start(registry::Auth::None);
    let octet = 200 + std::process::id() % 50;
    let bridge = Bridge(format!("kbmb{}", std::process::id() % 100_000));
    let mut node = Node::new("myblog");
    std::fs::write(
        &node.registries,
        format!(
            "mirrors:\n  \"{h}\":\n    endpoint: [\"http://{h}\"]\n",
            h = reg.host
        ),
    )
    .unwrap();
    let registries = node.registries.to_str().unwrap().to_string();
    let (mysql, myblog) = (
        reg.reference("luffy/mysql:5.7"),
        reg.reference("luffy/myblog:v1"),
    );
    for image in [&mysql, &myblog] {
        let push = node.cli(&[
            "image",
            "push",
            common::busybox_tar().to_str().unwrap(),
            image,
            "--registries",
            &registries,
        ]);
        assert!(
            push.status.success(),
            "push {image}: {}",
            String::from_utf8_lossy(&push.stderr)
        );
    }
    let server = Server::start(&node.base, &format!("10.{octet}.128.0/17"));
    let join = node.base.join("join.yaml");
    server.ok(&["node", "add", "e2e", "-o", join.to_str().unwrap()]);
    node.extra_args = vec![
        "--join-file".into(),
        join.display().to_string(),
        "--bridge".into(),
        bridge.0.clone(),
    ];
    node.start_agent();
    server.ok(&["create", "namespace", "luffy"]);
    let pod = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: myblog
  namespace: luffy
  labels:
    component: myblog
spec:
  nodeName: e2e
  terminationGracePeriodSeconds: 1
  containers:
  - name: myblog
    image: {myblog}
    imagePullPolicy: IfNotPresent
    env:
    - name: MYSQL_HOST
      value: "127.0.0.1"
    - name: MYSQL_PASSWD
      value: "123456"
    ports:
    - containerPort: 8002
    command: ["sh", "-c"]
    args:
    - |
      mkdir -p /www/cgi-bin
      printf '#!/bin/sh\necho Content-Type: text/plain\necho\nwget -qO- http://$MYSQL_HOST:3306/\n' > /www/cgi-bin/db
      chmod +x /www/cgi-bin/db
      exec httpd -f -p 8002 -h /www
  - name: mysql
    image: {mysql}
    imagePullPolicy: IfNotPresent
    env:
    - name: MYSQL_ROOT_PASSWORD
      value: "123456"
    - name: MYSQL_DATABASE
      value: "myblog"
    ports:
    - containerPort: 3306
    command: ["sh", "-c", "mkdir /db; echo hello-from-db > /db/index.html; echo db up; exec httpd -f -p 3306 -h /db"]
"#
    );
    server.apply(&node.base, "myblog", &pod);

    let row = node.wait_for(
        "myblog 2/2 Running in kelp get pods -n luffy -o wide",
        Duration::from_secs(120),
        |_| {
            let out = server.kelp(&["get", "pods", "-n", "luffy", "-o", "wide"]);
            text(&out.stdout)
                .lines()
                .find(|l| l.starts_with("myblog ") && l.contains("2/2") && l.contains("Running"))
                .map(str::to_string)
        },
    );
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert!(cols.contains(&"e2e"), "its NODE: {row}");
    assert!(
        cols.iter()
            .any(|c| c.starts_with(&format!("10.{octet}.128."))),
        "its IP, in the node's pod CIDR: {row}"
    );
    assert!(
        reg.log().contains("luffy/mysql") && reg.log().contains("luffy/myblog"),
        "both images came from the registry: {}",
        reg.log()
    );

    let logs = server.ok(&["logs", "myblog", "-n", "luffy", "-c", "mysql"]);
    assert_eq!(logs, "db up\n");
    let page = server.ok(&[
        "exec",
        "myblog",
        "-n",
        "luffy",
        "-c",
        "myblog",
        "--",
        "wget",
        "-qO-",
        "http://127.0.0.1:8002/cgi-bin/db",
    ]);
    assert_eq!(page, "hello-from-db\n", "the blog reads the database");
    server.ok(&["delete", "pod", "myblog", "-n", "luffy"]);
}

#[test]
fn embedded_broker_serves_nodes_over_tls() {
    let mut node = Node::new("etls");
    let server = Server::start_with(
        &node.base,
        "10.42.0.0/16",
        &[
            "--mqtt-listen",
            "127.0.0.1:0",
            "--mqtt-tls-listen",
            "127.0.0.1:0",
        ],
    );
    let join = node.base.join("join.yaml");
    server.ok(&["node", "add", "e2e", "-o", join.to_str().unwrap()]);
    let join_file =
        kelp_shared::join::JoinFile::parse(&std::fs::read_to_string(&join).unwrap()).unwrap();
    assert!(
        join_file.broker_url.starts_with("mqtts://127.0.0.1:"),
        "{}",
        join_file.broker_url
    );
    let config: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&server.config).unwrap()).unwrap();
    assert_eq!(
        join_file.ca_pem.as_deref().map(str::trim),
        config["certificateAuthority"].as_str().map(str::trim),
        "the join file carries the cluster CA that signed the broker's certificate"
    );
    node.extra_args = vec!["--join-file".into(), join.display().to_string()];
    node.start_agent();
    wait_node_ready(&node, &server);
    // Over TLS, Secrets may go to nodes.
    server.apply(
        &node.base,
        "token",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData:\n  t: x\n",
    );
    server.apply(&node.base, "web", &sleeping_web_pod());
    wait_web_running(&node, &server, "web Running over TLS");
    server.ok(&["delete", "pod", "web"]);
}

#[test]
fn a_node_logs_in_to_mosquitto_with_a_client_certificate() {
    let mut node = Node::new("cert");
    let broker = TlsBroker::start_for_certificates(&node.base);
    let d = &broker.dir;
    let url = format!(
        "mqtt://kelp:controller-secret@127.0.0.1:{}",
        broker.plain_port
    );
    let server = Server::start_with(
        &node.base,
        "10.42.0.0/16",
        &[
            "--mqtt-url",
            &url,
            "--mosquitto-passwd",
            d.join("passwd").to_str().unwrap(),
            "--mosquitto-acl",
            d.join("acl").to_str().unwrap(),
        ],
    );
    let join = node.base.join("join.yaml");
    let tls_url = format!("mqtts://127.0.0.1:{}", broker.port);
    server.ok(&[
        "node",
        "add",
        "e2e",
        "-o",
        join.to_str().unwrap(),
        "--broker-url",
        &tls_url,
        "--broker-ca",
        d.join("ca.pem").to_str().unwrap(),
        "--client-cert",
        d.join("e2e.pem").to_str().unwrap(),
        "--client-key",
        d.join("e2e.key").to_str().unwrap(),
    ]);
    let join_file =
        kelp_shared::join::JoinFile::parse(&std::fs::read_to_string(&join).unwrap()).unwrap();
    assert!(join_file.password.is_empty() && join_file.client_identity.is_some());
    node.wait_for("kelp's ACL for e2e", Duration::from_secs(10), |_| {
        let acl = std::fs::read_to_string(d.join("acl")).unwrap_or_default();
        acl.contains("user e2e\ntopic read kelp/v1/nodes/e2e/desired\n")
            .then_some(())
    });
    let passwd = std::fs::read_to_string(d.join("passwd")).unwrap();
    assert!(
        !passwd.contains("e2e:"),
        "no password for a certificate user: {passwd}"
    );
    node.extra_args = vec!["--join-file".into(), join.display().to_string()];
    node.start_agent();
    wait_node_ready(&node, &server);
    server.apply(&node.base, "web", &sleeping_web_pod());
    wait_web_running(&node, &server, "web Running with a certificate login");
    server.ok(&["delete", "pod", "web"]);
}
