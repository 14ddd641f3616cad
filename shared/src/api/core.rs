//! The core (`v1`) group: Pod in depth, and Namespace, Node, ConfigMap, Secret, Service,
//! ServiceAccount, PersistentVolume(Claim), ResourceQuota, LimitRange, Event.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::intstr::IntOrString;
use super::meta::{
    ByteString, Condition, LabelSelector, LocalObjectReference, Map, ObjectMeta, ObjectReference,
    Time, TypedLocalObjectReference,
};
use super::quantity::Quantity;

/// A map of resource names to quantities (`cpu: 250m`, `memory: 64Mi`).
pub type ResourceList = Map<Quantity>;

macro_rules! object {
    ($(#[$doc:meta])* $name:ident { $($(#[$fattr:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[::serde_with::skip_serializing_none]
        #[derive(Clone, Debug, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub api_version: Option<String>,
            pub kind: Option<String>,
            #[serde(default)]
            pub metadata: $crate::api::meta::ObjectMeta,
            $($(#[$fattr])* pub $field: $ty,)*
        }
    };
}
pub(crate) use object;

object!(
    /// A Pod: the smallest unit kelp schedules (seed §2.4).
    Pod { spec: Option<PodSpec>, status: Option<PodStatus> }
);
object!(
    /// A Namespace (seed §2.3).
    Namespace { spec: Option<NamespaceSpec>, status: Option<NamespaceStatus> }
);
object!(
    /// A Node: one edge machine running `kelp-agent`.
    Node { spec: Option<NodeSpec>, status: Option<NodeStatus> }
);
object!(
    /// A ConfigMap.
    ConfigMap { data: Option<Map>, binary_data: Option<Map<ByteString>>, immutable: Option<bool> }
);
object!(
    /// A Secret. `data` values are base64 on the wire; `stringData` is write-only plain text.
    Secret {
        #[serde(rename = "type")]
        type_: Option<String>,
        data: Option<Map<ByteString>>,
        string_data: Option<Map>,
        immutable: Option<bool>
    }
);
object!(
    /// A Service.
    Service { spec: Option<ServiceSpec>, status: Option<ServiceStatus> }
);
object!(
    /// A ServiceAccount.
    ServiceAccount {
        secrets: Option<Vec<ObjectReference>>,
        image_pull_secrets: Option<Vec<LocalObjectReference>>,
        automount_service_account_token: Option<bool>
    }
);
object!(
    /// A PersistentVolume.
    PersistentVolume { spec: Option<PersistentVolumeSpec>, status: Option<PersistentVolumeStatus> }
);
object!(
    /// A PersistentVolumeClaim.
    PersistentVolumeClaim {
        spec: Option<PersistentVolumeClaimSpec>,
        status: Option<PersistentVolumeClaimStatus>
    }
);
object!(
    /// A ResourceQuota.
    ResourceQuota { spec: Option<ResourceQuotaSpec>, status: Option<ResourceQuotaStatus> }
);
object!(
    /// A LimitRange.
    LimitRange { spec: Option<LimitRangeSpec> }
);
object!(
    /// A core/v1 Event.
    Event {
        #[serde(default)]
        involved_object: ObjectReference,
        reason: Option<String>,
        message: Option<String>,
        source: Option<EventSource>,
        first_timestamp: Option<Time>,
        last_timestamp: Option<Time>,
        count: Option<i32>,
        #[serde(rename = "type")]
        type_: Option<String>,
        event_time: Option<String>,
        series: Option<serde_json::Value>,
        action: Option<String>,
        related: Option<ObjectReference>,
        reporting_component: Option<String>,
        reporting_instance: Option<String>
    }
);

/// `PodTemplateSpec`: the pod a workload controller stamps out.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec {
    pub metadata: Option<ObjectMeta>,
    pub spec: Option<PodSpec>,
}

/// `PodSpec`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub volumes: Option<Vec<Volume>>,
    pub init_containers: Option<Vec<Container>>,
    #[serde(default)]
    pub containers: Vec<Container>,
    pub ephemeral_containers: Option<Vec<serde_json::Value>>,
    pub restart_policy: Option<String>,
    pub termination_grace_period_seconds: Option<i64>,
    pub active_deadline_seconds: Option<i64>,
    pub dns_policy: Option<String>,
    pub node_selector: Option<Map>,
    pub service_account_name: Option<String>,
    /// Deprecated alias of `serviceAccountName`.
    pub service_account: Option<String>,
    pub automount_service_account_token: Option<bool>,
    pub node_name: Option<String>,
    pub host_network: Option<bool>,
    #[serde(rename = "hostPID")]
    pub host_pid: Option<bool>,
    #[serde(rename = "hostIPC")]
    pub host_ipc: Option<bool>,
    pub share_process_namespace: Option<bool>,
    pub security_context: Option<PodSecurityContext>,
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    pub hostname: Option<String>,
    pub subdomain: Option<String>,
    pub affinity: Option<Affinity>,
    pub scheduler_name: Option<String>,
    pub tolerations: Option<Vec<Toleration>>,
    pub host_aliases: Option<Vec<HostAlias>>,
    pub priority_class_name: Option<String>,
    pub priority: Option<i32>,
    pub dns_config: Option<PodDnsConfig>,
    pub readiness_gates: Option<Vec<serde_json::Value>>,
    pub runtime_class_name: Option<String>,
    pub enable_service_links: Option<bool>,
    pub preemption_policy: Option<String>,
    pub overhead: Option<ResourceList>,
    pub topology_spread_constraints: Option<Vec<serde_json::Value>>,
    pub set_hostname_as_fqdn: Option<bool>,
    pub os: Option<PodOs>,
    pub host_users: Option<bool>,
    pub scheduling_gates: Option<Vec<serde_json::Value>>,
    pub resource_claims: Option<Vec<serde_json::Value>>,
    /// Pod-level resources (Kubernetes 1.32+).
    pub resources: Option<ResourceRequirements>,
}

/// `PodOS`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodOs {
    pub name: String,
}

/// `HostAlias`: an extra `/etc/hosts` line.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostAlias {
    pub ip: String,
    pub hostnames: Option<Vec<String>>,
}

/// `PodDNSConfig`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodDnsConfig {
    pub nameservers: Option<Vec<String>>,
    pub searches: Option<Vec<String>>,
    pub options: Option<Vec<NameValueOption>>,
}

/// A `name`/`value` pair whose value is optional (DNS options, sysctls).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameValueOption {
    pub name: String,
    pub value: Option<String>,
}

/// `Container`, used for containers and init containers alike.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub ports: Option<Vec<ContainerPort>>,
    pub env_from: Option<Vec<EnvFromSource>>,
    pub env: Option<Vec<EnvVar>>,
    pub resources: Option<ResourceRequirements>,
    pub resize_policy: Option<Vec<serde_json::Value>>,
    /// `Always` on an init container makes it a sidecar.
    pub restart_policy: Option<String>,
    pub restart_policy_rules: Option<Vec<serde_json::Value>>,
    pub volume_mounts: Option<Vec<VolumeMount>>,
    pub volume_devices: Option<Vec<serde_json::Value>>,
    pub liveness_probe: Option<Probe>,
    pub readiness_probe: Option<Probe>,
    pub startup_probe: Option<Probe>,
    pub lifecycle: Option<Lifecycle>,
    pub termination_message_path: Option<String>,
    pub termination_message_policy: Option<String>,
    pub image_pull_policy: Option<String>,
    pub security_context: Option<SecurityContext>,
    pub stdin: Option<bool>,
    pub stdin_once: Option<bool>,
    pub tty: Option<bool>,
}

/// `ContainerPort`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: Option<String>,
    pub host_port: Option<i32>,
    #[serde(default)]
    pub container_port: i32,
    pub protocol: Option<String>,
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
}

/// `EnvVar`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    #[serde(default)]
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvVarSource>,
}

/// `EnvVarSource`: exactly one of its fields is set.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    pub field_ref: Option<ObjectFieldSelector>,
    pub resource_field_ref: Option<ResourceFieldSelector>,
    pub config_map_key_ref: Option<KeySelector>,
    pub secret_key_ref: Option<KeySelector>,
    pub file_key_ref: Option<serde_json::Value>,
}

/// `ObjectFieldSelector` (downward API).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFieldSelector {
    pub api_version: Option<String>,
    pub field_path: String,
}

/// `ResourceFieldSelector` (downward API).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFieldSelector {
    pub container_name: Option<String>,
    pub resource: String,
    pub divisor: Option<Quantity>,
}

/// `ConfigMapKeySelector` / `SecretKeySelector`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeySelector {
    pub name: Option<String>,
    pub key: String,
    pub optional: Option<bool>,
}

/// `EnvFromSource`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFromSource {
    pub prefix: Option<String>,
    pub config_map_ref: Option<OptionalRef>,
    pub secret_ref: Option<OptionalRef>,
}

/// `ConfigMapEnvSource` / `SecretEnvSource`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionalRef {
    pub name: Option<String>,
    pub optional: Option<bool>,
}

/// `ResourceRequirements`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequirements {
    pub limits: Option<ResourceList>,
    pub requests: Option<ResourceList>,
    pub claims: Option<Vec<serde_json::Value>>,
}

/// `VolumeMount`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mount_path: String,
    pub read_only: Option<bool>,
    pub recursive_read_only: Option<String>,
    pub sub_path: Option<String>,
    pub sub_path_expr: Option<String>,
    pub mount_propagation: Option<String>,
}

/// `Probe`: one handler plus timing.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub exec: Option<ExecAction>,
    pub http_get: Option<HttpGetAction>,
    pub tcp_socket: Option<TcpSocketAction>,
    pub grpc: Option<GrpcAction>,
    pub initial_delay_seconds: Option<i32>,
    pub timeout_seconds: Option<i32>,
    pub period_seconds: Option<i32>,
    pub success_threshold: Option<i32>,
    pub failure_threshold: Option<i32>,
    pub termination_grace_period_seconds: Option<i64>,
}

/// `ExecAction`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecAction {
    pub command: Option<Vec<String>>,
}

/// `HTTPGetAction`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGetAction {
    pub path: Option<String>,
    #[serde(default)]
    pub port: IntOrString,
    pub host: Option<String>,
    pub scheme: Option<String>,
    pub http_headers: Option<Vec<HttpHeader>>,
}

/// `HTTPHeader`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

/// `TCPSocketAction`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpSocketAction {
    #[serde(default)]
    pub port: IntOrString,
    pub host: Option<String>,
}

/// `GRPCAction`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcAction {
    pub port: i32,
    pub service: Option<String>,
}

/// `Lifecycle`: postStart / preStop hooks.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    pub post_start: Option<LifecycleHandler>,
    pub pre_stop: Option<LifecycleHandler>,
    pub stop_signal: Option<String>,
}

/// `LifecycleHandler`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHandler {
    pub exec: Option<ExecAction>,
    pub http_get: Option<HttpGetAction>,
    pub tcp_socket: Option<TcpSocketAction>,
    pub sleep: Option<SleepAction>,
}

/// `SleepAction`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SleepAction {
    pub seconds: i64,
}

/// Container `SecurityContext`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    pub capabilities: Option<Capabilities>,
    pub privileged: Option<bool>,
    pub se_linux_options: Option<serde_json::Value>,
    pub windows_options: Option<serde_json::Value>,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub read_only_root_filesystem: Option<bool>,
    pub allow_privilege_escalation: Option<bool>,
    pub proc_mount: Option<String>,
    pub seccomp_profile: Option<SeccompProfile>,
    pub app_armor_profile: Option<serde_json::Value>,
}

/// Linux capabilities to add and drop.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub add: Option<Vec<String>>,
    pub drop: Option<Vec<String>>,
}

/// `SeccompProfile`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfile {
    #[serde(rename = "type")]
    pub type_: String,
    pub localhost_profile: Option<String>,
}

/// `PodSecurityContext`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    pub se_linux_options: Option<serde_json::Value>,
    pub windows_options: Option<serde_json::Value>,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub supplemental_groups: Option<Vec<i64>>,
    pub supplemental_groups_policy: Option<String>,
    pub fs_group: Option<i64>,
    pub fs_group_change_policy: Option<String>,
    pub sysctls: Option<Vec<NameValueOption>>,
    pub seccomp_profile: Option<SeccompProfile>,
    pub app_armor_profile: Option<serde_json::Value>,
    pub se_linux_change_policy: Option<String>,
}

/// `Volume`: a name and exactly one source.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub host_path: Option<HostPathVolumeSource>,
    pub empty_dir: Option<EmptyDirVolumeSource>,
    pub config_map: Option<ConfigMapVolumeSource>,
    pub secret: Option<SecretVolumeSource>,
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
    #[serde(rename = "downwardAPI")]
    pub downward_api: Option<DownwardApiVolumeSource>,
    pub projected: Option<ProjectedVolumeSource>,
    pub nfs: Option<NfsVolumeSource>,
    pub image: Option<ImageVolumeSource>,
    pub ephemeral: Option<serde_json::Value>,
    pub csi: Option<serde_json::Value>,
}

impl Volume {
    /// The names of the volume sources that are set (`"emptyDir"`, `"hostPath"`, ...); a
    /// valid volume has exactly one.
    pub fn source_names(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        let mut add = |present: bool, name: &'static str| {
            if present {
                set.push(name)
            }
        };
        add(self.host_path.is_some(), "hostPath");
        add(self.empty_dir.is_some(), "emptyDir");
        add(self.config_map.is_some(), "configMap");
        add(self.secret.is_some(), "secret");
        add(
            self.persistent_volume_claim.is_some(),
            "persistentVolumeClaim",
        );
        add(self.downward_api.is_some(), "downwardAPI");
        add(self.projected.is_some(), "projected");
        add(self.nfs.is_some(), "nfs");
        add(self.image.is_some(), "image");
        add(self.ephemeral.is_some(), "ephemeral");
        add(self.csi.is_some(), "csi");
        set
    }
}

/// `HostPathVolumeSource`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPathVolumeSource {
    pub path: String,
    #[serde(rename = "type")]
    pub type_: Option<String>,
}

/// `EmptyDirVolumeSource`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDirVolumeSource {
    pub medium: Option<String>,
    pub size_limit: Option<Quantity>,
}

/// `KeyToPath`: projects one key to a file.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyToPath {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub path: String,
    pub mode: Option<i32>,
}

/// `ConfigMapVolumeSource` (also used inside projected volumes).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapVolumeSource {
    pub name: Option<String>,
    pub items: Option<Vec<KeyToPath>>,
    pub default_mode: Option<i32>,
    pub optional: Option<bool>,
}

/// `SecretVolumeSource`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVolumeSource {
    pub secret_name: Option<String>,
    pub items: Option<Vec<KeyToPath>>,
    pub default_mode: Option<i32>,
    pub optional: Option<bool>,
}

/// `PersistentVolumeClaimVolumeSource`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimVolumeSource {
    pub claim_name: String,
    pub read_only: Option<bool>,
}

/// `DownwardAPIVolumeSource`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownwardApiVolumeSource {
    pub items: Option<Vec<DownwardApiVolumeFile>>,
    pub default_mode: Option<i32>,
}

/// `DownwardAPIVolumeFile`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownwardApiVolumeFile {
    pub path: String,
    pub field_ref: Option<ObjectFieldSelector>,
    pub resource_field_ref: Option<ResourceFieldSelector>,
    pub mode: Option<i32>,
}

/// `ProjectedVolumeSource`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectedVolumeSource {
    pub sources: Option<Vec<VolumeProjection>>,
    pub default_mode: Option<i32>,
}

/// `VolumeProjection`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeProjection {
    pub secret: Option<SecretProjection>,
    pub config_map: Option<ConfigMapVolumeSource>,
    #[serde(rename = "downwardAPI")]
    pub downward_api: Option<DownwardApiVolumeSource>,
    pub service_account_token: Option<ServiceAccountTokenProjection>,
    pub cluster_trust_bundle: Option<serde_json::Value>,
    pub pod_certificate: Option<serde_json::Value>,
}

/// `SecretProjection`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretProjection {
    pub name: Option<String>,
    pub items: Option<Vec<KeyToPath>>,
    pub optional: Option<bool>,
}

/// `ServiceAccountTokenProjection`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountTokenProjection {
    pub audience: Option<String>,
    pub expiration_seconds: Option<i64>,
    pub path: String,
}

/// `NFSVolumeSource`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NfsVolumeSource {
    pub server: String,
    pub path: String,
    pub read_only: Option<bool>,
}

/// `ImageVolumeSource`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageVolumeSource {
    pub reference: Option<String>,
    pub pull_policy: Option<String>,
}

/// `Affinity`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    pub node_affinity: Option<NodeAffinity>,
    pub pod_affinity: Option<PodAffinity>,
    pub pod_anti_affinity: Option<PodAffinity>,
}

/// `NodeAffinity`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAffinity {
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
    pub preferred_during_scheduling_ignored_during_execution: Option<Vec<PreferredSchedulingTerm>>,
}

/// `NodeSelector`: ORed terms.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// `NodeSelectorTerm`: ANDed requirements.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorTerm {
    pub match_expressions: Option<Vec<NodeSelectorRequirement>>,
    pub match_fields: Option<Vec<NodeSelectorRequirement>>,
}

/// `NodeSelectorRequirement`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorRequirement {
    pub key: String,
    pub operator: String,
    pub values: Option<Vec<String>>,
}

/// `PreferredSchedulingTerm`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreferredSchedulingTerm {
    pub weight: i32,
    pub preference: NodeSelectorTerm,
}

/// `PodAffinity` / `PodAntiAffinity` (the same shape).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAffinity {
    pub required_during_scheduling_ignored_during_execution: Option<Vec<PodAffinityTerm>>,
    pub preferred_during_scheduling_ignored_during_execution: Option<Vec<WeightedPodAffinityTerm>>,
}

/// `PodAffinityTerm`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAffinityTerm {
    pub label_selector: Option<LabelSelector>,
    pub namespaces: Option<Vec<String>>,
    pub topology_key: String,
    pub namespace_selector: Option<LabelSelector>,
    pub match_label_keys: Option<Vec<String>>,
    pub mismatch_label_keys: Option<Vec<String>>,
}

/// `WeightedPodAffinityTerm`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedPodAffinityTerm {
    pub weight: i32,
    pub pod_affinity_term: PodAffinityTerm,
}

/// `Toleration`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    pub key: Option<String>,
    pub operator: Option<String>,
    pub value: Option<String>,
    pub effect: Option<String>,
    pub toleration_seconds: Option<i64>,
}

/// `PodStatus`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub phase: Option<String>,
    pub conditions: Option<Vec<Condition>>,
    pub message: Option<String>,
    pub reason: Option<String>,
    pub nominated_node_name: Option<String>,
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIp>>,
    pub start_time: Option<Time>,
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
    pub container_statuses: Option<Vec<ContainerStatus>>,
    pub qos_class: Option<String>,
    pub observed_generation: Option<i64>,
}

/// `PodIP`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIp {
    pub ip: String,
}

/// `ContainerStatus`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub state: Option<ContainerState>,
    pub last_state: Option<ContainerState>,
    pub ready: bool,
    pub restart_count: i32,
    pub image: String,
    #[serde(rename = "imageID")]
    pub image_id: String,
    #[serde(rename = "containerID")]
    pub container_id: Option<String>,
    pub started: Option<bool>,
}

/// `ContainerState`: at most one of its fields is set.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub waiting: Option<ContainerStateWaiting>,
    pub running: Option<ContainerStateRunning>,
    pub terminated: Option<ContainerStateTerminated>,
}

/// `ContainerStateWaiting`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateWaiting {
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// `ContainerStateRunning`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateRunning {
    pub started_at: Option<Time>,
}

/// `ContainerStateTerminated`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateTerminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub started_at: Option<Time>,
    pub finished_at: Option<Time>,
    #[serde(rename = "containerID")]
    pub container_id: Option<String>,
}

/// `NamespaceSpec`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSpec {
    pub finalizers: Option<Vec<String>>,
}

/// `NamespaceStatus`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceStatus {
    pub phase: Option<String>,
    pub conditions: Option<Vec<Condition>>,
}

/// `NodeSpec`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    #[serde(rename = "podCIDRs")]
    pub pod_cidrs: Option<Vec<String>>,
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    pub unschedulable: Option<bool>,
    pub taints: Option<Vec<Taint>>,
}

/// `Taint`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
    pub time_added: Option<Time>,
}

/// `NodeStatus`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub capacity: Option<ResourceList>,
    pub allocatable: Option<ResourceList>,
    pub phase: Option<String>,
    pub conditions: Option<Vec<Condition>>,
    pub addresses: Option<Vec<NodeAddress>>,
    pub node_info: Option<NodeSystemInfo>,
    pub images: Option<Vec<serde_json::Value>>,
}

/// `NodeAddress`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAddress {
    #[serde(rename = "type")]
    pub type_: String,
    pub address: String,
}

/// `NodeSystemInfo`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSystemInfo {
    #[serde(rename = "machineID")]
    pub machine_id: Option<String>,
    #[serde(rename = "systemUUID")]
    pub system_uuid: Option<String>,
    #[serde(rename = "bootID")]
    pub boot_id: Option<String>,
    pub kernel_version: Option<String>,
    pub os_image: Option<String>,
    pub container_runtime_version: Option<String>,
    pub kubelet_version: Option<String>,
    pub kube_proxy_version: Option<String>,
    pub operating_system: Option<String>,
    pub architecture: Option<String>,
}

/// `ServiceSpec`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub selector: Option<Map>,
    pub ports: Option<Vec<ServicePort>>,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Option<Vec<String>>,
    #[serde(rename = "externalIPs")]
    pub external_ips: Option<Vec<String>>,
    pub session_affinity: Option<String>,
    pub session_affinity_config: Option<serde_json::Value>,
    #[serde(rename = "loadBalancerIP")]
    pub load_balancer_ip: Option<String>,
    pub load_balancer_source_ranges: Option<Vec<String>>,
    pub load_balancer_class: Option<String>,
    pub allocate_load_balancer_node_ports: Option<bool>,
    pub external_name: Option<String>,
    pub external_traffic_policy: Option<String>,
    pub internal_traffic_policy: Option<String>,
    pub health_check_node_port: Option<i32>,
    pub publish_not_ready_addresses: Option<bool>,
    pub ip_families: Option<Vec<String>>,
    pub ip_family_policy: Option<String>,
    pub traffic_distribution: Option<String>,
}

/// `ServicePort`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: Option<String>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
    #[serde(default)]
    pub port: i32,
    pub target_port: Option<IntOrString>,
    pub node_port: Option<i32>,
}

/// `ServiceStatus`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub load_balancer: Option<LoadBalancerStatus>,
    pub conditions: Option<Vec<Condition>>,
}

/// `LoadBalancerStatus`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerStatus {
    pub ingress: Option<Vec<LoadBalancerIngress>>,
}

/// `LoadBalancerIngress`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIngress {
    pub ip: Option<String>,
    pub hostname: Option<String>,
    pub ip_mode: Option<String>,
    pub ports: Option<Vec<serde_json::Value>>,
}

/// `PersistentVolumeSpec`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeSpec {
    pub capacity: Option<ResourceList>,
    pub access_modes: Option<Vec<String>>,
    pub claim_ref: Option<ObjectReference>,
    pub persistent_volume_reclaim_policy: Option<String>,
    pub storage_class_name: Option<String>,
    pub mount_options: Option<Vec<String>>,
    pub volume_mode: Option<String>,
    pub node_affinity: Option<VolumeNodeAffinity>,
    pub host_path: Option<HostPathVolumeSource>,
    pub nfs: Option<NfsVolumeSource>,
    pub local: Option<LocalVolumeSource>,
    pub csi: Option<serde_json::Value>,
    pub volume_attributes_class_name: Option<String>,
}

/// `VolumeNodeAffinity`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeNodeAffinity {
    pub required: Option<NodeSelector>,
}

/// `LocalVolumeSource`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalVolumeSource {
    pub path: String,
    pub fs_type: Option<String>,
}

/// `PersistentVolumeStatus`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeStatus {
    pub phase: Option<String>,
    pub message: Option<String>,
    pub reason: Option<String>,
    pub last_phase_transition_time: Option<Time>,
}

/// `PersistentVolumeClaimSpec`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimSpec {
    pub access_modes: Option<Vec<String>>,
    pub selector: Option<LabelSelector>,
    pub resources: Option<VolumeResourceRequirements>,
    pub volume_name: Option<String>,
    pub storage_class_name: Option<String>,
    pub volume_mode: Option<String>,
    pub data_source: Option<TypedLocalObjectReference>,
    pub data_source_ref: Option<serde_json::Value>,
    pub volume_attributes_class_name: Option<String>,
}

/// `VolumeResourceRequirements`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeResourceRequirements {
    pub limits: Option<ResourceList>,
    pub requests: Option<ResourceList>,
}

/// `PersistentVolumeClaimStatus`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimStatus {
    pub phase: Option<String>,
    pub access_modes: Option<Vec<String>>,
    pub capacity: Option<ResourceList>,
    pub conditions: Option<Vec<Condition>>,
}

/// `ResourceQuotaSpec`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceQuotaSpec {
    pub hard: Option<ResourceList>,
    pub scopes: Option<Vec<String>>,
    pub scope_selector: Option<ScopeSelector>,
}

/// `ScopeSelector`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeSelector {
    pub match_expressions: Option<Vec<ScopedResourceSelectorRequirement>>,
}

/// `ScopedResourceSelectorRequirement`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopedResourceSelectorRequirement {
    pub scope_name: String,
    pub operator: String,
    pub values: Option<Vec<String>>,
}

/// `ResourceQuotaStatus`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceQuotaStatus {
    pub hard: Option<ResourceList>,
    pub used: Option<ResourceList>,
}

/// `LimitRangeSpec`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitRangeSpec {
    pub limits: Vec<LimitRangeItem>,
}

/// `LimitRangeItem`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitRangeItem {
    #[serde(rename = "type")]
    pub type_: String,
    pub max: Option<ResourceList>,
    pub min: Option<ResourceList>,
    pub default: Option<ResourceList>,
    pub default_request: Option<ResourceList>,
    pub max_limit_request_ratio: Option<ResourceList>,
}

/// `EventSource`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSource {
    pub component: Option<String>,
    pub host: Option<String>,
}
