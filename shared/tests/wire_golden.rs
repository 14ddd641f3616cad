//! Golden byte fixtures: the wire format, pinned.
//!
//! Every kelp message and the envelope (with and without a signature, with and without
//! zstd) is built from fixed values, encoded, and compared with `tests/golden/*.bin`.
//! The fixtures are decoded back, too, and must equal the values.
//!
//! A mismatch means **the wire format changed**: agents and controllers of different
//! versions would no longer understand each other. postcard cannot evolve a struct, so
//! never add a field — append an enum variant, or bump the wire version (see
//! `kelp_shared::wire::messages`). When the change is intended (a new variant, a new
//! fixture), rewrite the fixtures with:
//!
//! ```text
//! KELP_BLESS=1 cargo test -p kelp-shared --test wire_golden
//! ```
//!
//! zstd output may change with the encoder's version while staying valid, so for
//! compressed envelopes the fixture is checked by decoding it (and by re-encoding the
//! decoded envelope), not by comparing the encoder's output.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::fs;
use std::path::{Path, PathBuf};

use kelp_shared::wire::{
    decode_message, encode_message, AddressKind, Birth, BootId, ClusterId, Compression, Condition,
    ConditionStatus, ContainerReport, ContainerState, DesiredState, Envelope, EventBatch,
    EventType, Generation, Heartbeat, MessageKind, Metric, MetricsBatch, NodeAddress, NodeEvent,
    ObjectRef, Offline, PodPhase, PodReport, Reported, Request, RequestBody, Resources, Response,
    ResponseBody, Sample, SampleSeries, Samples, Series, Signature, StaticPods, Subject, WireError,
    WIRE_VERSION,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

// ---------------------------------------------------------------------------------------
// The fixed values
// ---------------------------------------------------------------------------------------

const CLUSTER: ClusterId = ClusterId([
    0x6b, 0x65, 0x6c, 0x70, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
]);
const BOOT: BootId = BootId([
    0xb0, 0x07, 0x1d, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc,
]);
const AGENT_START: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const NODE: &str = "pi-kitchen.site-7";

fn signature() -> Signature {
    let mut bytes = [0u8; 64];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = 0x80 | i as u8;
    }
    Signature(bytes)
}

fn generation() -> Generation {
    Generation {
        cluster_id: CLUSTER,
        revision: 4242,
    }
}

fn birth() -> Birth {
    Birth {
        node: NODE.into(),
        boot_id: BOOT,
        agent_start_unix_ms: AGENT_START,
        seq: 3,
        agent_version: "0.1.0".into(),
        wire_versions: vec![1],
        os: "linux".into(),
        arch: "arm64".into(),
        kernel: "6.6.51+rpt-rpi-v8".into(),
        capacity: Resources {
            cpu_millis: 4000,
            memory_bytes: 8 * 1024 * 1024 * 1024,
            pods: 110,
        },
        cgroup_version: 2,
        addresses: vec![
            NodeAddress {
                kind: AddressKind::InternalIp,
                address: "192.168.7.21".into(),
            },
            NodeAddress {
                kind: AddressKind::Hostname,
                address: "pi-kitchen".into(),
            },
        ],
        labels: vec![("kelp.dev/board".into(), "rpi4".into())],
    }
}

fn offline() -> Offline {
    Offline {
        node: NODE.into(),
        boot_id: BOOT,
    }
}

fn reported() -> Reported {
    Reported {
        node: NODE.into(),
        boot_id: BOOT,
        agent_start_unix_ms: AGENT_START,
        seq: 17,
        applied_generation: Some(generation()),
        pods: vec![
            PodReport {
                namespace: "default".into(),
                name: "myblog-7d9f".into(),
                uid: "0b6c6a52-3f0e-4d8e-9a57-1f2b3c4d5e6f".into(),
                phase: PodPhase::Running,
                pod_ip: Some("10.42.3.7".parse().unwrap()),
                containers: vec![
                    ContainerReport {
                        name: "myblog".into(),
                        state: ContainerState::Running {
                            started_at_unix_ms: AGENT_START + 5_000,
                        },
                        last_state: Some(ContainerState::Terminated {
                            exit_code: 137,
                            reason: "OOMKilled".into(),
                            message: String::new(),
                            started_at_unix_ms: AGENT_START + 1_000,
                            finished_at_unix_ms: AGENT_START + 4_000,
                        }),
                        ready: true,
                        restart_count: 1,
                        image: "registry.local:5000/myblog:1.2".into(),
                        image_id: "sha256:2f1a".into(),
                        container_id: "kelp://c0ffee".into(),
                    },
                    ContainerReport {
                        name: "mysql".into(),
                        state: ContainerState::Waiting {
                            reason: "CrashLoopBackOff".into(),
                            message: "back-off 20s restarting failed container".into(),
                        },
                        last_state: None,
                        ready: false,
                        restart_count: 2,
                        image: "mysql:8".into(),
                        image_id: String::new(),
                        container_id: String::new(),
                    },
                ],
                init_containers: vec![ContainerReport {
                    name: "migrate".into(),
                    state: ContainerState::Terminated {
                        exit_code: 0,
                        reason: "Completed".into(),
                        message: String::new(),
                        started_at_unix_ms: AGENT_START + 100,
                        finished_at_unix_ms: AGENT_START + 900,
                    },
                    last_state: None,
                    ready: false,
                    restart_count: 0,
                    image: "busybox".into(),
                    image_id: "sha256:beef".into(),
                    container_id: "kelp://1n1t".into(),
                }],
                reason: String::new(),
                message: String::new(),
                start_unix_ms: Some(AGENT_START + 50),
            },
            PodReport {
                namespace: "kube-system".into(),
                name: "evicted".into(),
                uid: "u2".into(),
                phase: PodPhase::Failed,
                pod_ip: Some("fd00::7".parse().unwrap()),
                containers: Vec::new(),
                init_containers: Vec::new(),
                reason: "Evicted".into(),
                message: "The node was low on resource: memory.".into(),
                start_unix_ms: None,
            },
            PodReport {
                namespace: "default".into(),
                name: "pending".into(),
                uid: "u3".into(),
                phase: PodPhase::Pending,
                pod_ip: None,
                containers: Vec::new(),
                init_containers: Vec::new(),
                reason: String::new(),
                message: String::new(),
                start_unix_ms: None,
            },
        ],
        conditions: vec![
            Condition {
                kind: "Ready".into(),
                status: ConditionStatus::True,
                reason: "KubeletReady".into(),
                message: "kelp-agent is posting ready status".into(),
                last_transition_unix_ms: AGENT_START + 2_000,
            },
            Condition {
                kind: "MemoryPressure".into(),
                status: ConditionStatus::False,
                reason: "KubeletHasSufficientMemory".into(),
                message: String::new(),
                last_transition_unix_ms: AGENT_START,
            },
        ],
    }
}

fn unapplied_report() -> Reported {
    Reported {
        applied_generation: None,
        pods: Vec::new(),
        conditions: Vec::new(),
        seq: 1,
        ..reported()
    }
}

fn desired_state() -> DesiredState {
    let pod = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"myblog-7d9f","namespace":"default","uid":"0b6c6a52-3f0e-4d8e-9a57-1f2b3c4d5e6f"},"spec":{"nodeName":"pi-kitchen.site-7","containers":[{"name":"myblog","image":"registry.local:5000/myblog:1.2","env":[{"name":"MYSQL_SERVICE_HOST","value":"127.0.0.1"}]},{"name":"mysql","image":"mysql:8","env":[{"name":"MYSQL_ROOT_PASSWORD","valueFrom":{"secretKeyRef":{"name":"mysql","key":"password"}}}]}]}}"#;
    let secret = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"mysql","namespace":"default"},"data":{"password":"MTIzNDU2"}}"#;
    let config = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"myblog","namespace":"default"},"data":{"a":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}"#;
    DesiredState {
        generation: generation(),
        node: NODE.into(),
        objects_json: vec![pod.to_vec(), secret.to_vec(), config.to_vec()],
    }
}

fn static_pods() -> StaticPods {
    let pod = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-pi-kitchen.site-7","namespace":"default","uid":"3f1c2b9e-8d4a-4c6e-9f00-112233445566"},"spec":{"nodeName":"pi-kitchen.site-7","containers":[{"name":"web","image":"busybox:1.36"}]}}"#;
    StaticPods {
        node: NODE.into(),
        boot_id: BOOT,
        agent_start_unix_ms: AGENT_START,
        seq: 4,
        pods_json: vec![pod.to_vec()],
    }
}

fn event_batch() -> EventBatch {
    EventBatch {
        boot_id: BOOT,
        agent_start_unix_ms: AGENT_START,
        seq: 9,
        events: vec![
            NodeEvent {
                object: ObjectRef {
                    kind: "Pod".into(),
                    namespace: "default".into(),
                    name: "myblog-7d9f".into(),
                    uid: "0b6c6a52-3f0e-4d8e-9a57-1f2b3c4d5e6f".into(),
                },
                reason: "Pulled".into(),
                message: "Successfully pulled image \"mysql:8\"".into(),
                event_type: EventType::Normal,
                count: 1,
                first_unix_ms: AGENT_START + 3_000,
                last_unix_ms: AGENT_START + 3_000,
            },
            NodeEvent {
                object: ObjectRef {
                    kind: "Node".into(),
                    namespace: String::new(),
                    name: NODE.into(),
                    uid: String::new(),
                },
                reason: "BackOff".into(),
                message: "Back-off restarting failed container".into(),
                event_type: EventType::Warning,
                count: 12,
                first_unix_ms: AGENT_START + 10_000,
                last_unix_ms: AGENT_START + 70_000,
            },
        ],
    }
}

fn metrics_batch() -> MetricsBatch {
    MetricsBatch {
        boot_id: BOOT,
        agent_start_unix_ms: AGENT_START,
        seq: 60,
        series: vec![
            Series {
                name: "container_cpu_usage_seconds_total".into(),
                labels: vec![
                    ("container".into(), "myblog".into()),
                    ("namespace".into(), "default".into()),
                    ("pod".into(), "myblog-7d9f".into()),
                ],
                samples: vec![
                    Sample {
                        unix_ms: AGENT_START + 10_000,
                        value: 1.25,
                    },
                    Sample {
                        unix_ms: AGENT_START + 20_000,
                        value: 1.5,
                    },
                ],
            },
            Series {
                name: "machine_memory_bytes".into(),
                labels: Vec::new(),
                samples: vec![Sample {
                    unix_ms: AGENT_START + 20_000,
                    value: 8_589_934_592.0,
                }],
            },
        ],
    }
}

fn samples() -> Samples {
    let gib = 1i64 << 30;
    Samples {
        boot_id: BOOT,
        agent_start_unix_ms: AGENT_START,
        seq: 61,
        start_unix_ms: AGENT_START + 60_000,
        interval_ms: 10_000,
        slots: 6,
        complete: true,
        subjects: vec![
            Subject::Node,
            Subject::Pod {
                namespace: "default".into(),
                name: "myblog-7d9f".into(),
            },
            Subject::Container {
                pod: 1,
                name: "myblog".into(),
            },
        ],
        series: vec![
            SampleSeries::from_values(
                Metric::CpuUsageNanoseconds,
                0,
                0,
                &[
                    90_000_000_000,
                    90_250_000_000,
                    90_500_000_000,
                    90_750_000_000,
                    91_000_000_000,
                    91_250_000_000,
                ],
            ),
            SampleSeries::from_values(Metric::MemoryCapacityBytes, 0, 5, &[8 * gib]),
            SampleSeries::from_values(Metric::TemperatureMillicelsius, 0, 0, &[48_312, 47_000]),
            SampleSeries::from_values(Metric::ThrottledFlags, 0, 5, &[0x5_0005]),
            SampleSeries::from_values(Metric::NetworkRxBytes, 1, 4, &[1_500, 1_200_000]),
            SampleSeries::from_values(
                Metric::MemoryWorkingSetBytes,
                2,
                0,
                &[
                    64 << 20,
                    (64 << 20) - 4096,
                    64 << 20,
                    64 << 20,
                    64 << 20,
                    64 << 20,
                ],
            ),
            SampleSeries::from_values(Metric::StartTimeSeconds, 2, 5, &[1_767_225_605]),
        ],
    }
}

/// A batch that leaves unchanged series out, with an empty series and a delta that
/// would overflow (values() saturates).
fn samples_partial() -> Samples {
    Samples {
        seq: 62,
        start_unix_ms: AGENT_START + 120_000,
        complete: false,
        subjects: vec![Subject::Node],
        series: vec![
            SampleSeries::from_values(Metric::Load1Milli, 0, 0, &[250, 0, 1_000]),
            SampleSeries {
                metric: Metric::PidsInUse,
                subject: 0,
                first_slot: 5,
                deltas: Vec::new(),
            },
        ],
        ..samples()
    }
}

fn requests() -> Vec<(&'static str, Request)> {
    let request = |id, body| Request {
        id,
        deadline_unix_ms: AGENT_START + 30_000,
        node: NODE.into(),
        body,
    };
    let bodies = vec![
        (
            "request_logs",
            RequestBody::Logs {
                namespace: "default".into(),
                pod: "myblog-7d9f".into(),
                container: "mysql".into(),
                tail_lines: Some(100),
                follow: true,
                previous: false,
            },
        ),
        (
            "request_exec",
            RequestBody::Exec {
                namespace: "default".into(),
                pod: "myblog-7d9f".into(),
                container: "myblog".into(),
                command: vec!["sh".into(), "-c".into(), "echo hi".into()],
                stdin: true,
                tty: false,
            },
        ),
        (
            "request_stdin",
            RequestBody::Stdin {
                request_id: 2,
                data: b"ls\n".to_vec(),
                eof: true,
            },
        ),
        ("request_cancel", RequestBody::Cancel { request_id: 1 }),
    ];
    for (_, body) in &bodies {
        // Adding a variant breaks this match: add its fixture above, then bless.
        match body {
            RequestBody::Logs { .. }
            | RequestBody::Exec { .. }
            | RequestBody::Stdin { .. }
            | RequestBody::Cancel { .. } => {}
        }
    }
    bodies
        .into_iter()
        .zip(1..)
        .map(|((name, body), id)| (name, request(id, body)))
        .collect()
}

fn responses() -> Vec<(&'static str, Response)> {
    let bodies = vec![
        (
            "response_chunk",
            ResponseBody::Chunk(b"line 1\nline 2\n".to_vec()),
        ),
        ("response_end", ResponseBody::End { exit_code: Some(0) }),
        (
            "response_error",
            ResponseBody::Error("container mysql not found".into()),
        ),
        ("response_stderr", ResponseBody::Stderr(b"oops\n".to_vec())),
    ];
    for (_, body) in &bodies {
        // Adding a variant breaks this match: add its fixture above, then bless.
        match body {
            ResponseBody::Chunk(_)
            | ResponseBody::End { .. }
            | ResponseBody::Error(_)
            | ResponseBody::Stderr(_) => {}
        }
    }
    bodies
        .into_iter()
        .zip(0..)
        .map(|((name, body), seq)| (name, Response { id: 1, seq, body }))
        .collect()
}

/// Every variant of every field-less wire enum, in wire order: pins the variant indices.
#[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
struct AllEnums {
    kinds: Vec<MessageKind>,
    compressions: Vec<Compression>,
    phases: Vec<PodPhase>,
    statuses: Vec<ConditionStatus>,
    event_types: Vec<EventType>,
    address_kinds: Vec<AddressKind>,
    metrics: Vec<Metric>,
}

fn all_enums() -> AllEnums {
    // Adding a variant breaks one of these matches: add it below, then bless.
    let _ = |v: Compression| match v {
        Compression::None | Compression::Zstd => {}
    };
    let _ = |v: PodPhase| match v {
        PodPhase::Pending
        | PodPhase::Running
        | PodPhase::Succeeded
        | PodPhase::Failed
        | PodPhase::Unknown => {}
    };
    let _ = |v: ConditionStatus| match v {
        ConditionStatus::True | ConditionStatus::False | ConditionStatus::Unknown => {}
    };
    let _ = |v: EventType| match v {
        EventType::Normal | EventType::Warning => {}
    };
    let _ = |v: AddressKind| match v {
        AddressKind::Hostname | AddressKind::InternalIp | AddressKind::ExternalIp => {}
    };
    // Metric::ALL lists every variant in wire order (checked by a unit test in
    // kelp_shared::wire::messages); a new metric grows it and changes this fixture.
    AllEnums {
        kinds: MessageKind::ALL.to_vec(),
        compressions: vec![Compression::None, Compression::Zstd],
        phases: vec![
            PodPhase::Pending,
            PodPhase::Running,
            PodPhase::Succeeded,
            PodPhase::Failed,
            PodPhase::Unknown,
        ],
        statuses: vec![
            ConditionStatus::True,
            ConditionStatus::False,
            ConditionStatus::Unknown,
        ],
        event_types: vec![EventType::Normal, EventType::Warning],
        address_kinds: vec![
            AddressKind::Hostname,
            AddressKind::InternalIp,
            AddressKind::ExternalIp,
        ],
        metrics: Metric::ALL.to_vec(),
    }
}

// ---------------------------------------------------------------------------------------
// The checking machinery
// ---------------------------------------------------------------------------------------

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn blessing() -> bool {
    std::env::var_os("KELP_BLESS").is_some_and(|v| v == "1")
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(32).enumerate() {
        out.push_str(&format!("  {:06x}:", i * 32));
        for b in chunk {
            out.push_str(&format!(" {b:02x}"));
        }
        out.push('\n');
    }
    out
}

/// Collects fixture names and failures, so one run reports every changed fixture.
#[derive(Default)]
struct Golden {
    names: BTreeSet<String>,
    failures: Vec<String>,
}

impl Golden {
    fn path(&mut self, name: &str) -> PathBuf {
        assert!(
            self.names.insert(format!("{name}.bin")),
            "fixture {name} twice"
        );
        golden_dir().join(format!("{name}.bin"))
    }

    /// The checked-in bytes of fixture `name`, or `None` (with a failure) when missing.
    fn read(&mut self, name: &str, path: &Path) -> Option<Vec<u8>> {
        match fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(err) => {
                self.failures.push(format!(
                    "{name}: cannot read {}: {err} (new fixture? run with KELP_BLESS=1)",
                    path.display()
                ));
                None
            }
        }
    }

    /// Compares `actual` with fixture `name` (or writes it when blessing); returns the
    /// fixture's bytes.
    fn bytes(&mut self, name: &str, actual: &[u8]) -> Option<Vec<u8>> {
        let path = self.path(name);
        if blessing() {
            fs::create_dir_all(golden_dir()).unwrap();
            fs::write(&path, actual).unwrap();
            return Some(actual.to_vec());
        }
        let expected = self.read(name, &path)?;
        if expected != actual {
            self.failures.push(format!(
                "{name}: THE WIRE FORMAT CHANGED ({}).\n golden ({} bytes):\n{} now ({} bytes):\n{}",
                path.display(),
                expected.len(),
                hex(&expected),
                actual.len(),
                hex(actual),
            ));
        }
        Some(expected)
    }

    /// Pins one message: its encoding equals the fixture, the fixture decodes to it, no
    /// strict prefix of it decodes, and a trailing byte is refused.
    fn message<T>(&mut self, name: &str, value: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let encoded = encode_message(value).unwrap();
        let Some(golden) = self.bytes(name, &encoded) else {
            return;
        };
        match decode_message::<T>(&golden) {
            Ok(decoded) if &decoded == value => {}
            Ok(decoded) => self.failures.push(format!(
                "{name}: the fixture decodes to a different value:\n{decoded:#?}"
            )),
            Err(err) => self
                .failures
                .push(format!("{name}: the fixture no longer decodes: {err}")),
        }
        for len in 0..golden.len() {
            if decode_message::<T>(&golden[..len]).is_ok() {
                self.failures.push(format!(
                    "{name}: its first {len} bytes decode as a whole message"
                ));
            }
        }
        let mut trailing = golden.clone();
        trailing.push(0);
        if !matches!(
            decode_message::<T>(&trailing),
            Err(WireError::TrailingBytes { count: 1, .. })
        ) {
            self.failures
                .push(format!("{name}: a trailing byte is not refused"));
        }
    }

    /// Pins an uncompressed envelope: exact bytes both ways, and its signing bytes.
    fn envelope(&mut self, name: &str, envelope: &Envelope) {
        if let Some(golden) = self.bytes(name, &envelope.encode()) {
            match Envelope::decode(&golden) {
                Ok(decoded) if &decoded == envelope => {}
                other => self
                    .failures
                    .push(format!("{name}: the fixture decodes to {other:?}")),
            }
        }
        self.bytes(&format!("{name}.signing"), &envelope.signing_bytes());
    }

    /// Pins a zstd envelope holding `message`: the fixture must decode to the expected
    /// header and message and re-encode to itself. The encoder's output only has to
    /// round-trip: zstd output is not stable across encoder versions.
    fn zstd_envelope(&mut self, name: &str, message: &DesiredState, signature: Option<Signature>) {
        let mut sealed = Envelope::seal_message(CLUSTER, message, true).unwrap();
        sealed.signature = signature;
        assert_eq!(
            sealed.compression,
            Compression::Zstd,
            "{name}: must compress"
        );
        assert_eq!(sealed.open::<DesiredState>().unwrap(), *message);

        let path = self.path(name);
        if blessing() {
            fs::create_dir_all(golden_dir()).unwrap();
            fs::write(&path, sealed.encode()).unwrap();
        }
        let Some(golden) = self.read(name, &path) else {
            return;
        };
        if golden != sealed.encode() {
            eprintln!(
                "note: {name}: this build's zstd encoder output differs from the fixture \
                 (fine: the fixture is checked by decoding it)"
            );
        }
        let decoded = match Envelope::decode(&golden) {
            Ok(decoded) => decoded,
            Err(err) => {
                self.failures.push(format!(
                    "{name}: THE WIRE FORMAT CHANGED: the fixture no longer decodes: {err}"
                ));
                return;
            }
        };
        let header = (
            decoded.version,
            decoded.kind,
            decoded.cluster,
            decoded.compression,
            decoded.signature,
        );
        let expected = (
            WIRE_VERSION,
            MessageKind::Desired,
            CLUSTER,
            Compression::Zstd,
            signature,
        );
        if header != expected {
            self.failures.push(format!(
                "{name}: THE WIRE FORMAT CHANGED: header {header:?}, expected {expected:?}"
            ));
        }
        if decoded.encode() != golden {
            self.failures.push(format!(
                "{name}: THE WIRE FORMAT CHANGED: re-encoding differs"
            ));
        }
        match decoded.open::<DesiredState>() {
            Ok(opened) if opened == *message => {}
            other => self.failures.push(format!(
                "{name}: THE WIRE FORMAT CHANGED: the body opens to {other:?}"
            )),
        }
    }

    /// Fails if any fixture was not checked (a stale file) and reports all failures.
    fn finish(self) {
        let mut failures = self.failures;
        if !blessing() {
            let on_disk: BTreeSet<String> = fs::read_dir(golden_dir())
                .map(|dir| {
                    dir.filter_map(Result::ok)
                        .map(|entry| entry.file_name().to_string_lossy().into_owned())
                        .filter(|name| name.ends_with(".bin"))
                        .collect()
                })
                .unwrap_or_default();
            for stale in on_disk.difference(&self.names) {
                failures.push(format!("{stale}: fixture file no test checks (remove it?)"));
            }
        }
        assert!(
            failures.is_empty(),
            "\n\n{} golden fixture problem(s):\n\n{}\n\n\
             The kelp wire format changed. postcard cannot evolve a struct: never add a \
             field; append an enum variant or bump the wire version. If the change is \
             intended, rewrite the fixtures with\n    \
             KELP_BLESS=1 cargo test -p kelp-shared --test wire_golden\n",
            failures.len(),
            failures.join("\n\n"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

#[test]
fn wire_format_is_pinned() {
    let mut golden = Golden::default();

    golden.message("birth", &birth());
    golden.message("offline", &offline());
    golden.message("reported", &reported());
    golden.message("reported_unapplied", &unapplied_report());
    golden.message("desired_state", &desired_state());
    golden.message("event_batch", &event_batch());
    golden.message("metrics_batch", &metrics_batch());
    golden.message("samples", &samples());
    golden.message("samples_partial", &samples_partial());
    for (name, request) in requests() {
        golden.message(name, &request);
    }
    for (name, response) in responses() {
        golden.message(name, &response);
    }
    golden.message("static_pods", &static_pods());
    golden.message(
        "heartbeat",
        &Heartbeat {
            node: NODE.into(),
            boot_id: BOOT,
        },
    );
    golden.message("all_enums", &all_enums());

    let plain = Envelope::seal_message(CLUSTER, &offline(), false).unwrap();
    assert_eq!(plain.compression, Compression::None);
    golden.envelope("envelope_plain", &plain);

    let mut signed = Envelope::seal_message(CLUSTER, &requests()[0].1, false).unwrap();
    signed.signature = Some(signature());
    golden.envelope("envelope_signed", &signed);

    golden.zstd_envelope("envelope_zstd", &desired_state(), None);
    golden.zstd_envelope("envelope_zstd_signed", &desired_state(), Some(signature()));

    golden.finish();
}

/// The fixtures' header bytes, spelled out: a reader can check the layout documented in
/// `kelp_shared::wire::Envelope` against real bytes.
#[test]
fn envelope_layout_by_hand() {
    let mut signed = Envelope::seal_message(CLUSTER, &offline(), false).unwrap();
    signed.signature = Some(signature());
    let bytes = signed.encode();
    assert_eq!(bytes[0], 1, "version 1 as a one-byte varint");
    assert_eq!(bytes[1], 2, "MessageKind::Offline is variant 2");
    assert_eq!(&bytes[2..18], &CLUSTER.0, "cluster id, 16 raw bytes");
    assert_eq!(bytes[18], 0, "Compression::None is variant 0");
    assert_eq!(bytes[19], 1, "Some(signature)");
    assert_eq!(&bytes[20..84], &signature().0, "signature, 64 raw bytes");
    let body = encode_message(&offline()).unwrap();
    assert_eq!(bytes[84] as usize, body.len(), "body length varint");
    assert_eq!(&bytes[85..], &body[..], "body");
}

/// Decoding every strict prefix of every envelope fixture fails cleanly.
#[test]
fn truncated_envelope_fixtures_fail() {
    let mut signed = Envelope::seal_message(CLUSTER, &desired_state(), true).unwrap();
    signed.signature = Some(signature());
    let bytes = signed.encode();
    assert_eq!(Envelope::decode(&bytes[..0]), Err(WireError::Empty));
    for len in 1..bytes.len() {
        assert_eq!(
            Envelope::decode(&bytes[..len]),
            Err(WireError::Truncated { what: "envelope" }),
            "prefix of {len} bytes"
        );
    }
}
