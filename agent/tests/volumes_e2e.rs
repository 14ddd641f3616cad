//! End-to-end tests of pod volumes with real containers (as root): configMap, secret,
//! downwardAPI and memory-backed emptyDir volumes shared by the containers of a pod, hostPath
//! type checks, a missing ConfigMap blocking a container until it appears, and no mount left
//! behind once the pod is gone. Each test has its own node (see `common/`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Node, BUSYBOX};
use kelp_agent::agent::PodReport;

const TMPFS_MAGIC: i64 = 0x0102_1994;

fn pod_yaml(name: &str, labels: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{labels}spec:\n{spec}")
}

/// `key=value` lines of a log, last value of a key winning.
fn values(log: &str) -> std::collections::BTreeMap<String, String> {
    log.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The log of `container`, empty while it has none.
fn log(node: &Node, pod: &PodReport, container: &str) -> String {
    let out = node.cli(&["logs", &pod.name, "-c", container]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the log of `container` has every key in `keys`, and returns its values.
fn wait_values(
    node: &Node,
    pod: &PodReport,
    container: &str,
    keys: &[&str],
) -> std::collections::BTreeMap<String, String> {
    node.wait_for(
        &format!("{container} to print {keys:?}"),
        Duration::from_secs(60),
        |n| {
            let v = values(&log(n, pod, container));
            keys.iter().all(|k| v.contains_key(*k)).then_some(v)
        },
    )
}

fn is_tmpfs_mount(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let st = rustix::fs::statfs(path).unwrap();
    let own = fs::metadata(path).unwrap().dev();
    let parent = fs::metadata(path.join("..")).unwrap().dev();
    st.f_type as i64 == TMPFS_MAGIC && own != parent
}

/// Whether any file under `dir` (not following symlinks or entering other mounts) contains
/// `needle`.
fn disk_contains(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::symlink_metadata(dir).ok()?.dev();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).ok()?.flatten() {
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.dev() != dev {
                continue;
            }
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let data = fs::read(&path).unwrap_or_default();
                if data.windows(needle.len()).any(|w| w == needle) {
                    return Some(path);
                }
            }
        }
    }
    None
}

fn waiting(report: &PodReport, container: &str) -> Option<(String, String)> {
    let cs = report.status.container_statuses.as_ref()?;
    let w = cs
        .iter()
        .find(|c| c.name == container)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?;
    Some((
        w.reason.clone().unwrap_or_default(),
        w.message.clone().unwrap_or_default(),
    ))
}

/// The acceptance pod: two containers share configMap, secret and memory-backed emptyDir
/// volumes; one writes into the emptyDir, the other reads it.
#[test]
fn two_containers_share_config_secret_and_memory_volumes() {
    let mut node = Node::new("vol-shared");
    node.start_agent();
    let secret_value = format!("s3cr3t-{}", node.name);
    node.apply(
        "objects.yaml",
        &format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: app-cfg}}
data:
  motd: hello-from-configmap
  config.yaml: "level: debug"
---
apiVersion: v1
kind: Secret
metadata: {{name: app-secret}}
stringData:
  password: {secret_value}
  user: admin
"#
        ),
    );
    // Modes in decimal: 384 = 0600, 288 = 0440, 256 = 0400.
    let spec = format!(
        r#"  terminationGracePeriodSeconds: 1
  volumes:
  - name: cfg
    configMap:
      name: app-cfg
      defaultMode: 288
      items: [{{key: motd, path: etc/motd, mode: 384}}, {{key: config.yaml, path: config.yaml}}]
  - name: creds
    secret: {{secretName: app-secret, defaultMode: 256}}
  - name: scratch
    emptyDir: {{medium: Memory, sizeLimit: 1Mi}}
  containers:
  - name: writer
    image: {BUSYBOX}
    command: [sh, -c]
    args:
    - |
      echo from-writer > /scratch/shared
      if dd if=/dev/zero of=/scratch/big bs=4096 count=512 2>/tmp/err; then echo big=written; else echo "big=failed $(grep -o 'No space left on device' /tmp/err)"; fi
      echo big-size=$(stat -c %s /scratch/big)
      rm -f /scratch/big
      echo secret-fs=$(stat -f -c %T /creds)
      echo secret-mode=$(stat -L -c %a /creds/password)
      echo secret-value=$(cat /creds/password)
      echo writer-done=1
      exec sleep 3600
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: creds, mountPath: /creds}}
  - name: reader
    image: {BUSYBOX}
    command: [sh, -c]
    args:
    - |
      while [ ! -f /scratch/shared ]; do sleep 0.1; done
      echo shared=$(cat /scratch/shared)
      echo motd=$(cat /cfg/etc/motd)
      echo motd-mode=$(stat -L -c %a /cfg/etc/motd)
      echo config-mode=$(stat -L -c %a /cfg/config.yaml)
      echo subpath=$(cat /etc/app.yaml)
      echo user=$(cat /creds/user)
      if touch /cfg/new 2>/dev/null; then echo cfg=writable; else echo cfg=readonly; fi
      if echo x > /creds/user 2>/dev/null; then echo creds=writable; else echo creds=readonly; fi
      echo reader-done=1
      exec sleep 3600
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: cfg, mountPath: /cfg}}
    - {{name: cfg, mountPath: /etc/app.yaml, subPath: config.yaml}}
    - {{name: creds, mountPath: /creds}}
"#
    );
    node.apply("pod.yaml", &pod_yaml("vols", "", &spec));
    let pod = node.wait_running("vols");

    let w = wait_values(&node, &pod, "writer", &["writer-done"]);
    let r = wait_values(&node, &pod, "reader", &["reader-done"]);
    assert_eq!(r["shared"], "from-writer", "{r:?}");
    assert_eq!(r["motd"], "hello-from-configmap");
    assert_eq!(r["motd-mode"], "600", "item mode");
    assert_eq!(r["config-mode"], "440", "defaultMode");
    assert_eq!(r["subpath"], "level: debug", "subPath of a configMap key");
    assert_eq!(r["user"], "admin");
    assert_eq!(r["cfg"], "readonly");
    assert_eq!(r["creds"], "readonly");
    assert_eq!(w["secret-fs"], "tmpfs", "{w:?}");
    assert_eq!(w["secret-mode"], "400");
    assert_eq!(w["secret-value"], secret_value);
    assert!(
        w["big"].starts_with("failed") && w["big"].contains("No space left on device"),
        "sizeLimit 1Mi must stop a 2 MiB write with ENOSPC: {:?}",
        w["big"]
    );
    let written: u64 = w["big-size"].parse().unwrap();
    assert!(written <= 1024 * 1024, "{written} bytes written");

    // From the host: the secret has a tmpfs of its own under the pod's run dir, the memory
    // emptyDir a 1 MiB tmpfs; the secret never reached the disk.
    let config = node.runtime_config();
    let secret_dir = config.pod_paths(&pod.uid).dir.join("volumes/creds");
    assert!(is_tmpfs_mount(&secret_dir), "{}", secret_dir.display());
    let scratch = config.pod_data_dir(&pod.uid).join("volumes/scratch");
    assert!(is_tmpfs_mount(&scratch), "{}", scratch.display());
    let st = rustix::fs::statvfs(&scratch).unwrap();
    assert_eq!(st.f_blocks * st.f_frsize, 1024 * 1024);
    assert_eq!(
        disk_contains(&node.state_dir, secret_value.as_bytes()),
        None,
        "the secret's value is on disk"
    );

    node.delete("pod.yaml");
    node.wait_for("the pod to go", Duration::from_secs(60), |n| {
        n.pod("vols").is_none().then_some(())
    });
    node.wait_for("its directories to go", Duration::from_secs(30), |_| {
        (!config.pod_paths(&pod.uid).dir.exists() && !config.pod_data_dir(&pod.uid).exists())
            .then_some(())
    });
    assert_eq!(node.mounts(), Vec::<PathBuf>::new(), "mounts left behind");
}

#[test]
fn downward_api_volume_shows_labels_and_annotations() {
    let mut node = Node::new("vol-downward");
    node.start_agent();
    let labels = "  labels: {tier: front, app: web}\n  annotations: {team: edge, note: \"say \\\"hi\\\"\"}\n";
    let spec = format!(
        r#"  volumes:
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: annotations, fieldRef: {{fieldPath: metadata.annotations}}, mode: 256}}
      - {{path: meta/name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: meta/namespace, fieldRef: {{fieldPath: metadata.namespace}}}}
      - {{path: meta/uid, fieldRef: {{fieldPath: metadata.uid}}}}
      - {{path: tier, fieldRef: {{fieldPath: "metadata.labels['tier']"}}}}
      - {{path: mem, resourceFieldRef: {{containerName: c, resource: limits.memory, divisor: 1Mi}}}}
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, 'cat /info/labels; echo; echo ---; cat /info/annotations; echo; echo ---; echo name=$(cat /info/meta/name) ns=$(cat /info/meta/namespace) uid=$(cat /info/meta/uid) tier=$(cat /info/tier) mem=$(cat /info/mem) mode=$(stat -L -c %a /info/annotations); exec sleep 3600']
    resources: {{limits: {{memory: 64Mi}}}}
    volumeMounts: [{{name: info, mountPath: /info}}]
"#
    );
    node.apply("pod.yaml", &pod_yaml("info", labels, &spec));
    let pod = node.wait_running("info");
    let log = node.wait_for("the downward files", Duration::from_secs(60), |n| {
        let log = log(n, &pod, "c");
        log.contains("mode=").then_some(log)
    });
    let parts: Vec<&str> = log.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{log}");
    assert_eq!(parts[0].trim_end(), "app=\"web\"\ntier=\"front\"", "{log}");
    let annotations: Vec<&str> = parts[1].trim_end().lines().collect();
    assert!(annotations.contains(&"note=\"say \\\"hi\\\"\""), "{log}");
    assert!(annotations.contains(&"team=\"edge\""), "{log}");
    assert!(
        annotations.contains(&"kubernetes.io/config.source=\"file\""),
        "{log}"
    );
    let mut sorted = annotations.clone();
    sorted.sort();
    assert_eq!(annotations, sorted, "sorted by key");
    let last = parts[2].trim();
    assert_eq!(
        last,
        format!(
            "name=info-e2e ns=default uid={} tier=front mem=64 mode=400",
            pod.uid
        ),
        "{log}"
    );
}

#[test]
fn host_path_of_the_wrong_type_is_refused_by_field() {
    let mut node = Node::new("vol-hostpath");
    node.start_agent();
    let file = node.base.join("a-file");
    fs::write(&file, b"x").unwrap();
    let spec = format!(
        r#"  volumes:
  - name: ok
    hostPath: {{path: {made}, type: DirectoryOrCreate}}
  - name: wrong
    hostPath: {{path: {file}, type: Directory}}
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sleep, "3600"]
    volumeMounts: [{{name: ok, mountPath: /ok}}, {{name: wrong, mountPath: /wrong}}]
"#,
        made = node.base.join("made/here").display(),
        file = file.display()
    );
    node.apply("pod.yaml", &pod_yaml("hp", "", &spec));
    let (report, (reason, message)) = node.wait_for(
        "the container to be blocked",
        Duration::from_secs(60),
        |n| {
            let p = n.pod("hp")?;
            let w = waiting(&p, "c").filter(|(_, m)| !m.is_empty())?;
            Some((p, w))
        },
    );
    assert_eq!(reason, "ContainerCreating");
    assert_eq!(
        message,
        format!(
            "MountVolume.SetUp failed for volume \"wrong\": spec.volumes[1].hostPath.type: hostPath type check failed: {} is not a directory",
            file.display()
        )
    );
    let event = report
        .events
        .iter()
        .find(|e| e.reason == "FailedMount")
        .expect("a FailedMount event");
    assert_eq!(event.type_, "Warning");
    assert_eq!(event.message, message);
    assert!(node.base.join("made/here").is_dir(), "DirectoryOrCreate");
    assert!(node.runs(&report.uid).is_empty(), "nothing started");
}

/// A missing ConfigMap blocks the container (the kubelet's FailedMount) until it appears; a
/// new version reaches the volume at the next container start.
#[test]
fn missing_config_map_blocks_until_it_appears_and_updates_reach_restarts() {
    let mut node = Node::new("vol-refresh");
    node.start_agent();
    let spec = format!(
        r#"  volumes:
  - name: cfg
    configMap: {{name: late}}
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, 'echo motd=$(cat /cfg/motd); sleep 1; exit 1']
    volumeMounts: [{{name: cfg, mountPath: /cfg}}]
"#
    );
    node.apply("pod.yaml", &pod_yaml("late", "", &spec));
    let (reason, message) = node.wait_for("FailedMount", Duration::from_secs(60), |n| {
        waiting(&n.pod("late")?, "c").filter(|(_, m)| !m.is_empty())
    });
    assert_eq!(reason, "ContainerCreating");
    assert_eq!(
        message,
        "MountVolume.SetUp failed for volume \"cfg\": spec.volumes[0].configMap: configmap \"late\" not found"
    );
    let cm = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: late}}\ndata: {{motd: {v}}}\n")
    };
    node.apply("cm.yaml", &cm("first"));
    let pod = node.wait_for("the first run", Duration::from_secs(60), |n| {
        let p = n.pod("late")?;
        log(n, &p, "c").contains("motd=first").then_some(p)
    });
    node.apply("cm.yaml", &cm("second"));
    node.wait_for("a run with the new content", Duration::from_secs(60), |n| {
        log(n, &pod, "c").contains("motd=second").then_some(())
    });
    assert_eq!(
        node.pod("late").unwrap().uid,
        pod.uid,
        "the same pod, restarted"
    );
    let dir = node
        .runtime_config()
        .pod_paths(&pod.uid)
        .dir
        .join("volumes/cfg");
    let versions: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("..") && n != "..data")
        .collect();
    assert_eq!(versions.len(), 1, "old versions are removed: {versions:?}");
}
