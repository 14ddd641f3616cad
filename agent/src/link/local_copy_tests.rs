use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use kelp_shared::wire::sign::{sign, SigningKey};
use kelp_shared::wire::{ClusterId, DesiredState, Envelope, Generation, Topics};

use super::*;

const VALUE: &str = "hunter2-very-secret";

fn key() -> SigningKey {
    SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
}

fn config(key: &SigningKey) -> LinkConfig {
    LinkConfig {
        host: "127.0.0.1".into(),
        port: 1883,
        username: "n1".into(),
        password: "p".into(),
        node: "n1".into(),
        cluster: ClusterId([1; 16]),
        controller_key: key.public_key(),
        topics: Topics::new("kelp/v1").unwrap(),
        keepalive: Duration::from_secs(60),
        reconnect_min: Duration::from_secs(1),
        reconnect_max: Duration::from_secs(60),
        claim_window: Duration::from_secs(2),
        tls: None,
    }
}

fn json(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

fn secret(name: &str, value: &str) -> Vec<u8> {
    json(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "stringData": {"key": value},
    }))
}

/// A pod using Secret `volume` as a volume and `env` through env.valueFrom.
fn pod(volume: &str, env: &str) -> Vec<u8> {
    json(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox", "env": [
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": env, "key": "key"}}}
            ]}],
            "volumes": [{"name": "v", "secret": {"secretName": volume}}]
        }
    }))
}

fn state(revision: u64, objects: Vec<Vec<u8>>) -> DesiredState {
    DesiredState {
        generation: Generation {
            cluster_id: ClusterId([1; 16]),
            revision,
        },
        node: "n1".into(),
        objects_json: objects,
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn files(dir: &SecretDir) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn split_keeps_secret_data_out_of_the_copy_and_merge_restores_the_state() {
    let k = key();
    let cm = json(serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "cm"}}));
    let full = state(
        3,
        vec![
            cm.clone(),
            secret("a", VALUE),
            pod("a", "b"),
            secret("b", "other"),
        ],
    );
    let (copy, secrets) = split(&full, &k.public_key());
    assert_eq!(secrets.len(), 2);
    assert_eq!(copy.objects[0], LocalObject::Json(cm));
    assert!(matches!(
        &copy.objects[1],
        LocalObject::Secret { namespace, name, .. } if namespace == "default" && name == "a"
    ));
    let bytes = kelp_shared::wire::encode_message(&copy).unwrap();
    assert!(!contains(&bytes, VALUE), "no Secret data in the copy");

    let files: std::collections::BTreeMap<_, _> = secrets
        .iter()
        .map(|s| (sha256(&s.json), s.json.clone()))
        .collect();
    let (merged, refused) = merge(copy, |d| files.get(d).cloned().ok_or("missing"));
    assert!(refused.is_empty());
    assert_eq!(merged, full, "the very bytes the controller sent");
}

#[test]
fn secrets_no_pod_uses_are_kept_nowhere() {
    let k = key();
    let full = state(1, vec![secret("unused", VALUE), pod("a", "a")]);
    let (copy, secrets) = split(&full, &k.public_key());
    assert!(secrets.is_empty());
    assert_eq!(copy.objects.len(), 1, "only the pod");
}

#[test]
fn every_kind_of_secret_reference_counts() {
    let p: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p"},
        "spec": {
            "imagePullSecrets": [{"name": "pull"}],
            "initContainers": [{"name": "i", "image": "x", "envFrom": [{"secretRef": {"name": "env-from"}}]}],
            "containers": [{"name": "c", "image": "x", "env": [
                {"name": "A", "value": "plain"},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "key-ref", "key": "k"}}},
                {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "not-a-secret", "key": "k"}}}
            ]}],
            "volumes": [
                {"name": "v1", "secret": {"secretName": "volume"}},
                {"name": "v2", "projected": {"sources": [{"secret": {"name": "projected"}}, {"configMap": {"name": "cm"}}]}}
            ]
        }
    }))
    .unwrap();
    let names: Vec<String> = pod_secrets(&p).into_iter().collect();
    assert_eq!(
        names,
        ["env-from", "key-ref", "projected", "pull", "volume"].map(String::from)
    );
}

#[test]
fn an_altered_or_missing_secret_file_is_refused() {
    let k = key();
    let full = state(1, vec![secret("a", VALUE), secret("b", "b"), pod("a", "b")]);
    let (copy, secrets) = split(&full, &k.public_key());
    let a = secrets[0].json.clone();
    let (merged, refused) = merge(copy, |d| {
        if *d == sha256(&a) {
            Ok(a.replace_first(VALUE, "changed"))
        } else {
            Err("No such file or directory")
        }
    });
    assert_eq!(merged.objects_json.len(), 1, "only the pod is left");
    assert_eq!(refused.len(), 2);
    assert_eq!(
        refused[0].to_string(),
        "Secret default/a of the local desired state is refused: its file was altered (sha256 mismatch)"
    );
    assert!(refused[1].to_string().contains("default/b"));
    assert!(refused[1].why.contains("cannot be read"));
}

trait ReplaceFirst {
    fn replace_first(&self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceFirst for Vec<u8> {
    fn replace_first(&self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self.clone())
            .unwrap()
            .replacen(from, to, 1)
            .into_bytes()
    }
}

#[test]
fn save_and_load_keep_secrets_in_0600_files_and_delete_unused_ones() {
    let base = tempfile::tempdir().unwrap();
    let k = key();
    let c = config(&k);
    let redb = base.path().join("agent.redb");
    let mut store = LocalState::open(&redb).unwrap();
    let secrets = SecretDir::open(&base.path().join("secrets")).unwrap();
    assert_eq!(mode(secrets.path()), 0o700);

    let first = state(1, vec![secret("a", VALUE), pod("a", "a")]);
    save(&store, &secrets, &first, &k.public_key()).unwrap();
    let on_disk = files(&secrets);
    assert_eq!(on_disk.len(), 1);
    assert_eq!(mode(&on_disk[0]), 0o600);
    assert!(contains(&fs::read(&on_disk[0]).unwrap(), VALUE));
    assert!(!contains(&fs::read(&redb).unwrap(), VALUE));

    // Loaded again (a restart): the same state.
    let loaded = load(&mut store, &secrets, &c).unwrap();
    assert_eq!(loaded.state, Some(first));
    assert!(!loaded.incomplete);

    // The pod goes: so does the Secret's file.
    let second = state(2, vec![secret("a", VALUE)]);
    save(&store, &secrets, &second, &k.public_key()).unwrap();
    assert!(files(&secrets).is_empty());
    assert_eq!(
        load(&mut store, &secrets, &c).unwrap().state,
        Some(state(2, vec![]))
    );
}

#[test]
fn load_refuses_an_altered_secret_and_marks_the_state_incomplete() {
    let base = tempfile::tempdir().unwrap();
    let k = key();
    let mut store = LocalState::open(&base.path().join("agent.redb")).unwrap();
    let secrets = SecretDir::open(&base.path().join("secrets")).unwrap();
    let full = state(1, vec![secret("a", VALUE), pod("a", "a")]);
    save(&store, &secrets, &full, &k.public_key()).unwrap();
    let file = files(&secrets).remove(0);
    fs::write(&file, fs::read(&file).unwrap().replace_first(VALUE, "evil")).unwrap();

    let loaded = load(&mut store, &secrets, &config(&k)).unwrap();
    assert!(loaded.incomplete);
    assert_eq!(loaded.state, Some(state(1, vec![pod("a", "a")])));
    assert!(files(&secrets).is_empty(), "the altered file is not kept");
}

#[test]
fn a_copy_for_another_controller_key_is_not_used() {
    let base = tempfile::tempdir().unwrap();
    let k = key();
    let mut store = LocalState::open(&base.path().join("agent.redb")).unwrap();
    let secrets = SecretDir::open(&base.path().join("secrets")).unwrap();
    save(&store, &secrets, &state(1, vec![]), &k.public_key()).unwrap();
    let loaded = load(&mut store, &secrets, &config(&key())).unwrap();
    assert_eq!(loaded.state, None);
}

#[test]
fn an_envelope_persisted_by_an_older_agent_is_migrated() {
    let base = tempfile::tempdir().unwrap();
    let k = key();
    let c = config(&k);
    let redb = base.path().join("agent.redb");
    let full = state(4, vec![secret("a", VALUE), pod("a", "a")]);
    {
        let store = LocalState::open(&redb).unwrap();
        // Uncompressed, so that the Secret's value is plainly in agent.redb.
        let mut envelope = Envelope::seal_message(c.cluster, &full, false).unwrap();
        sign(&mut envelope, &k);
        store.put_legacy_envelope(&envelope.encode()).unwrap();
    }
    assert!(contains(&fs::read(&redb).unwrap(), VALUE));

    let mut store = LocalState::open(&redb).unwrap();
    let secrets = SecretDir::open(&base.path().join("secrets")).unwrap();
    let loaded = load(&mut store, &secrets, &c).unwrap();
    assert_eq!(loaded.state, Some(full.clone()));
    assert_eq!(store.legacy_envelope().unwrap(), None);
    assert!(store.desired().unwrap().is_some());
    assert_eq!(files(&secrets).len(), 1);
    drop(store);
    assert!(
        !contains(&fs::read(&redb).unwrap(), VALUE),
        "no Secret value left in agent.redb after the migration"
    );

    // And the next start reads the migrated copy.
    let mut store = LocalState::open(&redb).unwrap();
    assert_eq!(load(&mut store, &secrets, &c).unwrap().state, Some(full));
}

#[test]
fn a_legacy_envelope_of_another_key_is_not_used() {
    let base = tempfile::tempdir().unwrap();
    let k = key();
    let mut store = LocalState::open(&base.path().join("agent.redb")).unwrap();
    let mut envelope = Envelope::seal_message(ClusterId([1; 16]), &state(1, vec![]), true).unwrap();
    sign(&mut envelope, &key());
    store.put_legacy_envelope(&envelope.encode()).unwrap();
    let secrets = SecretDir::open(&base.path().join("secrets")).unwrap();
    assert_eq!(load(&mut store, &secrets, &config(&k)).unwrap().state, None);
}
