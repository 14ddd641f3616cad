//! Events the agent records, as Kubernetes Events read (`type`, `reason`, `message`, `count`,
//! first and last time): kept with each pod's status and, for the node (image garbage
//! collection), in `<run-dir>/events.json`. Until the MQTT link carries them to the
//! controller, `kelp-agent pods -o json` and `kelp-agent events` show them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many events a pod or the node keeps (the oldest go first).
pub const KEEP: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: u32,
    pub first_timestamp: DateTime<Utc>,
    pub last_timestamp: DateTime<Utc>,
}

/// Records `reason`/`message` in `events`: a repeat of the latest event counts up, as the
/// kubelet's event aggregation does; others are appended, keeping the last [`KEEP`].
pub fn record(events: &mut Vec<Event>, warning: bool, reason: &str, message: String) {
    let now = Utc::now();
    if let Some(e) = events
        .iter_mut()
        .rev()
        .find(|e| e.reason == reason && e.message == message)
    {
        e.count += 1;
        e.last_timestamp = now;
        return;
    }
    events.push(Event {
        type_: if warning { "Warning" } else { "Normal" }.into(),
        reason: reason.into(),
        message,
        count: 1,
        first_timestamp: now,
        last_timestamp: now,
    });
    if events.len() > KEEP {
        events.remove(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_count_up_and_old_events_go() {
        let mut events = Vec::new();
        record(&mut events, false, "Pulling", "Pulling image \"a\"".into());
        record(
            &mut events,
            true,
            "BackOff",
            "Back-off pulling image \"a\"".into(),
        );
        record(
            &mut events,
            true,
            "BackOff",
            "Back-off pulling image \"a\"".into(),
        );
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].count, 2);
        assert_eq!(events[1].type_, "Warning");
        for i in 0..40 {
            record(&mut events, false, "Started", format!("run {i}"));
        }
        assert_eq!(events.len(), KEEP);
        assert_eq!(events.last().unwrap().message, "run 39");
    }
}
