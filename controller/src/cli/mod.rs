//! The kubectl-like commands of `kelp`.
//!
//! - [`client`]: HTTP client (config, TLS, token, `Status` errors, warnings, watches).
//! - [`resource`]: resource names → kinds → URLs.
//! - [`printer`], [`tabwriter`] and [`yaml`]: kubectl's tables, ages and output formats.
//! - [`apply`]: client-side apply (three-way merge patch).
//! - [`describe`]: `kelp describe`.
//! - [`logs`]: `kelp logs` and `kelp exec`, answered by the pod's node.
//! - [`drain`]: `kelp cordon`, `uncordon` and `drain` (node maintenance).
//! - [`scale`]: `kelp scale` (the replica count of workloads).
//! - [`top`]: `kelp top nodes|pods` from the resource metrics API.
//! - [`mqtt`]: `kelp mqtt nodes|node` straight from the broker (observer credentials).
//! - [`get`], [`create`], [`delete`], [`discovery`]: the other commands.
//!
//! Every command prints like kubectl: results on stdout, `Warning: ...` and errors on
//! stderr, exit code 1 when anything failed (after doing everything it could).

pub mod apply;
pub mod client;
pub mod create;
pub mod delete;
pub mod describe;
pub mod discovery;
pub mod drain;
pub mod get;
pub mod logs;
pub mod mqtt;
pub mod node;
pub mod printer;
pub mod resource;
pub mod scale;
pub mod tabwriter;
pub mod top;
pub mod yaml;

use std::cell::OnceCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgAction, Args, Subcommand, ValueEnum};
use kelp_shared::api::kinds::KindInfo;
use kelp_shared::manifest::{self, Loaded, SourceError};

use crate::config::{ClientConfig, ConfigError};
use client::{ApiError, Client};

/// Flags every command takes.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// The client config file (default: $KELP_CONFIG, /etc/kelp/kelp.yaml, ~/.kelp/config).
    #[arg(long, global = true, alias = "kubeconfig", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The API server URL, overriding the config's.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// The bearer token, overriding the config's.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The namespace to work in (default: the manifest's, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// The kubectl-like commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Apply a configuration to resources by file name or stdin.
    Apply(ApplyArgs),
    /// Create resources from files or stdin, or a namespace by name.
    Create(CreateArgs),
    /// Display one or many resources.
    Get(GetArgs),
    /// Show details of a resource or group of resources.
    Describe(DescribeArgs),
    /// Delete resources by file names, stdin, types and names, or label selector.
    Delete(DeleteArgs),
    /// Print the logs for a container in a pod.
    Logs(LogsArgs),
    /// Execute a command in a container (not interactive: prints its output when it ends).
    Exec(ExecArgs),
    /// Set a new size for a deployment, replica set or stateful set.
    Scale(ScaleArgs),
    /// Mark a node as unschedulable.
    Cordon(CordonArgs),
    /// Mark a node as schedulable.
    Uncordon(CordonArgs),
    /// Cordon a node, then delete its pods and wait until they are gone.
    Drain(DrainArgs),
    /// Print the resource types the server supports.
    ApiResources(ApiResourcesArgs),
    /// Print the client and server versions.
    Version(VersionArgs),
    /// Manage nodes' membership: `kelp node add NAME`, `kelp node remove NAME`.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Read-only MQTT users for field engineers: `kelp observer add NAME`.
    #[command(subcommand)]
    Observer(ObserverCommand),
    /// Display resource (CPU/memory) usage of nodes or pods.
    #[command(subcommand)]
    Top(top::TopCommand),
    /// The fleet's health straight from the MQTT broker, with observer credentials (no
    /// controller needed): `kelp mqtt nodes`, `kelp mqtt node NAME`.
    #[command(subcommand)]
    Mqtt(mqtt::MqttCommand),
}

/// `kelp node ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum NodeCommand {
    /// Register a node and write its join file (mode 0600).
    Add(NodeAddArgs),
    /// Revoke a node: delete its credentials (its next MQTT login is refused) and its Node.
    /// Its pods keep running on the machine until it is joined again.
    Remove(NameArgs),
}

/// `kelp observer ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ObserverCommand {
    /// Create a read-only MQTT user (every node's status, reports and metrics) and write its
    /// credentials file (mode 0600).
    Add(NodeAddArgs),
    /// Delete an observer's credentials.
    Remove(NameArgs),
}

/// A command's one name argument.
#[derive(Debug, Clone, Args)]
pub struct NameArgs {
    /// The name.
    pub name: String,
}

/// `kelp node add`.
#[derive(Debug, Clone, Args)]
pub struct NodeAddArgs {
    /// The node's name (a DNS-1123 subdomain).
    pub name: String,
    /// Where to write the join file (default `NAME.join.yaml`); an existing file is not
    /// overwritten.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The broker URL the node should use, overriding the server's.
    #[arg(long, value_name = "URL")]
    pub broker_url: Option<String>,
    /// The CA certificate (PEM file) of the broker at --broker-url, for `mqtts://`.
    #[arg(long, value_name = "FILE")]
    pub broker_ca: Option<PathBuf>,
    /// Log the node in with this client certificate (PEM; its common name must be the node's
    /// name) instead of a password: for Mosquitto with `use_identity_as_username`.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// `kelp apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// A manifest file, a directory of them, or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    pub filename: Vec<PathBuf>,
}

/// `kelp create`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CreateArgs {
    /// What to create by name.
    #[command(subcommand)]
    pub what: Option<CreateWhat>,
    /// A manifest file, a directory of them, or `-` for stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filename: Vec<PathBuf>,
    /// Record the object in the last-applied annotation, so `kelp apply` can manage it.
    #[arg(long)]
    pub save_config: bool,
}

/// `kelp create <what>`.
#[derive(Debug, Clone, Subcommand)]
pub enum CreateWhat {
    /// Create a namespace with the given name.
    #[command(visible_alias = "ns")]
    Namespace {
        /// The namespace's name.
        name: String,
    },
}

/// Output formats of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The table with more columns.
    Wide,
    /// The objects as YAML.
    Yaml,
    /// The objects as JSON.
    Json,
    /// `kind/name` per object.
    Name,
}

/// `kelp get`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// `TYPE[,TYPE...] [NAME...]` or `TYPE/NAME...`.
    #[arg(value_name = "TYPE [NAME...]")]
    pub resources: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
    /// Label selector (`app=web,tier!=db`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`spec.nodeName=pi-1`).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Watch for changes without listing first.
    #[arg(long)]
    pub watch_only: bool,
    /// Add a LABELS column.
    #[arg(long)]
    pub show_labels: bool,
    /// Leave out the header row.
    #[arg(long)]
    pub no_headers: bool,
    /// Print the server's answer to GET of this path as it is (`/metrics`,
    /// `/api/v1/nodes/NODE/proxy/stats/summary`).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["resources", "output", "watch"])]
    pub raw: Option<String>,
}

/// `kelp describe`.
#[derive(Debug, Clone, Args)]
pub struct DescribeArgs {
    /// `TYPE [NAME...]` or `TYPE/NAME...`.
    #[arg(value_name = "TYPE [NAME...]")]
    pub resources: Vec<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// `kelp delete`.
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// `TYPE NAME...` or `TYPE/NAME...`.
    #[arg(value_name = "TYPE [NAME...]")]
    pub resources: Vec<String>,
    /// Delete what these manifests describe (file, directory or `-`).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filename: Vec<PathBuf>,
    /// Delete everything matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// With `--all` or `-l`: in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Seconds the object gets to terminate; -1 keeps its own default.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Remove immediately, without waiting for the node to confirm termination.
    #[arg(long)]
    pub force: bool,
    /// Shorthand for `--grace-period=1`.
    #[arg(long)]
    pub now: bool,
    /// Succeed when the object is not there.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Wait until the objects are gone.
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// Give up waiting after this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// What happens to dependents: background, foreground or orphan.
    #[arg(long, default_value = "background")]
    pub cascade: String,
    /// `-o name` prints `kind/name` per deleted object.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// `kelp logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// The container (default: the pod's default or first container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming the log until the container's run ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines of recent log to show; -1 shows all.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// The log of the container's previous run.
    #[arg(short = 'p', long)]
    pub previous: bool,
}

/// `kelp exec`.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// The pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// The container (default: the pod's default or first container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the container (not supported).
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a terminal (not supported).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Kill the command after this many seconds (the server's default is 30).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `kelp scale`.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// `TYPE NAME...` or `TYPE/NAME...` (deployments, replicasets, statefulsets).
    #[arg(value_name = "TYPE NAME", required = true)]
    pub resources: Vec<String>,
    /// The new number of replicas.
    #[arg(long, allow_negative_numbers = true)]
    pub replicas: i64,
    /// Precondition: scale only if the current size is this (-1: no precondition).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub current_replicas: i64,
    /// Precondition: scale only if the object's resourceVersion is this.
    #[arg(long, value_name = "VERSION")]
    pub resource_version: Option<String>,
}

/// `kelp cordon` and `kelp uncordon`.
#[derive(Debug, Clone, Args)]
pub struct CordonArgs {
    /// The node's name.
    pub node: String,
}

/// `kelp drain`.
#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    /// The node's name.
    pub node: String,
    /// Skip DaemonSet-managed pods instead of refusing to drain.
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Also delete pods no controller manages (they are gone for good).
    #[arg(long)]
    pub force: bool,
    /// Also delete pods with emptyDir volumes (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Seconds each pod gets to terminate; -1 keeps the pod's own.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// How long to wait for the pods to go (`90s`, `5m`, `1h30m`); 0 waits forever.
    #[arg(long, default_value = "0s", value_parser = drain::parse_go_duration)]
    pub timeout: std::time::Duration,
    /// Only delete the pods matching this label selector.
    #[arg(long, value_name = "SELECTOR")]
    pub pod_selector: Option<String>,
}

/// `kelp api-resources`.
#[derive(Debug, Clone, Args)]
pub struct ApiResourcesArgs {
    /// Only namespaced (true) or cluster-scoped (false) resources.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub namespaced: Option<bool>,
    /// Only resources of this API group (`""` for the core group).
    #[arg(long)]
    pub api_group: Option<String>,
    /// Only resources supporting these verbs (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub verbs: Vec<String>,
    /// `wide` (adds VERBS and CATEGORIES) or `name`.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Leave out the header row.
    #[arg(long)]
    pub no_headers: bool,
}

/// `kelp version`.
#[derive(Debug, Clone, Args)]
pub struct VersionArgs {
    /// Only the client version; do not ask the server.
    #[arg(long)]
    pub client: bool,
}

/// What the commands share: the global flags and, once needed, the API client.
#[derive(Debug)]
pub struct Context {
    /// The global flags.
    pub global: GlobalArgs,
    /// `-n`, when given.
    pub namespace: Option<String>,
    client: OnceCell<Result<Client, ApiError>>,
}

impl Context {
    /// A context for these flags; the client is made on first use.
    pub fn new(global: GlobalArgs) -> Self {
        Context {
            namespace: global.namespace.clone(),
            global,
            client: OnceCell::new(),
        }
    }

    /// `-n`, else `default`.
    pub fn default_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }

    /// The API client (config read on first use).
    pub fn client(&self) -> Result<&Client, ApiError> {
        self.client
            .get_or_init(|| load_config(&self.global).and_then(|cfg| Client::new(&cfg)))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// The client config: `--config`, else `$KELP_CONFIG` and the defaults; `--server` and
/// `--token` override what the file says (and with `--server`, no file is needed).
pub fn load_config(global: &GlobalArgs) -> Result<ClientConfig, ApiError> {
    let file = match &global.config {
        Some(path) => Some(ClientConfig::read(path)?),
        None => match ClientConfig::load() {
            Ok(cfg) => Some(cfg),
            Err(ConfigError::NotFound) if global.server.is_some() => None,
            Err(e) => return Err(e.into()),
        },
    };
    let mut cfg = file.unwrap_or(ClientConfig {
        server: String::new(),
        certificate_authority: String::new(),
        token: String::new(),
    });
    if let Some(server) = &global.server {
        cfg.server = server.clone();
    }
    if let Some(token) = &global.token {
        cfg.token = token.clone();
    }
    Ok(cfg)
}

/// Runs one command; the exit code says whether everything succeeded.
pub fn run(global: GlobalArgs, command: Command) -> ExitCode {
    let ctx = Context::new(global);
    match command {
        Command::Apply(args) => apply::run(&ctx, &args),
        Command::Create(args) => create::run(&ctx, &args),
        Command::Get(args) => get::run(&ctx, &args),
        Command::Describe(args) => describe::run(&ctx, &args),
        Command::Delete(args) => delete::run(&ctx, &args),
        Command::Logs(args) => logs::run_logs(&ctx, &args),
        Command::Exec(args) => logs::run_exec(&ctx, &args),
        Command::Scale(args) => scale::run(&ctx, &args),
        Command::Cordon(args) => drain::run_cordon(&ctx, &args, true),
        Command::Uncordon(args) => drain::run_cordon(&ctx, &args, false),
        Command::Drain(args) => drain::run_drain(&ctx, &args),
        Command::ApiResources(args) => discovery::run_api_resources(&ctx, &args),
        Command::Version(args) => discovery::run_version(&ctx, &args),
        Command::Node(NodeCommand::Add(args)) => node::add(&ctx, &args),
        Command::Node(NodeCommand::Remove(args)) => node::remove(&ctx, &args.name),
        Command::Observer(ObserverCommand::Add(args)) => node::add_observer(&ctx, &args),
        Command::Observer(ObserverCommand::Remove(args)) => node::remove_observer(&ctx, &args.name),
        Command::Top(command) => top::run(&ctx, &command),
        Command::Mqtt(command) => mqtt::run(&command),
    }
}

/// Writes to stdout; false when stdout is gone (a closed pipe).
pub(crate) fn emit(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

/// kubectl names stdin `STDIN` in messages.
pub(crate) fn source_name(origin: &str) -> String {
    if origin == "-" {
        "STDIN".into()
    } else {
        origin.to_string()
    }
}

/// Loads every manifest named with `-f`, printing load warnings as they come; documents
/// that fail to load become errors, the others are returned in order.
pub(crate) fn load_manifests(files: &[PathBuf]) -> (Vec<Loaded>, Vec<ApiError>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    if files.is_empty() {
        errors.push(ApiError::Other("must specify -f".into()));
    }
    for path in files {
        match manifest::load_path(path) {
            Err(e) => errors.push(ApiError::Other(source_error_message(path, &e))),
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(doc) => {
                            for w in &doc.warnings {
                                eprintln!("Warning: {w}");
                            }
                            docs.push(doc);
                        }
                        Err(e) => errors.push(ApiError::Other(e.to_string())),
                    }
                }
            }
        }
    }
    (docs, errors)
}

fn source_error_message(path: &Path, e: &SourceError) -> String {
    match e {
        SourceError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            format!("the path {:?} does not exist", path.display().to_string())
        }
        other => other.to_string(),
    }
}

/// The namespace an object from a manifest goes to: the manifest's, else `-n`, else
/// `default`; none for cluster-scoped kinds. A manifest namespace that contradicts an
/// explicit `-n` is an error, as in kubectl.
pub(crate) fn object_namespace(
    info: &KindInfo,
    manifest_ns: Option<&str>,
    flag: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if !info.namespaced {
        return Ok(None);
    }
    match (manifest_ns.filter(|n| !n.is_empty()), flag) {
        (Some(m), Some(f)) if m != f => Err(ApiError::Other(format!(
            "the namespace from the provided object {m:?} does not match the namespace {f:?}. You must pass '--namespace={m}' to perform this operation."
        ))),
        (Some(m), _) => Ok(Some(m.to_string())),
        (None, Some(f)) => Ok(Some(f.to_string())),
        (None, None) => Ok(Some("default".into())),
    }
}

/// Exit code for a list of errors.
pub(crate) fn exit_code(errors: &[ApiError]) -> ExitCode {
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kelp_shared::api::kinds::by_kind;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: Command,
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("kelp").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn command_lines_parse_like_kubectl() {
        let c = parse(&["get", "po", "-n", "kube-system", "-o", "wide"]);
        assert_eq!(c.global.namespace.as_deref(), Some("kube-system"));
        let Command::Get(g) = c.command else { panic!() };
        assert_eq!(g.resources, ["po"]);
        assert_eq!(g.output, Some(OutputFormat::Wide));

        let c = parse(&[
            "-n", "luffy", "get", "pods", "-owide", "-A", "-l", "app=web", "-w",
        ]);
        let Command::Get(g) = c.command else { panic!() };
        assert!(g.all_namespaces && g.watch);
        assert_eq!(g.selector.as_deref(), Some("app=web"));

        let c = parse(&["apply", "-f", "a.yaml", "-f", "dir/"]);
        let Command::Apply(a) = c.command else {
            panic!()
        };
        assert_eq!(a.filename.len(), 2);

        let c = parse(&["create", "namespace", "luffy"]);
        let Command::Create(a) = c.command else {
            panic!()
        };
        assert!(matches!(a.what, Some(CreateWhat::Namespace { name }) if name == "luffy"));
        let c = parse(&["create", "-f", "-"]);
        let Command::Create(a) = c.command else {
            panic!()
        };
        assert_eq!(a.filename, [PathBuf::from("-")]);

        let c = parse(&[
            "delete",
            "pod",
            "a",
            "--grace-period=0",
            "--force",
            "--wait=false",
        ]);
        let Command::Delete(d) = c.command else {
            panic!()
        };
        assert_eq!((d.grace_period, d.force, d.wait), (0, true, false));
        let c = parse(&["delete", "-f", "x.yaml", "--ignore-not-found", "--wait"]);
        let Command::Delete(d) = c.command else {
            panic!()
        };
        assert!(d.ignore_not_found && d.wait);

        let c = parse(&[
            "--config",
            "/tmp/k.yaml",
            "api-resources",
            "--namespaced=false",
        ]);
        assert_eq!(c.global.config, Some(PathBuf::from("/tmp/k.yaml")));
        let Command::ApiResources(a) = c.command else {
            panic!()
        };
        assert_eq!(a.namespaced, Some(false));

        let c = parse(&["logs", "web", "-c", "db", "-f", "--tail", "1", "-n", "x"]);
        let Command::Logs(l) = c.command else {
            panic!()
        };
        assert_eq!(
            (l.pod.as_str(), l.container.as_deref(), l.follow, l.tail),
            ("web", Some("db"), true, 1)
        );
        assert_eq!(c.global.namespace.as_deref(), Some("x"));
        let c = parse(&["exec", "web", "-c", "db", "--", "sh", "-c", "echo -n x"]);
        let Command::Exec(e) = c.command else {
            panic!()
        };
        assert_eq!(e.command, ["sh", "-c", "echo -n x"]);
        assert!(
            Cli::try_parse_from(["kelp", "exec", "web"]).is_err(),
            "exec needs a command"
        );

        assert!(
            Cli::try_parse_from(["kelp", "apply"]).is_err(),
            "apply needs -f"
        );
        assert!(Cli::try_parse_from(["kelp", "get", "po", "-o", "xml"]).is_err());
    }

    #[test]
    fn node_maintenance_and_scale_flags() {
        let c = parse(&["cordon", "pi-1"]);
        assert!(matches!(c.command, Command::Cordon(a) if a.node == "pi-1"));
        let c = parse(&[
            "drain",
            "pi-1",
            "--ignore-daemonsets",
            "--force",
            "--delete-emptydir-data",
            "--grace-period=0",
            "--timeout",
            "1m30s",
            "--pod-selector",
            "app=web",
        ]);
        let Command::Drain(d) = c.command else {
            panic!()
        };
        assert!(d.ignore_daemonsets && d.force && d.delete_emptydir_data);
        assert_eq!(d.grace_period, 0);
        assert_eq!(d.timeout, std::time::Duration::from_secs(90));
        assert_eq!(d.pod_selector.as_deref(), Some("app=web"));
        let Command::Drain(d) = parse(&["drain", "pi-1"]).command else {
            panic!()
        };
        assert_eq!((d.grace_period, d.timeout.is_zero()), (-1, true));
        assert!(Cli::try_parse_from(["kelp", "drain", "pi-1", "--timeout", "5"]).is_err());

        let c = parse(&[
            "scale",
            "rs",
            "web",
            "--replicas=3",
            "--current-replicas",
            "2",
        ]);
        let Command::Scale(s) = c.command else {
            panic!()
        };
        assert_eq!(s.resources, ["rs", "web"]);
        assert_eq!((s.replicas, s.current_replicas), (3, 2));
        let Command::Scale(s) = parse(&["scale", "deploy/api", "--replicas", "0"]).command else {
            panic!()
        };
        assert_eq!((s.replicas, s.current_replicas), (0, -1));
        assert!(
            Cli::try_parse_from(["kelp", "scale", "rs", "web"]).is_err(),
            "scale needs --replicas"
        );
    }

    #[test]
    fn namespaces_of_manifest_objects() {
        let pod = by_kind("Pod").unwrap();
        let ns = by_kind("Namespace").unwrap();
        assert_eq!(
            object_namespace(pod, None, None).unwrap().as_deref(),
            Some("default")
        );
        assert_eq!(
            object_namespace(pod, None, Some("b")).unwrap().as_deref(),
            Some("b")
        );
        assert_eq!(
            object_namespace(pod, Some("a"), None).unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(
            object_namespace(pod, Some("a"), Some("a"))
                .unwrap()
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            object_namespace(pod, Some("a"), Some("b")).unwrap_err().standard_message(),
            "error: the namespace from the provided object \"a\" does not match the namespace \"b\". You must pass '--namespace=a' to perform this operation."
        );
        assert_eq!(object_namespace(ns, Some("a"), Some("b")).unwrap(), None);
    }

    #[test]
    fn config_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.yaml");
        ClientConfig {
            server: "https://10.0.0.1:6443".into(),
            certificate_authority: "CA".into(),
            token: "file-token".into(),
        }
        .write(&path)
        .unwrap();
        let g = GlobalArgs {
            config: Some(path),
            token: Some("flag-token".into()),
            ..Default::default()
        };
        let cfg = load_config(&g).unwrap();
        assert_eq!(cfg.server, "https://10.0.0.1:6443");
        assert_eq!(cfg.token, "flag-token");
        let g = GlobalArgs {
            config: Some(dir.path().join("missing.yaml")),
            ..Default::default()
        };
        assert!(matches!(load_config(&g), Err(ApiError::Config(_))));
    }

    #[test]
    fn missing_files_are_reported_like_kubectl() {
        let (docs, errors) = load_manifests(&[PathBuf::from("/nonexistent/x.yaml")]);
        assert!(docs.is_empty());
        assert_eq!(
            errors[0].standard_message(),
            "error: the path \"/nonexistent/x.yaml\" does not exist"
        );
        assert_eq!(source_name("-"), "STDIN");
    }
}
