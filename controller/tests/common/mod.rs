//! Helpers for the controller's end-to-end tests: a real `kelp server` process on port 0 in a
//! temp dir, the real `kelp` CLI, and a raw HTTPS client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `kelp` binary under test.
pub fn kelp_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kelp"))
}

/// A running `kelp server`, killed (and its temp dir removed) on drop.
pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
    /// `host:port` of the embedded MQTT broker.
    pub mqtt: Option<String>,
    pub extra_args: Vec<String>,
}

impl Server {
    /// Starts a server on 127.0.0.1:0 with its own data dir and client config.
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("kelp-e2e-")
            .tempdir()
            .unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, url, mqtt) = spawn(dir.path(), &extra);
        Server {
            child,
            dir,
            url,
            mqtt,
            extra_args: extra,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("kelp.yaml")
    }

    /// `kill -9`, then start again on the same data dir.
    pub fn kill9_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let (child, url, mqtt) = spawn(self.dir.path(), &self.extra_args);
        self.child = child;
        self.url = url;
        self.mqtt = mqtt;
    }

    /// Runs the `kelp` CLI against this server.
    pub fn kelp(&self, args: &[&str]) -> Output {
        self.kelp_stdin(args, None)
    }

    /// Runs the `kelp` CLI with `stdin` as standard input.
    pub fn kelp_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new(kelp_bin());
        cmd.args(args)
            .env("KELP_CONFIG", self.config_path())
            .current_dir(self.dir.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Writes a file into the test dir and returns its path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    /// A raw HTTPS client with the cluster CA and, if `token`, the admin token.
    pub fn http(&self, token: bool) -> Http {
        let cfg: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(self.config_path()).unwrap()).unwrap();
        let ca = cfg["certificateAuthority"].as_str().unwrap().to_string();
        let certs: Vec<_> = ureq::tls::parse_pem(ca.as_bytes())
            .filter_map(|i| match i.unwrap() {
                ureq::tls::PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        Http {
            agent,
            base: self.url.clone(),
            token: token.then(|| cfg["token"].as_str().unwrap().to_string()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, extra: &[String]) -> (Child, String, Option<String>) {
    // Each test server gets its own free port for the embedded broker, unless told.
    let mqtt_default: &[&str] = if extra.iter().any(|a| a.starts_with("--mqtt-")) {
        &[]
    } else {
        &["--mqtt-listen", "127.0.0.1:0"]
    };
    let mut child = Command::new(kelp_bin())
        .arg("server")
        .arg("--disable-agent")
        .args(mqtt_default)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--write-config")
        .arg(dir.join("kelp.yaml"))
        .args(extra)
        .env("KELP_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kelp server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut mqtt = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("kelp mqtt broker listening on mqtt://") {
                    mqtt = Some(rest.trim().to_string());
                }
                if let Some(rest) = line.strip_prefix("kelp server listening on ") {
                    let url = rest.split_whitespace().next().unwrap().to_string();
                    return (child, url, mqtt);
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("kelp server did not print its address within 30 s");
            }
        }
    }
}

/// A raw HTTPS client for the API.
pub struct Http {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

/// Status code and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub body: Value,
    pub text: String,
}

impl Http {
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let data = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        let req = req.header("Content-Type", content_type).body(data).unwrap();
        let resp = self.agent.run(req).expect("request reaches the server");
        let code = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { code, body, text }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, "application/json")
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.request("POST", path, Some(body), "application/json")
    }

    pub fn put(&self, path: &str, body: &Value) -> Reply {
        self.request("PUT", path, Some(body), "application/json")
    }

    pub fn patch(&self, path: &str, body: &Value) -> Reply {
        self.request("PATCH", path, Some(body), "application/merge-patch+json")
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, None, "application/json")
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// stdout + stderr of a CLI run, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The seed's Pod manifest, cut from the seed document.
pub fn seed_pod() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seed");
    let mut text = String::new();
    for e in std::fs::read_dir(&dir).expect("../shared/seed beside the project") {
        text.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    let start = text.find("apiVersion: v1\nkind: Pod").expect("seed Pod");
    let end = start + text[start..].find("```").unwrap();
    text[start..end].to_string()
}
