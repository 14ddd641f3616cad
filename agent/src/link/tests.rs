use std::time::Duration;

use kelp_shared::wire::sign::{sign, SigningKey};
use kelp_shared::wire::{BootId, ClusterId, DesiredState, Envelope, Generation, Topics};

use super::{open_desired, LinkConfig};

fn key() -> SigningKey {
    SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
}

fn config(key: &SigningKey, cluster: ClusterId) -> LinkConfig {
    LinkConfig {
        host: "127.0.0.1".into(),
        port: 1883,
        username: "n1".into(),
        password: "p".into(),
        node: "n1".into(),
        cluster,
        controller_key: key.public_key(),
        topics: Topics::new("kelp/v1").unwrap(),
        keepalive: Duration::from_secs(60),
        reconnect_min: Duration::from_secs(1),
        reconnect_max: Duration::from_secs(60),
        claim_window: Duration::from_secs(2),
        tls: None,
    }
}

fn desired(cluster: ClusterId, node: &str, revision: u64) -> DesiredState {
    DesiredState {
        generation: Generation {
            cluster_id: cluster,
            revision,
        },
        node: node.into(),
        objects_json: vec![br#"{"kind":"Pod"}"#.to_vec()],
    }
}

fn sealed(state: &DesiredState, cluster: ClusterId, by: Option<&SigningKey>) -> Vec<u8> {
    let mut envelope = Envelope::seal_message(cluster, state, true).unwrap();
    if let Some(k) = by {
        sign(&mut envelope, k);
    }
    envelope.encode()
}

#[test]
fn a_signed_desired_state_for_this_node_and_cluster_opens() {
    let k = key();
    let cluster = ClusterId([1; 16]);
    let state = desired(cluster, "n1", 7);
    let opened = open_desired(&sealed(&state, cluster, Some(&k)), &config(&k, cluster)).unwrap();
    assert_eq!(opened, Some(state));
}

#[test]
fn empty_retained_payloads_are_ignored() {
    let k = key();
    assert_eq!(open_desired(&[], &config(&k, ClusterId([1; 16]))), Ok(None));
}

#[test]
fn unsigned_foreign_and_misaddressed_states_are_dropped_with_a_reason() {
    let k = key();
    let other = key();
    let cluster = ClusterId([1; 16]);
    let foreign = ClusterId([2; 16]);
    let c = config(&k, cluster);
    let cases = [
        (
            sealed(&desired(cluster, "n1", 1), cluster, None),
            "not signed",
        ),
        (
            sealed(&desired(cluster, "n1", 1), cluster, Some(&other)),
            "bad signature",
        ),
        (
            sealed(&desired(foreign, "n1", 1), foreign, Some(&k)),
            "for cluster",
        ),
        (
            sealed(&desired(cluster, "n2", 1), cluster, Some(&k)),
            "addressed to node \"n2\"",
        ),
        (
            sealed(&desired(foreign, "n1", 1), cluster, Some(&k)),
            "generation is of another cluster",
        ),
        (b"garbage".to_vec(), ""),
    ];
    for (payload, says) in cases {
        let why = open_desired(&payload, &c).unwrap_err();
        assert!(why.contains(says), "{why:?} should say {says:?}");
    }
}

#[test]
fn one_agent_per_node_name() {
    use super::{claim, Claim};
    let own = (1_000, BootId([5; 16]));
    let run = |start: u64, id: u8| {
        let mut b = birth_for_claim();
        b.agent_start_unix_ms = start;
        b.boot_id = BootId([id; 16]);
        b
    };
    // Our own birth coming back proves nothing.
    assert_eq!(claim(own, &run(1_000, 5), false), Claim::Nothing);
    assert_eq!(claim(own, &run(1_000, 5), true), Claim::Nothing);
    // A newer run appeared (live or retained): we say we are alive.
    assert_eq!(claim(own, &run(2_000, 1), false), Claim::Assert);
    assert_eq!(claim(own, &run(2_000, 1), true), Claim::Assert);
    // Same start time: the boot id breaks the tie, the same way on both sides.
    assert_eq!(claim(own, &run(1_000, 9), false), Claim::Assert);
    assert_eq!(
        claim((1_000, BootId([9; 16])), &run(1_000, 5), false),
        Claim::Refuse
    );
    // An older run: a retained birth may be left by a run that is gone; a live one is not.
    assert_eq!(claim(own, &run(500, 7), true), Claim::Nothing);
    assert_eq!(claim(own, &run(500, 7), false), Claim::Refuse);
}

fn birth_for_claim() -> kelp_shared::wire::Birth {
    kelp_shared::wire::Birth {
        node: "pi".into(),
        boot_id: BootId([0; 16]),
        agent_start_unix_ms: 0,
        seq: 1,
        agent_version: "0".into(),
        wire_versions: vec![1],
        os: "linux".into(),
        arch: "arm64".into(),
        kernel: "6.6".into(),
        capacity: kelp_shared::wire::Resources {
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
            pods: 110,
        },
        cgroup_version: 2,
        addresses: vec![],
        labels: vec![],
    }
}

mod requests {
    use kelp_shared::wire::{Request, RequestBody};

    use super::super::request::{open_request, Seen};
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn logs(node: &str, deadline_unix_ms: u64) -> Request {
        Request {
            id: 42,
            deadline_unix_ms,
            node: node.into(),
            body: RequestBody::Logs {
                namespace: "default".into(),
                pod: "web".into(),
                container: "c".into(),
                tail_lines: None,
                follow: false,
                previous: false,
            },
        }
    }

    fn sealed(request: &Request, cluster: ClusterId, by: Option<&SigningKey>) -> Vec<u8> {
        let mut envelope = Envelope::seal_message(cluster, request, false).unwrap();
        if let Some(k) = by {
            sign(&mut envelope, k);
        }
        envelope.encode()
    }

    #[test]
    fn a_signed_request_for_this_node_before_its_deadline_opens() {
        let k = key();
        let cluster = ClusterId([1; 16]);
        let request = logs("n1", NOW + 1000);
        let payload = sealed(&request, cluster, Some(&k));
        assert_eq!(
            open_request(&payload, &config(&k, cluster), NOW),
            Ok(request)
        );
    }

    #[test]
    fn wrong_key_node_cluster_or_a_passed_deadline_drop_the_request_with_a_reason() {
        let k = key();
        let other = key();
        let cluster = ClusterId([1; 16]);
        let foreign = ClusterId([2; 16]);
        let c = config(&k, cluster);
        let cases = [
            (sealed(&logs("n1", NOW + 1000), cluster, None), "not signed"),
            (
                sealed(&logs("n1", NOW + 1000), cluster, Some(&other)),
                "bad signature",
            ),
            (
                sealed(&logs("n1", NOW + 1000), foreign, Some(&k)),
                "for cluster",
            ),
            (
                sealed(&logs("n2", NOW + 1000), cluster, Some(&k)),
                "addressed to node \"n2\"",
            ),
            (
                sealed(&logs("n1", NOW - 5), cluster, Some(&k)),
                "expired 5 ms ago",
            ),
            (
                sealed(&logs("n1", NOW), cluster, Some(&k)),
                "expired 0 ms ago",
            ),
            (
                super::sealed(&desired(cluster, "n1", 1), cluster, Some(&k)),
                "expected",
            ),
        ];
        for (payload, says) in cases {
            let why = open_request(&payload, &c, NOW).unwrap_err();
            assert!(why.contains(says), "{why:?} should say {says:?}");
        }
    }

    #[test]
    fn a_duplicate_request_is_taken_once_until_its_deadline_passes() {
        let mut seen = Seen::default();
        assert!(seen.first_time(1, NOW + 100, NOW));
        assert!(!seen.first_time(1, NOW + 100, NOW + 50), "QoS 1 duplicate");
        assert!(seen.first_time(2, NOW + 100, NOW + 50));
        // Past the deadline the id is forgotten (the request itself is refused as expired
        // before it gets here).
        assert!(seen.first_time(1, NOW + 300, NOW + 200));
    }
}
