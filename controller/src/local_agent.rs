//! The node agent `kelp server` runs on its own machine (as k3s's server runs a kubelet), so
//! one command gives a working one-machine cluster; `--disable-agent` turns it off.
//!
//! At start the server makes sure the machine's Node and its MQTT credentials exist (the
//! same objects `kelp node add` creates), writes the agent's join file into the data dir
//! (0600, rewritten each start: the broker address may change) and runs `kelp-agent run
//! --join-file FILE` as a child process, restarted with back-off when it exits. The child
//! gets SIGTERM when the server goes, even by `kill -9` (the parent-death signal): its pods
//! keep running, and the next server's agent takes them over.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use kelp_shared::join::JoinFile;
use serde_json::json;

use crate::hub::broker::{credentials_secret, credentials_secret_object, CREDENTIALS_NAMESPACE};
use crate::hub::{identity::random_secret, CLUSTER_INFO, CLUSTER_INFO_NAMESPACE};
use crate::store::{Durability, Key, Store, StoreError};

/// How the local agent runs.
#[derive(Debug, Clone)]
pub struct LocalAgentOptions {
    /// The `kelp-agent` binary.
    pub binary: PathBuf,
    /// The node's name.
    pub node: String,
    /// The broker URL the agent connects to.
    pub broker_url: String,
    /// More `kelp-agent run` arguments.
    pub args: Vec<String>,
}

/// The running local agent; [`LocalAgent::stop`] ends it.
#[derive(Debug)]
pub struct LocalAgent {
    stopping: Arc<AtomicBool>,
    child: Arc<Mutex<Option<u32>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The `kelp-agent` binary: beside this executable, else on `PATH`.
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("kelp-agent"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("kelp-agent"))
}

/// The machine's host name, as the node's name.
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .to_ascii_lowercase()
}

/// Makes sure the Node and its credentials exist, writes the join file under `data_dir` and
/// starts the agent.
pub async fn start(
    store: &Store,
    data_dir: &Path,
    options: LocalAgentOptions,
) -> anyhow::Result<LocalAgent> {
    kelp_shared::wire::check_node_name(&options.node).map_err(|e| {
        anyhow::anyhow!(
            "--agent-node-name {:?}: {e} (the host name is the default)",
            options.node
        )
    })?;
    if options.binary.components().count() > 1 && !options.binary.is_file() {
        anyhow::bail!(
            "--agent-binary {}: no such file (or run with --disable-agent)",
            options.binary.display()
        );
    }
    let password = ensure_node(store, &options.node).await?;
    let info = store
        .get(&Key::new("ConfigMap", CLUSTER_INFO_NAMESPACE, CLUSTER_INFO))
        .context("the cluster info is missing")?;
    let field = |name: &str| -> anyhow::Result<String> {
        info.object["data"][name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the cluster info has no {name}"))
    };
    let join = JoinFile {
        broker_url: options.broker_url.clone(),
        username: options.node.clone(),
        password,
        ca_pem: info.object["data"]["brokerCaPem"]
            .as_str()
            .map(str::to_owned),
        cluster_id: field("clusterId")?
            .parse()
            .map_err(|e| anyhow::anyhow!("cluster info: {e}"))?,
        controller_public_key: field("controllerPublicKey")?
            .parse()
            .map_err(|e| anyhow::anyhow!("cluster info: {e}"))?,
        node_name: options.node.clone(),
        topic_prefix: field("topicPrefix")?,
        client_identity: None,
    };
    join.check().map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = data_dir.join("agent");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let join_path = dir.join("join.yaml");
    crate::config::write_private_atomic(&join_path, join.to_yaml().as_bytes())
        .with_context(|| format!("writing {}", join_path.display()))?;

    let stopping = Arc::new(AtomicBool::new(false));
    let child = Arc::new(Mutex::new(None));
    let thread = {
        let stopping = stopping.clone();
        let child = child.clone();
        // The child's parent-death signal follows the thread that spawned it: this thread
        // lives as long as the agent should.
        std::thread::Builder::new()
            .name("local-agent".into())
            .spawn(move || supervise(&options, &join_path, &stopping, &child))?
    };
    Ok(LocalAgent {
        stopping,
        child,
        thread: Some(thread),
    })
}

/// Creates the Node (if missing) and its credentials Secret (if missing); returns the
/// node's MQTT password.
async fn ensure_node(store: &Store, node: &str) -> anyhow::Result<String> {
    let now = chrono::Utc::now()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .to_string();
    let key = Key::new("Node", "", node);
    if store.get(&key).is_none() {
        let object = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": now,
            },
            "spec": {},
        });
        match store.create(key, object, Durability::Durable).await {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let name = credentials_secret(node);
    let key = Key::new("Secret", CREDENTIALS_NAMESPACE, &name);
    if let Some(secret) = store.get(&key) {
        let stored = secret.object["data"]["password"].as_str().unwrap_or("");
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(stored) {
            if let Ok(password) = String::from_utf8(bytes) {
                if !password.is_empty() {
                    return Ok(password);
                }
            }
        }
        anyhow::bail!(
            "secret {CREDENTIALS_NAMESPACE}/{name} has no usable data.password: delete it to have a new one made"
        );
    }
    let password = random_secret();
    let mut object = credentials_secret_object(node, &password);
    object["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    object["metadata"]["creationTimestamp"] = json!(now);
    store.create(key, object, Durability::Durable).await?;
    Ok(password)
}

/// Runs the agent until `stopping`, restarting it (1 s back-off, doubled to 30 s; reset
/// after a minute of running).
fn supervise(
    options: &LocalAgentOptions,
    join: &Path,
    stopping: &AtomicBool,
    child_pid: &Mutex<Option<u32>>,
) {
    let mut backoff = Duration::from_secs(1);
    while !stopping.load(Ordering::SeqCst) {
        let mut command = Command::new(&options.binary);
        command.arg("run").arg("--join-file").arg(join);
        command.args(&options.args);
        // The agent asks for SIGTERM when its parent (this thread) goes, then checks it
        // still has this parent.
        command
            .arg("--stop-with-parent")
            .arg(std::process::id().to_string());
        let started = Instant::now();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(
                    binary = %options.binary.display(),
                    "cannot start the local kelp-agent: {e} (build it, give --agent-binary, or run with --disable-agent)"
                );
                sleep_unless(stopping, backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        tracing::info!(node = %options.node, pid = child.id(), "local kelp-agent started");
        *child_pid.lock().unwrap_or_else(|e| e.into_inner()) = Some(child.id());
        let status = child.wait();
        *child_pid.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        match status {
            Ok(status) => {
                tracing::warn!(%status, "the local kelp-agent exited; restarting it in {backoff:?}")
            }
            Err(e) => tracing::warn!(
                "waiting for the local kelp-agent: {e}; restarting it in {backoff:?}"
            ),
        }
        sleep_unless(stopping, backoff);
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn sleep_unless(stopping: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while !stopping.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl LocalAgent {
    /// Stops the agent (SIGTERM; its pods keep running) and waits for it, at most 10 s.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(pid) = *self.child.lock().unwrap_or_else(|e| e.into_inner()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        if let Some(thread) = self.thread.take() {
            let until = Instant::now() + Duration::from_secs(10);
            while !thread.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}
