//! Fleet security through a real `kelp server`: the embedded broker only on loopback unless
//! the operator accepts a shared one, Secrets refused over a link in clear text, and the
//! lines `kelp node add` prints for a broker whose users the server does not keep. The
//! Mosquitto ACL itself is tested against real Mosquitto in `agent/tests/fleet_e2e.rs`.

mod common;

use common::{text, Server};

fn secret(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  password: hunter2\n"
    )
}

fn server_output(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(common::kelp_bin())
        .arg("server")
        .arg("--disable-agent")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--write-config")
        .arg(dir.path().join("kelp.yaml"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A refusal ends it at once; a server that starts is stopped after a moment.
    for _ in 0..50 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

#[test]
fn embedded_broker_off_loopback_needs_insecure_shared_broker() {
    let refused = server_output(&["--mqtt-listen", "0.0.0.0:0"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("--mqtt-listen 0.0.0.0:0") && err.contains("--insecure-shared-broker"),
        "{err}"
    );
    assert!(err.contains("no topic ACLs"), "{err}");
    let accepted = server_output(&["--mqtt-listen", "0.0.0.0:0", "--insecure-shared-broker"]);
    let out = text(&accepted);
    assert!(out.contains("kelp server listening on"), "{out}");
    assert!(
        out.contains("enforces no topic ACLs"),
        "warned at start: {out}"
    );
}

#[test]
fn secrets_are_refused_over_a_plaintext_link_off_loopback() {
    let shared = Server::start(&["--mqtt-listen", "0.0.0.0:0", "--insecure-shared-broker"]);
    let out = shared.kelp_stdin(&["apply", "-f", "-"], Some(&secret("db")));
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secrets \"db\" is forbidden")
            && err.contains("unencrypted")
            && err.contains("--allow-plaintext-secrets"),
        "{err}"
    );
    // Other kinds are not affected, and kelp's own credentials still work.
    let ok = shared.kelp(&["node", "add", "pi-1", "-o", "pi-1.join.yaml"]);
    assert!(ok.status.success(), "{}", text(&ok));

    let allowed = Server::start(&[
        "--mqtt-listen",
        "0.0.0.0:0",
        "--insecure-shared-broker",
        "--allow-plaintext-secrets",
    ]);
    let out = allowed.kelp_stdin(&["apply", "-f", "-"], Some(&secret("db")));
    assert!(out.status.success(), "{}", text(&out));

    let loopback = Server::start(&[]);
    let out = loopback.kelp_stdin(&["apply", "-f", "-"], Some(&secret("db")));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn node_add_prints_the_lines_for_a_broker_it_does_not_keep() {
    // An external broker nobody listens on: the server starts and keeps retrying it.
    let server = Server::start(&["--mqtt-url", "mqtt://kelp-controller:pw@127.0.0.1:9"]);
    let out = server.kelp(&["node", "add", "pi-1", "-o", "pi-1.join.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pi-1:$7$101$"), "{stdout}");
    assert!(
        stdout.contains("user pi-1\ntopic read kelp/v1/nodes/pi-1/desired\n"),
        "{stdout}"
    );
    let observer = server.kelp(&["observer", "add", "laptop", "-o", "laptop.yaml"]);
    assert!(observer.status.success(), "{}", text(&observer));
    let stdout = String::from_utf8_lossy(&observer.stdout);
    assert!(
        stdout.contains("user observer@laptop\ntopic read kelp/v1/nodes/+/status\n"),
        "{stdout}"
    );
    let removed = server.kelp(&["node", "remove", "pi-1"]);
    assert!(removed.status.success(), "{}", text(&removed));
    let again = server.kelp(&["node", "remove", "pi-1"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("node \"pi-1\" not found"),
        "{}",
        text(&again)
    );
}
