//! Container health probes (startup, liveness, readiness), as the kubelet runs them.
//!
//! The work is split by what touches the world:
//! - this file: the probe specification normalised from a container's Kubernetes probes
//!   (defaults, minimums, named ports, time scale), in the agent; the probes' record kept in
//!   each run's `state.json` ([`RunProbes`]);
//! - [`machine`]: the pure per-container state machine (schedule, thresholds, startup gating,
//!   readiness both ways, the kill decision);
//! - [`http`]: the HTTP request probes send and the parsing of the answer, pure;
//! - [`check`]: the handlers (exec through libcontainer in the container's namespaces and
//!   cgroup, httpGet and tcpSocket from the pod's network namespace) as non-blocking checks the
//!   monitor's `poll(2)` loop drives, and [`check::Probing`], which ties them to the machine.
//!
//! The agent turns the pod's probes into [`ProbeSpec`]s and sends them with each run; the
//! monitor runs them and records started/ready, failures and probe kills in the run's state;
//! the agent reports them (container `ready`/`started`, the pod's `Ready` condition, events)
//! and restarts a killed container per its restart policy.

pub mod check;
pub mod http;
pub mod machine;

use std::collections::BTreeMap;
use std::time::Duration;

use kelp_shared::api::core::{Container, ContainerPort, Probe};
use kelp_shared::api::IntOrString;
use serde::{Deserialize, Serialize};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// As the kubelet's events name it: `Liveness probe failed: ...`.
    pub fn title(self) -> &'static str {
        match self {
            Self::Startup => "Startup",
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
        }
    }

    /// As the kubelet's kill message names it: `failed liveness probe`.
    pub fn lower(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Liveness => "liveness",
            Self::Readiness => "readiness",
        }
    }
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handler {
    /// Run `command` in the container (its namespaces, cgroup, user and environment).
    Exec { command: Vec<String> },
    /// `GET` `path` on `host:port` (the pod's IP when `host` is None); 200..399 is success.
    HttpGet {
        https: bool,
        host: Option<String>,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// Connect to `host:port` (the pod's IP when `host` is None).
    TcpSocket { host: Option<String>, port: u16 },
    /// A probe that cannot run as specified (an unknown port name, gRPC): every attempt fails
    /// with this message.
    Invalid { message: String },
}

/// One probe of a container, normalised: the kubelet's defaults and minimums applied, named
/// ports resolved, durations already multiplied by the agent's probe time scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    pub handler: Handler,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// How long a container killed by this probe (liveness, startup) gets between SIGTERM and
    /// SIGKILL: the probe's `terminationGracePeriodSeconds`, else the pod's.
    pub kill_grace: Duration,
}

/// The pod's default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The probes of `container` as the monitor runs them. `pod_grace` is the pod's
/// `terminationGracePeriodSeconds`; `scale` multiplies every duration (0.1 in tests).
pub fn container_probes(
    container: &Container,
    pod_grace: Option<i64>,
    scale: f64,
) -> Vec<ProbeSpec> {
    let ports = container.ports.as_deref().unwrap_or(&[]);
    [
        (ProbeKind::Startup, &container.startup_probe),
        (ProbeKind::Liveness, &container.liveness_probe),
        (ProbeKind::Readiness, &container.readiness_probe),
    ]
    .into_iter()
    .filter_map(|(kind, p)| Some(normalise(kind, p.as_ref()?, ports, pod_grace, scale)))
    .collect()
}

fn seconds(s: i64, scale: f64) -> Duration {
    Duration::from_secs(s.max(0) as u64).mul_f64(scale.max(0.0))
}

/// One probe with the kubelet's defaults: no initial delay, every 10 s, 1 s timeout, one
/// success, three failures; period, timeout and thresholds at least 1; liveness and startup
/// probes always need a single success.
pub fn normalise(
    kind: ProbeKind,
    probe: &Probe,
    ports: &[ContainerPort],
    pod_grace: Option<i64>,
    scale: f64,
) -> ProbeSpec {
    let at_least_one = |v: Option<i32>, default: i32| v.unwrap_or(default).max(1) as u32;
    let grace = match kind {
        ProbeKind::Readiness => pod_grace,
        _ => probe.termination_grace_period_seconds.or(pod_grace),
    }
    .unwrap_or(DEFAULT_GRACE_SECONDS);
    ProbeSpec {
        kind,
        handler: handler(probe, ports),
        initial_delay: seconds(probe.initial_delay_seconds.unwrap_or(0).into(), scale),
        period: seconds(at_least_one(probe.period_seconds, 10).into(), scale),
        timeout: seconds(at_least_one(probe.timeout_seconds, 1).into(), scale),
        success_threshold: match kind {
            ProbeKind::Readiness => at_least_one(probe.success_threshold, 1),
            _ => 1,
        },
        failure_threshold: at_least_one(probe.failure_threshold, 3),
        kill_grace: seconds(grace, scale),
    }
}

fn handler(probe: &Probe, ports: &[ContainerPort]) -> Handler {
    if let Some(exec) = &probe.exec {
        return Handler::Exec {
            command: exec.command.clone().unwrap_or_default(),
        };
    }
    if let Some(h) = &probe.http_get {
        let port = match resolve_port(&h.port, ports) {
            Ok(p) => p,
            Err(message) => return Handler::Invalid { message },
        };
        let scheme = h.scheme.as_deref().unwrap_or("HTTP");
        let mut path = h.path.clone().unwrap_or_default();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        return Handler::HttpGet {
            https: scheme.eq_ignore_ascii_case("HTTPS"),
            host: h.host.clone().filter(|h| !h.is_empty()),
            port,
            path,
            headers: h
                .http_headers
                .iter()
                .flatten()
                .map(|hh| (hh.name.clone(), hh.value.clone()))
                .collect(),
        };
    }
    if let Some(t) = &probe.tcp_socket {
        return match resolve_port(&t.port, ports) {
            Ok(port) => Handler::TcpSocket {
                host: t.host.clone().filter(|h| !h.is_empty()),
                port,
            },
            Err(message) => Handler::Invalid { message },
        };
    }
    if probe.grpc.is_some() {
        return Handler::Invalid {
            message: "gRPC probes are not supported by kelp yet".into(),
        };
    }
    Handler::Invalid {
        message: "missing probe handler".into(),
    }
}

/// A port number, or the name of one of the container's ports (as the kubelet looks it up).
fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("couldn't find port: {name:?}"))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

/// What the probes of one run found, kept in the run's `state.json` by the monitor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProbes {
    /// The startup probe has succeeded (at once without one): liveness and readiness run.
    #[serde(default)]
    pub started: bool,
    /// The readiness probe's verdict (`started` without one).
    #[serde(default)]
    pub ready: bool,
    /// Each probe's failures.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub results: BTreeMap<ProbeKind, ProbeRecord>,
    /// The probe whose failures had the container killed (liveness or startup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed: Option<ProbeKind>,
}

/// One probe's failures during a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// Failures in a row, back to 0 after a success.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Failures during the run: the agent records an `Unhealthy` event for each new one.
    #[serde(default)]
    pub total_failures: u32,
    /// What the last failure said (kubelet's wording, e.g. `HTTP probe failed with
    /// statuscode: 500`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// The events (warning, reason, message) of what the probes of container `name` found
/// between two looks at the same run (`previous` is the default for a new run), in the
/// kubelet's words: one `Unhealthy` per new failure ("Liveness probe failed: ..."), then
/// `Killing` when a probe had the container killed ("Container c failed liveness probe, will
/// be restarted" when the restart policy restarts it).
pub fn events(
    name: &str,
    restart_policy: Option<&str>,
    previous: &RunProbes,
    now: &RunProbes,
) -> Vec<(bool, &'static str, String)> {
    let mut out = Vec::new();
    for (kind, record) in &now.results {
        let before = previous.results.get(kind).map_or(0, |r| r.total_failures);
        let message = record.last_failure.as_deref().unwrap_or("");
        for _ in before..record.total_failures {
            out.push((
                true,
                "Unhealthy",
                format!("{} probe failed: {message}", kind.title()),
            ));
        }
    }
    if let (Some(kind), None) = (now.killed, previous.killed) {
        // The container exits non-zero when killed: Always and OnFailure restart it.
        let restarts = restart_policy.unwrap_or("Always") != "Never";
        let suffix = if restarts { ", will be restarted" } else { "" };
        out.push((
            false,
            "Killing",
            format!("Container {name} failed {} probe{suffix}", kind.lower()),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_once_per_new_failure_and_kill() {
        let failing = |total: u32, killed: Option<ProbeKind>| RunProbes {
            results: [(
                ProbeKind::Liveness,
                ProbeRecord {
                    consecutive_failures: total,
                    total_failures: total,
                    last_failure: Some("HTTP probe failed with statuscode: 500".into()),
                },
            )]
            .into(),
            killed,
            ..Default::default()
        };
        let none = RunProbes::default();
        assert!(events("c", None, &none, &none).is_empty());
        let e = events(
            "c",
            None,
            &failing(1, None),
            &failing(3, Some(ProbeKind::Liveness)),
        );
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            (
                true,
                "Unhealthy",
                "Liveness probe failed: HTTP probe failed with statuscode: 500".into()
            )
        );
        assert_eq!(
            e[2],
            (
                false,
                "Killing",
                "Container c failed liveness probe, will be restarted".into()
            )
        );
        let same = failing(3, Some(ProbeKind::Liveness));
        assert!(events("c", None, &same, &same).is_empty(), "nothing new");
        let e = events(
            "c",
            Some("Never"),
            &none,
            &RunProbes {
                killed: Some(ProbeKind::Startup),
                ..Default::default()
            },
        );
        assert_eq!(e[0].2, "Container c failed startup probe");
    }

    fn probe(yaml: &str) -> Probe {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_and_minimums_as_the_kubelet() {
        let p = normalise(
            ProbeKind::Liveness,
            &probe("{exec: {command: [true]}, successThreshold: 4, periodSeconds: 0, timeoutSeconds: -3}"),
            &[],
            None,
            1.0,
        );
        assert_eq!(p.initial_delay, Duration::ZERO);
        assert_eq!(p.period, Duration::from_secs(1), "period is at least 1 s");
        assert_eq!(p.timeout, Duration::from_secs(1), "timeout is at least 1 s");
        assert_eq!(p.success_threshold, 1, "liveness needs one success");
        assert_eq!(p.failure_threshold, 3);
        assert_eq!(p.kill_grace, Duration::from_secs(30));
        let r = normalise(
            ProbeKind::Readiness,
            &probe("{tcpSocket: {port: 80}, successThreshold: 2, initialDelaySeconds: 5}"),
            &[],
            Some(7),
            0.1,
        );
        assert_eq!(r.success_threshold, 2);
        assert_eq!(r.period, Duration::from_secs(1), "10 s at a tenth");
        assert_eq!(r.initial_delay, Duration::from_millis(500));
        assert_eq!(r.kill_grace, Duration::from_millis(700));
        assert_eq!(
            r.handler,
            Handler::TcpSocket {
                host: None,
                port: 80
            }
        );
    }

    #[test]
    fn probe_grace_overrides_the_pod_s_for_liveness() {
        let p = probe("{httpGet: {port: 8080}, terminationGracePeriodSeconds: 2}");
        assert_eq!(
            normalise(ProbeKind::Liveness, &p, &[], Some(60), 1.0).kill_grace,
            Duration::from_secs(2)
        );
        assert_eq!(
            normalise(
                ProbeKind::Startup,
                &probe("{httpGet: {port: 1}}"),
                &[],
                Some(60),
                1.0
            )
            .kill_grace,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn http_get_named_port_path_and_headers() {
        let ports: Vec<ContainerPort> =
            serde_yaml_ng::from_str("[{name: web, containerPort: 8080}]").unwrap();
        let p = probe(
            "{httpGet: {port: web, path: healthz, scheme: HTTPS, httpHeaders: [{name: X-A, value: b}]}}",
        );
        assert_eq!(
            handler(&p, &ports),
            Handler::HttpGet {
                https: true,
                host: None,
                port: 8080,
                path: "/healthz".into(),
                headers: vec![("X-A".into(), "b".into())],
            }
        );
        assert_eq!(
            handler(&probe("{tcpSocket: {port: metrics}}"), &ports),
            Handler::Invalid {
                message: "couldn't find port: \"metrics\"".into()
            }
        );
        assert!(matches!(
            handler(&probe("{grpc: {port: 9000}}"), &ports),
            Handler::Invalid { .. }
        ));
    }

    #[test]
    fn a_container_s_probes_in_startup_liveness_readiness_order() {
        let c: Container = serde_yaml_ng::from_str(
            "{name: c, readinessProbe: {exec: {command: [a]}}, startupProbe: {exec: {command: [b]}}}",
        )
        .unwrap();
        let kinds: Vec<ProbeKind> = container_probes(&c, None, 1.0)
            .iter()
            .map(|p| p.kind)
            .collect();
        assert_eq!(kinds, [ProbeKind::Startup, ProbeKind::Readiness]);
    }
}
