//! Pod workers' decisions: from a pod's spec and what its containers did, what to do next and
//! what status to report. Pure functions over plain data, so every rule has a unit test; the
//! agent's loop ([`crate::agent`]) carries the actions out.
//!
//! The rules are the kubelet's:
//! - init containers run one at a time, in order, each to successful completion, before any app
//!   container starts; a failed init container is retried per the pod's restart policy
//!   (`Never` fails the pod);
//! - app containers all start together; an exited one is restarted per `restartPolicy`
//!   (`Always`; `OnFailure` when the exit code is not 0; `Never`);
//! - restarts wait an exponential back-off: 10 s, doubling, at most 5 min, reset after a run of
//!   10 min (the base, the cap and the reset are configurable so tests run fast). While a
//!   container waits, its state is `waiting` with reason `CrashLoopBackOff`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kelp_shared::api::core::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodStatus,
};
use kelp_shared::api::meta::{Condition, Time};

use crate::runtime::state::ContainerRun;

#[cfg(test)]
mod tests;

/// Restart back-off settings (the kubelet's: 10 s doubling to 300 s, reset after 600 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackOff {
    pub base: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for BackOff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl BackOff {
    /// The kubelet's settings scaled by `factor` (0.1 runs tests at a tenth of real time).
    pub fn scaled(factor: f64) -> Self {
        let d = Self::default();
        Self {
            base: d.base.mul_f64(factor),
            max: d.max.mul_f64(factor),
            reset_after: d.reset_after.mul_f64(factor),
        }
    }

    /// The wait before restart number `level + 1` of a container that failed `level` times in
    /// a row: base · 2^level, at most max.
    pub fn delay(&self, level: u32) -> Duration {
        let factor = 1u64.checked_shl(level.min(31)).unwrap_or(u64::MAX);
        self.base
            .checked_mul(factor.min(u32::MAX as u64) as u32)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// What the agent remembers of one container across its runs (persisted in the agent's redb).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Restarts {
    /// Kubernetes' `restartCount`.
    pub count: u32,
    /// Back-off exponent + 1 of the next failure: 0 before any restart, 1 after a restart that
    /// followed a long run (wait `base` if it fails), `n` after `n` short runs in a row.
    pub level: u32,
}

/// Which list a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Init,
    App,
}

/// What the worker decided for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start (or restart) this container now.
    Start { kind: Kind, index: usize },
}

/// What a container is doing, from the pod worker's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Running,
    /// Ended; `success` when it exited 0.
    Exited {
        success: bool,
    },
}

fn phase_of(run: Option<&ContainerRun>) -> Phase {
    match run {
        None => Phase::NotStarted,
        Some(r) if r.start_error.is_some() => Phase::Exited { success: false },
        Some(r) => match &r.exit {
            None if r.process.is_some() => Phase::Running,
            None => Phase::NotStarted,
            Some(e) => Phase::Exited {
                success: e.code == 0,
            },
        },
    }
}

/// Input of one decision.
pub struct PodView<'a> {
    pub pod: &'a Pod,
    /// Last run of each container, by name (init and app containers share the namespace).
    pub runs: &'a BTreeMap<String, ContainerRun>,
    pub restarts: &'a BTreeMap<String, Restarts>,
    /// Containers that could not be created for a reason that stays until the pod changes
    /// (bad config, missing image), with the Kubernetes reason and message.
    pub blocked: &'a BTreeMap<String, (String, String)>,
    pub backoff: BackOff,
    pub now: DateTime<Utc>,
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

pub fn init_containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[])
}

pub fn app_containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[])
}

/// Kubernetes reports times in whole seconds.
fn seconds(t: DateTime<Utc>) -> Time {
    Time(DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t))
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl PodView<'_> {
    fn should_restart(&self, kind: Kind, success: bool) -> bool {
        match (kind, restart_policy(self.pod)) {
            // An init container that succeeded is done; one that failed is retried unless Never.
            (Kind::Init, "Never") => false,
            (Kind::Init, _) => !success,
            (Kind::App, "Always") => true,
            (Kind::App, "OnFailure") => !success,
            (Kind::App, _) => false,
        }
    }

    /// When a container that exited may start again, given its back-off.
    pub fn restart_at(&self, name: &str) -> Option<DateTime<Utc>> {
        let run = self.runs.get(name)?;
        let finished = parse_time(run.finished_at.as_deref())?;
        let previous = self.restarts.get(name).copied().unwrap_or_default();
        // A long run resets the back-off, as the restart that follows will record.
        let level = next_restarts(previous, run, &self.backoff)
            .level
            .saturating_sub(1);
        let delay = chrono::Duration::from_std(self.backoff.delay(level)).ok()?;
        Some(finished + delay)
    }

    /// Whether the back-off of `name` has run out.
    fn backoff_over(&self, name: &str) -> bool {
        self.restart_at(name).is_none_or(|at| at <= self.now)
    }

    /// The next actions for the pod: level-triggered, so calling it again before the world
    /// changed asks for nothing new.
    pub fn actions(&self) -> Vec<Action> {
        let mut actions = Vec::new();
        for (index, c) in init_containers(self.pod).iter().enumerate() {
            if self.blocked.contains_key(&c.name) {
                return actions;
            }
            match phase_of(self.runs.get(&c.name)) {
                Phase::NotStarted => {
                    actions.push(Action::Start {
                        kind: Kind::Init,
                        index,
                    });
                    return actions;
                }
                Phase::Running => return actions,
                Phase::Exited { success: true } => continue,
                Phase::Exited { success: false } => {
                    if self.should_restart(Kind::Init, false) && self.backoff_over(&c.name) {
                        actions.push(Action::Start {
                            kind: Kind::Init,
                            index,
                        });
                    }
                    return actions;
                }
            }
        }
        for (index, c) in app_containers(self.pod).iter().enumerate() {
            if self.blocked.contains_key(&c.name) {
                continue;
            }
            let start = match phase_of(self.runs.get(&c.name)) {
                Phase::NotStarted => true,
                Phase::Running => false,
                Phase::Exited { success } => {
                    self.should_restart(Kind::App, success) && self.backoff_over(&c.name)
                }
            };
            if start {
                actions.push(Action::Start {
                    kind: Kind::App,
                    index,
                });
            }
        }
        actions
    }

    /// The earliest time a back-off ends, so the agent can wake up for it.
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        init_containers(self.pod)
            .iter()
            .chain(app_containers(self.pod))
            .filter(|c| matches!(phase_of(self.runs.get(&c.name)), Phase::Exited { .. }))
            .filter_map(|c| self.restart_at(&c.name))
            .filter(|t| *t > self.now)
            .min()
    }

    fn terminated(&self, run: &ContainerRun) -> ContainerState {
        let (exit_code, signal, reason, message) = match (&run.exit, &run.start_error) {
            (_, Some(err)) => (128, None, "StartError".to_string(), Some(err.clone())),
            (Some(e), None) => {
                let reason = if e.oom_killed {
                    "OOMKilled"
                } else if e.code == 0 {
                    "Completed"
                } else {
                    "Error"
                };
                (e.code, e.signal, reason.to_string(), None)
            }
            (None, None) => (0, None, "Unknown".into(), None),
        };
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code,
                signal,
                reason: Some(reason),
                message,
                started_at: parse_time(run.started_at.as_deref()).map(seconds),
                finished_at: parse_time(run.finished_at.as_deref()).map(seconds),
                container_id: None,
            }),
            ..Default::default()
        }
    }

    fn waiting(reason: &str, message: Option<String>) -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message,
            }),
            ..Default::default()
        }
    }

    fn container_status(&self, kind: Kind, c: &Container, init_done: bool) -> ContainerStatus {
        let run = self.runs.get(&c.name);
        let restarts = self.restarts.get(&c.name).copied().unwrap_or_default();
        let pod_name = self.pod.metadata.name.as_deref().unwrap_or("");
        let (state, last_state) = if let Some((reason, message)) = self.blocked.get(&c.name) {
            (
                Self::waiting(reason, Some(message.clone())),
                run.map(|r| self.terminated(r)),
            )
        } else {
            match (phase_of(run), run) {
                (Phase::Running, Some(r)) => (
                    ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: parse_time(r.started_at.as_deref()).map(seconds),
                        }),
                        ..Default::default()
                    },
                    r.last.as_deref().map(|l| self.terminated(l)),
                ),
                (Phase::Exited { success }, Some(r)) => {
                    if self.should_restart(kind, success) {
                        // The whole back-off, not what is left of it: the status stays
                        // the same while the container waits.
                        let finished = parse_time(r.finished_at.as_deref());
                        let message = self.restart_at(&c.name).zip(finished).map(|(at, f)| {
                            let wait = (at - f).num_seconds().max(0);
                            format!(
                                "back-off {wait}s restarting failed container={} pod={pod_name}",
                                c.name
                            )
                        });
                        (
                            Self::waiting("CrashLoopBackOff", message),
                            Some(self.terminated(r)),
                        )
                    } else {
                        (self.terminated(r), None)
                    }
                }
                _ => {
                    let reason = if kind == Kind::App && !init_done {
                        "PodInitializing"
                    } else {
                        "ContainerCreating"
                    };
                    (Self::waiting(reason, None), None)
                }
            }
        };
        let running = state.running.is_some();
        // A run without probes is started and ready while it runs; with probes, as the
        // monitor's record says (startup passed; readiness passing).
        let probes = run.and_then(|r| r.probes.as_ref());
        let started = running && probes.is_none_or(|p| p.started);
        ContainerStatus {
            name: c.name.clone(),
            state: Some(state),
            last_state,
            ready: started && kind == Kind::App && probes.is_none_or(|p| p.ready),
            restart_count: restarts.count as i32,
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            container_id: None,
            started: Some(started),
        }
    }

    /// The pod's status as the kubelet would report it.
    pub fn status(&self, start_time: Option<Time>) -> PodStatus {
        let inits = init_containers(self.pod);
        let apps = app_containers(self.pod);
        let init_done = inits.iter().all(|c| {
            matches!(
                phase_of(self.runs.get(&c.name)),
                Phase::Exited { success: true }
            )
        });
        let init_statuses: Vec<ContainerStatus> = inits
            .iter()
            .map(|c| self.container_status(Kind::Init, c, init_done))
            .collect();
        let app_statuses: Vec<ContainerStatus> = apps
            .iter()
            .map(|c| self.container_status(Kind::App, c, init_done))
            .collect();

        let policy = restart_policy(self.pod);
        let init_failed_for_good = policy == "Never"
            && inits.iter().any(|c| {
                matches!(
                    phase_of(self.runs.get(&c.name)),
                    Phase::Exited { success: false }
                )
            });
        let phases: Vec<Phase> = apps
            .iter()
            .map(|c| phase_of(self.runs.get(&c.name)))
            .collect();
        let all_exited = phases.iter().all(|p| matches!(p, Phase::Exited { .. }));
        let any_failed = phases
            .iter()
            .any(|p| matches!(p, Phase::Exited { success: false }));
        let phase = if init_failed_for_good {
            "Failed"
        } else if !init_done || phases.contains(&Phase::NotStarted) {
            "Pending"
        } else if all_exited && policy == "Never" {
            if any_failed {
                "Failed"
            } else {
                "Succeeded"
            }
        } else if all_exited && policy == "OnFailure" && !any_failed {
            "Succeeded"
        } else {
            "Running"
        };

        let ready = phase == "Running" && app_statuses.iter().all(|s| s.ready);
        let condition = |type_: &str, ok: bool| Condition {
            type_: type_.into(),
            status: if ok { "True" } else { "False" }.into(),
            ..Default::default()
        };
        // As the kubelet words a pod that is not ready because of its containers.
        let unready: Vec<&str> = app_statuses
            .iter()
            .filter(|s| !s.ready)
            .map(|s| s.name.as_str())
            .collect();
        let readiness = |type_: &str| Condition {
            reason: (!ready && !unready.is_empty()).then(|| "ContainersNotReady".into()),
            message: (!ready && !unready.is_empty())
                .then(|| format!("containers with unready status: [{}]", unready.join(" "))),
            ..condition(type_, ready)
        };
        PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![
                condition("Initialized", init_done),
                readiness("Ready"),
                readiness("ContainersReady"),
                condition("PodScheduled", true),
            ]),
            start_time,
            init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
            container_statuses: Some(app_statuses),
            ..Default::default()
        }
    }
}

/// After a container exited, how its [`Restarts`] change when it is started again: the count
/// goes up; the back-off level resets after a long run and grows after a short one.
pub fn next_restarts(previous: Restarts, run: &ContainerRun, backoff: &BackOff) -> Restarts {
    let ran_for = match (
        parse_time(run.started_at.as_deref()),
        parse_time(run.finished_at.as_deref()),
    ) {
        (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    };
    Restarts {
        count: previous.count + 1,
        level: if ran_for >= backoff.reset_after {
            1
        } else {
            previous.level + 1
        },
    }
}
