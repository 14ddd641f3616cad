//! End-to-end tests of container probes: a real agent and monitor, busybox containers, probe
//! time at a tenth (`--probe-time-scale 0.1`: `periodSeconds: 1` probes every 100 ms). Each
//! handler against a real server in the pod (exec in the container, httpGet against `busybox
//! httpd`, tcpSocket against `busybox nc`); readiness both ways; a startup probe holding
//! liveness back; a failing liveness probe restarting its container.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Node, BUSYBOX};
use kelp_agent::agent::PodReport;
use kelp_shared::api::core::ContainerStatus;

fn pod_yaml(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn node(test: &str) -> Node {
    let mut node = Node::new(test);
    node.extra_args
        .extend(["--probe-time-scale".to_string(), "0.1".to_string()]);
    node.start_agent();
    node
}

fn container<'a>(pod: &'a PodReport, name: &str) -> &'a ContainerStatus {
    pod.status
        .container_statuses
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no status of container {name}"))
}

fn condition(pod: &PodReport, type_: &str) -> (String, Option<String>) {
    let c = pod
        .status
        .conditions
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone())
}

fn running(pod: &PodReport, name: &str) -> bool {
    container(pod, name)
        .state
        .as_ref()
        .is_some_and(|s| s.running.is_some())
}

/// Events of the pod with this reason, as (message, count).
fn events(pod: &PodReport, reason: &str) -> Vec<(String, u32)> {
    pod.events
        .iter()
        .filter(|e| e.reason == reason)
        .map(|e| (e.message.clone(), e.count))
        .collect()
}

/// A directory of the test's own, shared with the pod through a hostPath volume.
fn shared_dir(node: &Node, name: &str) -> std::path::PathBuf {
    let dir = node.base.join(name);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn touch(path: &Path) {
    fs::write(path, "ok\n").unwrap();
}

#[test]
fn exec_readiness_flips_the_ready_condition_both_ways() {
    let node = node("probe-ready");
    let flags = shared_dir(&node, "flags");
    node.apply(
        "ready.yaml",
        &pod_yaml(
            "ready",
            &format!(
                r#"  volumes: [{{name: flags, hostPath: {{path: {}}}}}]
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, "3600"]
    volumeMounts: [{{name: flags, mountPath: /x}}]
    readinessProbe:
      exec: {{command: [test, -f, /x/ready]}}
      periodSeconds: 1
      timeoutSeconds: 10
      failureThreshold: 1
"#,
                flags.display()
            ),
        ),
    );
    // Running, but not ready until the probe passes.
    let pod = node.wait_for("app running, not ready", Duration::from_secs(60), |n| {
        n.pod("ready").filter(|p| {
            running(p, "app")
                && events(p, "Unhealthy")
                    .iter()
                    .any(|(m, _)| m.starts_with("Readiness probe failed: "))
        })
    });
    let app = container(&pod, "app");
    assert!(!app.ready, "{app:?}");
    assert_eq!(app.started, Some(true), "no startup probe: started");
    assert_eq!(
        condition(&pod, "Ready"),
        ("False".into(), Some("ContainersNotReady".into()))
    );
    assert_eq!(condition(&pod, "ContainersReady").0, "False");
    assert_eq!(
        events(&pod, "Unhealthy")[0].0,
        "Readiness probe failed: command \"test -f /x/ready\" exited with code 1"
    );

    touch(&flags.join("ready"));
    let pod = node.wait_for("pod ready", Duration::from_secs(30), |n| {
        n.pod("ready").filter(|p| condition(p, "Ready").0 == "True")
    });
    assert!(container(&pod, "app").ready);
    assert_eq!(condition(&pod, "ContainersReady"), ("True".into(), None));

    fs::remove_file(flags.join("ready")).unwrap();
    let pod = node.wait_for("pod not ready again", Duration::from_secs(30), |n| {
        n.pod("ready")
            .filter(|p| condition(p, "Ready").0 == "False")
    });
    let app = container(&pod, "app");
    assert!(!app.ready && running(&pod, "app"));
    assert_eq!(app.restart_count, 0, "readiness never restarts");
    assert!(events(&pod, "Killing").is_empty());
    // libcontainer's per-exec notify sockets do not pile up.
    let lc = node
        .runtime_config()
        .pod_paths(&pod.uid)
        .libcontainer_root()
        .join("app");
    let left: Vec<_> = fs::read_dir(&lc)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("tenant-"))
        .collect();
    assert!(left.len() <= 1, "{left:?}");
}

#[test]
fn http_liveness_failure_restarts_the_container() {
    let node = node("probe-live");
    let www = shared_dir(&node, "www");
    touch(&www.join("healthz"));
    node.apply(
        "live.yaml",
        &pod_yaml(
            "live",
            &format!(
                r#"  volumes: [{{name: www, hostPath: {{path: {}}}}}]
  containers:
  - name: web
    image: {BUSYBOX}
    command: [httpd, -f, -p, "8080", -h, /www]
    ports: [{{name: http, containerPort: 8080}}]
    volumeMounts: [{{name: www, mountPath: /www}}]
    livenessProbe:
      httpGet: {{path: /healthz, port: http, httpHeaders: [{{name: X-Kelp, value: probe}}]}}
      periodSeconds: 1
      timeoutSeconds: 5
      failureThreshold: 2
      terminationGracePeriodSeconds: 5
    readinessProbe:
      httpGet: {{path: /healthz, port: 8080}}
      periodSeconds: 1
      timeoutSeconds: 5
"#,
                www.display()
            ),
        ),
    );
    let pod = node.wait_running("live");
    // Healthy for a while (twenty liveness periods): no failure, no restart.
    std::thread::sleep(Duration::from_secs(2));
    let pod = node.pod("live").unwrap_or(pod);
    assert!(events(&pod, "Unhealthy").is_empty(), "{:?}", pod.events);
    assert_eq!(container(&pod, "web").restart_count, 0);
    assert!(container(&pod, "web").ready);
    let first_run = node.runs(&pod.uid)["web"].clone();

    fs::remove_file(www.join("healthz")).unwrap();
    let pod = node.wait_for("a liveness restart", Duration::from_secs(60), |n| {
        n.pod("live").filter(|p| {
            let web = container(p, "web");
            web.restart_count >= 1 && web.last_state.is_some()
        })
    });
    touch(&www.join("healthz"));
    let web = container(&pod, "web");
    let last = web
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("lastState.terminated after the kill");
    assert_eq!(last.reason.as_deref(), Some("Error"), "{last:?}");
    assert!(
        last.exit_code == 143 || last.exit_code == 137,
        "killed by SIGTERM or SIGKILL: {last:?}"
    );
    let unhealthy = events(&pod, "Unhealthy");
    assert!(
        unhealthy.iter().any(|(m, n)| m
            == "Liveness probe failed: HTTP probe failed with statuscode: 404"
            && *n >= 2),
        "{unhealthy:?}"
    );
    assert!(
        events(&pod, "Killing")
            .iter()
            .any(|(m, _)| m == "Container web failed liveness probe, will be restarted"),
        "{:?}",
        pod.events
    );
    // The killed run's record says why.
    let runs = node.runs(&pod.uid);
    let killed = if runs["web"].started_at == first_run.started_at {
        runs["web"].clone()
    } else {
        *runs["web"].last.clone().expect("the killed run as last")
    };
    assert_eq!(
        killed.probes.as_ref().and_then(|p| p.killed),
        Some(kelp_agent::probe::ProbeKind::Liveness)
    );
    // The new run is healthy again and ready.
    let pod = node.wait_for("ready after the restart", Duration::from_secs(60), |n| {
        n.pod("live")
            .filter(|p| running(p, "web") && container(p, "web").ready)
    });
    assert_eq!(condition(&pod, "Ready").0, "True");
}

#[test]
fn startup_probe_holds_liveness_back_and_tcp_readiness() {
    let node = node("probe-startup");
    // Three seconds (real time) before it listens and its liveness file exists: a liveness
    // probe failing once would kill it (failureThreshold 1, every 100 ms) were it not held
    // back by the startup probe.
    node.apply(
        "slow.yaml",
        &pod_yaml(
            "slow",
            &format!(
                r#"  containers:
  - name: slow
    image: {BUSYBOX}
    command: [sh, -c, 'sleep 3; touch /tmp/alive; exec nc -ll -p 9000 -e cat']
    ports: [{{name: echo, containerPort: 9000}}]
    startupProbe:
      tcpSocket: {{port: echo}}
      periodSeconds: 1
      failureThreshold: 100
    livenessProbe:
      exec: {{command: [test, -f, /tmp/alive]}}
      periodSeconds: 1
      timeoutSeconds: 10
      failureThreshold: 1
    readinessProbe:
      tcpSocket: {{port: 9000}}
      periodSeconds: 1
"#
            ),
        ),
    );
    let start = Instant::now();
    let pod = node.wait_for("slow running, not started", Duration::from_secs(60), |n| {
        n.pod("slow").filter(|p| running(p, "slow"))
    });
    let slow = container(&pod, "slow");
    assert_eq!(slow.started, Some(false), "{slow:?}");
    assert!(!slow.ready);
    let pod = node.wait_running("slow");
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "started before it listened"
    );
    let slow = container(&pod, "slow");
    assert_eq!(slow.started, Some(true));
    // Liveness ran for a while after startup passed (every 100 ms) and passed.
    std::thread::sleep(Duration::from_secs(1));
    let pod = node.pod("slow").unwrap();
    let slow = container(&pod, "slow");
    assert_eq!(slow.restart_count, 0, "{:?}", pod.events);
    assert!(slow.ready);
    let unhealthy = events(&pod, "Unhealthy");
    assert!(
        unhealthy
            .iter()
            .any(|(m, _)| m.starts_with("Startup probe failed: dial tcp ")
                && m.ends_with(":9000: connect: connection refused")),
        "{unhealthy:?}"
    );
    assert!(
        unhealthy
            .iter()
            .all(|(m, _)| m.starts_with("Startup probe failed")),
        "liveness and readiness do not run before startup passed: {unhealthy:?}"
    );
    assert!(events(&pod, "Killing").is_empty());
    let record = node.runs(&pod.uid)["slow"].probes.clone().unwrap();
    assert!(record.started && record.ready && record.killed.is_none());
}

#[test]
fn failing_startup_probe_kills_and_never_policy_keeps_it_dead() {
    let node = node("probe-startfail");
    node.apply(
        "never.yaml",
        &pod_yaml(
            "never",
            &format!(
                r#"  restartPolicy: Never
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sleep, "3600"]
    startupProbe:
      exec: {{command: [sh, -c, 'echo not yet; exit 3']}}
      periodSeconds: 1
      timeoutSeconds: 10
      failureThreshold: 3
      terminationGracePeriodSeconds: 1
"#
            ),
        ),
    );
    let pod = node.wait_for(
        "killed by its startup probe",
        Duration::from_secs(60),
        |n| {
            n.pod("never").filter(|p| {
                container(p, "c")
                    .state
                    .as_ref()
                    .is_some_and(|s| s.terminated.is_some())
            })
        },
    );
    assert_eq!(pod.status.phase.as_deref(), Some("Failed"));
    let c = container(&pod, "c");
    assert_eq!(c.restart_count, 0);
    assert_eq!(c.started, Some(false));
    let unhealthy = events(&pod, "Unhealthy");
    assert_eq!(
        unhealthy,
        [("Startup probe failed: not yet".to_string(), 3)],
        "{:?}",
        pod.events
    );
    assert_eq!(
        events(&pod, "Killing"),
        [("Container c failed startup probe".to_string(), 1)]
    );
}
