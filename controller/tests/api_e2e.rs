//! End to end: a real `kelp server` process, the real `kelp` CLI, real TLS and tokens.
//! The issue's acceptance list, step by step.

mod common;

use std::time::Duration;

use common::{eventually, text, Server};
use serde_json::{json, Value};

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(o: &std::process::Output) -> String {
    assert!(!o.status.success(), "expected failure:\n{}", text(o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn seed_pod_lifecycle_with_the_cli() {
    let server = Server::start(&[]);
    assert_eq!(
        ok(&server.kelp(&["create", "namespace", "luffy"])).trim(),
        "namespace/luffy created"
    );

    let seed = common::seed_pod();
    let file = server.file("myblog.yaml", &seed);
    assert_eq!(
        ok(&server.kelp(&["apply", "-f", &file])).trim(),
        "pod/myblog created"
    );
    assert_eq!(
        ok(&server.kelp(&["apply", "-f", &file])).trim(),
        "pod/myblog unchanged"
    );

    let new_image = seed.replace("myblog:v1", "myblog:v2");
    let file2 = server.file("myblog-v2.yaml", &new_image);
    assert_eq!(
        ok(&server.kelp(&["apply", "-f", &file2])).trim(),
        "pod/myblog configured"
    );
    let live = server
        .http(true)
        .get("/api/v1/namespaces/luffy/pods/myblog");
    assert_eq!(
        live.body["spec"]["containers"][0]["image"],
        "192.168.136.10:5000/myblog:v2"
    );

    let new_port = new_image.replace("containerPort: 8002", "containerPort: 8003");
    let file3 = server.file("myblog-port.yaml", &new_port);
    let err = fails(&server.kelp(&["apply", "-f", &file3]));
    assert!(
        err.contains("Forbidden: pod updates may not change fields other than"),
        "{err}"
    );

    // The same name in `default` is another object.
    let in_default = seed.replace("  namespace: luffy\n", "");
    let file4 = server.file("myblog-default.yaml", &in_default);
    assert_eq!(
        ok(&server.kelp(&["apply", "-f", &file4])).trim(),
        "pod/myblog created"
    );
    let err = fails(&server.kelp(&["create", "-f", &file]));
    assert!(
        err.contains("AlreadyExists") && err.contains(r#"pods "myblog" already exists"#),
        "{err}"
    );

    // kubectl's columns, both pods Pending with no node.
    let table = ok(&server.kelp(&["get", "pods", "-A", "-o", "wide"]));
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ],
        "{table}"
    );
    assert_eq!(lines.len(), 3, "{table}");
    for (line, ns) in lines[1..].iter().zip(["default", "luffy"]) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], ns, "{table}");
        assert_eq!(cols[1], "myblog");
        assert_eq!(cols[2], "0/2");
        assert_eq!(cols[3], "Pending");
        assert_eq!(
            cols[6..],
            ["<none>", "<none>", "<none>", "<none>"],
            "{table}"
        );
    }
    // Short names work.
    assert!(ok(&server.kelp(&["get", "po", "-n", "luffy"])).contains("myblog"));

    // A bad manifest: 422 naming the field.
    let bad = server.file(
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n",
    );
    let err = fails(&server.kelp(&["apply", "-f", &bad]));
    assert!(
        err.contains("spec.containers[0].image: Required value"),
        "{err}"
    );

    // Deleting luffy removes what it holds; kube-system may not be deleted.
    ok(&server.kelp(&["delete", "namespace", "luffy"]));
    eventually(
        Duration::from_secs(20),
        "namespace luffy to disappear",
        || {
            let r = server.http(true).get("/api/v1/namespaces/luffy");
            (r.code == 404).then_some(())
        },
    );
    assert_eq!(
        server
            .http(true)
            .get("/api/v1/namespaces/luffy/pods/myblog")
            .code,
        404
    );
    assert_eq!(
        server
            .http(true)
            .get("/api/v1/namespaces/default/pods/myblog")
            .code,
        200
    );
    let err = fails(&server.kelp(&["delete", "namespace", "kube-system"]));
    assert!(
        err.contains("Forbidden") || err.contains("forbidden"),
        "{err}"
    );
}

#[test]
fn api_resources_lists_the_seed_table() {
    let server = Server::start(&[]);
    let out = ok(&server.kelp(&["api-resources"]));
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    for (kind, api_version, namespaced, short) in [
        (
            "ClusterRoleBinding",
            "rbac.authorization.k8s.io/v1",
            "false",
            "",
        ),
        ("ClusterRole", "rbac.authorization.k8s.io/v1", "false", ""),
        ("ConfigMap", "v1", "true", "cm"),
        ("CronJob", "batch/v1", "true", "cj"),
        ("DaemonSet", "apps/v1", "true", "ds"),
        ("Node", "v1", "false", "no"),
        ("Namespace", "v1", "false", "ns"),
        ("Secret", "v1", "true", ""),
        ("PersistentVolume", "v1", "false", "pv"),
        ("PersistentVolumeClaim", "v1", "true", "pvc"),
        ("Pod", "v1", "true", "po"),
        ("Deployment", "apps/v1", "true", "deploy"),
        ("Service", "v1", "true", "svc"),
        ("Ingress", "networking.k8s.io/v1", "true", "ing"),
        ("ReplicaSet", "apps/v1", "true", "rs"),
        ("Job", "batch/v1", "true", ""),
        ("StatefulSet", "apps/v1", "true", "sts"),
    ] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().last() == Some(kind))
            .unwrap_or_else(|| panic!("{kind} missing:\n{out}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(cols.contains(&api_version), "{line}");
        assert!(cols.contains(&namespaced), "{line}");
        if !short.is_empty() {
            assert!(cols.contains(&short), "{line}");
        }
    }
}

#[test]
fn every_route_needs_the_token() {
    let server = Server::start(&[]);
    let anon = server.http(false);
    for path in [
        "/version",
        "/api",
        "/apis",
        "/api/v1",
        "/api/v1/pods",
        "/api/v1/namespaces/default/pods/x",
        "/apis/apps/v1/deployments",
        "/nonexistent",
    ] {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let r = anon.request(method, path, Some(&json!({})), "application/json");
            assert_eq!(r.code, 401, "{method} {path}: {}", r.text);
            assert_eq!(r.body["reason"], "Unauthorized");
        }
    }
    let authed = server.http(true);
    assert_eq!(authed.get("/api/v1/namespaces").code, 200);
}

#[test]
fn watch_resumes_from_a_revision_and_410s_when_compacted() {
    let server = Server::start(&["--watch-log-capacity", "8"]);
    let http = server.http(true);
    let list = http.get("/api/v1/namespaces/default/configmaps");
    let r0: u64 = list.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let cm = |name: &str, v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": v}});
    assert_eq!(
        http.post("/api/v1/namespaces/default/configmaps", &cm("a", "1"))
            .code,
        201
    );
    assert_eq!(
        http.post("/api/v1/namespaces/default/configmaps", &cm("b", "1"))
            .code,
        201
    );
    assert_eq!(
        http.patch(
            "/api/v1/namespaces/default/configmaps/a",
            &json!({"data": {"k": "2"}})
        )
        .code,
        200
    );
    assert_eq!(
        http.delete("/api/v1/namespaces/default/configmaps/b").code,
        200
    );

    let w = http.get(&format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={r0}&timeoutSeconds=1"
    ));
    assert_eq!(w.code, 200, "{}", w.text);
    let events: Vec<(String, String, String)> = w
        .text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["type"].as_str().unwrap().to_string(),
                v["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                v["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|(t, n, _)| (t.as_str(), n.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("ADDED", "a"),
            ("ADDED", "b"),
            ("MODIFIED", "a"),
            ("DELETED", "b")
        ]
    );
    let revs: Vec<u64> = events.iter().map(|(_, _, r)| r.parse().unwrap()).collect();
    assert!(
        revs.windows(2).all(|w| w[0] < w[1]) && revs[0] > r0,
        "{revs:?}"
    );

    // Push r0 out of the 8-entry log.
    for i in 0..12 {
        assert_eq!(
            http.post(
                "/api/v1/namespaces/default/configmaps",
                &cm(&format!("x{i}"), "1")
            )
            .code,
            201
        );
    }
    let gone = http.get(&format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={r0}"
    ));
    assert_eq!(gone.code, 410, "{}", gone.text);
    assert_eq!(gone.body["kind"], "Status");
}

#[test]
fn writes_acknowledged_before_kill_9_survive_it() {
    let mut server = Server::start(&[]);
    let http = server.http(true);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let (stop, acked) = (stop.clone(), acked.clone());
        std::thread::spawn(move || {
            for i in 0..100_000 {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let body =
                    json!({"metadata": {"name": format!("cm-{i}")}, "data": {"i": i.to_string()}});
                let url = "/api/v1/namespaces/default/configmaps";
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    http.post(url, &body)
                })) {
                    Ok(r) if r.code == 201 => acked.lock().unwrap().push(i),
                    _ => break,
                }
            }
        })
    };
    eventually(Duration::from_secs(30), "some acknowledged writes", || {
        (acked.lock().unwrap().len() >= 50).then_some(())
    });
    server.kill9_and_restart();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = writer.join();
    let acked = acked.lock().unwrap().clone();
    let http = server.http(true);
    let list = http.get("/api/v1/namespaces/default/configmaps");
    let names: std::collections::HashSet<String> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|i| !names.contains(&format!("cm-{i}")))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost after kill -9: {lost:?}",
        lost.len()
    );
    println!(
        "kill -9: {} acknowledged writes, all present after restart",
        acked.len()
    );
}

#[test]
fn port_and_data_dir_conflicts_are_one_clear_line() {
    let server = Server::start(&[]);
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let out = std::process::Command::new(common::kelp_bin())
        .args([
            "server",
            "--disable-agent",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(server.dir.path().join("other"))
        .arg("--write-config")
        .arg(server.dir.path().join("other.yaml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    let out = std::process::Command::new(common::kelp_bin())
        .args([
            "server",
            "--disable-agent",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(server.data_dir())
        .arg("--write-config")
        .arg(server.dir.path().join("other.yaml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is in use by another kelp server"), "{err}");
}

#[test]
fn deletion_waits_for_finalizers_nodes_and_namespace_content() {
    let server = Server::start(&["--namespace-resync", "100ms"]);
    let http = server.http(true);
    ok(&server.kelp(&["create", "namespace", "shop"]));

    // A finalizer holds a deletion until it is removed.
    let cm = json!({"metadata": {"name": "held", "finalizers": ["example.com/keep"]}, "data": {"k": "v"}});
    assert_eq!(
        http.post("/api/v1/namespaces/shop/configmaps", &cm).code,
        201
    );
    assert_eq!(
        http.delete("/api/v1/namespaces/shop/configmaps/held").code,
        200
    );
    let held = http.get("/api/v1/namespaces/shop/configmaps/held");
    assert_eq!(held.code, 200, "still there while the finalizer stays");
    assert!(held.body["metadata"]["deletionTimestamp"].is_string());
    let p = http.patch(
        "/api/v1/namespaces/shop/configmaps/held",
        &json!({"metadata": {"finalizers": null}}),
    );
    assert_eq!(p.code, 200, "{}", p.text);
    assert_eq!(
        http.get("/api/v1/namespaces/shop/configmaps/held").code,
        404
    );

    // A pod bound to a node is Terminating until the node reports it gone.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bound\n  namespace: shop\nspec:\n  nodeName: pi-1\n  containers:\n  - name: c\n    image: busybox:1.36\n";
    assert_eq!(
        ok(&server.kelp_stdin(&["apply", "-f", "-"], Some(pod))).trim(),
        "pod/bound created"
    );
    ok(&server.kelp(&["delete", "pod", "bound", "-n", "shop", "--wait=false"]));
    let table = ok(&server.kelp(&["get", "pods", "-n", "shop"]));
    assert!(
        table.lines().nth(1).unwrap().contains("Terminating"),
        "{table}"
    );

    // The namespace waits for it, and says so.
    ok(&server.kelp(&["delete", "namespace", "shop", "--wait=false"]));
    let waiting = eventually(
        Duration::from_secs(20),
        "the namespace to report remaining content",
        || {
            let ns = http.get("/api/v1/namespaces/shop");
            let msg = ns
                .body
                .pointer("/status/conditions/0/message")?
                .as_str()?
                .to_string();
            (ns.body["status"]["phase"] == "Terminating").then_some(msg)
        },
    );
    assert!(
        waiting.contains("pods has 1 resource instances"),
        "{waiting}"
    );

    // Force deletion ends the pod at once; the namespace then goes.
    ok(&server.kelp(&[
        "delete",
        "pod",
        "bound",
        "-n",
        "shop",
        "--grace-period=0",
        "--force",
    ]));
    eventually(
        Duration::from_secs(20),
        "namespace shop to disappear",
        || (http.get("/api/v1/namespaces/shop").code == 404).then_some(()),
    );
}

#[test]
fn get_watch_streams_changes_and_delete_f_and_sigterm_work() {
    let mut server = Server::start(&[]);
    let mut watcher = std::process::Command::new(common::kelp_bin())
        .args(["get", "configmaps", "-w"])
        .env("KELP_CONFIG", server.config_path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = watcher.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let file = server.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: b\n",
    );
    ok(&server.kelp(&["apply", "-f", &file]));
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a row from kelp get -w");
    let line = if line.starts_with("NAME") {
        rx.recv_timeout(Duration::from_secs(20)).unwrap()
    } else {
        line
    };
    assert!(line.starts_with("watched "), "{line}");
    let _ = watcher.kill();
    let _ = watcher.wait();

    assert_eq!(
        ok(&server.kelp(&["delete", "-f", &file])).trim(),
        r#"configmap "watched" deleted"#
    );
    assert_eq!(
        server
            .http(true)
            .get("/api/v1/namespaces/default/configmaps/watched")
            .code,
        404
    );

    // SIGTERM shuts the server down cleanly.
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = eventually(
        Duration::from_secs(15),
        "the server to exit on SIGTERM",
        || server.child.try_wait().unwrap(),
    );
    assert!(status.success(), "exit status {status:?}");
}
