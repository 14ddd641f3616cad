//! README's first command: `demo/up.sh` brings up a one-machine cluster (`kelp server` with
//! its embedded broker and this machine's agent as a child process) with a demo pod whose
//! image is built on the spot, offline; `kelp get pods -o wide` shows it Running, its page
//! answers, and `demo/down.sh` removes everything. As root; the `kelp` and `kelp-agent`
//! binaries of this build are used (`KELP_DEMO_BIN`), on a per-test directory, bridge,
//! pod CIDR and free ports.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::AGENT;

/// GET / from `addr`: the whole response.
fn http_get(addr: &str) -> String {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: demo\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// Runs `demo/down.sh` on drop, so a failing test leaves nothing behind.
struct Demo {
    env: Vec<(String, String)>,
    dir: PathBuf,
}

impl Demo {
    fn script(&self, name: &str) -> std::process::Output {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../demo")
            .join(name);
        Command::new("sh")
            .arg(path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.script("down.sh");
    }
}

#[test]
fn readme_first_command_runs_the_demo_and_down_removes_it() {
    common::require_root();
    let id = std::process::id();
    let dir = PathBuf::from(format!("/var/tmp/kelp-e2e-demo-{id}"));
    let bridge = format!("kbdm{}", id % 100_000);
    let bin = Path::new(AGENT).parent().unwrap().display().to_string();
    assert!(
        Path::new(&bin).join("kelp").exists(),
        "{bin}/kelp is missing: build the controller too (cargo build -p kelp-controller)"
    );
    let demo = Demo {
        env: vec![
            ("KELP_DEMO_DIR".into(), dir.display().to_string()),
            ("KELP_DEMO_LISTEN".into(), "127.0.0.1:0".into()),
            ("KELP_DEMO_MQTT".into(), "127.0.0.1:0".into()),
            ("KELP_DEMO_BRIDGE".into(), bridge.clone()),
            (
                "KELP_DEMO_CIDR".into(),
                format!("10.{}.0.0/16", 150 + id % 50),
            ),
            ("KELP_DEMO_NODE".into(), "demo-node".into()),
            ("KELP_DEMO_BIN".into(), bin),
        ],
        dir: dir.clone(),
    };
    let up = demo.script("up.sh");
    let stdout = String::from_utf8_lossy(&up.stdout).into_owned();
    assert!(
        up.status.success(),
        "demo/up.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("hello "))
        .unwrap_or_else(|| panic!("no hello row in:\n{stdout}"));
    assert!(
        row.contains("Running") && row.contains("demo-node"),
        "{row}"
    );
    let ip = row
        .split_whitespace()
        .find(|c| c.starts_with(&format!("10.{}.", 150 + id % 50)))
        .unwrap_or_else(|| panic!("a pod IP in the node's CIDR: {row}"));
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("demo-node ") && l.contains(" Ready")),
        "the local agent's node is Ready:\n{stdout}"
    );
    // The page, served by the container, from the host.
    let page = http_get(&format!("{ip}:8080"));
    assert!(page.contains("Hello from kelp"), "the demo page: {page}");

    let down = demo.script("down.sh");
    assert!(down.status.success(), "demo/down.sh: {down:?}");
    assert!(!demo.dir.exists(), "down.sh removes the demo's directory");
    let links = Command::new("ip")
        .args(["link", "show", &bridge])
        .output()
        .unwrap();
    assert!(!links.status.success(), "down.sh removes the bridge");
    let agents = Command::new("pgrep")
        .args([
            "-f",
            &format!("kelp-agent run --join-file {}/", dir.display()),
        ])
        .output()
        .unwrap();
    assert!(
        agents.stdout.is_empty(),
        "no local agent left: {}",
        String::from_utf8_lossy(&agents.stdout)
    );
}
