//! `kelp server`: the store, the API, the node hub with its embedded MQTT broker, the
//! scheduler and controllers, and the local agent, in one process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::api::{self, ApiState};
use crate::config::ClientConfig;
use crate::store::{Store, StoreOptions};

/// Flags of `kelp server`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServerArgs {
    /// Where the store, CA and keys live.
    #[arg(long, default_value = "/var/lib/kelp")]
    pub data_dir: PathBuf,
    /// Address of the HTTPS API (port 0 picks a free port, printed at start).
    #[arg(long, default_value = "0.0.0.0:6443")]
    pub listen: SocketAddr,
    /// Where to write the admin client config (mode 0600).
    #[arg(long, default_value = crate::config::DEFAULT_CONFIG_PATH)]
    pub write_config: PathBuf,
    /// How many changes the in-memory log keeps for watches to resume from.
    #[arg(long, default_value_t = 10_000)]
    pub watch_log_capacity: usize,
    /// How long the namespace controller waits between checks of a terminating namespace.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub namespace_resync: Duration,
    /// Extra names or addresses for the serving certificate.
    #[arg(long = "tls-san")]
    pub tls_san: Vec<String>,
    /// Where the embedded MQTT broker listens (port 0 picks a free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub mqtt_listen: SocketAddr,
    /// Use this external broker (`mqtt://USER:PASSWORD@HOST:PORT`, e.g. Mosquitto, or
    /// `mqtts://…` for TLS with --mqtt-ca) instead of the embedded one.
    #[arg(long, value_name = "URL")]
    pub mqtt_url: Option<String>,
    /// The CA certificate (PEM file) of an `mqtts://` broker; join files carry it to nodes.
    #[arg(long, value_name = "FILE")]
    pub mqtt_ca: Option<PathBuf>,
    /// The broker URL written into join files (default: the broker's address as the server
    /// reaches it).
    #[arg(long, value_name = "URL")]
    pub mqtt_advertise_url: Option<String>,
    /// The MQTT topic prefix.
    #[arg(long, default_value = kelp_shared::wire::DEFAULT_PREFIX)]
    pub topic_prefix: String,
    /// Keep this Mosquitto password file (`$7$` hashes) in line with the nodes and observers
    /// in the store (with --mosquitto-acl and --mqtt-url); a Mosquitto on this machine whose
    /// configuration names it is reloaded (SIGHUP) when it changes.
    #[arg(long, value_name = "FILE", requires_all = ["mosquitto_acl", "mqtt_url"])]
    pub mosquitto_passwd: Option<PathBuf>,
    /// Keep this Mosquitto ACL file: each node reads and writes only its own topics, the
    /// controller all of them, observers read status, reports and metrics.
    #[arg(long, value_name = "FILE", requires = "mosquitto_passwd")]
    pub mosquitto_acl: Option<PathBuf>,
    /// Also serve the embedded broker over TLS here (e.g. 0.0.0.0:8883), with the API's
    /// certificate (add the address nodes use with --tls-san); join files then give nodes
    /// `mqtts://` and the cluster CA. Off loopback it needs --insecure-shared-broker too.
    #[arg(long, value_name = "ADDR")]
    pub mqtt_tls_listen: Option<SocketAddr>,
    /// Let the embedded broker listen on an address other machines reach (--mqtt-listen).
    /// rumqttd enforces no topic ACLs: any node can read every node's topics (signatures
    /// still stop forged desired state). Use Mosquitto with --mosquitto-acl for a fleet.
    #[arg(long)]
    pub insecure_shared_broker: bool,
    /// Accept Secrets even though the nodes' MQTT link is neither TLS nor loopback (their
    /// data then crosses the network in clear text).
    #[arg(long)]
    pub allow_plaintext_secrets: bool,
    /// The pod network; each node gets a /24 of it.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: crate::hub::cidr::ClusterCidr,
    /// How long the node hub waits after a change before publishing desired state.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub desired_debounce: Duration,
    /// A node not heard from for this long (no birth, report or last will since the server
    /// connected to the broker) becomes NotReady (`Ready=Unknown`).
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pub node_grace: Duration,
    /// Delete the pods of a node that has not been Ready for this long, so that their
    /// ReplicaSets replace them elsewhere. Off by default: an edge node that goes offline
    /// keeps running its pods, and they stay where they are.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub pod_eviction_timeout: Option<Duration>,
    /// How often the controllers (scheduler, node lifecycle, ReplicaSets, garbage collector)
    /// look at everything even when nothing changed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub controller_resync: Duration,
    /// Do not run a kelp-agent on this machine (by default the server runs one, joined as
    /// the node named after the host).
    #[arg(long)]
    pub disable_agent: bool,
    /// The local agent's node name (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub agent_node_name: Option<String>,
    /// The local agent's binary (default: `kelp-agent` beside `kelp`, else on PATH).
    #[arg(long, value_name = "PATH")]
    pub agent_binary: Option<PathBuf>,
    /// One more argument for the local `kelp-agent run` (repeat it), such as
    /// `--agent-arg=--state-dir=/srv/kelp-agent`.
    #[arg(long = "agent-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,
    /// The thresholds of nodes' MemoryPressure, DiskPressure and PIDPressure conditions, in
    /// the kubelet's `--eviction-hard` syntax; signals left out keep these defaults.
    #[arg(
        long,
        value_name = "SIGNAL<VALUE,...",
        default_value = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,pid.available<5%"
    )]
    pub eviction_hard: crate::metrics::pressure::Thresholds,
}

/// Parses `250ms`, `2s`, `1m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("invalid duration {s:?}: use ms, s or m")),
    }
}

/// The broker URL nodes are given, when it is neither TLS (`mqtts://`) nor on a loopback
/// address: Secret data would cross the network in clear text.
pub fn plaintext_link(broker_url: &str) -> Option<String> {
    let rest = broker_url.strip_prefix("mqtt://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
    };
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    // Credentials stay out of messages.
    let shown = format!("mqtt://{host_port}");
    (!loopback).then_some(shown)
}

/// Runs the server until SIGTERM or SIGINT.
pub fn main(args: ServerArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KELP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(args))
}

fn load_or_create_token(dir: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("admin.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    Ok(token)
}

/// The async body of `kelp server`.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    // The store holds Secrets and the CA key: only root may read the data dir.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&args.data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict data dir {}", args.data_dir.display()))?;
    }
    let db = args.data_dir.join("store.redb");
    let options = StoreOptions {
        log_capacity: args.watch_log_capacity,
        ..StoreOptions::default()
    };
    let store = Store::open(&db, options).map_err(|e| {
        let text = e.to_string();
        if text.contains("already open") || text.contains("lock") {
            anyhow::anyhow!(
                "data dir {} is in use by another kelp server",
                args.data_dir.display()
            )
        } else {
            anyhow::anyhow!("cannot open the store {}: {text}", db.display())
        }
    })?;
    let tls = api::tls::load_or_create(&args.data_dir, &args.tls_san)?;
    let token = load_or_create_token(&args.data_dir)?;

    let listener = std::net::TcpListener::bind(args.listen).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e} (is another kelp server running?)",
            args.listen
        )
    })?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let host: IpAddr = if local.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        local.ip()
    };
    let url = format!("https://{}", SocketAddr::new(host, local.port()));
    ClientConfig {
        server: url.clone(),
        certificate_authority: tls.ca_pem.clone(),
        token: token.clone(),
    }
    .write(&args.write_config)?;

    let shared = [
        Some(("--mqtt-listen", args.mqtt_listen)),
        args.mqtt_tls_listen.map(|a| ("--mqtt-tls-listen", a)),
    ]
    .into_iter()
    .flatten()
    .find(|(_, addr)| !addr.ip().is_loopback());
    if let (None, Some((flag, addr))) = (&args.mqtt_url, shared) {
        if !args.insecure_shared_broker {
            anyhow::bail!(
                "{flag} {addr}: the embedded broker (rumqttd) enforces no topic ACLs, so on an address other machines reach any node could read every node's topics; use Mosquitto (--mqtt-url with --mosquitto-passwd/--mosquitto-acl), or accept this with --insecure-shared-broker"
            );
        }
        tracing::warn!(
            listen = %addr,
            "--insecure-shared-broker: the embedded broker enforces no topic ACLs; any node can read every node's topics (signatures still stop forged desired state)"
        );
    }
    api::namespaces::ensure_system(&store).await?;
    let topics = kelp_shared::wire::Topics::new(&args.topic_prefix)
        .map_err(|e| anyhow::anyhow!("--topic-prefix: {e}"))?;
    let hub = crate::hub::start(
        store.clone(),
        &args.data_dir,
        crate::hub::HubOptions {
            mqtt_listen: args.mqtt_listen,
            mqtt_url: args.mqtt_url.clone(),
            advertise_url: args.mqtt_advertise_url.clone(),
            mqtt_ca: match &args.mqtt_ca {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("--mqtt-ca {}", path.display()))?,
                ),
                None => None,
            },
            cluster_cidr: args.cluster_cidr,
            debounce: args.desired_debounce,
            node_grace: args.node_grace,
            eviction_hard: args.eviction_hard,
            topics,
            mqtt_tls: args
                .mqtt_tls_listen
                .map(|addr| (addr, tls.server_config.clone(), tls.ca_pem.clone())),
            mosquitto: args
                .mosquitto_passwd
                .clone()
                .zip(args.mosquitto_acl.clone())
                .map(|(passwd, acl)| crate::hub::mosquitto::Files { passwd, acl }),
        },
    )
    .await?;
    if let Some(addr) = hub.embedded {
        println!("kelp mqtt broker listening on mqtt://{addr}");
    }
    let local_agent = if args.disable_agent {
        None
    } else {
        let broker_url = match hub.embedded {
            Some(addr) if addr.ip().is_unspecified() => {
                format!("mqtt://127.0.0.1:{}", addr.port())
            }
            Some(addr) => format!("mqtt://{addr}"),
            None => hub.broker_url.clone(),
        };
        let options = crate::local_agent::LocalAgentOptions {
            binary: args
                .agent_binary
                .clone()
                .unwrap_or_else(crate::local_agent::default_binary),
            node: args
                .agent_node_name
                .clone()
                .unwrap_or_else(crate::local_agent::host_name),
            broker_url,
            args: args.agent_args.clone(),
        };
        let node = options.node.clone();
        let agent = crate::local_agent::start(&store, &args.data_dir, options)
            .await
            .context("starting the local kelp-agent")?;
        println!("kelp agent running on this machine as node {node}");
        Some(agent)
    };
    let plaintext_link = plaintext_link(&hub.broker_url).filter(|_| !args.allow_plaintext_secrets);
    if let Some(link) = &plaintext_link {
        tracing::warn!(
            broker = %link,
            "the nodes' MQTT link is neither TLS nor loopback: Secrets are refused (--allow-plaintext-secrets)"
        );
    }
    let state = ApiState::with_node_requests(
        store.clone(),
        token,
        hub.requests.clone(),
        hub.events.clone(),
        hub.metrics.clone(),
        plaintext_link,
    );
    let ns_task = tokio::spawn(api::namespaces::run(state.clone(), args.namespace_resync));
    let controllers = crate::controllers::spawn(
        state.clone(),
        crate::controllers::Options {
            resync: args.controller_resync,
            pod_eviction_timeout: args.pod_eviction_timeout,
            ..Default::default()
        },
    );

    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    // A hub that dies takes the server down with it.
    let hub_failed = std::sync::Arc::new(std::sync::Mutex::new(None));
    let hub_watch = {
        let shutdown = handle.clone();
        let failed = hub_failed.clone();
        let mut task = hub.task;
        tokio::spawn(async move {
            let outcome = (&mut task).await;
            let error = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(e)) => anyhow::anyhow!("node hub: {e}"),
                Err(e) if e.is_cancelled() => return,
                Err(e) => anyhow::anyhow!("node hub panicked: {e}"),
            };
            tracing::error!("{error:#}");
            *failed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
            shutdown.graceful_shutdown(Some(Duration::from_secs(5)));
        })
    };
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls.server_config.clone());
    println!(
        "kelp server listening on {url} (bound to {local}, data dir {}, client config {})",
        args.data_dir.display(),
        args.write_config.display()
    );
    let app = api::router(state.clone());
    axum_server::from_tcp_rustls(listener, config)?
        .handle(handle)
        .serve(app.into_make_service())
        .await
        .context("serving the API")?;
    if let Some(agent) = local_agent {
        tokio::task::spawn_blocking(move || agent.stop()).await.ok();
    }
    ns_task.abort();
    controllers.abort();
    hub_watch.abort();
    drop(state);
    store.close().await.context("closing the store")?;
    let failed = hub_failed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    match failed {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plaintext_links_are_those_off_loopback_without_tls() {
        use super::plaintext_link;
        assert_eq!(plaintext_link("mqtt://127.0.0.1:1883"), None);
        assert_eq!(plaintext_link("mqtt://localhost:1883"), None);
        assert_eq!(plaintext_link("mqtt://[::1]:1883"), None);
        assert_eq!(plaintext_link("mqtts://10.0.0.1:8883"), None);
        assert_eq!(
            plaintext_link("mqtt://u:p@10.0.0.1:1883").as_deref(),
            Some("mqtt://10.0.0.1:1883")
        );
        assert_eq!(
            plaintext_link("mqtt://broker.lan:1883").as_deref(),
            Some("mqtt://broker.lan:1883")
        );
    }

    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("fast").is_err());
    }
}
