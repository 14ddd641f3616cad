//! Defaulting: the values Kubernetes fills in when a field is left out.
//!
//! Run by admission on every write, after conversion and before validation; never while
//! deserializing. The rules follow Kubernetes' `SetDefaults_*` functions for `core/v1`,
//! `apps/v1` and `batch/v1`, and are table-tested below against its documentation.
//! Defaulting is idempotent: applying it twice changes nothing the second time.

use super::apps::{
    DaemonSetUpdateStrategy, DeploymentStrategy, PvcRetentionPolicy, RollingUpdate,
    StatefulSetRollingUpdate, StatefulSetUpdateStrategy,
};
use super::core::{Container, PodSpec, PodTemplateSpec, Probe, ServiceSpec, Volume};
use super::intstr::IntOrString;
use super::object::Object;

/// Mode 0644, the default for files projected from ConfigMaps, Secrets and the downward API.
pub const DEFAULT_FILE_MODE: i32 = 0o644;

/// Fills in every default of `obj`.
pub fn apply(obj: &mut Object) {
    match obj {
        Object::Pod(p) => {
            if let Some(spec) = p.spec.as_mut() {
                pod_spec(spec);
            }
        }
        Object::Namespace(ns) => {
            let status = ns.status.get_or_insert_with(Default::default);
            status.phase.get_or_insert_with(|| "Active".into());
        }
        Object::Secret(s) => {
            s.type_.get_or_insert_with(|| "Opaque".into());
        }
        Object::Service(s) => {
            if let Some(spec) = s.spec.as_mut() {
                service_spec(spec);
            }
        }
        Object::PersistentVolume(pv) => {
            if let Some(spec) = pv.spec.as_mut() {
                spec.persistent_volume_reclaim_policy
                    .get_or_insert_with(|| "Retain".into());
                spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
            }
        }
        Object::PersistentVolumeClaim(pvc) => {
            if let Some(spec) = pvc.spec.as_mut() {
                spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
            }
        }
        Object::ReplicaSet(rs) => {
            if let Some(spec) = rs.spec.as_mut() {
                spec.replicas.get_or_insert(1);
                template(spec.template.as_mut());
            }
        }
        Object::Deployment(d) => {
            if let Some(spec) = d.spec.as_mut() {
                spec.replicas.get_or_insert(1);
                let st = spec
                    .strategy
                    .get_or_insert_with(DeploymentStrategy::default);
                let ty = st.type_.get_or_insert_with(|| "RollingUpdate".into());
                if ty == "RollingUpdate" {
                    let ru = st.rolling_update.get_or_insert_with(RollingUpdate::default);
                    ru.max_unavailable
                        .get_or_insert_with(|| IntOrString::String("25%".into()));
                    ru.max_surge
                        .get_or_insert_with(|| IntOrString::String("25%".into()));
                }
                spec.revision_history_limit.get_or_insert(10);
                spec.progress_deadline_seconds.get_or_insert(600);
                template(spec.template.as_mut());
            }
        }
        Object::DaemonSet(ds) => {
            if let Some(spec) = ds.spec.as_mut() {
                let st = spec
                    .update_strategy
                    .get_or_insert_with(DaemonSetUpdateStrategy::default);
                let ty = st.type_.get_or_insert_with(|| "RollingUpdate".into());
                if ty == "RollingUpdate" {
                    let ru = st.rolling_update.get_or_insert_with(RollingUpdate::default);
                    ru.max_unavailable.get_or_insert(IntOrString::Int(1));
                    ru.max_surge.get_or_insert(IntOrString::Int(0));
                }
                spec.revision_history_limit.get_or_insert(10);
                template(spec.template.as_mut());
            }
        }
        Object::StatefulSet(sts) => {
            if let Some(spec) = sts.spec.as_mut() {
                spec.replicas.get_or_insert(1);
                spec.pod_management_policy
                    .get_or_insert_with(|| "OrderedReady".into());
                let st = spec
                    .update_strategy
                    .get_or_insert_with(StatefulSetUpdateStrategy::default);
                let ty = st.type_.get_or_insert_with(|| "RollingUpdate".into());
                if ty == "RollingUpdate" {
                    st.rolling_update
                        .get_or_insert_with(StatefulSetRollingUpdate::default)
                        .partition
                        .get_or_insert(0);
                }
                spec.revision_history_limit.get_or_insert(10);
                let policy = spec
                    .persistent_volume_claim_retention_policy
                    .get_or_insert_with(PvcRetentionPolicy::default);
                policy.when_deleted.get_or_insert_with(|| "Retain".into());
                policy.when_scaled.get_or_insert_with(|| "Retain".into());
                for claim in spec.volume_claim_templates.iter_mut().flatten() {
                    if let Some(s) = claim.spec.as_mut() {
                        s.volume_mode.get_or_insert_with(|| "Filesystem".into());
                    }
                }
                template(spec.template.as_mut());
            }
        }
        Object::Job(j) => {
            if let Some(spec) = j.spec.as_mut() {
                job_spec(spec);
            }
        }
        Object::CronJob(cj) => {
            if let Some(spec) = cj.spec.as_mut() {
                spec.concurrency_policy
                    .get_or_insert_with(|| "Allow".into());
                spec.suspend.get_or_insert(false);
                spec.successful_jobs_history_limit.get_or_insert(3);
                spec.failed_jobs_history_limit.get_or_insert(1);
                if let Some(js) = spec.job_template.spec.as_mut() {
                    job_spec(js);
                }
            }
        }
        Object::Node(_)
        | Object::ConfigMap(_)
        | Object::ServiceAccount(_)
        | Object::ResourceQuota(_)
        | Object::LimitRange(_)
        | Object::Event(_)
        | Object::Ingress(_)
        | Object::ClusterRole(_)
        | Object::ClusterRoleBinding(_)
        | Object::Role(_)
        | Object::RoleBinding(_) => {}
    }
}

fn template(t: Option<&mut PodTemplateSpec>) {
    if let Some(spec) = t.and_then(|t| t.spec.as_mut()) {
        pod_spec(spec);
    }
}

fn job_spec(spec: &mut super::batch::JobSpec) {
    match (spec.completions, spec.parallelism) {
        (None, None) => {
            spec.completions = Some(1);
            spec.parallelism = Some(1);
        }
        (_, None) => spec.parallelism = Some(1),
        _ => {}
    }
    spec.backoff_limit.get_or_insert(6);
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    if spec.pod_failure_policy.is_none() {
        spec.pod_replacement_policy
            .get_or_insert_with(|| "TerminatingOrFailed".into());
    }
    template(spec.template.as_mut());
}

/// `SetDefaults_PodSpec` and what it calls for containers, probes and volumes.
pub fn pod_spec(spec: &mut PodSpec) {
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.security_context.get_or_insert_with(Default::default);
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    spec.enable_service_links.get_or_insert(true);
    let host_network = spec.host_network == Some(true);
    for c in spec.init_containers.iter_mut().flatten() {
        container(c, host_network);
    }
    for c in spec.containers.iter_mut() {
        container(c, host_network);
    }
    for v in spec.volumes.iter_mut().flatten() {
        volume(v);
    }
}

/// `SetDefaults_Container` and friends.
pub fn container(c: &mut Container, host_network: bool) {
    c.termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy
        .get_or_insert_with(|| "File".into());
    if c.image_pull_policy.is_none() {
        c.image_pull_policy = Some(default_pull_policy(c.image.as_deref().unwrap_or("")).into());
    }
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
        if host_network && p.host_port.is_none() {
            p.host_port = Some(p.container_port);
        }
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            f.api_version.get_or_insert_with(|| "v1".into());
        }
    }
    // Limits without requests: requests default to the limits.
    if let Some(res) = c.resources.as_mut() {
        if let Some(limits) = res.limits.clone() {
            let requests = res.requests.get_or_insert_with(Default::default);
            for (name, q) in limits {
                requests.entry(name).or_insert(q);
            }
        }
    }
    for p in [
        c.liveness_probe.as_mut(),
        c.readiness_probe.as_mut(),
        c.startup_probe.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        probe(p);
    }
}

/// `IfNotPresent` for a pinned tag or digest, `Always` for `:latest` or no tag.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    // The tag is after the last ':' that follows the last '/' (a registry may have a port).
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn probe(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(h) = p.http_get.as_mut() {
        h.path.get_or_insert_with(|| "/".into());
        h.scheme.get_or_insert_with(|| "HTTP".into());
    }
}

fn volume(v: &mut Volume) {
    if v.source_names().is_empty() {
        v.empty_dir = Some(Default::default());
    }
    if let Some(s) = v.config_map.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(s) = v.secret.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(s) = v.downward_api.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
        for item in s.items.iter_mut().flatten() {
            if let Some(f) = item.field_ref.as_mut() {
                f.api_version.get_or_insert_with(|| "v1".into());
            }
        }
    }
    if let Some(s) = v.projected.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
        for src in s.sources.iter_mut().flatten() {
            if let Some(t) = src.service_account_token.as_mut() {
                t.expiration_seconds.get_or_insert(3600);
            }
        }
    }
    if let Some(h) = v.host_path.as_mut() {
        h.type_.get_or_insert_with(String::new);
    }
}

fn service_spec(spec: &mut ServiceSpec) {
    let ty = spec.type_.get_or_insert_with(|| "ClusterIP".into()).clone();
    spec.session_affinity.get_or_insert_with(|| "None".into());
    if ty != "ExternalName" {
        spec.internal_traffic_policy
            .get_or_insert_with(|| "Cluster".into());
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        spec.external_traffic_policy
            .get_or_insert_with(|| "Cluster".into());
    }
    if ty == "LoadBalancer" {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
    }
    for p in spec.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
        p.target_port.get_or_insert(IntOrString::Int(p.port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn defaulted(kind: &str, v: Value) -> Value {
        let mut obj = Object::from_json(kind, v).unwrap();
        apply(&mut obj);
        let once = obj.to_json();
        apply(&mut obj);
        assert_eq!(obj.to_json(), once, "defaulting is idempotent");
        once
    }

    /// Pod defaults, from the Pod and Container API reference
    /// (kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/).
    #[test]
    fn pod_defaults_table() {
        let p = defaulted(
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [
                {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
                 "livenessProbe": {"httpGet": {"port": 80}},
                 "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                 "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}
            ], "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}}]}}),
        );
        let spec = &p["spec"];
        let c = &spec["containers"][0];
        let cases: &[(&str, &Value, Value)] = &[
            ("restartPolicy", &spec["restartPolicy"], json!("Always")),
            ("dnsPolicy", &spec["dnsPolicy"], json!("ClusterFirst")),
            (
                "terminationGracePeriodSeconds",
                &spec["terminationGracePeriodSeconds"],
                json!(30),
            ),
            (
                "schedulerName",
                &spec["schedulerName"],
                json!("default-scheduler"),
            ),
            (
                "enableServiceLinks",
                &spec["enableServiceLinks"],
                json!(true),
            ),
            ("securityContext", &spec["securityContext"], json!({})),
            (
                "imagePullPolicy (untagged)",
                &c["imagePullPolicy"],
                json!("Always"),
            ),
            (
                "terminationMessagePath",
                &c["terminationMessagePath"],
                json!("/dev/termination-log"),
            ),
            (
                "terminationMessagePolicy",
                &c["terminationMessagePolicy"],
                json!("File"),
            ),
            ("ports[].protocol", &c["ports"][0]["protocol"], json!("TCP")),
            (
                "probe timeoutSeconds",
                &c["livenessProbe"]["timeoutSeconds"],
                json!(1),
            ),
            (
                "probe periodSeconds",
                &c["livenessProbe"]["periodSeconds"],
                json!(10),
            ),
            (
                "probe successThreshold",
                &c["livenessProbe"]["successThreshold"],
                json!(1),
            ),
            (
                "probe failureThreshold",
                &c["livenessProbe"]["failureThreshold"],
                json!(3),
            ),
            (
                "httpGet path",
                &c["livenessProbe"]["httpGet"]["path"],
                json!("/"),
            ),
            (
                "httpGet scheme",
                &c["livenessProbe"]["httpGet"]["scheme"],
                json!("HTTP"),
            ),
            (
                "fieldRef apiVersion",
                &c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"],
                json!("v1"),
            ),
            (
                "requests from limits (cpu)",
                &c["resources"]["requests"]["cpu"],
                json!("500m"),
            ),
            (
                "requests from limits (memory)",
                &c["resources"]["requests"]["memory"],
                json!("128Mi"),
            ),
            (
                "volume with no source",
                &spec["volumes"][0]["emptyDir"],
                json!({}),
            ),
            (
                "configMap defaultMode",
                &spec["volumes"][1]["configMap"]["defaultMode"],
                json!(420),
            ),
        ];
        for (what, got, want) in cases {
            assert_eq!(*got, want, "{what}");
        }
    }

    #[test]
    fn explicit_values_are_kept() {
        let p = defaulted(
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "a", "image": "nginx", "imagePullPolicy": "Never",
                 "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "100m"}}}]}}),
        );
        assert_eq!(p["spec"]["restartPolicy"], "Never");
        assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 0);
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(
            p["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "100m"
        );
    }

    /// "Default image pull policy" in kubernetes.io/docs/concepts/containers/images/.
    #[test]
    fn image_pull_policy_table() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.14.2", "IfNotPresent"),
            ("registry.local:5000/nginx", "Always"),
            ("registry.local:5000/nginx:1.2", "IfNotPresent"),
            ("192.168.136.10:5000/myblog:v1", "IfNotPresent"),
            ("nginx@sha256:0123456789abcdef", "IfNotPresent"),
            ("busybox:latest@sha256:0123456789abcdef", "IfNotPresent"),
        ] {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn host_network_ports_default_host_port() {
        let p = defaulted(
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"hostNetwork": true, "containers": [
                {"name": "a", "image": "x:1", "ports": [{"containerPort": 8080}]}]}}),
        );
        assert_eq!(p["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
    }

    /// Service and ServicePort defaults (service-v1 API reference).
    #[test]
    fn service_defaults_table() {
        let s = defaulted(
            "Service",
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}),
        );
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["ports"][1]["protocol"], "UDP");
        assert_eq!(s["spec"]["ports"][1]["targetPort"], "dns");
        let lb = defaulted(
            "Service",
            json!({"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
        );
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    }

    /// Workload defaults (deployment-v1, daemon-set-v1, stateful-set-v1, job-v1,
    /// cron-job-v1 API references).
    #[test]
    fn workload_defaults_table() {
        let tpl = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        let d = defaulted(
            "Deployment",
            json!({"metadata": {"name": "d"}, "spec": {"template": tpl}}),
        );
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(
            d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            "25%"
        );
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");

        let recreate = defaulted(
            "Deployment",
            json!({"metadata": {"name": "d"}, "spec": {"strategy": {"type": "Recreate"}, "template": tpl}}),
        );
        assert!(recreate["spec"]["strategy"].get("rollingUpdate").is_none());

        let ds = defaulted(
            "DaemonSet",
            json!({"metadata": {"name": "d"}, "spec": {"template": tpl}}),
        );
        assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
        assert_eq!(
            ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
            1
        );
        assert_eq!(ds["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"], 0);
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);

        let sts = defaulted(
            "StatefulSet",
            json!({"metadata": {"name": "s"}, "spec": {"template": tpl}}),
        );
        assert_eq!(sts["spec"]["replicas"], 1);
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
            0
        );
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"],
            "Retain"
        );

        let rs = defaulted(
            "ReplicaSet",
            json!({"metadata": {"name": "r"}, "spec": {"template": tpl}}),
        );
        assert_eq!(rs["spec"]["replicas"], 1);

        let job = defaulted(
            "Job",
            json!({"metadata": {"name": "j"}, "spec": {"template": tpl}}),
        );
        assert_eq!(job["spec"]["completions"], 1);
        assert_eq!(job["spec"]["parallelism"], 1);
        assert_eq!(job["spec"]["backoffLimit"], 6);
        assert_eq!(job["spec"]["completionMode"], "NonIndexed");
        assert_eq!(job["spec"]["suspend"], false);
        let par = defaulted(
            "Job",
            json!({"metadata": {"name": "j"}, "spec": {"parallelism": 3, "template": tpl}}),
        );
        assert!(
            par["spec"].get("completions").is_none(),
            "work-queue jobs keep completions unset"
        );

        let cj = defaulted(
            "CronJob",
            json!({"metadata": {"name": "c"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": tpl}}}}),
        );
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert_eq!(cj["spec"]["jobTemplate"]["spec"]["backoffLimit"], 6);
    }

    #[test]
    fn other_kind_defaults() {
        assert_eq!(
            defaulted("Secret", json!({"metadata": {"name": "s"}}))["type"],
            "Opaque"
        );
        assert_eq!(
            defaulted("Namespace", json!({"metadata": {"name": "n"}}))["status"]["phase"],
            "Active"
        );
        let pv = defaulted(
            "PersistentVolume",
            json!({"metadata": {"name": "v"}, "spec": {}}),
        );
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
    }
}
