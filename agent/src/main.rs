//! The `kelp-agent` binary.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use kelp_agent::agent::{Agent, AgentConfig, PodReport};
use kelp_agent::pod::BackOff;
use kelp_agent::runtime::state::read_json;
use kelp_agent::runtime::RuntimeConfig;

// musl builds: musl's malloc takes one lock for every thread and is slow under the agent's
// threads; mimalloc asks the kernel for its page size at start (16K on a Raspberry Pi 5).
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "kelp-agent", version = kelp_shared::VERSION, about = "kelp node agent")]
struct Cli {
    #[command(flatten)]
    dirs: Dirs,
    #[command(subcommand)]
    command: Command,
}

/// Where the agent keeps things; the same for every subcommand.
#[derive(Args, Clone)]
struct Dirs {
    /// Disk state: images, writable layers, emptyDir volumes, agent.redb.
    #[arg(long, global = true, default_value = "/var/lib/kelp-agent")]
    state_dir: PathBuf,
    /// tmpfs state: monitors, container runs, bundles.
    #[arg(long, global = true, default_value = "/run/kelp")]
    run_dir: PathBuf,
    /// Container logs.
    #[arg(long, global = true, default_value = "/var/log/kelp/pods")]
    log_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Print the agent version.
    Version,
    /// Run the agent: every Pod manifest in --manifests runs on this node (static pods).
    Run(RunArgs),
    /// List the pods of this node and their state.
    Pods {
        /// Output format: table (default) or json.
        #[arg(short, long, default_value = "table")]
        output: String,
    },
    /// Print a container's log.
    Logs(LogsArgs),
    /// List the events of this node and its pods (pulls, back-offs, image removals).
    Events {
        /// Output format: table (default) or json.
        #[arg(short, long, default_value = "table")]
        output: String,
    },
    /// Check this machine can run pods.
    Preflight,
    /// Manage the node's images.
    #[command(subcommand)]
    Image(kelp_agent::cli::image::ImageCommand),
    /// The per-pod monitor (started by the agent).
    #[command(hide = true)]
    Monitor { pod_dir: PathBuf },
    /// PID 1 of a pod's shared PID namespace (started by the monitor).
    #[command(hide = true)]
    Pause,
    /// Runs a command in a running container for `kelp exec` (started by the agent; its
    /// stdin is the agent's control socket).
    #[command(hide = true, name = kelp_agent::runtime::exec::HELPER_COMMAND)]
    ExecHelper {
        /// The engine's state directory of the pod (libcontainer's, or the OCI runtime's).
        #[arg(long)]
        root: PathBuf,
        /// The OCI runtime binary that runs the pod, if not libcontainer.
        #[arg(long)]
        oci_runtime: Option<PathBuf>,
        /// The container.
        #[arg(long)]
        container: String,
        /// The container's bundle (for its user and working directory).
        #[arg(long)]
        bundle: PathBuf,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Directory of static pod manifests.
    #[arg(long, default_value = "/etc/kelp/manifests")]
    manifests: PathBuf,
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Root-relative cgroup under which pods run.
    #[arg(long, default_value = "/kelp")]
    cgroup_parent: String,
    /// How often the agent relists its pods, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    sync_period_ms: u64,
    /// Scale of the restart back-off (1 = the kubelet's 10 s doubling to 5 min, reset after
    /// 10 min; 0.1 runs at a tenth).
    #[arg(long, default_value_t = 1.0)]
    backoff_scale: f64,
    /// Highest number of processes in one container.
    #[arg(long, default_value_t = 1024)]
    pids_limit: i64,
    /// Rotate a container's log at this size, in bytes.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    log_max_size: u64,
    /// The node's registries file: mirrors, plain-HTTP registries, credentials, CAs (the
    /// shape of k3s's registries.yaml).
    #[arg(long, default_value = kelp_agent::image::REGISTRIES_FILE)]
    registries: PathBuf,
    /// Percent of the image disk in use above which unused images are removed.
    #[arg(long, default_value_t = 85.0)]
    image_gc_high_threshold: f64,
    /// Percent of the image disk in use image garbage collection brings usage down to.
    #[arg(long, default_value_t = 80.0)]
    image_gc_low_threshold: f64,
    /// Rotated log files kept per container.
    #[arg(long, default_value_t = 5)]
    log_max_files: u32,
    /// Scale of every probe duration: initial delays, periods, timeouts and the grace of a
    /// probe kill (1 = as specified; 0.1 runs probes at a tenth of real time).
    #[arg(long, default_value_t = 1.0)]
    probe_time_scale: f64,
    /// The node's pod CIDR: pods get addresses from it on the bridge, the first being the
    /// bridge's (gateway). `none`: pods get only a loopback interface. Default: the one the
    /// controller gives the node (with --join-file), else 10.42.0.0/24.
    #[arg(long)]
    pod_cidr: Option<String>,
    /// The join file from `kelp node add` (broker, credentials, cluster id, the controller's
    /// key): the node runs what the controller assigns it, besides its static pods.
    #[arg(long)]
    join_file: Option<PathBuf>,
    /// MQTT keepalive in seconds.
    #[arg(long, default_value_t = 60)]
    mqtt_keepalive_secs: u64,
    /// How often metrics are sampled, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    metrics_interval_ms: u64,
    /// How often a batch of metric samples is published to the controller, in
    /// milliseconds (a whole number of sampling intervals); 0 turns metrics off.
    #[arg(long, default_value_t = 60_000)]
    metrics_publish_interval_ms: u64,
    /// Every how many batches one carries every series, changed or not (the others leave
    /// unchanged ones out); the first batch of every connection always does. 30: every half
    /// hour at the default intervals.
    #[arg(long, default_value_t = 30)]
    metrics_complete_every: u32,
    /// The node's pod bridge (also names the nftables table `kelp_<bridge>`).
    #[arg(long, default_value = "kelp0")]
    bridge: String,
    /// The node's address (`status.hostIP`); by default the source address of the default
    /// route.
    #[arg(long)]
    node_ip: Option<std::net::Ipv4Addr>,
    /// Stop (SIGTERM) when the process PID that started the agent goes, even by `kill -9`:
    /// `kelp server` runs its machine's agent this way. Pods keep running.
    #[arg(long, value_name = "PID", hide = true)]
    stop_with_parent: Option<i32>,
    /// Run new pods' containers with this OCI runtime binary (`runc`, `crun`, or a path)
    /// instead of libcontainer. 32-bit agents, built without libcontainer, use `runc` unless
    /// told otherwise. A pod keeps the engine it was started with.
    #[arg(long, value_name = "runc|crun|PATH")]
    oci_runtime: Option<PathBuf>,
}

/// The pod CIDR of a node that runs without a controller and without --pod-cidr.
const DEFAULT_POD_CIDR: &str = "10.42.0.0/24";

#[derive(Args)]
struct LogsArgs {
    /// The pod's name (as `kelp-agent pods` lists it).
    pod: String,
    /// The container (default: the pod's only or first container).
    #[arg(short, long)]
    container: Option<String>,
    /// Namespace of the pod.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Keep printing new lines.
    #[arg(short, long)]
    follow: bool,
    /// Print only the last N lines.
    #[arg(long)]
    tail: Option<usize>,
    /// Prefix each line with its time.
    #[arg(long)]
    timestamps: bool,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("kelp-agent: error: {e:#}");
        std::process::exit(1);
    }
}

fn runtime_config(dirs: &Dirs) -> Result<RuntimeConfig> {
    let exe = std::env::current_exe().context("locating the kelp-agent binary")?;
    let mut config = RuntimeConfig::new(exe);
    config.state_dir = dirs.state_dir.clone();
    config.run_dir = dirs.run_dir.clone();
    config.log_dir = dirs.log_dir.clone();
    Ok(config)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Version => println!("kelp-agent version {}", kelp_shared::VERSION),
        Command::Monitor { pod_dir } => {
            // The monitor logs to its file under the run dir (tmpfs) through a descriptor of its
            // own, never fd 2: libcontainer logs from the container's init before the exec,
            // when fd 2 already is the container's stderr.
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(
                    kelp_agent::runtime::state::PodPaths {
                        dir: pod_dir.clone(),
                    }
                    .monitor_log(),
                )
                .context("opening the monitor's log")?;
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("KELP_MONITOR_LOG").unwrap_or_else(
                        |_| "warn,libcgroups=error,libcontainer::process::init=error".into(),
                    ),
                )
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(log))
                .init();
            kelp_agent::runtime::monitor::main(&pod_dir)?
        }
        Command::Pause => kelp_agent::runtime::monitor::pause(),
        Command::ExecHelper {
            root,
            oci_runtime,
            container,
            bundle,
            command,
        } => {
            use kelp_agent::runtime::exec::ExecVia;
            let via = match oci_runtime {
                Some(binary) => ExecVia::Binary { binary, root },
                None => ExecVia::Libcontainer { root },
            };
            kelp_agent::runtime::exec::helper_main(&via, &container, &bundle, &command)?
        }
        Command::Preflight => {
            let report = kelp_agent::preflight::run(&kelp_agent::preflight::Env::host());
            report.print();
            if report.blocking() {
                bail!("this machine cannot run pods");
            }
        }
        Command::Image(cmd) => {
            kelp_agent::cli::image::run(cmd, &cli.dirs.state_dir.join("images"))?
        }
        Command::Run(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info,libcgroups=error,libcontainer=warn".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            let report = kelp_agent::preflight::run(&kelp_agent::preflight::Env::host());
            report.print();
            if report.blocking() {
                bail!("preflight found problems that stop pods from running");
            }
            if !(args.probe_time_scale > 0.0 && args.probe_time_scale <= 100.0) {
                bail!("--probe-time-scale must be above 0 and at most 100");
            }
            let metrics = match args.metrics_publish_interval_ms {
                0 => None,
                publish => {
                    if args.metrics_interval_ms < 100 || args.metrics_interval_ms > publish {
                        bail!(
                            "--metrics-interval-ms must be at least 100 and at most --metrics-publish-interval-ms ({publish})"
                        );
                    }
                    Some(kelp_agent::metrics::MetricsConfig {
                        interval: Duration::from_millis(args.metrics_interval_ms),
                        publish_interval: Duration::from_millis(publish),
                        complete_every: args.metrics_complete_every.max(1),
                    })
                }
            };
            if let Some(parent) = args.stop_with_parent {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::TERM,
                ))
                .context("asking for SIGTERM when the parent goes")?;
                let ppid = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
                if ppid != parent {
                    bail!("--stop-with-parent {parent}: the parent is gone already");
                }
            }
            let mut runtime = runtime_config(&cli.dirs)?;
            runtime.cgroup_parent = args.cgroup_parent;
            runtime.log_max_size = args.log_max_size;
            runtime.log_max_files = args.log_max_files;
            // Without libcontainer (32-bit targets) the binary is the only engine.
            let oci_runtime = match args.oci_runtime {
                Some(name) => Some(name),
                None if cfg!(target_pointer_width = "64") => None,
                None => Some(PathBuf::from("runc")),
            };
            runtime.oci_runtime = oci_runtime
                .map(|name| kelp_agent::runtime::oci_binary::resolve(&name))
                .transpose()
                .map_err(anyhow::Error::msg)
                .context("--oci-runtime")?;
            let link = match &args.join_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading the join file {}", path.display()))?;
                    let join = kelp_shared::join::JoinFile::parse(&text)
                        .with_context(|| format!("{}", path.display()))?;
                    let mut link = kelp_agent::link::LinkConfig::from_join(&join)
                        .with_context(|| format!("{}", path.display()))?;
                    link.keepalive = Duration::from_secs(args.mqtt_keepalive_secs);
                    Some(link)
                }
                None => None,
            };
            let node_name = match (&link, args.node_name) {
                (Some(link), Some(n)) if n != link.node => bail!(
                    "--node-name {n:?} differs from the join file's node name {:?}",
                    link.node
                ),
                (Some(link), _) => link.node.clone(),
                (None, Some(n)) => n,
                (None, None) => rustix::system::uname()
                    .nodename()
                    .to_string_lossy()
                    .into_owned(),
            };
            let mut agent = Agent::new(AgentConfig {
                node_name,
                manifests_dir: args.manifests,
                runtime,
                sync_period: Duration::from_millis(args.sync_period_ms),
                backoff: BackOff::scaled(args.backoff_scale),
                pids_limit: Some(args.pids_limit),
                registries_file: args.registries,
                image_gc_high: args.image_gc_high_threshold,
                image_gc_low: args.image_gc_low_threshold,
                link_bridge: match (&args.pod_cidr, &link) {
                    (None, Some(_)) => {
                        // Checks the bridge name now, not when the controller answers.
                        let cidr = DEFAULT_POD_CIDR.parse().expect("a valid CIDR");
                        kelp_agent::network::NetworkConfig::new(&args.bridge, cidr)?;
                        Some(args.bridge.clone())
                    }
                    _ => None,
                },
                network: match (args.pod_cidr.as_deref(), &link) {
                    (Some("none"), _) | (None, Some(_)) => None,
                    (cidr, _) => Some(kelp_agent::network::NetworkConfig::new(
                        &args.bridge,
                        cidr.unwrap_or(DEFAULT_POD_CIDR)
                            .parse()
                            .map_err(|e| anyhow::anyhow!("--pod-cidr: {e}"))?,
                    )?),
                },
                node_ip: args.node_ip,
                probe_time_scale: args.probe_time_scale,
                metrics,
                link,
            })?;
            agent.run(&AtomicBool::new(false))?;
        }
        Command::Pods { output } => {
            let reports = pod_reports(&cli.dirs)?;
            match output.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&reports)?),
                "table" => print_pods(&reports),
                other => bail!("--output {other}: use table or json"),
            }
        }
        Command::Logs(args) => logs(&cli.dirs, args)?,
        Command::Events { output } => {
            let mut rows: Vec<(String, kelp_agent::events::Event)> = Vec::new();
            let node: Vec<kelp_agent::events::Event> =
                read_json(&cli.dirs.run_dir.join("events.json"))?.unwrap_or_default();
            rows.extend(node.into_iter().map(|e| ("node".to_string(), e)));
            for r in pod_reports(&cli.dirs)? {
                let object = format!("pod/{}", r.name);
                rows.extend(r.events.into_iter().map(|e| (object.clone(), e)));
            }
            rows.sort_by_key(|(_, e)| e.last_timestamp);
            match output.as_str() {
                "json" => {
                    let list: Vec<serde_json::Value> = rows
                        .iter()
                        .map(|(o, e)| serde_json::json!({"object": o, "event": e}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                "table" => {
                    println!(
                        "{:<26} {:<8} {:<16} {:<28} MESSAGE",
                        "LAST SEEN", "TYPE", "REASON", "OBJECT"
                    );
                    for (object, e) in rows {
                        let count = if e.count > 1 {
                            format!(" (x{})", e.count)
                        } else {
                            String::new()
                        };
                        println!(
                            "{:<26} {:<8} {:<16} {:<28} {}{count}",
                            e.last_timestamp
                                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            e.type_,
                            e.reason,
                            object,
                            e.message
                        );
                    }
                }
                other => bail!("--output {other}: use table or json"),
            }
        }
    }
    Ok(())
}

fn pod_reports(dirs: &Dirs) -> Result<Vec<PodReport>> {
    let mut reports = Vec::new();
    let pods = dirs.run_dir.join("pods");
    let entries = match std::fs::read_dir(&pods) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(reports),
        Err(e) => return Err(e).with_context(|| format!("reading {}", pods.display())),
    };
    for entry in entries {
        if let Some(r) = read_json::<PodReport>(&entry?.path().join("status.json"))? {
            reports.push(r);
        }
    }
    reports.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(reports)
}

fn print_pods(reports: &[PodReport]) {
    println!(
        "{:<16} {:<32} {:<8} {:<20} {:<8}",
        "NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS"
    );
    for r in reports {
        let statuses = r.status.container_statuses.as_deref().unwrap_or(&[]);
        let ready = statuses.iter().filter(|s| s.ready).count();
        let restarts: i32 = statuses.iter().map(|s| s.restart_count).sum();
        let reason = statuses
            .iter()
            .filter_map(|s| s.state.as_ref())
            .find_map(|st| {
                st.waiting
                    .as_ref()
                    .and_then(|w| w.reason.clone())
                    .or_else(|| st.terminated.as_ref().and_then(|t| t.reason.clone()))
            });
        let status = reason
            .filter(|r| r != "Completed" || r.is_empty())
            .unwrap_or_else(|| r.status.phase.clone().unwrap_or_default());
        println!(
            "{:<16} {:<32} {:<8} {:<20} {:<8}",
            r.namespace,
            r.name,
            format!("{ready}/{}", statuses.len()),
            status,
            restarts
        );
    }
}

fn logs(dirs: &Dirs, args: LogsArgs) -> Result<()> {
    let reports = pod_reports(dirs)?;
    let report = reports
        .iter()
        .find(|r| r.name == args.pod && r.namespace == args.namespace)
        .with_context(|| {
            format!(
                "pod {:?} not found in namespace {:?}",
                args.pod, args.namespace
            )
        })?;
    let statuses = report.status.container_statuses.as_deref().unwrap_or(&[]);
    let inits = report
        .status
        .init_container_statuses
        .as_deref()
        .unwrap_or(&[]);
    let container = match args.container {
        Some(c) => {
            if !statuses.iter().chain(inits).any(|s| s.name == c) {
                bail!("container {c:?} is not valid for pod {}", args.pod);
            }
            c
        }
        None => match statuses {
            [only] => only.name.clone(),
            [first, ..] => {
                eprintln!(
                    "Defaulted container {:?} out of: {}",
                    first.name,
                    statuses
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                first.name.clone()
            }
            [] => bail!("pod {} has no containers", args.pod),
        },
    };
    let path = dirs
        .log_dir
        .join(format!(
            "{}_{}_{}",
            report.namespace, report.name, report.uid
        ))
        .join(format!("{container}.log"));
    let options = kelp_agent::logs::PrintOptions {
        timestamps: args.timestamps,
    };
    let mut out = std::io::stdout().lock();
    if args.follow {
        let stop = || false;
        kelp_agent::logs::follow(
            &path,
            args.tail,
            options,
            &mut out,
            &stop,
            Duration::from_millis(200),
        )?;
    } else {
        kelp_agent::logs::print_tail(&path, args.tail, options, &mut out)?;
    }
    Ok(())
}
