//! End-to-end tests of the agent runtime: real containers through libcontainer, as root, on
//! whatever cgroup version the machine has (this host: v1; the test VM: v2). Each test has its
//! own node (directories, cgroup parent, agent) and cleans up after itself.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{Node, BUSYBOX};

fn pod_yaml(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

/// The seed's two-container pod (§2.4), with busybox: a web server on :8002 whose page is what
/// the "database" container (a server on 127.0.0.1:3306) answers it.
#[test]
fn seed_two_container_pod_talks_over_localhost() {
    let mut node = Node::new("seed");
    node.start_agent();
    let spec = format!(
        r#"  containers:
  - name: web
    image: {BUSYBOX}
    command: ["sh", "-c"]
    args:
    - |
      mkdir -p /www/cgi-bin
      printf '#!/bin/sh\necho Content-Type: text/plain\necho\nwget -qO- http://127.0.0.1:3306/\n' > /www/cgi-bin/db
      chmod +x /www/cgi-bin/db
      exec httpd -f -p 8002 -h /www
    ports: [{{containerPort: 8002}}]
  - name: db
    image: {BUSYBOX}
    command: ["sh", "-c", "mkdir /db; echo hello-from-db > /db/index.html; echo db up; exec httpd -f -p 3306 -h /db"]
    ports: [{{containerPort: 3306}}]
"#
    );
    node.apply("seed.yaml", &pod_yaml("kubia", &spec));
    let pod = node.wait_running("kubia");
    let hostname = node.in_pod_net(&pod.uid, &["hostname"]);
    assert!(hostname.status.success());
    let body = node.wait_for_seed_page(&pod.uid);
    assert!(body.contains("hello-from-db"), "{body}");
    assert!(node.log_of(&pod, "db").contains("db up"));
    // The UTS namespace is the pod's: hostname = pod name.
    let runs = node.runs(&pod.uid);
    let web_pid = runs["web"].process.unwrap().pid;
    let uts = fs::read_link(format!("/proc/{web_pid}/ns/uts")).unwrap();
    let sandbox_uts = fs::read_link(format!(
        "/proc/{}/ns/uts",
        node.monitor(&pod.uid).monitor.pid
    ))
    .unwrap();
    assert_eq!(
        uts, sandbox_uts,
        "containers join the sandbox's UTS namespace"
    );
}

#[test]
fn crashing_container_backs_off_with_growing_delays() {
    let mut node = Node::new("crash");
    node.start_agent();
    node.apply(
        "crash.yaml",
        &pod_yaml("crash", &format!("  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo run; exit 1']\n")),
    );
    let mut starts = Vec::new();
    let mut saw_backoff = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    while starts.len() < 4 && Instant::now() < deadline {
        if let Some(p) = node.pod("crash") {
            let cs = &p.status.container_statuses.as_ref().unwrap()[0];
            if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                if w.reason.as_deref() == Some("CrashLoopBackOff") {
                    saw_backoff = true;
                    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
                    assert_eq!(last.exit_code, 1);
                    assert_eq!(last.reason.as_deref(), Some("Error"));
                }
            }
            let runs = node.runs(&p.uid);
            if let Some(run) = runs.get("c") {
                if starts.last() != Some(&run.attempt) {
                    starts.push(run.attempt);
                    starts.dedup();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(saw_backoff, "CrashLoopBackOff never reported");
    assert!(
        starts.len() >= 4,
        "only {} runs in 120 s: {starts:?}",
        starts.len()
    );
    let p = node.pod("crash").unwrap();
    assert!(p.status.container_statuses.unwrap()[0].restart_count >= 3);
    // Growing back-off: each wait at least the one before (1 s, 2 s, 4 s at a tenth of real time).
    let log = node.log_of(&node.pod("crash").unwrap(), "c");
    assert!(log.matches("run").count() >= 4, "{log}");
    let ts = node.cli(&["logs", "crash-e2e", "--timestamps"]);
    let times: Vec<chrono::DateTime<chrono::Utc>> = String::from_utf8_lossy(&ts.stdout)
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    let gaps: Vec<i64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .collect();
    assert!(gaps.len() >= 3, "{gaps:?}");
    assert!(
        gaps[1] >= 1800 && gaps[2] >= 3600,
        "back-off must grow (1 s, 2 s, 4 s): {gaps:?}\n{}",
        String::from_utf8_lossy(&ts.stdout)
    );
}

#[test]
fn memory_limit_overrun_is_oomkilled() {
    let mut node = Node::new("oom");
    node.start_agent();
    node.apply(
        "oom.yaml",
        &pod_yaml(
            "oom",
            &format!(
                "  restartPolicy: Never\n  containers:\n  - name: hog\n    image: {BUSYBOX}\n    command: [sh, -c, 'head -c 200m /dev/zero | tail']\n    resources:\n      limits: {{memory: 32Mi}}\n"
            ),
        ),
    );
    let term = node.wait_for("OOMKilled", Duration::from_secs(120), |n| {
        let p = n.pod("oom")?;
        let t = p.status.container_statuses?[0].state.clone()?.terminated?;
        Some(t)
    });
    assert_eq!(term.reason.as_deref(), Some("OOMKilled"), "{term:?}");
    assert_eq!(term.exit_code, 137);
    assert_eq!(
        node.pod("oom").unwrap().status.phase.as_deref(),
        Some("Failed")
    );
}

#[test]
fn init_container_gates_the_app() {
    let mut node = Node::new("init");
    node.start_agent();
    node.apply(
        "init.yaml",
        &pod_yaml(
            "init",
            &format!(
                r#"  volumes: [{{name: work, emptyDir: {{}}}}]
  initContainers:
  - name: prepare
    image: {BUSYBOX}
    command: [sh, -c, 'sleep 1; echo prepared > /work/flag']
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sh, -c, 'cat /work/flag; exec sleep 3600']
    volumeMounts: [{{name: work, mountPath: /work}}]
"#
            ),
        ),
    );
    let pod = node.wait_running("init");
    let runs = node.runs(&pod.uid);
    let init_done = &runs["prepare"].finished_at;
    let app_started = &runs["app"].started_at;
    assert!(init_done.is_some() && app_started.is_some());
    assert!(
        init_done <= app_started,
        "app started {app_started:?} before init finished {init_done:?}"
    );
    assert_eq!(runs["prepare"].exit.as_ref().unwrap().code, 0);
    let init_status = &pod.status.init_container_statuses.as_ref().unwrap()[0];
    assert_eq!(
        init_status
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("Completed")
    );
    assert!(node.log_of(&pod, "app").contains("prepared"));
}

#[test]
fn sigterm_ignoring_container_is_killed_after_its_grace_period() {
    let mut node = Node::new("grace");
    node.start_agent();
    node.apply(
        "grace.yaml",
        &pod_yaml(
            "grace",
            &format!(
                "  terminationGracePeriodSeconds: 3\n  containers:\n  - name: stubborn\n    image: {BUSYBOX}\n    command: [sh, -c, \"trap '' TERM; echo ready; while true; do sleep 1; done\"]\n"
            ),
        ),
    );
    let pod = node.wait_running("grace");
    let pid = node.runs(&pod.uid)["stubborn"].process.unwrap();
    node.wait_for("ready", Duration::from_secs(30), |n| {
        n.log_of(&pod, "stubborn").contains("ready").then_some(())
    });
    let asked = Instant::now();
    node.delete("grace.yaml");
    // Still alive well into the grace period: SIGTERM was ignored, not escalated at once.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(pid.alive(), "killed before its grace period ran out");
    node.wait_for("the pod to go", Duration::from_secs(60), |n| {
        n.pod("grace").is_none().then_some(())
    });
    assert!(!pid.alive());
    assert!(
        asked.elapsed() >= Duration::from_secs(3),
        "gone after {:?}",
        asked.elapsed()
    );
}

#[test]
fn run_as_user_and_read_only_root_hold_inside() {
    let mut node = Node::new("secctx");
    node.start_agent();
    node.apply(
        "sec.yaml",
        &pod_yaml(
            "sec",
            &format!(
                r#"  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, 'echo uid=$(id -u) gid=$(id -g); if touch /probe 2>/dev/null; then echo rootfs=writable; else echo rootfs=readonly; fi; exec sleep 3600']
    securityContext:
      runAsUser: 1000
      runAsGroup: 1000
      readOnlyRootFilesystem: true
"#
            ),
        ),
    );
    let pod = node.wait_running("sec");
    let log = node.wait_for("output", Duration::from_secs(30), |n| {
        let l = n.log_of(&pod, "c");
        l.contains("rootfs=").then_some(l)
    });
    assert!(log.contains("uid=1000 gid=1000"), "{log}");
    assert!(log.contains("rootfs=readonly"), "{log}");
}

#[test]
fn containers_survive_an_agent_kill_and_are_adopted() {
    let mut node = Node::new("adopt");
    let flag_dir = node.base.join("flags");
    fs::create_dir_all(&flag_dir).unwrap();
    node.start_agent();
    node.apply(
        "adopt.yaml",
        &pod_yaml(
            "adopt",
            &format!(
                r#"  restartPolicy: OnFailure
  volumes: [{{name: flags, hostPath: {{path: {}}}}}]
  containers:
  - name: steady
    image: {BUSYBOX}
    command: [sleep, "3600"]
  - name: quitter
    image: {BUSYBOX}
    command: [sh, -c, 'while [ ! -f /flags/exit ]; do sleep 0.1; done; rm /flags/exit; exit 3']
    volumeMounts: [{{name: flags, mountPath: /flags}}]
"#,
                flag_dir.display()
            ),
        ),
    );
    let pod = node.wait_running("adopt");
    let before = node.runs(&pod.uid);
    let steady = before["steady"].process.unwrap();
    let monitor = node.monitor(&pod.uid).monitor;

    node.kill_agent();
    fs::write(flag_dir.join("exit"), b"").unwrap();
    let exit = node.wait_for(
        "quitter to exit while the agent is down",
        Duration::from_secs(30),
        |n| n.runs(&pod.uid)["quitter"].exit.clone(),
    );
    assert_eq!(exit.code, 3);
    assert!(steady.alive(), "a container died with the agent");

    node.start_agent();
    let status = node.wait_for("quitter restarted", Duration::from_secs(60), |n| {
        let p = n.pod("adopt")?;
        let q = p
            .status
            .container_statuses?
            .into_iter()
            .find(|c| c.name == "quitter")?;
        (q.restart_count == 1 && q.state.as_ref()?.running.is_some()).then_some(q)
    });
    let last = status.last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 3);
    let after = node.runs(&pod.uid);
    assert_eq!(
        after["steady"].process,
        Some(steady),
        "steady was restarted: no adoption"
    );
    assert_eq!(
        node.monitor(&pod.uid).monitor,
        monitor,
        "a second monitor was started"
    );
    // No duplicates: the one monitor in its cgroup, steady's one process in its own.
    let cg = kelp_agent::cgroup::Cgroups::detect().unwrap();
    let pod_cgroup = node.runtime_config().pod_cgroup(&pod.uid);
    assert_eq!(
        cg.processes(&format!("{pod_cgroup}/_monitor"), false)
            .unwrap(),
        vec![monitor.pid as u32]
    );
    assert_eq!(
        cg.processes(&format!("{pod_cgroup}/steady"), true).unwrap(),
        vec![steady.pid as u32]
    );
    let sandboxes = std::fs::read_dir(node.run_dir.join("pods"))
        .unwrap()
        .count();
    assert_eq!(sandboxes, 1, "one sandbox for the one pod");
}

#[test]
fn deletion_keeps_host_path_files_and_leaves_nothing_else() {
    let mut node = Node::new("delete");
    let host = node.base.join("host-data");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("before"), b"kept").unwrap();
    node.start_agent();
    node.apply(
        "del.yaml",
        &pod_yaml(
            "del",
            &format!(
                r#"  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: data, hostPath: {{path: {}}}}}
  - {{name: scratch, emptyDir: {{}}}}
  containers:
  - name: writer
    image: {BUSYBOX}
    command: [sh, -c, 'echo written > /data/out; echo tmp > /scratch/x; exec sleep 3600']
    volumeMounts: [{{name: data, mountPath: /data}}, {{name: scratch, mountPath: /scratch}}]
"#,
                host.display()
            ),
        ),
    );
    let pod = node.wait_running("del");
    node.wait_for("the file", Duration::from_secs(30), |_| {
        host.join("out").exists().then_some(())
    });
    let pids: Vec<_> = node
        .runs(&pod.uid)
        .values()
        .filter_map(|r| r.process)
        .collect();
    let monitor = node.monitor(&pod.uid).monitor;
    node.delete("del.yaml");
    node.wait_for("the pod to go", Duration::from_secs(60), |n| {
        n.pod("del").is_none().then_some(())
    });
    // The agent removes the pod directory last; give it the moment it needs.
    let rc = node.runtime_config();
    node.wait_for("per-pod files removed", Duration::from_secs(30), |_| {
        (!rc.pod_paths(&pod.uid).dir.exists() && !rc.pod_data_dir(&pod.uid).exists()).then_some(())
    });

    assert_eq!(fs::read_to_string(host.join("out")).unwrap(), "written\n");
    assert_eq!(fs::read(host.join("before")).unwrap(), b"kept");
    for p in pids.iter().chain([&monitor]) {
        assert!(!p.alive(), "process {} survived the pod", p.pid);
    }
    assert_eq!(node.cgroup_processes(), Vec::<u32>::new());
    let cg = kelp_agent::cgroup::Cgroups::detect().unwrap();
    for dir in cg.dirs(&rc.pod_cgroup(&pod.uid)).unwrap() {
        assert!(!dir.exists(), "cgroup {} left", dir.display());
    }
    assert_eq!(node.mounts(), Vec::<std::path::PathBuf>::new());
    let log_dir = rc.pod_log_dir("default", "del-e2e", &pod.uid);
    assert!(
        !log_dir.exists(),
        "logs of the deleted pod left in {}",
        log_dir.display()
    );
}

#[test]
fn env_comes_from_local_configmaps_secrets_and_the_downward_api_and_logs_follow() {
    let mut node = Node::new("env");
    node.start_agent();
    node.apply(
        "cfg.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-cfg}\ndata: {GREETING: hello, MODE: edge}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: app-secret}\nstringData: {token: s3cret}\n",
    );
    node.apply(
        "env.yaml",
        &pod_yaml(
            "env",
            &format!(
                r#"  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, 'echo "$GREETING $MODE $TOKEN $POD_NAME $NODE"; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done']
    envFrom: [{{configMapRef: {{name: app-cfg}}}}]
    env:
    - {{name: TOKEN, valueFrom: {{secretKeyRef: {{name: app-secret, key: token}}}}}}
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
"#
            ),
        ),
    );
    let pod = node.wait_running("env");
    let log = node.wait_for("the env line", Duration::from_secs(30), |n| {
        let l = n.log_of(&pod, "c");
        l.contains("tick 3").then_some(l)
    });
    assert_eq!(
        log.lines().next(),
        Some("hello edge s3cret env-e2e e2e"),
        "{log}"
    );

    let tail = node.cli(&["logs", &pod.name, "--tail", "1"]);
    let tail = String::from_utf8(tail.stdout).unwrap();
    assert_eq!(tail.lines().count(), 1, "{tail:?}");
    assert!(tail.starts_with("tick "), "{tail:?}");

    // -f keeps printing what comes after.
    let mut follow = std::process::Command::new(common::AGENT)
        .args(["logs", &pod.name, "-f", "--tail", "1"])
        .args(["--state-dir", node.state_dir.to_str().unwrap()])
        .args(["--run-dir", node.run_dir.to_str().unwrap()])
        .args(["--log-dir", node.log_dir.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(follow.stdout.take().unwrap()));
    let first: u32 = lines.next().unwrap().unwrap()["tick ".len()..]
        .parse()
        .unwrap();
    let later: u32 = lines.nth(3).unwrap().unwrap()["tick ".len()..]
        .parse()
        .unwrap();
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(later, first + 4, "follow skipped or repeated lines");
}

#[test]
fn image_gc_removes_unused_images_and_keeps_the_ones_pods_need() {
    let mut node = Node::new("imagegc");
    // A second image the node does not need.
    let rootfs = node.base.join("other-rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    kelp_agent::image::build::busybox_rootfs(&rootfs).unwrap();
    fs::write(rootfs.join("other"), b"not the same image").unwrap();
    let tar = node.base.join("other.tar");
    let built = node.cli(&[
        "image",
        "build",
        rootfs.to_str().unwrap(),
        "-o",
        tar.to_str().unwrap(),
        "--reference",
        "kelp.test/other:1",
    ]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(node
        .cli(&["image", "import", tar.to_str().unwrap()])
        .status
        .success());
    // Thresholds of 0 %: the disk always counts as full, so every unused image must go.
    node.extra_args = vec![
        "--image-gc-high-threshold".into(),
        "0".into(),
        "--image-gc-low-threshold".into(),
        "0".into(),
    ];
    node.start_agent();
    node.apply(
        "keep.yaml",
        &pod_yaml(
            "keep",
            &format!(
                "  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
            ),
        ),
    );
    node.wait_running("keep");
    node.wait_for("the unused image to go", Duration::from_secs(30), |n| {
        let list = String::from_utf8(n.cli(&["image", "list"]).stdout).unwrap();
        (!list.contains("kelp.test/other:1")).then_some(())
    });
    let list = String::from_utf8(node.cli(&["image", "list"]).stdout).unwrap();
    assert!(
        list.contains(BUSYBOX),
        "the image a pod needs was removed: {list}"
    );
    let events = String::from_utf8(node.cli(&["events", "-o", "json"]).stdout).unwrap();
    assert!(
        events.contains("ImageGCRemoved") && events.contains("kelp.test/other:1"),
        "the removal is not an event: {events}"
    );
}
