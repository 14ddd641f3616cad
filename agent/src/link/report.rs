//! The agent's pod statuses in the wire's `Reported` shape.

use kelp_shared::api::core::{ContainerState as KState, ContainerStatus, PodStatus};
use kelp_shared::api::meta::Time;
use kelp_shared::wire::{
    Condition, ConditionStatus, ContainerReport, ContainerState, PodPhase, PodReport,
};

fn ms(t: &Option<Time>) -> u64 {
    t.as_ref()
        .map_or(0, |t| u64::try_from(t.0.timestamp_millis()).unwrap_or(0))
}

fn state(s: &KState) -> Option<ContainerState> {
    if let Some(r) = &s.running {
        return Some(ContainerState::Running {
            started_at_unix_ms: ms(&r.started_at),
        });
    }
    if let Some(t) = &s.terminated {
        return Some(ContainerState::Terminated {
            exit_code: t.exit_code,
            reason: t.reason.clone().unwrap_or_default(),
            message: t.message.clone().unwrap_or_default(),
            started_at_unix_ms: ms(&t.started_at),
            finished_at_unix_ms: ms(&t.finished_at),
        });
    }
    s.waiting.as_ref().map(|w| ContainerState::Waiting {
        reason: w.reason.clone().unwrap_or_default(),
        message: w.message.clone().unwrap_or_default(),
    })
}

fn container(c: &ContainerStatus) -> ContainerReport {
    ContainerReport {
        name: c.name.clone(),
        state: c
            .state
            .as_ref()
            .and_then(state)
            .unwrap_or(ContainerState::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            }),
        last_state: c.last_state.as_ref().and_then(state),
        ready: c.ready,
        restart_count: u32::try_from(c.restart_count).unwrap_or(0),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: c.container_id.clone().unwrap_or_default(),
    }
}

fn phase(p: Option<&str>) -> PodPhase {
    match p {
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        Some("Pending") => PodPhase::Pending,
        _ => PodPhase::Unknown,
    }
}

/// One pod's status as reported to the controller.
pub fn pod_report(namespace: &str, name: &str, uid: &str, status: &PodStatus) -> PodReport {
    PodReport {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: uid.to_string(),
        phase: phase(status.phase.as_deref()),
        pod_ip: status.pod_ip.as_deref().and_then(|ip| ip.parse().ok()),
        containers: status
            .container_statuses
            .iter()
            .flatten()
            .map(container)
            .collect(),
        init_containers: status
            .init_container_statuses
            .iter()
            .flatten()
            .map(container)
            .collect(),
        reason: status.reason.clone().unwrap_or_default(),
        message: status.message.clone().unwrap_or_default(),
        start_unix_ms: status.start_time.map(|t| ms(&Some(t))),
    }
}

/// The node's conditions: Ready while the agent runs.
pub fn node_conditions(now_ms: u64) -> Vec<Condition> {
    vec![Condition {
        kind: "Ready".into(),
        status: ConditionStatus::True,
        reason: "KubeletReady".into(),
        message: "kelp-agent is posting ready status".into(),
        last_transition_unix_ms: now_ms,
    }]
}
