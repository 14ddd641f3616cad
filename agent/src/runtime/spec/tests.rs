//! Tests of the spec builder: one table or case per Kubernetes rule.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use kelp_shared::api::core::{ConfigMap, Pod, ResourceList, Secret};
use kelp_shared::api::meta::ByteString;
use oci_spec::runtime::{Capability, LinuxNamespaceType, Mount, Spec};
use serde_json::json;

use super::resources::{milli_cpu_to_quota, milli_cpu_to_shares};
use super::security::{ALL_CAPABILITIES, DEFAULT_CAPABILITIES, MASKED_PATHS};
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

/// One pod, its image and its surroundings; builds the spec of one of its containers.
struct Case {
    pod: Pod,
    image: ImageConfig,
    rootfs: tempfile::TempDir,
    lookup: Lookup,
    volumes: BTreeMap<String, PathBuf>,
    allocatable: Option<ResourceList>,
    pod_ip: Option<&'static str>,
    host_ip: Option<&'static str>,
    pids_limit: Option<i64>,
    namespaces: SandboxNamespaces,
    etc: EtcFiles,
}

impl Case {
    /// A pod named `web` in namespace `shop`; `container` is merged into its only container.
    fn new(container: serde_json::Value) -> Self {
        Self::pod(json!({"spec": {"containers": [container]}}))
    }

    /// A pod from JSON; name, namespace and uid are filled in when missing.
    fn pod(mut pod: serde_json::Value) -> Self {
        let meta = pod
            .as_object_mut()
            .unwrap()
            .entry("metadata")
            .or_insert(json!({}));
        for (k, v) in [("name", "web"), ("namespace", "shop"), ("uid", "uid-1")] {
            meta.as_object_mut().unwrap().entry(k).or_insert(json!(v));
        }
        for c in pod["spec"]["containers"].as_array_mut().unwrap() {
            c.as_object_mut()
                .unwrap()
                .entry("name")
                .or_insert(json!("app"));
        }
        Case {
            pod: serde_json::from_value(pod).unwrap(),
            image: ImageConfig {
                entrypoint: vec!["/entry".into()],
                cmd: vec!["serve".into()],
                env: vec![],
                working_dir: None,
                user: None,
            },
            rootfs: tempfile::tempdir().unwrap(),
            lookup: Lookup::default(),
            volumes: BTreeMap::new(),
            allocatable: None,
            pod_ip: Some("10.1.0.7"),
            host_ip: Some("192.168.1.20"),
            pids_limit: None,
            namespaces: SandboxNamespaces {
                network: "/run/kelp/ns/net".into(),
                ipc: "/run/kelp/ns/ipc".into(),
                uts: "/run/kelp/ns/uts".into(),
                pid: None,
            },
            etc: EtcFiles {
                hosts: "/var/lib/kelp/pods/uid-1/hosts".into(),
                resolv_conf: "/var/lib/kelp/pods/uid-1/resolv.conf".into(),
                hostname: "/var/lib/kelp/pods/uid-1/hostname".into(),
            },
        }
    }

    fn build_at(&self, field_path: &str) -> Result<Spec, SpecError> {
        let spec = self.pod.spec.as_ref().unwrap();
        let container = if let Some(i) = field_path.strip_prefix("spec.initContainers[") {
            let i: usize = i.trim_end_matches(']').parse().unwrap();
            &spec.init_containers.as_ref().unwrap()[i]
        } else {
            let i = field_path
                .strip_prefix("spec.containers[")
                .unwrap()
                .trim_end_matches(']');
            &spec.containers[i.parse::<usize>().unwrap()]
        };
        build_spec(&SpecInput {
            pod: &self.pod,
            container,
            field_path: field_path.to_owned(),
            image: &self.image,
            rootfs: self.rootfs.path(),
            namespaces: &self.namespaces,
            cgroups_path: "/kelp/pod-uid-1/app".to_owned(),
            etc_files: &self.etc,
            volumes: &self.volumes,
            lookup: &self.lookup,
            node_name: "node-a",
            node_allocatable: self.allocatable.as_ref(),
            pod_ip: self.pod_ip,
            host_ip: self.host_ip,
            pids_limit: self.pids_limit,
        })
    }

    fn build(&self) -> Spec {
        self.build_at("spec.containers[0]")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(&self) -> String {
        match self.build_at("spec.containers[0]") {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    fn config_map(mut self, name: &str, data: serde_json::Value) -> Self {
        let cm = serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap();
        self.lookup.config_maps.insert(name.to_owned(), cm);
        self
    }

    fn secret(mut self, name: &str, data: &[(&str, &[u8])]) -> Self {
        let secret = Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        self.lookup.secrets.insert(name.to_owned(), secret);
        self
    }

    fn write_etc(&self, name: &str, text: &str) {
        let etc = self.rootfs.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join(name), text).unwrap();
    }
}

fn args(spec: &Spec) -> Vec<String> {
    spec.process().as_ref().unwrap().args().clone().unwrap()
}

fn env(spec: &Spec) -> Vec<String> {
    spec.process().as_ref().unwrap().env().clone().unwrap()
}

/// The container's value of `name`, if set.
fn env_var(spec: &Spec, name: &str) -> Option<String> {
    env(spec)
        .iter()
        .find_map(|e| e.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

fn user(spec: &Spec) -> (u32, u32, Vec<u32>) {
    let u = spec.process().as_ref().unwrap().user();
    (
        u.uid(),
        u.gid(),
        u.additional_gids().clone().unwrap_or_default(),
    )
}

fn caps(spec: &Spec) -> HashSet<Capability> {
    let c = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    let bounding = c.bounding().clone().unwrap();
    assert_eq!(c.effective().as_ref(), Some(&bounding));
    assert_eq!(c.permitted().as_ref(), Some(&bounding));
    assert!(c.inheritable().as_ref().unwrap().is_empty());
    assert!(c.ambient().as_ref().unwrap().is_empty());
    bounding
}

fn mounts(spec: &Spec) -> Vec<Mount> {
    spec.mounts().clone().unwrap()
}

fn mount_at(spec: &Spec, dest: &str) -> Mount {
    mounts(spec)
        .into_iter()
        .find(|m| m.destination() == Path::new(dest))
        .unwrap_or_else(|| panic!("no mount at {dest}"))
}

fn options(m: &Mount) -> Vec<String> {
    m.options().clone().unwrap_or_default()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ---- command and args ----

#[test]
fn command_and_args_follow_kubernetes_rules() {
    let cases = [
        (json!({}), vec!["/entry", "serve"]),
        (json!({"command": ["/bin/sh"]}), vec!["/bin/sh"]),
        (json!({"args": ["-v"]}), vec!["/entry", "-v"]),
        (
            json!({"command": ["/bin/sh"], "args": ["-c", "x"]}),
            vec!["/bin/sh", "-c", "x"],
        ),
        (json!({"command": [], "args": []}), vec!["/entry", "serve"]),
    ];
    for (container, want) in cases {
        let spec = Case::new(container.clone()).build();
        assert_eq!(args(&spec), strings(&want), "{container}");
    }
}

#[test]
fn empty_command_is_an_error() {
    let mut case = Case::new(json!({}));
    case.image.entrypoint.clear();
    case.image.cmd.clear();
    assert_eq!(
        case.err(),
        "spec.containers[0].command: no command specified: neither the container nor its image sets one"
    );
}

#[test]
fn expansion_follows_kubernetes() {
    let vars = |name: &str| match name {
        "A" => Some("alpha".to_owned()),
        "B" => Some("beta".to_owned()),
        "" => None,
        _ => None,
    };
    let cases = [
        ("$(A)", "alpha"),
        ("x$(A)y$(B)z", "xalphaybetaz"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$alpha"),
        ("$$$$(A)", "$$(A)"),
        ("$(UNKNOWN)", "$(UNKNOWN)"),
        ("$(A", "$(A"),
        ("$A", "$A"),
        ("a$", "a$"),
        ("$", "$"),
        ("$()", "$()"),
        ("é$(A)ü", "éalphaü"),
        ("$é", "$é"),
        ("no refs", "no refs"),
        ("", ""),
    ];
    for (input, want) in cases {
        assert_eq!(expand(input, vars), want, "{input:?}");
    }
}

#[test]
fn command_and_args_expand_container_env() {
    let mut case = Case::new(json!({
        "command": ["/bin/$(TOOL)", "$$(TOOL)"],
        "args": ["--home=$(HOME)", "$(IMAGE_ONLY)"],
        "env": [{"name": "TOOL", "value": "run"}],
    }));
    case.image.env = strings(&["IMAGE_ONLY=x", "HOME=/root"]);
    let spec = case.build();
    // Image variables are not expansion sources.
    assert_eq!(
        args(&spec),
        strings(&["/bin/run", "$(TOOL)", "--home=$(HOME)", "$(IMAGE_ONLY)"])
    );
}

// ---- environment ----

#[test]
fn env_values_see_only_earlier_variables() {
    let spec = Case::new(json!({"env": [
        {"name": "A", "value": "a"},
        {"name": "B", "value": "$(A)-$(C)"},
        {"name": "C", "value": "c"},
        {"name": "D", "value": "$$(A)"},
    ]}))
    .build();
    assert_eq!(env_var(&spec, "B").as_deref(), Some("a-$(C)"));
    assert_eq!(env_var(&spec, "D").as_deref(), Some("$(A)"));
}

#[test]
fn env_merges_defaults_image_and_container() {
    let mut case = Case::new(json!({"env": [
        {"name": "LANG", "value": "C.UTF-8"},
        {"name": "NEW", "value": "1"},
        {"name": "EMPTY"},
    ]}));
    case.image.env = strings(&["PATH=/opt/bin", "LANG=en_US", "TZ=UTC"]);
    assert_eq!(
        env(&case.build()),
        strings(&[
            "PATH=/opt/bin",
            "HOSTNAME=web",
            "LANG=C.UTF-8",
            "TZ=UTC",
            "NEW=1",
            "EMPTY=",
        ])
    );

    let spec = Case::new(json!({})).build();
    assert_eq!(
        env(&spec),
        strings(&[&format!("PATH={DEFAULT_PATH}"), "HOSTNAME=web"])
    );
}

#[test]
fn env_from_applies_prefix_skips_invalid_keys_and_is_overridden_by_env() {
    let case = Case::new(json!({
        "envFrom": [
            {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
            {"secretRef": {"name": "creds"}},
            {"configMapRef": {"name": "bad-keys"}},
        ],
        "env": [{"name": "CFG_mode", "value": "override"}],
    }))
    .config_map("cfg", json!({"mode": "fast", "level": "3"}))
    .config_map(
        "bad-keys",
        json!({"1st": "x", "has space": "x", "a-b.c_d": "ok", "=": "x"}),
    )
    .secret("creds", &[("USER", b"admin"), ("PASS", b"s3cret")]);
    let spec = case.build();
    assert_eq!(env_var(&spec, "CFG_mode").as_deref(), Some("override"));
    assert_eq!(env_var(&spec, "CFG_level").as_deref(), Some("3"));
    assert_eq!(env_var(&spec, "USER").as_deref(), Some("admin"));
    assert_eq!(env_var(&spec, "PASS").as_deref(), Some("s3cret"));
    assert_eq!(env_var(&spec, "a-b.c_d").as_deref(), Some("ok"));
    for bad in ["1st", "has space"] {
        assert!(env_var(&spec, bad).is_none(), "{bad} should be skipped");
    }
}

#[test]
fn a_prefix_can_make_a_key_valid() {
    let spec = Case::new(json!({"envFrom": [{"configMapRef": {"name": "c"}, "prefix": "X_"}]}))
        .config_map("c", json!({"1st": "v"}))
        .build();
    assert_eq!(env_var(&spec, "X_1st").as_deref(), Some("v"));
}

#[test]
fn secret_string_data_overrides_data() {
    let mut case = Case::new(json!({"env": [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
        {"name": "ONLY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "plain"}}},
    ]}))
    .secret("s", &[("token", b"old")]);
    case.lookup.secrets.get_mut("s").unwrap().string_data = Some(
        [("token", "new"), ("plain", "text")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    );
    let spec = case.build();
    assert_eq!(env_var(&spec, "TOKEN").as_deref(), Some("new"));
    assert_eq!(env_var(&spec, "ONLY").as_deref(), Some("text"));
}

#[test]
fn missing_sources_are_errors_unless_optional() {
    let three = |third: serde_json::Value| {
        Case::new(json!({"env": [
            {"name": "A", "value": "a"},
            {"name": "B", "value": "b"},
            third,
        ]}))
    };
    let cases = [
        (
            three(json!({"name": "C", "valueFrom": {"configMapKeyRef": {"name": "app-cfg", "key": "k"}}})),
            r#"spec.containers[0].env[2].valueFrom.configMapKeyRef: configmap "app-cfg" not found"#,
        ),
        (
            three(json!({"name": "C", "valueFrom": {"configMapKeyRef": {"name": "present", "key": "nope"}}})),
            r#"spec.containers[0].env[2].valueFrom.configMapKeyRef: key "nope" not found in configmap "present""#,
        ),
        (
            three(json!({"name": "C", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}})),
            r#"spec.containers[0].env[2].valueFrom.secretKeyRef: secret "db" not found"#,
        ),
        (
            Case::new(json!({"envFrom": [{"configMapRef": {"name": "present"}}, {"secretRef": {"name": "gone"}}]})),
            r#"spec.containers[0].envFrom[1].secretRef: secret "gone" not found"#,
        ),
        (
            three(json!({"name": "C", "valueFrom": {"fileKeyRef": {"path": "x", "key": "k"}}})),
            "spec.containers[0].env[2].valueFrom.fileKeyRef: fileKeyRef is not supported by kelp-agent",
        ),
    ];
    for (case, want) in cases {
        assert_eq!(case.config_map("present", json!({"k": "v"})).err(), want);
    }

    let spec = Case::new(json!({
        "envFrom": [{"configMapRef": {"name": "gone", "optional": true}, "prefix": "P_"}],
        "env": [
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "present", "key": "nope", "optional": true}}},
            {"name": "C", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": true}}},
            {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "present", "key": "k", "optional": true}}},
        ],
    }))
    .config_map("present", json!({"k": "v"}))
    .build();
    for skipped in ["A", "B", "C"] {
        assert_eq!(env_var(&spec, skipped), None, "{skipped}");
    }
    assert_eq!(env_var(&spec, "D").as_deref(), Some("v"));
}

#[test]
fn non_utf8_secret_value_is_an_error() {
    let case = Case::new(json!({"env": [
        {"name": "BIN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "bin"}}},
    ]}))
    .secret("s", &[("bin", &[0xff, 0xfe])]);
    assert_eq!(
        case.err(),
        r#"spec.containers[0].env[0].valueFrom.secretKeyRef: key "bin" of secret "s" is not UTF-8 text"#
    );
}

#[test]
fn field_refs_read_the_pod() {
    let cases = [
        ("metadata.name", "web"),
        ("metadata.namespace", "shop"),
        ("metadata.uid", "uid-1"),
        ("metadata.labels['app']", "shop-web"),
        ("metadata.labels['missing']", ""),
        ("metadata.annotations['note']", "say \"hi\""),
        ("metadata.labels", "app=\"shop-web\"\ntier=\"front\""),
        ("metadata.annotations", "note=\"say \\\"hi\\\"\""),
        ("spec.nodeName", "node-b"),
        ("spec.serviceAccountName", "robot"),
        ("status.podIP", "10.1.0.7"),
        ("status.podIPs", "10.1.0.7"),
        ("status.hostIP", "192.168.1.20"),
        ("status.hostIPs", "192.168.1.20"),
    ];
    for (path, want) in cases {
        let case = Case::pod(json!({
            "metadata": {
                "labels": {"tier": "front", "app": "shop-web"},
                "annotations": {"note": "say \"hi\""},
            },
            "spec": {
                "nodeName": "node-b",
                "serviceAccountName": "robot",
                "containers": [{"env": [
                    {"name": "V", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}},
                ]}],
            },
        }));
        assert_eq!(env_var(&case.build(), "V").as_deref(), Some(want), "{path}");
    }
}

#[test]
fn field_ref_defaults_and_errors() {
    let field = |path: &str| json!({"env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path}}}]});
    // No spec.nodeName yet: the node's name. No pod IP: empty.
    let mut case = Case::new(field("spec.nodeName"));
    assert_eq!(env_var(&case.build(), "V").as_deref(), Some("node-a"));
    case = Case::new(field("status.podIP"));
    case.pod_ip = None;
    assert_eq!(env_var(&case.build(), "V").as_deref(), Some(""));

    case = Case::new(field("status.hostIP"));
    case.host_ip = None;
    assert_eq!(
        case.err(),
        "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: status.hostIP: the node's IP address is not known"
    );
    assert_eq!(
        Case::new(field("spec.restartPolicy")).err(),
        r#"spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: unsupported fieldPath "spec.restartPolicy""#
    );
    assert_eq!(
        Case::new(json!({"env": [{"name": "V", "valueFrom": {"fieldRef": {"apiVersion": "v2", "fieldPath": "metadata.name"}}}]})).err(),
        r#"spec.containers[0].env[0].valueFrom.fieldRef.apiVersion: unsupported apiVersion "v2"; only "v1" is supported"#
    );
}

#[test]
fn resource_field_refs_round_up_to_the_divisor() {
    let cases = [
        ("limits.cpu", None, "1"),
        ("limits.cpu", Some("1m"), "250"),
        ("limits.cpu", Some("100m"), "3"),
        ("requests.cpu", Some("1m"), "100"),
        ("limits.memory", None, "134217728"),
        ("limits.memory", Some("1Mi"), "128"),
        ("limits.memory", Some("1G"), "1"),
        ("requests.memory", Some("1Mi"), "64"),
        ("limits.hugepages-2Mi", Some("1Mi"), "4"),
        ("requests.ephemeral-storage", Some("1Mi"), "0"),
    ];
    for (resource, divisor, want) in cases {
        let mut sel = json!({"resource": resource});
        if let Some(d) = divisor {
            sel["divisor"] = json!(d);
        }
        let case = Case::new(json!({
            "resources": {
                "limits": {"cpu": "250m", "memory": "128Mi", "hugepages-2Mi": "4Mi"},
                "requests": {"cpu": "100m", "memory": "64Mi"},
            },
            "env": [{"name": "V", "valueFrom": {"resourceFieldRef": sel}}],
        }));
        assert_eq!(
            env_var(&case.build(), "V").as_deref(),
            Some(want),
            "{resource} / {divisor:?}"
        );
    }
}

#[test]
fn resource_field_refs_default_limits_to_allocatable() {
    let container = json!({
        "resources": {"limits": {"cpu": "1"}},
        "env": [
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
        ],
    });
    let mut case = Case::new(container.clone());
    assert_eq!(
        case.err(),
        "spec.containers[0].env[0].valueFrom.resourceFieldRef.resource: limits.memory is not set and the node's allocatable memory is not known"
    );
    case.allocatable = Some(serde_json::from_value(json!({"memory": "2Gi", "cpu": "4"})).unwrap());
    let spec = case.build();
    assert_eq!(env_var(&spec, "MEM").as_deref(), Some("2048"));
    // No request: the limit (API defaulting).
    assert_eq!(env_var(&spec, "REQ").as_deref(), Some("1000"));
}

#[test]
fn resource_field_ref_of_another_container() {
    let case = Case::pod(json!({"spec": {"containers": [
        {"name": "app", "env": [{"name": "V", "valueFrom": {"resourceFieldRef": {"containerName": "side", "resource": "limits.memory", "divisor": "1Mi"}}}]},
        {"name": "side", "resources": {"limits": {"memory": "32Mi"}}},
    ]}}));
    assert_eq!(env_var(&case.build(), "V").as_deref(), Some("32"));
    let case = Case::new(
        json!({"env": [{"name": "V", "valueFrom": {"resourceFieldRef": {"containerName": "ghost", "resource": "limits.cpu"}}}]}),
    );
    assert_eq!(
        case.err(),
        r#"spec.containers[0].env[0].valueFrom.resourceFieldRef.containerName: container "ghost" not found in the pod"#
    );
    let case = Case::new(
        json!({"env": [{"name": "V", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]}),
    );
    assert_eq!(
        case.err(),
        r#"spec.containers[0].env[0].valueFrom.resourceFieldRef.resource: unsupported resource "limits.gpu""#
    );
}

// ---- working directory ----

#[test]
fn working_dir_container_then_image_then_root() {
    let cases = [
        (json!({"workingDir": "/srv"}), Some("/img"), "/srv"),
        (json!({}), Some("/img"), "/img"),
        (json!({}), None, "/"),
        (json!({"workingDir": ""}), None, "/"),
    ];
    for (container, image_dir, want) in cases {
        let mut case = Case::new(container);
        case.image.working_dir = image_dir.map(str::to_owned);
        let spec = case.build();
        assert_eq!(spec.process().as_ref().unwrap().cwd(), Path::new(want));
    }
    assert_eq!(
        Case::new(json!({"workingDir": "rel"})).err(),
        r#"spec.containers[0].workingDir: "rel" is not an absolute path"#
    );
}

// ---- user ----

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      # a comment\n\
                      app:x:1000:1000::/home/app:/bin/sh\n\
                      nobody:x:65534:65534::/:/sbin/nologin\n\
                      broken line\n";
const GROUP: &str = "root:x:0:\n\
                     app:x:1000:\n\
                     staff:x:50:app,other\n\
                     video:x:44:app\n\
                     nogroup:x:65534:\n";

/// (container securityContext, pod securityContext, image user, uid, gid, extra groups)
type UserCase = (
    serde_json::Value,
    serde_json::Value,
    Option<&'static str>,
    u32,
    u32,
    Vec<u32>,
);

#[test]
fn user_from_security_context_and_image() {
    let cases: Vec<UserCase> = vec![
        (json!({}), json!({}), None, 0, 0, vec![]),
        (json!({}), json!({}), Some("1234"), 1234, 0, vec![]),
        (json!({}), json!({}), Some("1234:5678"), 1234, 5678, vec![]),
        (json!({}), json!({}), Some("app"), 1000, 1000, vec![50, 44]),
        (json!({}), json!({}), Some("app:staff"), 1000, 50, vec![44]),
        (json!({}), json!({}), Some("nobody:44"), 65534, 44, vec![]),
        (
            json!({}),
            json!({"runAsUser": 1000}),
            Some("nobody"),
            1000,
            1000,
            vec![50, 44],
        ),
        (
            json!({"runAsUser": 2000}),
            json!({"runAsUser": 1000}),
            None,
            2000,
            0,
            vec![],
        ),
        (
            json!({"runAsGroup": 7}),
            json!({"runAsUser": 1000, "runAsGroup": 8}),
            None,
            1000,
            7,
            vec![50, 44],
        ),
        (
            json!({"runAsUser": 1000}),
            json!({}),
            Some("1:1"),
            1000,
            1000,
            vec![50, 44],
        ),
        (
            json!({"runAsUser": 3000}),
            json!({"supplementalGroups": [10, 11, 10], "fsGroup": 2000}),
            None,
            3000,
            0,
            vec![10, 11, 2000],
        ),
        (
            json!({}),
            json!({"supplementalGroupsPolicy": "Strict", "supplementalGroups": [10]}),
            Some("app"),
            1000,
            1000,
            vec![10],
        ),
    ];
    for (sc, pod_sc, image_user, uid, gid, groups) in cases {
        let mut case = Case::pod(json!({"spec": {
            "securityContext": pod_sc,
            "containers": [{"securityContext": sc}],
        }}));
        case.image.user = image_user.map(str::to_owned);
        case.write_etc("passwd", PASSWD);
        case.write_etc("group", GROUP);
        assert_eq!(
            user(&case.build()),
            (uid, gid, groups),
            "{sc} {pod_sc} {image_user:?}"
        );
    }
}

#[test]
fn unknown_image_user_or_group_is_an_error() {
    let mut case = Case::new(json!({}));
    case.write_etc("passwd", PASSWD);
    case.image.user = Some("ghost".into());
    assert_eq!(
        case.err(),
        r#"spec.containers[0].image: the image's user "ghost" is not in its /etc/passwd"#
    );
    case.image.user = Some("app:ghosts".into());
    assert_eq!(
        case.err(),
        r#"spec.containers[0].image: the image's group "ghosts" is not in its /etc/group"#
    );
}

#[test]
fn symlinked_account_files_are_refused() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("passwd"), "app:x:0:0::/:/bin/sh\n").unwrap();

    let mut case = Case::new(json!({}));
    case.image.user = Some("app".into());
    std::fs::create_dir(case.rootfs.path().join("etc")).unwrap();
    std::os::unix::fs::symlink(
        host.path().join("passwd"),
        case.rootfs.path().join("etc/passwd"),
    )
    .unwrap();
    assert_eq!(
        case.err(),
        "spec.containers[0].image: /etc/passwd of the image is a symlink; kelp-agent refuses to follow it"
    );

    let mut case = Case::new(json!({}));
    case.image.user = Some("app".into());
    std::os::unix::fs::symlink(host.path(), case.rootfs.path().join("etc")).unwrap();
    assert_eq!(
        case.err(),
        "spec.containers[0].image: /etc of the image is a symlink; kelp-agent refuses to follow it"
    );

    // A symlinked /etc/group is refused too, even for a numeric user.
    let case = Case::new(json!({"securityContext": {"runAsUser": 1000}}));
    case.write_etc("passwd", PASSWD);
    std::os::unix::fs::symlink("/etc/group", case.rootfs.path().join("etc/group")).unwrap();
    assert_eq!(
        case.err(),
        "spec.containers[0].securityContext.runAsUser: /etc/group of the image is a symlink; kelp-agent refuses to follow it"
    );
}

#[test]
fn run_as_non_root() {
    let err = |sc: serde_json::Value, pod_sc: serde_json::Value, image_user: Option<&str>| {
        let mut case = Case::pod(json!({"spec": {
            "securityContext": pod_sc,
            "containers": [{"securityContext": sc}],
        }}));
        case.image.user = image_user.map(str::to_owned);
        case.write_etc("passwd", PASSWD);
        case.build_at("spec.containers[0]")
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(
        err(json!({"runAsNonRoot": true, "runAsUser": 0}), json!({}), Some("1000")).as_deref(),
        Some("spec.containers[0].securityContext.runAsNonRoot: runAsUser 0 breaks the non-root policy")
    );
    assert_eq!(
        err(json!({}), json!({"runAsNonRoot": true}), None).as_deref(),
        Some("spec.securityContext.runAsNonRoot: the image will run as root")
    );
    assert_eq!(
        err(json!({}), json!({"runAsNonRoot": true}), Some("0:1000")).as_deref(),
        Some("spec.securityContext.runAsNonRoot: the image will run as root")
    );
    assert_eq!(
        err(json!({"runAsNonRoot": true}), json!({}), Some("app")).as_deref(),
        Some(
            r#"spec.containers[0].securityContext.runAsNonRoot: the image's user "app" is not numeric; cannot verify that it is not root"#
        )
    );
    // Allowed: a non-zero uid from the security context or the image, or the container
    // turning the pod's policy off.
    assert_eq!(
        err(
            json!({"runAsNonRoot": true}),
            json!({"runAsUser": 1000}),
            None
        ),
        None
    );
    assert_eq!(
        err(json!({}), json!({"runAsNonRoot": true}), Some("1000")),
        None
    );
    assert_eq!(
        err(
            json!({"runAsNonRoot": false}),
            json!({"runAsNonRoot": true}),
            None
        ),
        None
    );
}

#[test]
fn negative_ids_are_errors() {
    let case = Case::pod(json!({"spec": {
        "securityContext": {"supplementalGroups": [5, -1]},
        "containers": [{}],
    }}));
    assert_eq!(
        case.err(),
        "spec.securityContext.supplementalGroups[1]: -1 is not a valid id: must be between 0 and 4294967295"
    );
}

// ---- resources ----

#[test]
fn cpu_and_memory_limits() {
    // (resources, quota, period, shares, memory limit)
    let cases = [
        (
            json!({"limits": {"cpu": "250m"}}),
            Some(25_000),
            Some(100_000),
            256,
            None,
        ),
        (
            json!({"limits": {"cpu": "1.5"}, "requests": {"cpu": "1"}}),
            Some(150_000),
            Some(100_000),
            1024,
            None,
        ),
        (
            json!({"limits": {"cpu": "1m"}, "requests": {"cpu": "1m"}}),
            Some(1_000),
            Some(100_000),
            2,
            None,
        ),
        (json!({"requests": {"cpu": "100m"}}), None, None, 102, None),
        (
            json!({"limits": {"memory": "128Mi"}}),
            None,
            None,
            2,
            Some(134_217_728),
        ),
        (json!({}), None, None, 2, None),
    ];
    for (resources, quota, period, shares, memory) in cases {
        let spec = Case::new(json!({"resources": resources})).build();
        let res = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        let cpu = res.cpu().clone().unwrap();
        assert_eq!(cpu.quota(), quota, "{resources}");
        assert_eq!(cpu.period(), period, "{resources}");
        assert_eq!(cpu.shares(), Some(shares), "{resources}");
        let mem = res.memory().as_ref();
        assert_eq!(mem.and_then(|m| m.limit()), memory, "{resources}");
        assert_eq!(mem.and_then(|m| m.swap()), memory, "{resources}");
    }
}

#[test]
fn cpu_arithmetic_matches_the_kubelet() {
    assert_eq!(milli_cpu_to_shares(0), 2);
    assert_eq!(milli_cpu_to_shares(1), 2);
    assert_eq!(milli_cpu_to_shares(250), 256);
    assert_eq!(milli_cpu_to_shares(1_000_000), 262_144);
    assert_eq!(milli_cpu_to_quota(0), None);
    assert_eq!(milli_cpu_to_quota(5), Some(1_000));
    assert_eq!(milli_cpu_to_quota(2_500), Some(250_000));
}

#[test]
fn pids_and_hugepages() {
    let mut case = Case::new(
        json!({"resources": {"limits": {"hugepages-2Mi": "8Mi", "hugepages-1Gi": "2Gi"}}}),
    );
    case.pids_limit = Some(512);
    let spec = case.build();
    let res = spec.linux().as_ref().unwrap().resources().clone().unwrap();
    assert_eq!(res.pids().unwrap().limit(), 512);
    let pages: Vec<(String, i64)> = res
        .hugepage_limits()
        .clone()
        .unwrap()
        .iter()
        .map(|h| (h.page_size().clone(), h.limit()))
        .collect();
    assert_eq!(
        pages,
        vec![("1GB".to_owned(), 2 << 30), ("2MB".to_owned(), 8 << 20)]
    );
    let spec = Case::new(json!({})).build();
    assert!(spec
        .linux()
        .as_ref()
        .unwrap()
        .resources()
        .as_ref()
        .unwrap()
        .pids()
        .is_none());
}

#[test]
fn devices_are_denied_except_the_defaults() {
    let spec = Case::new(json!({})).build();
    let linux = spec.linux().as_ref().unwrap();
    let rules: Vec<String> = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .clone()
        .unwrap()
        .iter()
        .map(|r| format!("{}{}", if r.allow() { "+" } else { "-" }, r))
        .collect();
    assert_eq!(
        rules,
        strings(&[
            "-a *:* rwm",
            "+c 1:3 rwm",
            "+c 1:5 rwm",
            "+c 1:7 rwm",
            "+c 1:8 rwm",
            "+c 1:9 rwm",
            "+c 5:0 rwm",
            "+c 136:* rwm",
            "+c 5:2 rwm",
        ])
    );
    let devices: Vec<PathBuf> = linux
        .devices()
        .clone()
        .unwrap()
        .iter()
        .map(|d| d.path().clone())
        .collect();
    assert_eq!(devices.len(), 6);
    assert!(devices.contains(&PathBuf::from("/dev/urandom")));
}

// ---- security ----

#[test]
fn capabilities_add_and_drop() {
    let default: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
    let all: HashSet<Capability> = ALL_CAPABILITIES.into_iter().collect();
    let with = |extra: &[Capability], without: &[Capability]| {
        let mut s = default.clone();
        s.extend(extra.iter().copied());
        for c in without {
            s.remove(c);
        }
        s
    };
    let cases = [
        (json!(null), default.clone()),
        (
            json!({"add": ["NET_ADMIN"]}),
            with(&[Capability::NetAdmin], &[]),
        ),
        (
            json!({"add": ["CAP_SYS_TIME", "sys_nice"], "drop": ["kill", "CAP_NET_RAW"]}),
            with(
                &[Capability::SysTime, Capability::SysNice],
                &[Capability::Kill, Capability::NetRaw],
            ),
        ),
        (
            json!({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}),
            [Capability::NetBindService].into_iter().collect(),
        ),
        (json!({"drop": ["all"]}), HashSet::new()),
        (json!({"add": ["ALL"], "drop": ["CHOWN"]}), {
            let mut s = all.clone();
            s.remove(&Capability::Chown);
            s
        }),
        (
            json!({"add": ["SYS_ADMIN"], "drop": ["SYS_ADMIN"]}),
            default.clone(),
        ),
    ];
    for (capabilities, want) in cases {
        let spec = Case::new(json!({"securityContext": {"capabilities": capabilities}})).build();
        assert_eq!(caps(&spec), want, "{capabilities}");
    }
    assert_eq!(
        Case::new(json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN", "FLY"]}}}))
            .err(),
        r#"spec.containers[0].securityContext.capabilities.add[1]: unknown capability "FLY""#
    );
}

#[test]
fn every_capability_name_parses() {
    for cap in ALL_CAPABILITIES {
        let name = serde_json::to_value(cap).unwrap();
        let name = name.as_str().unwrap();
        assert_eq!(security::parse_capability(name), Some(cap), "{name}");
        let bare = name.strip_prefix("CAP_").unwrap();
        assert_eq!(security::parse_capability(bare), Some(cap), "{bare}");
    }
    assert_eq!(ALL_CAPABILITIES.iter().collect::<HashSet<_>>().len(), 41);
}

#[test]
fn unprivileged_defaults() {
    let spec = Case::new(json!({})).build();
    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(
        linux.masked_paths().clone().unwrap(),
        strings(&MASKED_PATHS)
    );
    assert_eq!(
        linux.readonly_paths().clone().unwrap(),
        strings(&[
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ])
    );
    assert!(linux.seccomp().is_none());
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.no_new_privileges(), Some(false));
    assert_eq!(process.apparmor_profile(), &None);
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(false));
    assert!(options(&mount_at(&spec, "/sys")).contains(&"ro".to_owned()));
}

#[test]
fn privileged_gets_everything() {
    let spec = Case::new(json!({"securityContext": {
        "privileged": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }}))
    .build();
    assert_eq!(caps(&spec), ALL_CAPABILITIES.into_iter().collect());
    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(linux.masked_paths().clone().unwrap(), Vec::<String>::new());
    assert_eq!(
        linux.readonly_paths().clone().unwrap(),
        Vec::<String>::new()
    );
    let rules = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .clone()
        .unwrap();
    assert_eq!(rules.len(), 1);
    assert!(rules[0].allow());
    assert_eq!(rules[0].to_string(), "a *:* rwm");
    for dest in ["/sys", "/sys/fs/cgroup"] {
        let opts = options(&mount_at(&spec, dest));
        assert!(
            opts.contains(&"rw".to_owned()) && !opts.contains(&"ro".to_owned()),
            "{dest}"
        );
    }
}

#[test]
fn no_new_privileges_and_read_only_root() {
    let spec = Case::new(json!({"securityContext": {
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
    }}))
    .build();
    assert_eq!(
        spec.process().as_ref().unwrap().no_new_privileges(),
        Some(true)
    );
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    let spec = Case::new(json!({"securityContext": {"allowPrivilegeEscalation": true}})).build();
    assert_eq!(
        spec.process().as_ref().unwrap().no_new_privileges(),
        Some(false)
    );
}

#[test]
fn seccomp_profiles() {
    let case = |sc: serde_json::Value, pod_sc: serde_json::Value| {
        Case::pod(
            json!({"spec": {"securityContext": pod_sc, "containers": [{"securityContext": sc}]}}),
        )
    };
    assert_eq!(
        case(json!({"seccompProfile": {"type": "RuntimeDefault"}}), json!({})).err(),
        "spec.containers[0].securityContext.seccompProfile: type RuntimeDefault cannot be applied: kelp-agent is built without libseccomp; use Unconfined"
    );
    assert_eq!(
        case(json!({}), json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}})).err(),
        "spec.securityContext.seccompProfile: type Localhost cannot be applied: kelp-agent is built without libseccomp; use Unconfined"
    );
    // The container's setting wins over the pod's.
    case(
        json!({"seccompProfile": {"type": "Unconfined"}}),
        json!({"seccompProfile": {"type": "RuntimeDefault"}}),
    )
    .build();
    case(json!({}), json!({"seccompProfile": {"type": "Unconfined"}})).build();
}

#[test]
fn apparmor_profiles() {
    let spec = Case::new(json!({"securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-nginx"}}})).build();
    assert_eq!(
        spec.process()
            .as_ref()
            .unwrap()
            .apparmor_profile()
            .as_deref(),
        Some("k8s-nginx")
    );
    let spec =
        Case::new(json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}})).build();
    assert_eq!(spec.process().as_ref().unwrap().apparmor_profile(), &None);
    assert_eq!(
        Case::pod(json!({"spec": {"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}, "containers": [{}]}})).err(),
        "spec.securityContext.appArmorProfile: type RuntimeDefault cannot be applied: kelp-agent has no default AppArmor profile; use Unconfined or Localhost"
    );
    assert_eq!(
        Case::new(json!({"securityContext": {"appArmorProfile": {"type": "Localhost"}}})).err(),
        "spec.containers[0].securityContext.appArmorProfile.localhostProfile: a profile name is required for type Localhost"
    );
}

#[test]
fn unsupported_settings_are_refused() {
    let cases = [
        (
            json!({"spec": {"containers": [{"securityContext": {"seLinuxOptions": {"level": "s0:c1"}}}]}}),
            "spec.containers[0].securityContext.seLinuxOptions: SELinux is not supported by kelp-agent",
        ),
        (
            json!({"spec": {"securityContext": {"seLinuxOptions": {"type": "spc_t"}}, "containers": [{}]}}),
            "spec.securityContext.seLinuxOptions: SELinux is not supported by kelp-agent",
        ),
        (
            json!({"spec": {"securityContext": {"windowsOptions": {"runAsUserName": "x"}}, "containers": [{}]}}),
            "spec.securityContext.windowsOptions: Windows options cannot be applied to a Linux container",
        ),
        (
            json!({"spec": {"containers": [{"securityContext": {"procMount": "Unmasked"}}]}}),
            "spec.containers[0].securityContext.procMount: procMount Unmasked needs user namespaces, which kelp-agent does not support",
        ),
        (
            json!({"spec": {"securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}, "containers": [{}]}}),
            "spec.securityContext.sysctls: pod sysctls are not supported by kelp-agent",
        ),
        (
            json!({"spec": {"hostUsers": false, "containers": [{}]}}),
            "spec.hostUsers: user namespaces are not supported by kelp-agent",
        ),
        (
            json!({"spec": {"containers": [{"tty": true}]}}),
            "spec.containers[0].tty: terminals are not supported by kelp-agent",
        ),
        (
            json!({"spec": {"containers": [{"stdin": true}]}}),
            "spec.containers[0].stdin: attaching to a container's stdin is not supported by kelp-agent",
        ),
    ];
    for (pod, want) in cases {
        assert_eq!(Case::pod(pod).err(), want);
    }
    // Empty or explicit defaults are fine.
    Case::pod(json!({"spec": {
        "securityContext": {"seLinuxOptions": {}, "sysctls": []},
        "containers": [{"securityContext": {"procMount": "Default"}, "tty": false}],
    }}))
    .build();
}

// ---- namespaces and hostname ----

#[test]
fn namespaces_join_the_sandbox() {
    let ns = |spec: &Spec| -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        spec.linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .clone()
            .unwrap()
            .iter()
            .map(|n| (n.typ(), n.path().clone()))
            .collect()
    };
    let mut case = Case::new(json!({}));
    let joined = |p: &str| Some(PathBuf::from(p));
    assert_eq!(
        ns(&case.build()),
        vec![
            (LinuxNamespaceType::Pid, None),
            (LinuxNamespaceType::Network, joined("/run/kelp/ns/net")),
            (LinuxNamespaceType::Ipc, joined("/run/kelp/ns/ipc")),
            (LinuxNamespaceType::Uts, joined("/run/kelp/ns/uts")),
            (LinuxNamespaceType::Mount, None),
            (LinuxNamespaceType::Cgroup, None),
        ]
    );
    case.namespaces.pid = Some("/run/kelp/ns/pid".into());
    assert_eq!(
        ns(&case.build())[0],
        (LinuxNamespaceType::Pid, joined("/run/kelp/ns/pid"))
    );
}

#[test]
fn hostname_is_the_pods() {
    let hostname = |pod: serde_json::Value| Case::pod(pod).build().hostname().clone().unwrap();
    assert_eq!(hostname(json!({"spec": {"containers": [{}]}})), "web");
    assert_eq!(
        hostname(json!({"spec": {"hostname": "db-0", "subdomain": "db", "containers": [{}]}})),
        "db-0"
    );
    let long = format!("{}-{}", "a".repeat(62), "tail");
    assert_eq!(
        hostname(json!({"metadata": {"name": long}, "spec": {"containers": [{}]}})),
        "a".repeat(62)
    );
}

// ---- mounts ----

#[test]
fn default_and_etc_mounts() {
    let spec = Case::new(json!({})).build();
    let dests: Vec<PathBuf> = mounts(&spec)
        .iter()
        .map(|m| m.destination().clone())
        .collect();
    let want: Vec<PathBuf> = [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/hostname",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(dests, want);
    let hosts = mount_at(&spec, "/etc/hosts");
    assert_eq!(hosts.typ().as_deref(), Some("bind"));
    assert_eq!(
        hosts.source().as_deref(),
        Some(Path::new("/var/lib/kelp/pods/uid-1/hosts"))
    );
    assert_eq!(options(&hosts), strings(&["bind", "ro"]));
    assert_eq!(
        options(&mount_at(&spec, "/dev/shm")),
        strings(&["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"])
    );
    assert_eq!(
        mount_at(&spec, "/sys/fs/cgroup").typ().as_deref(),
        Some("cgroup")
    );
}

#[test]
fn sub_path_through_a_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::symlink("/etc", data.join("evil")).unwrap();
    let mut case = Case::pod(json!({"spec": {"containers": [{
        "volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "evil/ssl"}],
    }]}}));
    case.volumes.insert("data".into(), data.clone());
    assert_eq!(
        case.err(),
        r#"spec.containers[0].volumeMounts[0].subPath: "evil/ssl" passes through a symlink in the volume; refused"#
    );
}

#[test]
fn volume_mounts_bind_the_prepared_paths() {
    let mut case = Case::pod(json!({"spec": {"containers": [{
        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [
            {"name": "data", "mountPath": "/data/sub/deep", "subPath": "a/b"},
            {"name": "data", "mountPath": "/data", "readOnly": true},
            {"name": "logs", "mountPath": "/logs", "subPathExpr": "$(POD)/x", "mountPropagation": "HostToContainer"},
            {"name": "cfg", "mountPath": "/etc/hosts"},
            {"name": "cfg", "mountPath": "/ro", "readOnly": true, "recursiveReadOnly": "Enabled"},
        ],
    }]}}));
    let tmp = tempfile::tempdir().unwrap();
    let vol = tmp.path().display().to_string();
    for name in ["data", "logs", "cfg"] {
        let path = tmp.path().join(name);
        std::fs::create_dir(&path).unwrap();
        case.volumes.insert(name.into(), path);
    }
    let spec = case.build();
    let binds: Vec<(String, String, Vec<String>)> = mounts(&spec)
        .iter()
        .filter(|m| m.source().as_ref().is_some_and(|s| s.starts_with(&vol)))
        .map(|m| {
            (
                m.destination().display().to_string(),
                m.source()
                    .as_ref()
                    .unwrap()
                    .display()
                    .to_string()
                    .replacen(&vol, "/vol", 1),
                options(m),
            )
        })
        .collect();
    let row = |d: &str, s: &str, o: &[&str]| (d.to_owned(), s.to_owned(), strings(o));
    // subPaths are created inside their volume, as the kubelet does.
    assert!(tmp.path().join("data/a/b").is_dir());
    assert!(tmp.path().join("logs/web/x").is_dir());
    assert_eq!(
        binds,
        vec![
            row("/data", "/vol/data", &["rbind", "rprivate", "ro"]),
            row("/logs", "/vol/logs/web/x", &["rbind", "rslave", "rw"]),
            row("/ro", "/vol/cfg", &["rbind", "rprivate", "ro", "rro"]),
            row("/etc/hosts", "/vol/cfg", &["rbind", "rprivate", "rw"]),
            row(
                "/data/sub/deep",
                "/vol/data/a/b",
                &["rbind", "rprivate", "rw"]
            ),
        ]
    );
    // The volume at /etc/hosts replaces the pod's hosts file.
    assert_eq!(
        mounts(&spec)
            .iter()
            .filter(|m| m.destination() == Path::new("/etc/hosts"))
            .count(),
        1
    );
    assert_eq!(
        spec.linux()
            .as_ref()
            .unwrap()
            .rootfs_propagation()
            .as_deref(),
        Some("rslave")
    );
}

#[test]
fn volume_mount_errors() {
    let case = |mounts: serde_json::Value| {
        let mut case = Case::new(json!({
            "env": [{"name": "EMPTY", "value": ""}],
            "volumeMounts": mounts,
        }));
        case.volumes.insert("data".into(), "/vol/data".into());
        case.err()
    };
    let ok = json!({"name": "data", "mountPath": "/data"});
    let cases = [
        (
            json!([ok, {"name": "nope", "mountPath": "/x"}]),
            r#"spec.containers[0].volumeMounts[1].name: volume "nope" not found in the pod's volumes"#,
        ),
        (
            json!([{"name": "data", "mountPath": "/x", "subPath": "../etc"}]),
            r#"spec.containers[0].volumeMounts[0].subPath: "../etc" must not contain '..'"#,
        ),
        (
            json!([{"name": "data", "mountPath": "/x", "subPath": "a/../../b"}]),
            r#"spec.containers[0].volumeMounts[0].subPath: "a/../../b" must not contain '..'"#,
        ),
        (
            json!([{"name": "data", "mountPath": "/x", "subPath": "/etc"}]),
            r#"spec.containers[0].volumeMounts[0].subPath: "/etc" must be a relative path"#,
        ),
        (
            json!([{"name": "data", "mountPath": "/x", "subPathExpr": "$(EMPTY)/$(UNSET)"}]),
            "spec.containers[0].volumeMounts[0].subPathExpr: missing value for EMPTY, UNSET",
        ),
        (
            json!([{"name": "data", "mountPath": "relative"}]),
            r#"spec.containers[0].volumeMounts[0].mountPath: "relative" must be an absolute path"#,
        ),
        (
            json!([{"name": "data", "mountPath": "/x", "mountPropagation": "Bidirectional"}]),
            "spec.containers[0].volumeMounts[0].mountPropagation: Bidirectional mount propagation is available only to privileged containers",
        ),
        (
            json!([{"name": "data", "mountPath": "/x", "recursiveReadOnly": "Enabled"}]),
            "spec.containers[0].volumeMounts[0].recursiveReadOnly: needs readOnly: true and mountPropagation None",
        ),
    ];
    for (mounts, want) in cases {
        assert_eq!(case(mounts.clone()), want, "{mounts}");
    }
}

#[test]
fn init_container_errors_name_their_path() {
    let case = Case::pod(json!({"spec": {
        "initContainers": [{"name": "init", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]}],
        "containers": [{}],
    }}));
    assert_eq!(
        case.build_at("spec.initContainers[0]")
            .unwrap_err()
            .to_string(),
        r#"spec.initContainers[0].env[0].valueFrom.configMapKeyRef: configmap "gone" not found"#
    );
}

// ---- the whole spec ----

#[test]
fn spec_basics() {
    let spec = Case::new(json!({})).build();
    assert_eq!(spec.version(), OCI_VERSION);
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.terminal(), Some(false));
    let rlimits = process.rlimits().clone().unwrap();
    assert_eq!(rlimits.len(), 1);
    assert_eq!(
        (rlimits[0].soft(), rlimits[0].hard()),
        (nofile_limit(), nofile_limit())
    );
    assert!(nofile_limit() <= NOFILE_LIMIT);
    let case = Case::new(json!({}));
    let spec = case.build();
    assert_eq!(spec.root().as_ref().unwrap().path(), case.rootfs.path());
    assert_eq!(
        spec.linux().as_ref().unwrap().cgroups_path().as_deref(),
        Some(Path::new("/kelp/pod-uid-1/app"))
    );
}

#[test]
fn spec_round_trips_through_config_json() {
    let mut case = Case::new(json!({
        "command": ["/bin/app"],
        "env": [{"name": "A", "value": "1"}],
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}, "runAsUser": 1000},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }));
    case.volumes.insert("data".into(), "/vol/data".into());
    case.pids_limit = Some(100);
    let spec = case.build();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    spec.save(&path).unwrap();
    assert_eq!(Spec::load(&path).unwrap(), spec);

    let value = serde_json::to_value(&spec).unwrap();
    assert_eq!(value["ociVersion"], "1.0.2-dev");
    assert_eq!(value["process"]["user"]["uid"], 1000);
    assert_eq!(value["linux"]["resources"]["cpu"]["quota"], 50_000);
    assert_eq!(value["linux"]["resources"]["memory"]["limit"], 67_108_864);
    assert_eq!(value["linux"]["namespaces"][1]["type"], "network");
    assert!(value["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .contains(&json!("CAP_NET_ADMIN")));
}
