use super::*;
use kelp_shared::wire::NodeEvent;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn ms(secs: i64) -> u64 {
    u64::try_from(t(secs).timestamp_millis()).unwrap()
}

fn pod(name: &str) -> ObjectRef {
    ObjectRef {
        kind: "Pod".into(),
        namespace: "prod".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
    }
}

fn ev(object: ObjectRef, reason: &str, count: u32, first: i64, last: i64) -> NodeEvent {
    NodeEvent {
        object,
        reason: reason.into(),
        message: format!("{reason} happened"),
        event_type: if reason == "BackOff" {
            EventType::Warning
        } else {
            EventType::Normal
        },
        count,
        first_unix_ms: ms(first),
        last_unix_ms: ms(last),
    }
}

fn boot(n: u8) -> BootId {
    BootId([n; 16])
}

fn batch(boot_id: BootId, seq: u64, events: Vec<NodeEvent>) -> EventBatch {
    EventBatch {
        boot_id,
        agent_start_unix_ms: 1,
        seq,
        events,
    }
}

fn only(store: &EventStore, now: DateTime<Utc>) -> Value {
    let (items, _) = store.list(None, now);
    assert_eq!(items.len(), 1, "{items:#?}");
    items.into_iter().next().unwrap()
}

#[test]
fn a_nodes_events_become_v1_events_from_kelp_agent() {
    let store = EventStore::default();
    let b = batch(
        boot(1),
        1,
        vec![
            ev(pod("web"), "Pulled", 1, 0, 0),
            ev(pod("web"), "BackOff", 3, 1, 5),
        ],
    );
    assert_eq!(store.record_batch("pi-1", &b, t(6)), Batch::Recorded);
    let (items, rev) = store.list(Some("prod"), t(6));
    assert_eq!(items.len(), 2);
    assert!(rev >= 2);
    let backoff = &items[1];
    assert_eq!(backoff["kind"], "Event");
    assert_eq!(backoff["apiVersion"], "v1");
    assert_eq!(backoff["metadata"]["namespace"], "prod");
    assert!(backoff["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("web."));
    assert_eq!(
        backoff["involvedObject"],
        json!({"apiVersion": "v1", "kind": "Pod", "namespace": "prod", "name": "web", "uid": "uid-web"})
    );
    assert_eq!(backoff["reason"], "BackOff");
    assert_eq!(backoff["message"], "BackOff happened");
    assert_eq!(backoff["type"], "Warning");
    assert_eq!(backoff["count"], 3);
    assert_eq!(backoff["firstTimestamp"], time(t(1)));
    assert_eq!(backoff["lastTimestamp"], time(t(5)));
    assert_eq!(
        backoff["source"],
        json!({"component": "kelp-agent", "host": "pi-1"})
    );
    assert_eq!(items[0]["type"], "Normal");
    assert!(store.list(Some("default"), t(6)).0.is_empty());
    // A Node's events go to the default namespace, as Kubernetes puts them.
    let node = ObjectRef {
        kind: "Node".into(),
        namespace: String::new(),
        name: "pi-1".into(),
        uid: String::new(),
    };
    store.record_batch(
        "pi-1",
        &batch(boot(1), 2, vec![ev(node, "ImageGCRemoved", 1, 7, 7)]),
        t(7),
    );
    let (items, _) = store.list(Some("default"), t(7));
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["involvedObject"],
        json!({"apiVersion": "v1", "kind": "Node", "name": "pi-1"})
    );
}

#[test]
fn re_sent_aggregates_add_only_their_increase() {
    let store = EventStore::default();
    store.record_batch(
        "pi-1",
        &batch(boot(1), 1, vec![ev(pod("web"), "BackOff", 2, 0, 1)]),
        t(1),
    );
    store.record_batch(
        "pi-1",
        &batch(boot(1), 2, vec![ev(pod("web"), "BackOff", 5, 0, 9)]),
        t(9),
    );
    let e = only(&store, t(9));
    assert_eq!(e["count"], 5);
    assert_eq!(e["firstTimestamp"], time(t(0)));
    assert_eq!(e["lastTimestamp"], time(t(9)));
    // The agent restarted: its new run counts from 1 again, and adds to the aggregate.
    store.record_batch(
        "pi-1",
        &batch(boot(2), 1, vec![ev(pod("web"), "BackOff", 1, 20, 20)]),
        t(20),
    );
    assert_eq!(only(&store, t(20))["count"], 6);
    // Within a run, a lower count is a restarted aggregate (the agent dropped it).
    store.record_batch(
        "pi-1",
        &batch(boot(2), 2, vec![ev(pod("web"), "BackOff", 4, 20, 21)]),
        t(21),
    );
    store.record_batch(
        "pi-1",
        &batch(boot(2), 3, vec![ev(pod("web"), "BackOff", 2, 22, 22)]),
        t(22),
    );
    assert_eq!(only(&store, t(22))["count"], 11);
}

#[test]
fn a_batch_delivered_twice_counts_once() {
    let store = EventStore::default();
    let b = batch(boot(1), 7, vec![ev(pod("web"), "Started", 1, 0, 0)]);
    assert_eq!(store.record_batch("pi-1", &b, t(1)), Batch::Recorded);
    assert_eq!(store.record_batch("pi-1", &b, t(2)), Batch::Duplicate);
    // A new aggregate in a redelivered batch is dropped too (it would double the count).
    let again = batch(boot(1), 7, vec![ev(pod("other"), "Started", 1, 0, 0)]);
    assert_eq!(store.record_batch("pi-1", &again, t(2)), Batch::Duplicate);
    assert_eq!(only(&store, t(2))["count"], 1);
    // The same sequence number from another node or another agent run is another batch.
    assert_eq!(
        store.record_batch(
            "pi-2",
            &batch(boot(1), 7, vec![ev(pod("web"), "Started", 1, 0, 0)]),
            t(3)
        ),
        Batch::Recorded
    );
    assert_eq!(
        store.record_batch(
            "pi-1",
            &batch(boot(2), 7, vec![ev(pod("web"), "Started", 1, 0, 0)]),
            t(3)
        ),
        Batch::Recorded
    );
    assert_eq!(only(&store, t(3))["count"], 3);
    // Out of order within the window is fine; far behind the window counts as seen.
    for seq in [9, 8] {
        assert_eq!(
            store.record_batch("pi-1", &batch(boot(1), seq, vec![]), t(4)),
            Batch::Recorded
        );
    }
    for seq in 10..10 + SEQ_WINDOW as u64 {
        assert_eq!(
            store.record_batch("pi-1", &batch(boot(1), seq, vec![]), t(4)),
            Batch::Recorded
        );
    }
    assert_eq!(
        store.record_batch("pi-1", &batch(boot(1), 1, vec![]), t(4)),
        Batch::Duplicate
    );
}

#[test]
fn events_expire_an_hour_after_their_last_change() {
    let store = EventStore::new(Duration::from_secs(600), 100);
    let hub = |message: &str| NewEvent {
        object: ObjectRef {
            kind: "Node".into(),
            namespace: String::new(),
            name: "pi-1".into(),
            uid: "n-uid".into(),
        },
        warning: true,
        reason: "DesiredStateTooLarge".into(),
        message: message.into(),
        source: Source {
            component: "kelp-hub".into(),
            host: String::new(),
        },
        count: 1,
        first: None,
        last: None,
    };
    store.record(hub("old"), t(0));
    store.record(hub("kept"), t(0));
    let object = store.record(hub("kept"), t(300));
    assert_eq!(object["count"], 2);
    assert_eq!(object["source"], json!({"component": "kelp-hub"}));
    assert_eq!(store.list(None, t(599)).0.len(), 2);
    let (items, _) = store.list(None, t(600));
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["message"], "kept");
    assert_eq!(items[0]["firstTimestamp"], time(t(0)));
    assert_eq!(items[0]["lastTimestamp"], time(t(300)));
    assert!(store.list(None, t(900)).0.is_empty());
    assert!(store.is_empty());
    // The dedup memory of an agent run goes with its events.
    let b = batch(boot(1), 1, vec![ev(pod("web"), "Started", 1, 0, 0)]);
    store.record_batch("pi-1", &b, t(1000));
    store.list(None, t(2000));
    assert!(store.lock().runs.is_empty());
}

#[test]
fn the_store_is_bounded_and_drops_the_least_recently_changed() {
    let store = EventStore::new(DEFAULT_TTL, 10);
    for i in 0..25 {
        let b = batch(
            boot(1),
            i + 1,
            vec![ev(pod(&format!("p{i}")), "Started", 1, 0, 0)],
        );
        store.record_batch("pi-1", &b, t(i as i64));
        assert!(store.len() <= 10, "{} events", store.len());
    }
    let (items, _) = store.list(None, t(30));
    let names: Vec<&str> = items
        .iter()
        .map(|e| e["involvedObject"]["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"p24"), "{names:?}");
    assert!(!names.contains(&"p0"), "{names:?}");
}

#[test]
fn get_and_delete_by_name() {
    let store = EventStore::default();
    store.record_batch(
        "pi-1",
        &batch(boot(1), 1, vec![ev(pod("web"), "Started", 1, 0, 0)]),
        t(1),
    );
    let e = only(&store, t(1));
    let name = e["metadata"]["name"].as_str().unwrap();
    assert_eq!(store.get("prod", name, t(1)), Some(e.clone()));
    assert_eq!(store.get("default", name, t(1)), None);
    assert!(store.delete("prod", name).is_some());
    assert!(store.is_empty());
    assert!(store.delete("prod", name).is_none());
}
