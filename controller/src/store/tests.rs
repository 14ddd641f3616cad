//! Store tests, on real redb: its in-memory backend, temporary files, and a disk that loses
//! power ([`super::test_storage`]).

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::test_storage::Disk;
use super::*;

fn pod(namespace: &str, name: &str, v: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"v": v},
    })
}

fn pod_key(namespace: &str, name: &str) -> Key {
    Key::new("Pod", namespace, name)
}

fn resource_version(stored: &Stored) -> &str {
    stored.object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
}

fn spec_v(stored: &Stored) -> u64 {
    stored.object["spec"]["v"].as_u64().unwrap_or(u64::MAX)
}

fn memory_store() -> Store {
    Store::open_in_memory(StoreOptions::default()).expect("open in-memory store")
}

async fn next_event(watch: &mut Watch) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("a watch event within 5 s")
        .expect("the watch goes on")
}

#[tokio::test]
async fn create_get_list_update_delete() {
    let store = memory_store();
    assert_eq!(store.revision(), 0);

    let a = store
        .create(
            pod_key("default", "a"),
            pod("default", "a", 1),
            Durability::Durable,
        )
        .await
        .unwrap();
    assert_eq!(a.revision, 1);
    assert_eq!(resource_version(&a), "1");
    assert_eq!(store.get(&pod_key("default", "a")), Some(a.clone()));

    store
        .create(
            pod_key("kube-system", "c"),
            pod("kube-system", "c", 1),
            Durability::Durable,
        )
        .await
        .unwrap();
    store
        .create(
            pod_key("default", "b"),
            pod("default", "b", 1),
            Durability::Durable,
        )
        .await
        .unwrap();
    store
        .create(
            Key::new("Node", "", "n1"),
            json!({"metadata": {"name": "n1"}}),
            Durability::Durable,
        )
        .await
        .unwrap();

    let (pods, revision) = store.list("Pod", None);
    assert_eq!(revision, 4);
    let names: Vec<_> = pods
        .iter()
        .map(|s| format!("{}/{}", s.key.namespace, s.key.name))
        .collect();
    assert_eq!(names, ["default/a", "default/b", "kube-system/c"]);
    let (in_default, _) = store.list("Pod", Some("default"));
    assert_eq!(in_default.len(), 2);
    let (nodes, _) = store.list("Node", None);
    assert_eq!(nodes.len(), 1);
    assert!(store.list("Service", None).0.is_empty());

    let updated = store
        .update(
            pod_key("default", "a"),
            pod("default", "a", 2),
            Some(1),
            Durability::Durable,
        )
        .await
        .unwrap();
    assert_eq!(updated.revision, 5);
    assert_eq!(resource_version(&updated), "5");
    assert_eq!(spec_v(&store.get(&pod_key("default", "a")).unwrap()), 2);

    let deleted = store
        .delete(pod_key("default", "a"), Some(5), Durability::Durable)
        .await
        .unwrap();
    assert_eq!(deleted.revision, 6);
    assert_eq!(resource_version(&deleted), "6");
    assert_eq!(spec_v(&deleted), 2, "a deletion gives the last state");
    assert_eq!(store.get(&pod_key("default", "a")), None);
    assert_eq!(store.revision(), 6);
    store.close().await.unwrap();
}

#[tokio::test]
async fn conflict_already_exists_not_found() {
    let store = memory_store();
    let key = pod_key("default", "a");
    store
        .create(key.clone(), pod("default", "a", 1), Durability::Durable)
        .await
        .unwrap();
    let err = store
        .create(key.clone(), pod("default", "a", 1), Durability::Durable)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists(ref k) if *k == key),
        "{err}"
    );

    store
        .update(
            key.clone(),
            pod("default", "a", 2),
            Some(1),
            Durability::Durable,
        )
        .await
        .unwrap();
    let err = store
        .update(
            key.clone(),
            pod("default", "a", 3),
            Some(1),
            Durability::Durable,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = store
        .delete(key.clone(), Some(1), Durability::Durable)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(
        spec_v(&store.get(&key).unwrap()),
        2,
        "a conflict changes nothing"
    );
    assert_eq!(store.revision(), 2, "a failed write takes no revision");

    // No expected revision: unconditional.
    store
        .update(
            key.clone(),
            pod("default", "a", 4),
            None,
            Durability::Durable,
        )
        .await
        .unwrap();

    let missing = pod_key("default", "missing");
    let err = store
        .update(
            missing.clone(),
            pod("default", "missing", 1),
            None,
            Durability::Durable,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref k) if *k == missing),
        "{err}"
    );
    let err = store
        .delete(missing.clone(), None, Durability::Durable)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn revisions_are_shared_across_kinds_and_bumped_by_deletions() {
    let store = memory_store();
    let mut seen = Vec::new();
    for (i, kind) in ["Pod", "Service", "ConfigMap", "Pod"].iter().enumerate() {
        let name = format!("x{i}");
        let stored = store
            .create(
                Key::new(kind, "default", &name),
                json!({"metadata": {"name": name}}),
                Durability::Durable,
            )
            .await
            .unwrap();
        seen.push(stored.revision);
    }
    let deleted = store
        .delete(
            Key::new("Service", "default", "x1"),
            None,
            Durability::Durable,
        )
        .await
        .unwrap();
    seen.push(deleted.revision);
    let again = store
        .create(
            Key::new("Service", "default", "x1"),
            json!({}),
            Durability::Durable,
        )
        .await
        .unwrap();
    seen.push(again.revision);
    assert_eq!(seen, [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        resource_version(&again),
        "6",
        "metadata is added when missing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_commits_between_concurrent_writes() {
    let store = memory_store();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("p{i}");
            store
                .create(
                    pod_key("default", &name),
                    pod("default", &name, 0),
                    Durability::Durable,
                )
                .await
        }));
    }
    let mut revisions = Vec::new();
    for task in tasks {
        revisions.push(
            task.await
                .unwrap()
                .expect("every create is acknowledged")
                .revision,
        );
    }
    revisions.sort_unstable();
    assert_eq!(revisions, (1..=200).collect::<Vec<_>>());
    let stats = store.stats();
    assert_eq!(stats.ops, 200);
    assert!(
        stats.commits <= 40,
        "200 concurrent creates took {} commits",
        stats.commits
    );
    assert_eq!(stats.durable_commits, stats.commits);
    assert_eq!(store.list("Pod", None).0.len(), 200);
}

/// A store whose window is long enough that writes issued together share one batch.
fn batching_store() -> Store {
    Store::open_in_memory(StoreOptions {
        group_commit_window: Duration::from_millis(300),
        ..StoreOptions::default()
    })
    .unwrap()
}

#[tokio::test]
async fn one_batch_sees_its_own_earlier_writes() {
    let store = batching_store();
    let a = pod_key("default", "a");
    let b = pod_key("default", "b");
    // join! polls in order, so the requests reach the writer in this order, in one batch.
    let (create, update, duplicate, stale, other, delete, recreate) = tokio::join!(
        store.create(a.clone(), pod("default", "a", 1), Durability::Durable),
        store.update(
            a.clone(),
            pod("default", "a", 2),
            Some(1),
            Durability::Durable
        ),
        store.create(a.clone(), pod("default", "a", 9), Durability::Durable),
        store.update(
            a.clone(),
            pod("default", "a", 9),
            Some(1),
            Durability::Durable
        ),
        store.create(b.clone(), pod("default", "b", 1), Durability::Durable),
        store.delete(b.clone(), Some(3), Durability::Durable),
        store.create(b.clone(), pod("default", "b", 2), Durability::Durable),
    );
    assert_eq!(store.stats().commits, 1, "all in one batch");
    assert_eq!(create.unwrap().revision, 1);
    assert_eq!(update.unwrap().revision, 2);
    assert!(matches!(duplicate, Err(StoreError::AlreadyExists(_))));
    assert!(matches!(
        stale,
        Err(StoreError::Conflict {
            expected: 1,
            actual: 2,
            ..
        })
    ));
    assert_eq!(other.unwrap().revision, 3);
    let delete = delete.unwrap();
    assert_eq!((delete.revision, spec_v(&delete)), (4, 1));
    assert_eq!(recreate.unwrap().revision, 5);
    assert_eq!(store.revision(), 5);
    assert_eq!(spec_v(&store.get(&a).unwrap()), 2);
    assert_eq!(store.get(&b).unwrap().revision, 5);
}

#[tokio::test]
async fn watch_replays_from_a_revision_then_follows_live() {
    let store = memory_store();
    for i in 0..5 {
        let name = format!("p{i}");
        store
            .create(
                pod_key("default", &name),
                pod("default", &name, 0),
                Durability::Durable,
            )
            .await
            .unwrap();
    }
    store
        .update(
            pod_key("default", "p0"),
            pod("default", "p0", 1),
            Some(1),
            Durability::Durable,
        )
        .await
        .unwrap();
    store
        .delete(pod_key("default", "p1"), None, Durability::Durable)
        .await
        .unwrap();

    let mut watch = store.watch(Some("Pod"), 3).unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        let event = next_event(&mut watch).await;
        got.push((
            event.event_type,
            event.object.key.name.clone(),
            event.object.revision,
        ));
    }
    assert_eq!(
        got,
        [
            (EventType::Added, "p3".to_string(), 4),
            (EventType::Added, "p4".to_string(), 5),
            (EventType::Modified, "p0".to_string(), 6),
            (EventType::Deleted, "p1".to_string(), 7),
        ]
    );

    // Then live changes, without repeats.
    let waiter = tokio::spawn(async move {
        let event = next_event(&mut watch).await;
        (event, watch)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    store
        .create(
            pod_key("default", "live"),
            pod("default", "live", 0),
            Durability::Durable,
        )
        .await
        .unwrap();
    let (event, mut watch) = waiter.await.unwrap();
    assert_eq!(
        (event.event_type, event.object.revision),
        (EventType::Added, 8)
    );
    assert_eq!(resource_version(&event.object), "8");

    // Other kinds are filtered out.
    store
        .create(Key::new("Node", "", "n"), json!({}), Durability::Durable)
        .await
        .unwrap();
    store
        .create(
            pod_key("default", "live2"),
            pod("default", "live2", 0),
            Durability::Durable,
        )
        .await
        .unwrap();
    assert_eq!(next_event(&mut watch).await.object.revision, 10);
}

#[tokio::test]
async fn watch_by_namespace_and_of_every_kind() {
    let store = memory_store();
    let mut in_prod = store.watch_in(Some("Pod"), Some("prod"), 0).unwrap();
    let mut everything = store.watch(None, 0).unwrap();
    store
        .create(pod_key("dev", "a"), pod("dev", "a", 0), Durability::Durable)
        .await
        .unwrap();
    store
        .create(
            pod_key("prod", "b"),
            pod("prod", "b", 0),
            Durability::Durable,
        )
        .await
        .unwrap();
    store
        .create(
            Key::new("ConfigMap", "prod", "c"),
            json!({}),
            Durability::Durable,
        )
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut in_prod).await.object.key,
        pod_key("prod", "b")
    );
    let revisions: Vec<_> = [
        next_event(&mut everything).await,
        next_event(&mut everything).await,
        next_event(&mut everything).await,
    ]
    .iter()
    .map(|e| e.object.revision)
    .collect();
    assert_eq!(revisions, [1, 2, 3]);
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_gone() {
    let store = Store::open_in_memory(StoreOptions {
        log_capacity: 5,
        ..StoreOptions::default()
    })
    .unwrap();
    for i in 0..10 {
        let name = format!("p{i}");
        store
            .create(
                pod_key("default", &name),
                pod("default", &name, 0),
                Durability::Durable,
            )
            .await
            .unwrap();
    }
    let err = store.watch(Some("Pod"), 4).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Compacted {
                requested: 4,
                oldest: 5
            }
        ),
        "{err}"
    );
    let mut watch = store.watch(Some("Pod"), 5).unwrap();
    assert_eq!(next_event(&mut watch).await.object.revision, 6);
    // From the current revision, and from the future: nothing old.
    assert!(store.watch(Some("Pod"), 10).is_ok());
    assert!(store.watch(Some("Pod"), 11).is_ok());
}

#[tokio::test]
async fn a_watcher_left_behind_by_the_log_ends() {
    let store = Store::open_in_memory(StoreOptions {
        log_capacity: 4,
        ..StoreOptions::default()
    })
    .unwrap();
    let mut watch = store.watch(None, 0).unwrap();
    for i in 0..10 {
        let name = format!("p{i}");
        store
            .create(
                pod_key("default", &name),
                pod("default", &name, 0),
                Durability::Durable,
            )
            .await
            .unwrap();
    }
    assert_eq!(watch.next().await, None, "list again");
    assert_eq!(watch.next().await, None);
}

#[tokio::test]
async fn reopen_restores_objects_and_revision_and_old_watches_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kelp.redb");
    {
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        for i in 0..4 {
            let name = format!("p{i}");
            store
                .create(
                    pod_key("default", &name),
                    pod("default", &name, i),
                    Durability::Durable,
                )
                .await
                .unwrap();
        }
        store
            .update(
                pod_key("default", "p0"),
                pod("default", "p0", 10),
                Some(1),
                Durability::Durable,
            )
            .await
            .unwrap();
        store
            .update(
                pod_key("default", "p2"),
                pod("default", "p2", 20),
                None,
                Durability::Relaxed,
            )
            .await
            .unwrap();
        // The deletion is the last change: the revision must survive it.
        store
            .delete(pod_key("default", "p3"), None, Durability::Durable)
            .await
            .unwrap();
        assert_eq!(store.revision(), 7);
        store.close().await.unwrap();
        let err = store
            .create(pod_key("default", "late"), json!({}), Durability::Durable)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Closed), "{err}");
        assert!(matches!(store.watch(None, 7), Err(StoreError::Closed)));
        store.close().await.expect("closing twice is fine");
    }

    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.revision(), 7);
    let (pods, revision) = store.list("Pod", None);
    assert_eq!(revision, 7);
    let found: Vec<_> = pods
        .iter()
        .map(|s| {
            (
                s.key.name.clone(),
                s.revision,
                spec_v(s),
                resource_version(s).to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("p0".to_string(), 5, 10, "5".to_string()),
            ("p1".to_string(), 2, 1, "2".to_string()),
            ("p2".to_string(), 6, 20, "6".to_string()),
        ]
    );
    let err = store.watch(Some("Pod"), 6).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Compacted {
                requested: 6,
                oldest: 7
            }
        ),
        "{err}"
    );
    let mut watch = store.watch(Some("Pod"), 7).unwrap();
    let next = store
        .create(
            pod_key("default", "p9"),
            pod("default", "p9", 0),
            Durability::Durable,
        )
        .await
        .unwrap();
    assert_eq!(next.revision, 8);
    assert_eq!(next_event(&mut watch).await.object, next);
    store.close().await.unwrap();
    assert_eq!(
        watch.next().await,
        None,
        "a watch ends when the store closes"
    );
}

#[tokio::test]
async fn relaxed_writes_are_visible_at_once_without_fsync() {
    let disk = Disk::new();
    let store = Store::open_with_backend(disk.storage(), StoreOptions::default()).unwrap();
    let key = Key::new("Node", "", "n1");
    store
        .create(
            key.clone(),
            json!({"status": {"seq": 0}}),
            Durability::Durable,
        )
        .await
        .unwrap();
    let syncs = disk.syncs();
    for seq in 1..=50 {
        let stored = store
            .update(
                key.clone(),
                json!({"status": {"seq": seq}}),
                None,
                Durability::Relaxed,
            )
            .await
            .unwrap();
        assert_eq!(store.get(&key), Some(stored));
    }
    assert_eq!(disk.syncs(), syncs, "relaxed writes are not fsynced");
    let stats = store.stats();
    assert_eq!((stats.commits - stats.durable_commits, stats.ops), (50, 51));

    // The next durable write makes them durable too.
    store
        .create(Key::new("Node", "", "n2"), json!({}), Durability::Durable)
        .await
        .unwrap();
    assert!(disk.syncs() > syncs);
}

#[tokio::test]
async fn relaxed_writes_become_durable_after_the_flush_interval_or_on_close() {
    let disk = Disk::new();
    let options = StoreOptions {
        relaxed_flush_interval: Some(Duration::from_millis(50)),
        ..StoreOptions::default()
    };
    let store = Store::open_with_backend(disk.storage(), options).unwrap();
    let key = Key::new("Node", "", "n1");
    store
        .create(
            key.clone(),
            json!({"status": {"seq": 0}}),
            Durability::Relaxed,
        )
        .await
        .unwrap();
    let syncs = disk.syncs();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(disk.syncs() > syncs, "flushed by the interval");
    assert_eq!(store.stats().durable_commits, 1);

    // Close makes the rest durable: the durable image alone holds it.
    store
        .update(
            key.clone(),
            json!({"status": {"seq": 1}}),
            None,
            Durability::Relaxed,
        )
        .await
        .unwrap();
    store.close().await.unwrap();
    let image = disk.image_after_cut(&mut StdRng::seed_from_u64(0), false);
    let reopened =
        Store::open_with_backend(Disk::from_image(image).storage(), StoreOptions::default())
            .unwrap();
    assert_eq!(reopened.get(&key).unwrap().object["status"]["seq"], 1);
}

#[tokio::test]
async fn relaxed_writes_cannot_run_far_ahead_of_a_durable_commit() {
    let disk = Disk::new();
    let options = StoreOptions {
        relaxed_flush_revisions: 10,
        ..StoreOptions::default()
    };
    let store = Store::open_with_backend(disk.storage(), options).unwrap();
    let key = Key::new("Node", "", "n1");
    store
        .create(key.clone(), json!({}), Durability::Relaxed)
        .await
        .unwrap();
    for seq in 2..=25 {
        store
            .update(
                key.clone(),
                json!({"status": {"seq": seq}}),
                None,
                Durability::Relaxed,
            )
            .await
            .unwrap();
    }
    // Revisions 10 and 20 were committed durably.
    assert_eq!(store.stats().durable_commits, 2);
}

#[tokio::test]
async fn after_an_unclean_shutdown_the_revision_skips_past_lost_relaxed_writes() {
    let disk = Disk::new();
    let options = StoreOptions {
        relaxed_flush_revisions: 100,
        ..StoreOptions::default()
    };
    let store = Store::open_with_backend(disk.storage(), options.clone()).unwrap();
    let durable = store
        .create(
            Key::new("Pod", "default", "api"),
            json!({}),
            Durability::Durable,
        )
        .await
        .unwrap();
    let mut seen = 0;
    for seq in 0..5 {
        let stored = store
            .create(
                Key::new("Node", "", &format!("n{seq}")),
                json!({}),
                Durability::Relaxed,
            )
            .await
            .unwrap();
        seen = stored.revision;
    }
    assert_eq!(seen, 6);
    // The process dies without closing: only what was synced is on the disk.
    let image = disk.image_after_cut(&mut StdRng::seed_from_u64(1), false);
    drop(store);
    let reopened =
        Store::open_with_backend(Disk::from_image(image.clone()).storage(), options.clone())
            .unwrap();
    assert_eq!(reopened.get(&durable.key), Some(durable.clone()));
    assert!(
        reopened.list("Node", None).0.is_empty(),
        "relaxed writes lost"
    );
    assert_eq!(reopened.revision(), durable.revision + 100);
    let next = reopened
        .create(Key::new("Node", "", "n0"), json!({}), Durability::Durable)
        .await
        .unwrap();
    assert!(
        next.revision > seen,
        "revision {} was seen before",
        next.revision
    );
    reopened.close().await.unwrap();

    // A clean close reopens at the exact revision.
    let disk = Disk::from_image(image);
    let store = Store::open_with_backend(disk.storage(), options.clone()).unwrap();
    let revision = store.revision();
    store.close().await.unwrap();
    let image = disk.image_after_cut(&mut StdRng::seed_from_u64(1), false);
    let reopened = Store::open_with_backend(Disk::from_image(image).storage(), options).unwrap();
    assert_eq!(reopened.revision(), revision);
}

#[tokio::test]
async fn a_failed_commit_fails_its_batch_and_changes_nothing() {
    let disk = Disk::new();
    let store = Store::open_with_backend(disk.storage(), StoreOptions::default()).unwrap();
    let kept = store
        .create(
            pod_key("default", "kept"),
            pod("default", "kept", 0),
            Durability::Durable,
        )
        .await
        .unwrap();
    let mut watch = store.watch(None, kept.revision).unwrap();
    disk.arm_cut(1);
    let results = futures_util::future::join_all((0..5).map(|i| {
        let name = format!("p{i}");
        store.create(
            pod_key("default", &name),
            pod("default", &name, 0),
            Durability::Durable,
        )
    }))
    .await;
    for result in results {
        assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    }
    assert_eq!(store.revision(), kept.revision);
    assert_eq!(store.list("Pod", None).0, vec![kept.clone()]);
    assert_eq!(store.get(&pod_key("default", "p0")), None);
    let nothing = tokio::time::timeout(Duration::from_millis(50), watch.next()).await;
    assert!(nothing.is_err(), "no event for a failed commit");
    // redb refuses further writes after an I/O error; the store says so, it does not hang.
    let later = store
        .create(pod_key("default", "later"), json!({}), Durability::Durable)
        .await;
    assert!(matches!(later, Err(StoreError::Backend(_))), "{later:?}");
}

#[test]
fn open_outside_a_runtime_is_an_error() {
    let err = Store::open_in_memory(StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
}

/// One write a power-cut client attempted.
#[derive(Clone, Debug)]
struct Attempt {
    v: u64,
    durable: bool,
    /// The revision it was acknowledged with; `None` if it failed.
    acked: Option<Revision>,
}

/// Runs clients that create and update their own keys until the power goes, then returns
/// every attempt per key, in order.
async fn power_cut_workload(store: &Store, seed: u64) -> HashMap<Key, Vec<Attempt>> {
    let mut tasks = Vec::new();
    for client in 0..4u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed * 31 + client);
            let mut history: HashMap<Key, Vec<Attempt>> = HashMap::new();
            let keys: Vec<Key> = (0..5)
                .map(|i| pod_key("default", &format!("c{client}-k{i}")))
                .collect();
            for step in 0..25u64 {
                let key = &keys[rng.random_range(0..keys.len())];
                // Phases of relaxed writes (status) between durable ones (API writes),
                // shared by the clients so that some batches are relaxed only.
                let durable = !(step / 4 + seed).is_multiple_of(3) || rng.random_bool(0.1);
                let durability = if durable {
                    Durability::Durable
                } else {
                    Durability::Relaxed
                };
                let attempts = history.entry(key.clone()).or_default();
                let v = step + 1;
                let exists = attempts.iter().any(|a| a.acked.is_some());
                let object = pod(&key.namespace, &key.name, v);
                let result = if exists {
                    store.update(key.clone(), object, None, durability).await
                } else {
                    store.create(key.clone(), object, durability).await
                };
                let acked = result.as_ref().ok().map(|s| s.revision);
                attempts.push(Attempt { v, durable, acked });
                if result.is_err() {
                    break;
                }
            }
            history
        }));
    }
    let mut all = HashMap::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// Checks the reopened store against what was acknowledged before the cut.
fn check_after_cut(seed: u64, reopened: &Store, history: &HashMap<Key, Vec<Attempt>>) {
    // Every acknowledged durable write, and every write committed before one, must survive.
    let durable_floor = history
        .values()
        .flatten()
        .filter(|a| a.durable)
        .filter_map(|a| a.acked)
        .max()
        .unwrap_or(0);
    // No revision anyone saw is given out again, lost relaxed writes' included.
    let newest_ack = history
        .values()
        .flatten()
        .filter_map(|a| a.acked)
        .max()
        .unwrap_or(0);
    assert!(
        reopened.revision() >= newest_ack.max(durable_floor),
        "seed {seed}: revision {} < last ack {newest_ack}",
        reopened.revision()
    );
    for (key, attempts) in history {
        let must_have = attempts
            .iter()
            .rposition(|a| a.acked.is_some_and(|rev| a.durable || rev <= durable_floor));
        let found = reopened.get(key);
        match (&found, must_have) {
            (None, None) => {}
            (None, Some(i)) => panic!("seed {seed}: {key} lost; acknowledged {:?}", attempts[i]),
            (Some(stored), _) => {
                let v = spec_v(stored);
                let position = attempts.iter().position(|a| a.v == v).unwrap_or_else(|| {
                    panic!("seed {seed}: {key} holds v={v}, never written: {attempts:?}")
                });
                if let Some(i) = must_have {
                    assert!(
                        position >= i,
                        "seed {seed}: {key} went back to v={v}; acknowledged {:?}",
                        attempts[i]
                    );
                }
                if let Some(rev) = attempts[position].acked {
                    assert_eq!(stored.revision, rev, "seed {seed}: {key}");
                }
                assert_eq!(
                    resource_version(stored),
                    stored.revision.to_string(),
                    "seed {seed}: {key}"
                );
                assert!(stored.revision <= reopened.revision(), "seed {seed}: {key}");
            }
        }
    }
}

async fn power_cut_run(seed: u64, calls_per_run: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let disk = Disk::new();
    let options = StoreOptions {
        group_commit_window: Duration::ZERO,
        ..StoreOptions::default()
    };
    let store = Store::open_with_backend(disk.storage(), options.clone()).unwrap();
    // Some cut points fall after the workload: then the power goes at the end.
    disk.arm_cut(rng.random_range(1..=calls_per_run + calls_per_run / 10));
    let history = power_cut_workload(&store, seed).await;
    disk.cut_now();
    let _ = store.close().await;
    drop(store);

    let tear = seed.is_multiple_of(2);
    let image = disk.image_after_cut(&mut rng, tear);
    let reopened = Store::open_with_backend(Disk::from_image(image).storage(), options)
        .unwrap_or_else(|e| panic!("seed {seed}: reopen after the cut: {e}"));
    check_after_cut(seed, &reopened, &history);
    // The store works on after the cut.
    let after = reopened
        .create(
            pod_key("default", "after-cut"),
            json!({}),
            Durability::Durable,
        )
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: write after the cut: {e}"));
    assert_eq!(after.revision, reopened.revision());
    reopened.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cut_keeps_every_acknowledged_write() {
    // How many disk calls a whole run makes, to spread the cut points over it.
    let disk = Disk::new();
    let store = Store::open_with_backend(
        disk.storage(),
        StoreOptions {
            group_commit_window: Duration::ZERO,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    disk.arm_cut(u64::MAX);
    let history = power_cut_workload(&store, 0).await;
    assert!(history.values().flatten().all(|a| a.acked.is_some()));
    let calls_per_run = disk.calls().max(10);
    store.close().await.unwrap();
    assert!(!disk.is_off());

    // KELP_POWER_CUT_SEEDS=10000 for a longer soak.
    let seeds = std::env::var("KELP_POWER_CUT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100u64);
    for seed in 0..seeds {
        power_cut_run(seed, calls_per_run).await;
    }
}
