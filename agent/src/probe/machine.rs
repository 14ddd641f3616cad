//! The probes of one container run as a pure state machine: given the time and each probe's
//! results, which probes are due, whether the container is started and ready, and when it
//! must be killed. The monitor feeds it; every rule has a unit test with made-up times.
//!
//! The kubelet's rules:
//! - every probe waits `initialDelay` after the container started, then runs every `period`;
//!   one that has not answered within `timeout` failed;
//! - a result counts once the same result came `successThreshold` (success) or
//!   `failureThreshold` (failure) times in a row;
//! - a startup probe gates the others: liveness and readiness do not run before it succeeded,
//!   and it stops once it has; the container counts as started only then;
//! - readiness starts false and follows its probe both ways; without a readiness probe the
//!   container is ready once started;
//! - liveness or startup failing `failureThreshold` times in a row kills the container; no
//!   probe runs after that in this run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{ProbeKind, ProbeRecord, ProbeSpec, RunProbes};

/// One probe's schedule and counters.
#[derive(Debug, Clone)]
struct Slot {
    spec: ProbeSpec,
    /// When it may run next.
    next_due: Instant,
    /// When the attempt in flight started.
    in_flight: Option<Instant>,
    /// The last result and how many times in a row it came.
    last: Option<bool>,
    run: u32,
    record: ProbeRecord,
}

/// A kill the probes ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kill {
    pub kind: ProbeKind,
    pub grace: Duration,
}

/// The probes of one container run.
#[derive(Debug, Clone)]
pub struct Machine {
    slots: BTreeMap<ProbeKind, Slot>,
    started: bool,
    ready: bool,
    killed: Option<ProbeKind>,
}

impl Machine {
    /// The probes of a container that started at `started_at`.
    pub fn new(specs: &[ProbeSpec], started_at: Instant) -> Self {
        let slots: BTreeMap<ProbeKind, Slot> = specs
            .iter()
            .map(|spec| {
                (
                    spec.kind,
                    Slot {
                        next_due: started_at + spec.initial_delay,
                        spec: spec.clone(),
                        in_flight: None,
                        last: None,
                        run: 0,
                        record: ProbeRecord::default(),
                    },
                )
            })
            .collect();
        let started = !slots.contains_key(&ProbeKind::Startup);
        let ready = started && !slots.contains_key(&ProbeKind::Readiness);
        Self {
            slots,
            started,
            ready,
            killed: None,
        }
    }

    /// Whether `kind` may run at all now: the startup probe until it succeeded, the others
    /// after; nothing once a probe had the container killed.
    fn active(&self, kind: ProbeKind) -> bool {
        self.killed.is_none() && (kind == ProbeKind::Startup) != self.started
    }

    /// The probes to start now.
    pub fn due(&self, now: Instant) -> Vec<ProbeKind> {
        self.slots
            .iter()
            .filter(|(kind, s)| self.active(**kind) && s.in_flight.is_none() && s.next_due <= now)
            .map(|(kind, _)| *kind)
            .collect()
    }

    /// Marks `kind` as running from `now`; it is due again a period later.
    pub fn begin(&mut self, kind: ProbeKind, now: Instant) {
        if let Some(s) = self.slots.get_mut(&kind) {
            s.in_flight = Some(now);
            s.next_due = now + s.spec.period;
        }
    }

    /// The probes in flight for longer than their timeout: they have failed.
    pub fn timed_out(&self, now: Instant) -> Vec<ProbeKind> {
        self.slots
            .iter()
            .filter(|(_, s)| s.in_flight.is_some_and(|at| now >= at + s.spec.timeout))
            .map(|(kind, _)| *kind)
            .collect()
    }

    /// The timeout of probe `kind`.
    pub fn timeout(&self, kind: ProbeKind) -> Duration {
        self.slots
            .get(&kind)
            .map_or(Duration::ZERO, |s| s.spec.timeout)
    }

    /// The next time something is to be done: a probe falls due or one in flight times out.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|(kind, s)| match s.in_flight {
                Some(at) => Some(at + s.spec.timeout),
                None if self.active(*kind) => Some(s.next_due),
                None => None,
            })
            .min()
    }

    /// Records the result of the attempt of `kind` in flight: `Err` carries the failure's
    /// message. Returns the kill it decides, once.
    pub fn finish(
        &mut self,
        kind: ProbeKind,
        result: Result<(), String>,
        now: Instant,
    ) -> Option<Kill> {
        if !self.active(kind) {
            if let Some(s) = self.slots.get_mut(&kind) {
                s.in_flight = None;
            }
            return None;
        }
        let s = self.slots.get_mut(&kind)?;
        s.in_flight?;
        s.in_flight = None;
        let success = result.is_ok();
        s.run = if s.last == Some(success) {
            s.run + 1
        } else {
            1
        };
        s.last = Some(success);
        match result {
            Ok(()) => s.record.consecutive_failures = 0,
            Err(message) => {
                s.record.consecutive_failures += 1;
                s.record.total_failures += 1;
                s.record.last_failure = Some(message);
            }
        }
        let reached = if success {
            s.run >= s.spec.success_threshold
        } else {
            s.run >= s.spec.failure_threshold
        };
        if !reached {
            return None;
        }
        let grace = s.spec.kill_grace;
        match (kind, success) {
            (ProbeKind::Startup, true) => {
                self.started = true;
                self.ready = !self.slots.contains_key(&ProbeKind::Readiness);
                // The others start now (or at their initial delay, whichever is later).
                for (k, other) in self.slots.iter_mut() {
                    if *k != ProbeKind::Startup {
                        other.next_due = other.next_due.max(now);
                    }
                }
                None
            }
            (ProbeKind::Readiness, ready) => {
                self.ready = ready;
                None
            }
            (ProbeKind::Liveness, true) => None,
            (_, false) => {
                self.killed = Some(kind);
                self.ready = false;
                Some(Kill { kind, grace })
            }
        }
    }

    pub fn started(&self) -> bool {
        self.started
    }

    pub fn ready(&self) -> bool {
        self.ready
    }

    /// What the state file records.
    pub fn record(&self) -> RunProbes {
        RunProbes {
            started: self.started,
            ready: self.ready,
            results: self
                .slots
                .iter()
                .filter(|(_, s)| s.record != ProbeRecord::default())
                .map(|(k, s)| (*k, s.record.clone()))
                .collect(),
            killed: self.killed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Handler;
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn spec(kind: ProbeKind, delay: u64, period: u64, success: u32, failure: u32) -> ProbeSpec {
        ProbeSpec {
            kind,
            handler: Handler::TcpSocket {
                host: None,
                port: 80,
            },
            initial_delay: S * delay as u32,
            period: S * period as u32,
            timeout: S,
            success_threshold: success,
            failure_threshold: failure,
            kill_grace: S * 30,
        }
    }

    /// Runs probe `kind` at `t` seconds after `t0` with `result`.
    fn probe(m: &mut Machine, t0: Instant, t: u64, kind: ProbeKind, ok: bool) -> Option<Kill> {
        let now = t0 + S * t as u32;
        assert!(
            m.due(now).contains(&kind),
            "{kind:?} should be due at {t} s: {:?}",
            m.due(now)
        );
        m.begin(kind, now);
        m.finish(
            kind,
            if ok {
                Ok(())
            } else {
                Err(format!("fail at {t}"))
            },
            now,
        )
    }

    #[test]
    fn no_probes_means_started_and_ready() {
        let m = Machine::new(&[], Instant::now());
        assert!(m.started() && m.ready());
        assert_eq!(m.next_wakeup(), None);
        assert_eq!(
            m.record(),
            RunProbes {
                started: true,
                ready: true,
                ..Default::default()
            }
        );
    }

    #[test]
    fn initial_delay_then_every_period() {
        let t0 = Instant::now();
        let mut m = Machine::new(&[spec(ProbeKind::Liveness, 5, 10, 1, 3)], t0);
        assert!(m.due(t0).is_empty());
        assert!(m.due(t0 + S * 4).is_empty());
        assert_eq!(m.next_wakeup(), Some(t0 + S * 5));
        assert_eq!(probe(&mut m, t0, 5, ProbeKind::Liveness, true), None);
        assert!(m.due(t0 + S * 14).is_empty(), "not before a period passed");
        assert_eq!(m.next_wakeup(), Some(t0 + S * 15));
        assert_eq!(probe(&mut m, t0, 15, ProbeKind::Liveness, true), None);
    }

    #[test]
    fn liveness_kills_after_failure_threshold_in_a_row_only() {
        let t0 = Instant::now();
        let mut m = Machine::new(&[spec(ProbeKind::Liveness, 0, 1, 1, 3)], t0);
        assert_eq!(probe(&mut m, t0, 0, ProbeKind::Liveness, false), None);
        assert_eq!(probe(&mut m, t0, 1, ProbeKind::Liveness, false), None);
        // A success in between starts the count again.
        assert_eq!(probe(&mut m, t0, 2, ProbeKind::Liveness, true), None);
        assert_eq!(
            m.record().results[&ProbeKind::Liveness].consecutive_failures,
            0
        );
        assert_eq!(probe(&mut m, t0, 3, ProbeKind::Liveness, false), None);
        assert_eq!(probe(&mut m, t0, 4, ProbeKind::Liveness, false), None);
        let kill = probe(&mut m, t0, 5, ProbeKind::Liveness, false);
        assert_eq!(
            kill,
            Some(Kill {
                kind: ProbeKind::Liveness,
                grace: S * 30
            })
        );
        let r = m.record();
        assert_eq!(r.killed, Some(ProbeKind::Liveness));
        let rec = &r.results[&ProbeKind::Liveness];
        assert_eq!((rec.consecutive_failures, rec.total_failures), (3, 5));
        assert_eq!(rec.last_failure.as_deref(), Some("fail at 5"));
        // Nothing runs after the kill decision.
        assert!(m.due(t0 + S * 100).is_empty());
        assert_eq!(m.next_wakeup(), None);
    }

    #[test]
    fn readiness_starts_false_and_flips_both_ways_with_thresholds() {
        let t0 = Instant::now();
        let mut m = Machine::new(&[spec(ProbeKind::Readiness, 0, 1, 2, 2)], t0);
        assert!(
            m.started() && !m.ready(),
            "not ready before the first success"
        );
        probe(&mut m, t0, 0, ProbeKind::Readiness, true);
        assert!(!m.ready(), "successThreshold 2");
        probe(&mut m, t0, 1, ProbeKind::Readiness, true);
        assert!(m.ready());
        probe(&mut m, t0, 2, ProbeKind::Readiness, false);
        assert!(m.ready(), "failureThreshold 2");
        assert_eq!(
            probe(&mut m, t0, 3, ProbeKind::Readiness, false),
            None,
            "never kills"
        );
        assert!(!m.ready());
        probe(&mut m, t0, 4, ProbeKind::Readiness, true);
        assert!(!m.ready());
        probe(&mut m, t0, 5, ProbeKind::Readiness, true);
        assert!(m.ready());
        assert_eq!(m.record().results[&ProbeKind::Readiness].total_failures, 2);
    }

    #[test]
    fn startup_gates_liveness_and_readiness() {
        let t0 = Instant::now();
        let mut m = Machine::new(
            &[
                spec(ProbeKind::Startup, 0, 2, 1, 10),
                spec(ProbeKind::Liveness, 1, 5, 1, 1),
                spec(ProbeKind::Readiness, 0, 5, 1, 1),
            ],
            t0,
        );
        assert!(!m.started() && !m.ready());
        assert_eq!(m.due(t0 + S * 3), [ProbeKind::Startup], "only startup runs");
        probe(&mut m, t0, 0, ProbeKind::Startup, false);
        probe(&mut m, t0, 2, ProbeKind::Startup, false);
        assert!(m.due(t0 + S * 3).is_empty());
        assert_eq!(probe(&mut m, t0, 4, ProbeKind::Startup, true), None);
        assert!(m.started());
        assert!(!m.ready(), "readiness has not passed yet");
        // Startup stops; liveness and readiness run at once (their delays are over).
        assert_eq!(
            m.due(t0 + S * 4),
            [ProbeKind::Liveness, ProbeKind::Readiness]
        );
        probe(&mut m, t0, 4, ProbeKind::Readiness, true);
        assert!(m.ready());
        assert!(!m.due(t0 + S * 100).contains(&ProbeKind::Startup));
    }

    #[test]
    fn startup_success_waits_out_the_others_initial_delay() {
        let t0 = Instant::now();
        let mut m = Machine::new(
            &[
                spec(ProbeKind::Startup, 0, 1, 1, 3),
                spec(ProbeKind::Liveness, 10, 5, 1, 1),
            ],
            t0,
        );
        probe(&mut m, t0, 0, ProbeKind::Startup, true);
        assert!(m.due(t0 + S * 9).is_empty());
        assert_eq!(m.next_wakeup(), Some(t0 + S * 10));
        assert_eq!(m.due(t0 + S * 10), [ProbeKind::Liveness]);
    }

    #[test]
    fn startup_failing_kills_like_liveness() {
        let t0 = Instant::now();
        let mut m = Machine::new(
            &[
                spec(ProbeKind::Startup, 0, 1, 1, 2),
                spec(ProbeKind::Readiness, 0, 1, 1, 1),
            ],
            t0,
        );
        probe(&mut m, t0, 0, ProbeKind::Startup, false);
        let kill = probe(&mut m, t0, 1, ProbeKind::Startup, false);
        assert_eq!(kill.map(|k| k.kind), Some(ProbeKind::Startup));
        assert!(!m.started() && !m.ready());
        assert!(m.due(t0 + S * 10).is_empty());
    }

    #[test]
    fn a_probe_in_flight_is_not_started_twice_and_times_out() {
        let t0 = Instant::now();
        let mut m = Machine::new(&[spec(ProbeKind::Liveness, 0, 1, 1, 1)], t0);
        m.begin(ProbeKind::Liveness, t0);
        assert!(m.due(t0 + S * 5).is_empty(), "still in flight");
        assert!(m.timed_out(t0 + Duration::from_millis(999)).is_empty());
        assert_eq!(m.next_wakeup(), Some(t0 + S), "wake up for the timeout");
        assert_eq!(m.timed_out(t0 + S), [ProbeKind::Liveness]);
        let kill = m.finish(ProbeKind::Liveness, Err("command timed out".into()), t0 + S);
        assert_eq!(kill.map(|k| k.kind), Some(ProbeKind::Liveness));
        assert!(m.timed_out(t0 + S * 2).is_empty());
    }

    #[test]
    fn a_slow_probe_runs_again_as_soon_as_it_ends_when_its_period_passed() {
        let t0 = Instant::now();
        let mut m = Machine::new(&[spec(ProbeKind::Readiness, 0, 1, 1, 3)], t0);
        m.begin(ProbeKind::Readiness, t0);
        m.finish(ProbeKind::Readiness, Ok(()), t0 + S * 3);
        assert_eq!(m.due(t0 + S * 3), [ProbeKind::Readiness]);
    }

    #[test]
    fn results_without_an_attempt_in_flight_are_ignored() {
        let t0 = Instant::now();
        let mut m = Machine::new(&[spec(ProbeKind::Liveness, 0, 1, 1, 1)], t0);
        assert_eq!(m.finish(ProbeKind::Liveness, Err("x".into()), t0), None);
        assert_eq!(m.record().results.len(), 0);
    }
}
