//! Tests of the volume module: payloads, paths and modes, the downward API, hostPath types,
//! the atomic writer, and `prepare` against a fake mounter.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kelp_shared::api::core::{
    ConfigMap, ConfigMapVolumeSource, DownwardApiVolumeSource, Pod, ProjectedVolumeSource, Secret,
    SecretVolumeSource,
};
use kelp_shared::api::meta::ByteString;
use serde_json::json;

use super::atomic::{self, Written, DATA_DIR};
use super::host_path::{self, HostPathError};
use super::payload::{self, FileData, Payload, Sources};
use super::*;

#[derive(Default)]
struct Lookup {
    config_maps: BTreeMap<String, ConfigMap>,
    secrets: BTreeMap<String, Secret>,
}

impl EnvLookup for Lookup {
    fn config_map(&self, name: &str) -> Option<&ConfigMap> {
        self.config_maps.get(name)
    }
    fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }
}

fn lookup() -> Lookup {
    let mut l = Lookup::default();
    l.config_maps.insert(
        "app".into(),
        serde_json::from_value(json!({
            "metadata": {"name": "app"},
            "data": {"config.yaml": "level: debug\n", "motd": "hello"},
            "binaryData": {"blob.bin": "AAEC"}
        }))
        .unwrap(),
    );
    l.secrets.insert(
        "creds".into(),
        serde_json::from_value(json!({
            "metadata": {"name": "creds"},
            "data": {"password": "czNjcjN0", "user": "YWRtaW4="},
            "stringData": {"user": "root"}
        }))
        .unwrap(),
    );
    l
}

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "web-node", "namespace": "shop", "uid": "uid-1",
            "labels": {"tier": "front", "app": "web"},
            "annotations": {"note": "say \"hi\"\n"}
        },
        "spec": spec
    }))
    .unwrap()
}

fn file(data: &str, mode: u32) -> FileData {
    FileData {
        data: data.as_bytes().to_vec(),
        mode,
    }
}

fn sources<'a>(pod: &'a Pod, lookup: &'a Lookup) -> Sources<'a> {
    Sources {
        pod,
        lookup,
        node_allocatable: None,
    }
}

#[test]
fn item_paths_must_be_relative_without_dot_dot() {
    let ok = |p: &str| payload::item_path(p, "f").unwrap();
    assert_eq!(ok("key"), PathBuf::from("key"));
    assert_eq!(ok("a/b/c.txt"), PathBuf::from("a/b/c.txt"));
    assert_eq!(ok("./a//b"), PathBuf::from("a/b"));
    assert_eq!(ok("a..b"), PathBuf::from("a..b"));
    let err =
        |p: &str| payload::item_path(p, "spec.volumes[0].configMap.items[0].path").unwrap_err();
    for (path, problem) in [
        ("/etc/passwd", "\"/etc/passwd\" must be a relative path"),
        ("../x", "\"../x\" must not contain '..'"),
        ("a/../../b", "\"a/../../b\" must not contain '..'"),
        ("..data/x", "\"..data/x\" must not start with '..'"),
        ("", "must not be empty"),
        (".", "\".\" names no file"),
    ] {
        let e = err(path);
        assert_eq!(e.field, "spec.volumes[0].configMap.items[0].path");
        assert_eq!(e.problem, problem, "{path}");
    }
}

#[test]
fn modes_default_to_0644_and_items_override() {
    assert_eq!(
        payload::file_mode(None, payload::DEFAULT_MODE, "f"),
        Ok(0o644)
    );
    assert_eq!(payload::file_mode(Some(0o400), 0o644, "f"), Ok(0o400));
    assert_eq!(payload::file_mode(None, 0o755, "f"), Ok(0o755));
    let e = payload::file_mode(Some(0o1000), 0o644, "x.mode").unwrap_err();
    assert_eq!(e.field, "x.mode");
    assert!(e.problem.contains("between 0 and 0777"), "{}", e.problem);
    assert!(payload::file_mode(Some(-1), 0o644, "x").is_err());
}

#[test]
fn config_map_volume_projects_every_key_or_the_items() {
    let l = lookup();
    let p = pod(json!({"containers": []}));
    let s = sources(&p, &l);
    let all: ConfigMapVolumeSource =
        serde_json::from_value(json!({"name": "app", "defaultMode": 0o600})).unwrap();
    let files = payload::config_map(&s, &all, "v").unwrap();
    let expected: Payload = [
        (
            "blob.bin".into(),
            FileData {
                data: vec![0, 1, 2],
                mode: 0o600,
            },
        ),
        ("config.yaml".into(), file("level: debug\n", 0o600)),
        ("motd".into(), file("hello", 0o600)),
    ]
    .into_iter()
    .collect();
    assert_eq!(files, expected);

    let items: ConfigMapVolumeSource = serde_json::from_value(json!({
        "name": "app",
        "items": [{"key": "motd", "path": "etc/motd", "mode": 0o444}, {"key": "config.yaml", "path": "c.yaml"}]
    }))
    .unwrap();
    let files = payload::config_map(&s, &items, "v").unwrap();
    let expected: Payload = [
        ("c.yaml".into(), file("level: debug\n", 0o644)),
        ("etc/motd".into(), file("hello", 0o444)),
    ]
    .into_iter()
    .collect();
    assert_eq!(files, expected);
}

#[test]
fn missing_config_maps_and_keys_are_errors_unless_optional() {
    let l = lookup();
    let p = pod(json!({"containers": []}));
    let s = sources(&p, &l);
    let src =
        |v: serde_json::Value| -> ConfigMapVolumeSource { serde_json::from_value(v).unwrap() };
    let e = payload::config_map(
        &s,
        &src(json!({"name": "nope"})),
        "spec.volumes[1].configMap",
    )
    .unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.problem.as_str()),
        ("spec.volumes[1].configMap", "configmap \"nope\" not found")
    );
    assert_eq!(
        payload::config_map(&s, &src(json!({"name": "nope", "optional": true})), "v").unwrap(),
        Payload::new()
    );
    let e = payload::config_map(
        &s,
        &src(json!({"name": "app", "items": [{"key": "gone", "path": "g"}]})),
        "v",
    )
    .unwrap_err();
    assert_eq!(e.field, "v.items[0].key");
    assert_eq!(
        e.problem,
        "configmap references non-existent configmap key: gone"
    );
    let files = payload::config_map(
        &s,
        &src(json!({"name": "app", "optional": true, "items": [{"key": "gone", "path": "g"}, {"key": "motd", "path": "m"}]})),
        "v",
    )
    .unwrap();
    assert_eq!(files.keys().collect::<Vec<_>>(), [Path::new("m")]);
    let e = payload::config_map(
        &s,
        &src(json!({"name": "app", "items": [{"key": "motd", "path": "../../etc/shadow"}]})),
        "v",
    )
    .unwrap_err();
    assert_eq!(e.field, "v.items[0].path");
    assert!(e.problem.contains("must not contain '..'"), "{}", e.problem);
}

#[test]
fn secret_volume_merges_string_data_and_reports_missing_secrets() {
    let l = lookup();
    let p = pod(json!({"containers": []}));
    let s = sources(&p, &l);
    let src: SecretVolumeSource =
        serde_json::from_value(json!({"secretName": "creds", "defaultMode": 0o400})).unwrap();
    let files = payload::secret(&s, &src, "v").unwrap();
    assert_eq!(files[Path::new("password")], file("s3cr3t", 0o400));
    assert_eq!(files[Path::new("user")], file("root", 0o400));
    let missing: SecretVolumeSource =
        serde_json::from_value(json!({"secretName": "other"})).unwrap();
    let e = payload::secret(&s, &missing, "spec.volumes[0].secret").unwrap_err();
    assert_eq!(e.problem, "secret \"other\" not found");
    let e =
        payload::secret(&s, &SecretVolumeSource::default(), "spec.volumes[0].secret").unwrap_err();
    assert_eq!(e.field, "spec.volumes[0].secret.secretName");
}

#[test]
fn downward_api_renders_metadata_like_the_kubelet() {
    let l = lookup();
    let p = pod(
        json!({"containers": [{"name": "app", "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}]}),
    );
    let s = sources(&p, &l);
    let src: DownwardApiVolumeSource = serde_json::from_value(json!({"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}, "mode": 0o400},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "uid", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.uid"}},
        {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}}
    ]})).unwrap();
    let files = payload::downward_api(&s, &src, "v").unwrap();
    let text = |p: &str| String::from_utf8(files[Path::new(p)].data.clone()).unwrap();
    assert_eq!(text("labels"), "app=\"web\"\ntier=\"front\"");
    assert_eq!(text("annotations"), "note=\"say \\\"hi\\\"\\n\"");
    assert_eq!(files[Path::new("annotations")].mode, 0o400);
    assert_eq!(files[Path::new("labels")].mode, 0o644);
    assert_eq!(text("name"), "web-node");
    assert_eq!(text("ns"), "shop");
    assert_eq!(text("uid"), "uid-1");
    assert_eq!(text("tier"), "front");
    assert_eq!(text("mem"), "64");
    assert_eq!(text("cpu"), "250");

    let bad: DownwardApiVolumeSource = serde_json::from_value(json!({"items": [
        {"path": "node", "fieldRef": {"fieldPath": "spec.nodeName"}}
    ]}))
    .unwrap();
    let e = payload::downward_api(&s, &bad, "spec.volumes[2].downwardAPI").unwrap_err();
    assert_eq!(
        e.field,
        "spec.volumes[2].downwardAPI.items[0].fieldRef.fieldPath"
    );
    let no_container: DownwardApiVolumeSource = serde_json::from_value(json!({"items": [
        {"path": "mem", "resourceFieldRef": {"resource": "limits.memory"}}
    ]}))
    .unwrap();
    let e = payload::downward_api(&s, &no_container, "v").unwrap_err();
    assert_eq!(e.field, "v.items[0].resourceFieldRef.containerName");
}

#[test]
fn projected_volume_merges_sources_and_refuses_tokens() {
    let l = lookup();
    let p = pod(json!({"containers": []}));
    let s = sources(&p, &l);
    let src: ProjectedVolumeSource = serde_json::from_value(json!({"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "app", "items": [{"key": "motd", "path": "motd"}]}},
        {"secret": {"name": "creds", "items": [{"key": "password", "path": "secret/pw", "mode": 0o400}]}},
        {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}
    ]}))
    .unwrap();
    let files = payload::projected(&s, &src, "v").unwrap();
    assert_eq!(files[Path::new("motd")], file("hello", 0o440));
    assert_eq!(files[Path::new("secret/pw")], file("s3cr3t", 0o400));
    assert_eq!(files[Path::new("name")], file("web-node", 0o440));

    let token: ProjectedVolumeSource = serde_json::from_value(json!({"sources": [
        {"serviceAccountToken": {"path": "token"}}
    ]}))
    .unwrap();
    let e = payload::projected(&s, &token, "spec.volumes[3].projected").unwrap_err();
    assert_eq!(
        e.field,
        "spec.volumes[3].projected.sources[0].serviceAccountToken"
    );
    assert!(e.problem.contains("no token issuer"), "{}", e.problem);

    let clash: ProjectedVolumeSource = serde_json::from_value(json!({"sources": [
        {"configMap": {"name": "app", "items": [{"key": "motd", "path": "x"}]}},
        {"secret": {"name": "creds", "items": [{"key": "user", "path": "x/y"}]}}
    ]}))
    .unwrap();
    let e = payload::projected(&s, &clash, "v").unwrap_err();
    assert_eq!(e.field, "v.sources[1].secret.items[0].path");
    assert!(e.problem.contains("conflicts"), "{}", e.problem);
}

#[test]
fn host_path_types_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = d.join("file");
    fs::write(&f, b"x").unwrap();
    let sock = d.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let msg = |p: &Path, t: &str| host_path::check(p, t).unwrap_err().to_string();

    for (path, t) in [
        (d, "Directory"),
        (d, ""),
        (f.as_path(), "File"),
        (f.as_path(), "FileOrCreate"),
        (d, "DirectoryOrCreate"),
        (sock.as_path(), "Socket"),
        (Path::new("/dev/null"), "CharDevice"),
    ] {
        host_path::check(path, t).unwrap_or_else(|e| panic!("{} {t}: {e}", path.display()));
    }
    assert_eq!(
        msg(&f, "Directory"),
        format!(
            "hostPath type check failed: {} is not a directory",
            f.display()
        )
    );
    assert_eq!(
        msg(&f, "DirectoryOrCreate"),
        format!(
            "hostPath type check failed: {} is not a directory",
            f.display()
        )
    );
    assert_eq!(
        msg(d, "File"),
        format!("hostPath type check failed: {} is not a file", d.display())
    );
    assert_eq!(
        msg(&f, "Socket"),
        format!(
            "hostPath type check failed: {} is not a socket file",
            f.display()
        )
    );
    assert_eq!(
        msg(&f, "CharDevice"),
        format!(
            "hostPath type check failed: {} is not a character device",
            f.display()
        )
    );
    assert_eq!(
        msg(Path::new("/dev/null"), "BlockDevice"),
        "hostPath type check failed: /dev/null is not a block device"
    );
    let missing = d.join("missing");
    assert_eq!(
        msg(&missing, "File"),
        format!(
            "hostPath type check failed: {} does not exist",
            missing.display()
        )
    );
    assert!(matches!(
        host_path::check(&missing, "Dir"),
        Err(HostPathError::UnknownType(_))
    ));
    assert!(!missing.exists(), "an unknown type creates nothing");

    let made = d.join("a/b/c");
    host_path::check(&made, "DirectoryOrCreate").unwrap();
    assert!(made.is_dir());
    assert_eq!(
        fs::metadata(&made).unwrap().permissions().mode() & 0o777,
        0o755
    );

    let new_file = d.join("new.txt");
    host_path::check(&new_file, "FileOrCreate").unwrap();
    let meta = fs::metadata(&new_file).unwrap();
    assert!(meta.is_file() && meta.len() == 0);
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    // As the kubelet: the parent of a FileOrCreate path must exist.
    assert!(matches!(
        host_path::check(&d.join("no/such/file"), "FileOrCreate"),
        Err(HostPathError::Create(_))
    ));
}

fn payload_of(entries: &[(&str, &str, u32)]) -> Payload {
    entries
        .iter()
        .map(|(p, d, m)| (PathBuf::from(p), file(d, *m)))
        .collect()
}

#[test]
fn atomic_writer_swaps_versions_through_data_link() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let v1 = payload_of(&[("a", "one", 0o644), ("sub/b", "two", 0o400)]);
    assert_eq!(atomic::write(d, &v1).unwrap(), Written::Updated);
    let version1 = fs::read_link(d.join(DATA_DIR)).unwrap();
    assert!(version1.to_string_lossy().starts_with(".."), "{version1:?}");
    assert_eq!(fs::read_link(d.join("a")).unwrap(), Path::new("..data/a"));
    assert_eq!(
        fs::read_link(d.join("sub")).unwrap(),
        Path::new("..data/sub")
    );
    assert_eq!(fs::read_to_string(d.join("sub/b")).unwrap(), "two");
    let mode = |p: &str| fs::metadata(d.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("a"), 0o644);
    assert_eq!(mode("sub/b"), 0o400);

    // The same payload again changes nothing.
    assert_eq!(atomic::write(d, &v1).unwrap(), Written::Unchanged);
    assert_eq!(fs::read_link(d.join(DATA_DIR)).unwrap(), version1);

    // A new version replaces the old; a name no longer there goes.
    let v2 = payload_of(&[("a", "uno", 0o600), ("c", "three", 0o644)]);
    assert_eq!(atomic::write(d, &v2).unwrap(), Written::Updated);
    let version2 = fs::read_link(d.join(DATA_DIR)).unwrap();
    assert_ne!(version1, version2);
    assert!(!d.join(&version1).exists(), "the old version is removed");
    assert_eq!(fs::read_to_string(d.join("a")).unwrap(), "uno");
    assert_eq!(mode("a"), 0o600);
    assert!(fs::symlink_metadata(d.join("sub")).is_err());
    assert_eq!(fs::read_to_string(d.join("c")).unwrap(), "three");

    // A mode change alone is a change.
    let v3 = payload_of(&[("a", "uno", 0o644), ("c", "three", 0o644)]);
    assert_eq!(atomic::write(d, &v3).unwrap(), Written::Updated);
    assert_eq!(mode("a"), 0o644);

    // An empty payload (an optional ConfigMap that is missing) leaves an empty volume.
    assert_eq!(atomic::write(d, &Payload::new()).unwrap(), Written::Updated);
    let names: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".."))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

/// Records mounts instead of making them.
#[derive(Default)]
struct FakeMounter {
    mounts: RefCell<Vec<(PathBuf, Option<u64>, u32)>>,
    resized: RefCell<Vec<(PathBuf, u64)>>,
}

impl Mounter for FakeMounter {
    fn is_mount_point(&self, path: &Path) -> io::Result<bool> {
        Ok(self.mounts.borrow().iter().any(|(p, ..)| p == path))
    }
    fn mount_tmpfs(&self, path: &Path, size: Option<u64>, mode: u32) -> io::Result<()> {
        self.mounts
            .borrow_mut()
            .push((path.to_path_buf(), size, mode));
        Ok(())
    }
    fn size(&self, path: &Path) -> io::Result<u64> {
        let resized = self
            .resized
            .borrow()
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|(_, s)| *s);
        let mounted = self
            .mounts
            .borrow()
            .iter()
            .find(|(p, ..)| p == path)
            .and_then(|(_, s, _)| *s);
        Ok(resized.or(mounted).unwrap_or(0))
    }
    fn resize_tmpfs(&self, path: &Path, size: u64) -> io::Result<()> {
        self.resized.borrow_mut().push((path.to_path_buf(), size));
        Ok(())
    }
}

struct Dirs {
    _tmp: tempfile::TempDir,
    run: PathBuf,
    data: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    Dirs {
        run: tmp.path().join("run/pods/uid-1"),
        data: tmp.path().join("state/pods/uid-1"),
        _tmp: tmp,
    }
}

fn request<'a>(p: &'a Pod, l: &'a Lookup, d: &Dirs) -> PodVolumes<'a> {
    PodVolumes {
        pod: p,
        run_dir: d.run.clone(),
        data_dir: d.data.clone(),
        lookup: l,
        node_allocatable: None,
    }
}

#[test]
fn prepare_sets_up_each_kind_once_and_again_without_remounting() {
    let l = lookup();
    let d = dirs();
    let p = pod(json!({
        "containers": [{"name": "a", "resources": {"limits": {"memory": "256Mi"}}}],
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "mem-pod", "emptyDir": {"medium": "Memory"}},
            {"name": "cfg", "configMap": {"name": "app"}},
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            {"name": "all", "projected": {"sources": [{"configMap": {"name": "app"}}]}}
        ]
    }));
    let m = FakeMounter::default();
    let paths = prepare(&request(&p, &l, &d), &m).unwrap();
    assert_eq!(paths["scratch"], d.data.join("volumes/scratch"));
    assert_eq!(paths["mem"], d.data.join("volumes/mem"));
    assert_eq!(paths["cfg"], d.run.join("volumes/cfg"));
    assert_eq!(paths["creds"], d.run.join("volumes/creds"));
    assert_eq!(
        fs::metadata(&paths["scratch"])
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o777
    );
    let mounts = m.mounts.borrow().clone();
    let mounted: Vec<&Path> = mounts.iter().map(|(p, ..)| p.as_path()).collect();
    assert_eq!(
        mounted,
        [
            paths["mem"].as_path(),
            &paths["mem-pod"],
            &paths["creds"],
            &paths["all"]
        ],
        "tmpfs for memory emptyDirs, secrets and projected volumes only"
    );
    assert_eq!(mounts[0].1, Some(1024 * 1024), "sizeLimit");
    assert_eq!(
        mounts[1].1,
        Some(256 * 1024 * 1024),
        "the pod's memory limit"
    );
    assert_eq!(mounts[0].2, 0o777);
    assert_eq!(
        fs::read_to_string(paths["creds"].join("user")).unwrap(),
        "root"
    );
    assert_eq!(
        fs::read_to_string(paths["info"].join("labels")).unwrap(),
        "app=\"web\"\ntier=\"front\""
    );
    fs::write(paths["mem"].join("kept"), b"data").unwrap();
    let data_link = fs::read_link(paths["cfg"].join(DATA_DIR)).unwrap();

    // Every container start prepares again: nothing is mounted twice, nothing rewritten.
    let again = prepare(&request(&p, &l, &d), &m).unwrap();
    assert_eq!(again, paths);
    assert_eq!(m.mounts.borrow().len(), 4);
    assert!(m.resized.borrow().is_empty());
    assert_eq!(
        fs::read_link(paths["cfg"].join(DATA_DIR)).unwrap(),
        data_link
    );
    assert_eq!(fs::read(paths["mem"].join("kept")).unwrap(), b"data");
}

#[test]
fn prepare_refreshes_changed_objects_and_grows_secret_tmpfs() {
    let mut l = lookup();
    let d = dirs();
    let p = pod(json!({"containers": [], "volumes": [
        {"name": "cfg", "configMap": {"name": "app", "items": [{"key": "motd", "path": "motd"}]}},
        {"name": "creds", "secret": {"secretName": "creds"}}
    ]}));
    let m = FakeMounter::default();
    let paths = prepare(&request(&p, &l, &d), &m).unwrap();
    assert_eq!(
        fs::read_to_string(paths["cfg"].join("motd")).unwrap(),
        "hello"
    );
    l.config_maps
        .get_mut("app")
        .unwrap()
        .data
        .as_mut()
        .unwrap()
        .insert("motd".into(), "bye".into());
    let big = ByteString(vec![7u8; 3 * 1024 * 1024]);
    l.secrets
        .get_mut("creds")
        .unwrap()
        .data
        .as_mut()
        .unwrap()
        .insert("big".into(), big);
    prepare(&request(&p, &l, &d), &m).unwrap();
    assert_eq!(
        fs::read_to_string(paths["cfg"].join("motd")).unwrap(),
        "bye"
    );
    let resized = m.resized.borrow();
    assert_eq!(resized.len(), 1, "{resized:?}");
    assert_eq!(resized[0].0, paths["creds"]);
    assert!(resized[0].1 >= 6 * 1024 * 1024);
}

#[test]
fn prepare_errors_name_the_volume_and_field() {
    let l = lookup();
    let d = dirs();
    let tmp = tempfile::tempdir().unwrap();
    let file_path = tmp.path().join("plain-file");
    fs::write(&file_path, b"").unwrap();
    let m = FakeMounter::default();
    let err = |volumes: serde_json::Value| {
        let p = pod(json!({"containers": [], "volumes": volumes}));
        prepare(&request(&p, &l, &d), &m).unwrap_err().to_string()
    };
    assert_eq!(
        err(json!([{"name": "ok", "emptyDir": {}}, {"name": "h", "hostPath": {"path": file_path, "type": "Directory"}}])),
        format!(
            "MountVolume.SetUp failed for volume \"h\": spec.volumes[1].hostPath.type: hostPath type check failed: {} is not a directory",
            file_path.display()
        )
    );
    assert_eq!(
        err(json!([{"name": "cfg", "configMap": {"name": "missing"}}])),
        "MountVolume.SetUp failed for volume \"cfg\": spec.volumes[0].configMap: configmap \"missing\" not found"
    );
    assert_eq!(
        err(json!([{"name": "pvc", "persistentVolumeClaim": {"claimName": "c"}}])),
        "MountVolume.SetUp failed for volume \"pvc\": spec.volumes[0].persistentVolumeClaim: this volume type is not supported by kelp-agent"
    );
    assert!(
        err(json!([{"name": "h", "emptyDir": {"medium": "HugePages"}}]))
            .contains("spec.volumes[0].emptyDir.medium")
    );
    assert!(
        err(json!([{"name": "h", "hostPath": {"path": "relative"}}]))
            .contains("spec.volumes[0].hostPath.path: \"relative\" must be an absolute path")
    );
    assert!(m.mounts.borrow().is_empty());
}

#[test]
fn memory_emptydir_size_is_the_smaller_of_limit_and_pod_memory() {
    let q = |s: &str| -> kelp_shared::api::quantity::Quantity { s.parse().unwrap() };
    let limited = pod(json!({"containers": [
        {"name": "a", "resources": {"limits": {"memory": "64Mi"}}},
        {"name": "b", "resources": {"limits": {"memory": "32Mi"}}}
    ], "initContainers": [{"name": "i", "resources": {"limits": {"memory": "128Mi"}}}]}));
    assert_eq!(pod_memory_limit(&limited), Some(128 << 20));
    assert_eq!(memory_size(&limited, Some(&q("1Mi"))), Some(1 << 20));
    assert_eq!(memory_size(&limited, Some(&q("1Gi"))), Some(128 << 20));
    let unlimited = pod(json!({"containers": [
        {"name": "a", "resources": {"limits": {"memory": "64Mi"}}},
        {"name": "b"}
    ]}));
    assert_eq!(pod_memory_limit(&unlimited), None);
    assert_eq!(memory_size(&unlimited, None), None);
    assert_eq!(memory_size(&unlimited, Some(&q("10M"))), Some(10_000_000));
}
