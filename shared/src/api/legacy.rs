//! Legacy API versions that Kubernetes once served, converted on load to the version kelp
//! stores.
//!
//! A legacy object is read with its own shape, given the defaults *its* version had where
//! they differ from the current version's (an `extensions/v1beta1` DaemonSet updates
//! `OnDelete`, an `apps/v1beta1` Deployment keeps 2 old ReplicaSets), and converted.
//! Defaults that the versions share are left to [`crate::api::defaults`], so conversion and
//! defaulting stay separate steps. Each conversion has a table test below.

use serde::{Deserialize, Deserializer};
use serde_with::skip_serializing_none;

use super::apps::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, DaemonSetUpdateStrategy, Deployment, DeploymentSpec,
    DeploymentStatus, DeploymentStrategy, ReplicaSet, StatefulSet, StatefulSetRollingUpdate,
    StatefulSetUpdateStrategy,
};
use super::batch::CronJob;
use super::core::{object, PodTemplateSpec};
use super::intstr::IntOrString;
use super::kinds::{self, LegacyVersion};
use super::meta::{LabelSelector, ObjectMeta};
use super::networking::{
    HttpIngressPath, HttpIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressStatus, IngressTls, ServiceBackendPort,
};
use super::object::Object;

/// Kubernetes' "no limit" for the fields that legacy versions left unbounded.
const MAX_INT32: i32 = i32::MAX;

object!(
    /// `extensions/v1beta1`, `apps/v1beta1` and `apps/v1beta2` Deployment.
    DeploymentV1beta { spec: Option<DeploymentSpecV1beta>, status: Option<DeploymentStatus> }
);

/// The legacy `DeploymentSpec`, with `rollbackTo`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpecV1beta {
    pub replicas: Option<i32>,
    pub selector: Option<LabelSelector>,
    pub template: Option<PodTemplateSpec>,
    pub strategy: Option<DeploymentStrategy>,
    pub min_ready_seconds: Option<i32>,
    pub revision_history_limit: Option<i32>,
    pub paused: Option<bool>,
    pub rollback_to: Option<RollbackConfig>,
    pub progress_deadline_seconds: Option<i32>,
}

/// `RollbackConfig` (dropped in apps/v1).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackConfig {
    pub revision: Option<i64>,
}

object!(
    /// `extensions/v1beta1` and `apps/v1beta2` DaemonSet.
    DaemonSetV1beta { spec: Option<DaemonSetSpecV1beta>, status: Option<DaemonSetStatus> }
);

/// The legacy `DaemonSetSpec`, with `templateGeneration`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetSpecV1beta {
    pub selector: Option<LabelSelector>,
    pub template: Option<PodTemplateSpec>,
    pub update_strategy: Option<DaemonSetUpdateStrategy>,
    pub min_ready_seconds: Option<i32>,
    pub template_generation: Option<i64>,
    pub revision_history_limit: Option<i32>,
}

object!(
    /// `extensions/v1beta1` and `networking.k8s.io/v1beta1` Ingress.
    IngressV1beta1 { spec: Option<IngressSpecV1beta1>, status: Option<IngressStatus> }
);

/// The legacy `IngressSpec`: `backend` instead of `defaultBackend`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpecV1beta1 {
    pub ingress_class_name: Option<String>,
    pub backend: Option<IngressBackendV1beta1>,
    pub tls: Option<Vec<IngressTls>>,
    pub rules: Option<Vec<IngressRuleV1beta1>>,
}

/// The legacy backend: `serviceName` + `servicePort`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackendV1beta1 {
    pub service_name: Option<String>,
    pub service_port: Option<IntOrString>,
    pub resource: Option<super::meta::TypedLocalObjectReference>,
}

/// The legacy `IngressRule`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRuleV1beta1 {
    pub host: Option<String>,
    pub http: Option<HttpIngressRuleValueV1beta1>,
}

/// The legacy `HTTPIngressRuleValue`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpIngressRuleValueV1beta1 {
    pub paths: Vec<HttpIngressPathV1beta1>,
}

/// The legacy `HTTPIngressPath`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpIngressPathV1beta1 {
    pub path: Option<String>,
    pub path_type: Option<String>,
    pub backend: IngressBackendV1beta1,
}

/// The deprecation warning for a legacy version, worded as the API server words it.
pub fn deprecation_warning(legacy: &LegacyVersion) -> String {
    let current = kinds::by_kind(legacy.kind)
        .map(|k| k.api_version())
        .unwrap_or_default();
    format!(
        "{} {} is deprecated, unavailable in Kubernetes v{}+; converted to {} {}",
        legacy.api_version, legacy.kind, legacy.removed_in, current, legacy.kind
    )
}

/// Reads `legacy` from `de` and converts it to the stored version. Returns the object and
/// the warnings to show (always the deprecation, plus any dropped field).
pub fn deserialize_legacy<'de, D: Deserializer<'de>>(
    legacy: &LegacyVersion,
    de: D,
) -> Result<(Object, Vec<String>), D::Error> {
    let mut warnings = vec![deprecation_warning(legacy)];
    let object = match (legacy.api_version, legacy.kind) {
        (v, "Deployment") => {
            let old = DeploymentV1beta::deserialize(de)?;
            Object::Deployment(convert_deployment(v, old, &mut warnings))
        }
        (v, "DaemonSet") => {
            Object::DaemonSet(convert_daemonset(v, DaemonSetV1beta::deserialize(de)?))
        }
        (v, "ReplicaSet") => {
            Object::ReplicaSet(convert_replicaset(v, ReplicaSet::deserialize(de)?))
        }
        (v, "StatefulSet") => {
            Object::StatefulSet(convert_statefulset(v, StatefulSet::deserialize(de)?))
        }
        (_, "CronJob") => Object::CronJob(CronJob::deserialize(de)?),
        (_, "Ingress") => Object::Ingress(convert_ingress(IngressV1beta1::deserialize(de)?)),
        (v, k) => {
            return Err(serde::de::Error::custom(format!(
                "no conversion from {v} {k} (kind table and converters disagree)"
            )))
        }
    };
    let mut object = object;
    object.set_type_meta();
    Ok((object, warnings))
}

/// `extensions/v1beta1` and `apps/v1beta1` default the selector (and the object's labels)
/// from the template's labels; `apps/v1beta2` and later require a selector.
fn default_selector_from_template(
    meta: &mut ObjectMeta,
    selector: &mut Option<LabelSelector>,
    template: Option<&PodTemplateSpec>,
) {
    let labels = template
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .filter(|l| !l.is_empty());
    if let Some(labels) = labels {
        if selector.is_none() {
            *selector = Some(LabelSelector {
                match_labels: Some(labels.clone()),
                match_expressions: None,
            });
        }
        if meta.labels.as_ref().is_none_or(|l| l.is_empty()) {
            meta.labels = Some(labels);
        }
    }
}

fn convert_deployment(
    version: &str,
    old: DeploymentV1beta,
    warnings: &mut Vec<String>,
) -> Deployment {
    let mut meta = old.metadata;
    let spec = old.spec.map(|s| {
        let mut s = s;
        if s.rollback_to.is_some() {
            warnings.push(
                "spec.rollbackTo: dropped: rollback is not part of apps/v1 (use `kelp rollout undo`)"
                    .to_string(),
            );
        }
        if version != "apps/v1beta2" {
            default_selector_from_template(&mut meta, &mut s.selector, s.template.as_ref());
        }
        let mut strategy = s.strategy;
        let rolling = strategy
            .as_ref()
            .is_none_or(|st| st.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate");
        if version == "extensions/v1beta1" {
            // extensions/v1beta1: one pod at a time, and no limits on history or progress.
            if rolling {
                let st = strategy.get_or_insert_with(Default::default);
                st.type_.get_or_insert_with(|| "RollingUpdate".into());
                let ru = st.rolling_update.get_or_insert_with(Default::default);
                ru.max_unavailable.get_or_insert(IntOrString::Int(1));
                ru.max_surge.get_or_insert(IntOrString::Int(1));
            }
            s.revision_history_limit.get_or_insert(MAX_INT32);
            s.progress_deadline_seconds.get_or_insert(MAX_INT32);
        } else if version == "apps/v1beta1" {
            s.revision_history_limit.get_or_insert(2);
        }
        DeploymentSpec {
            replicas: s.replicas,
            selector: s.selector,
            template: s.template,
            strategy,
            min_ready_seconds: s.min_ready_seconds,
            revision_history_limit: s.revision_history_limit,
            paused: s.paused,
            progress_deadline_seconds: s.progress_deadline_seconds,
        }
    });
    Deployment {
        api_version: None,
        kind: None,
        metadata: meta,
        spec,
        status: old.status,
    }
}

fn convert_daemonset(version: &str, old: DaemonSetV1beta) -> DaemonSet {
    let mut meta = old.metadata;
    let spec = old.spec.map(|mut s| {
        if version == "extensions/v1beta1" {
            default_selector_from_template(&mut meta, &mut s.selector, s.template.as_ref());
            // extensions/v1beta1 DaemonSets replaced pods only when deleted by hand.
            let st = s.update_strategy.get_or_insert_with(Default::default);
            st.type_.get_or_insert_with(|| "OnDelete".into());
        }
        DaemonSetSpec {
            selector: s.selector,
            template: s.template,
            update_strategy: s.update_strategy,
            min_ready_seconds: s.min_ready_seconds,
            revision_history_limit: s.revision_history_limit,
        }
    });
    DaemonSet {
        api_version: None,
        kind: None,
        metadata: meta,
        spec,
        status: old.status,
    }
}

fn convert_replicaset(version: &str, mut rs: ReplicaSet) -> ReplicaSet {
    if version == "extensions/v1beta1" {
        if let Some(spec) = rs.spec.as_mut() {
            default_selector_from_template(
                &mut rs.metadata,
                &mut spec.selector,
                spec.template.as_ref(),
            );
        }
    }
    rs
}

fn convert_statefulset(version: &str, mut sts: StatefulSet) -> StatefulSet {
    if let Some(spec) = sts.spec.as_mut() {
        if version == "apps/v1beta1" {
            default_selector_from_template(
                &mut sts.metadata,
                &mut spec.selector,
                spec.template.as_ref(),
            );
            // apps/v1beta1 StatefulSets updated pods only when deleted by hand.
            let st = spec.update_strategy.get_or_insert_with(Default::default);
            st.type_.get_or_insert_with(|| "OnDelete".into());
        } else {
            let st = spec
                .update_strategy
                .get_or_insert_with(|| StatefulSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: None,
                });
            if st.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate" {
                st.rolling_update
                    .get_or_insert_with(StatefulSetRollingUpdate::default)
                    .partition
                    .get_or_insert(0);
            }
        }
    }
    sts
}

fn convert_backend(old: IngressBackendV1beta1) -> IngressBackend {
    let service = old.service_name.map(|name| IngressServiceBackend {
        name,
        port: old.service_port.map(|p| match p {
            IntOrString::Int(n) => ServiceBackendPort {
                name: None,
                number: Some(n),
            },
            IntOrString::String(s) => ServiceBackendPort {
                name: Some(s),
                number: None,
            },
        }),
    });
    IngressBackend {
        service,
        resource: old.resource,
    }
}

fn convert_ingress(old: IngressV1beta1) -> Ingress {
    let spec = old.spec.map(|s| IngressSpec {
        ingress_class_name: s.ingress_class_name,
        default_backend: s.backend.map(convert_backend),
        tls: s.tls,
        rules: s.rules.map(|rules| {
            rules
                .into_iter()
                .map(|r| IngressRule {
                    host: r.host,
                    http: r.http.map(|h| HttpIngressRuleValue {
                        paths: h
                            .paths
                            .into_iter()
                            .map(|p| HttpIngressPath {
                                path: p.path,
                                // v1beta1 defaulted a missing pathType this way.
                                path_type: Some(
                                    p.path_type
                                        .unwrap_or_else(|| "ImplementationSpecific".into()),
                                ),
                                backend: convert_backend(p.backend),
                            })
                            .collect(),
                    }),
                })
                .collect()
        }),
    });
    Ingress {
        api_version: None,
        kind: None,
        metadata: old.metadata,
        spec,
        status: old.status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(yaml: &str) -> (serde_json::Value, Vec<String>) {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
        let api_version = v["apiVersion"].as_str().unwrap().to_string();
        let kind = v["kind"].as_str().unwrap().to_string();
        let legacy = kinds::legacy(&api_version, &kind).expect("a legacy version");
        let (obj, warnings) = deserialize_legacy(legacy, v).unwrap();
        (obj.to_json(), warnings)
    }

    const TEMPLATE: &str = "
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}";

    #[test]
    fn extensions_v1beta1_deployment() {
        let (d, w) = convert(&format!(
            "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {{name: web}}\nspec:{TEMPLATE}\n  rollbackTo: {{revision: 2}}"
        ));
        assert_eq!(d["apiVersion"], "apps/v1");
        assert_eq!(d["metadata"]["labels"]["app"], "web");
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 1);
        assert_eq!(d["spec"]["revisionHistoryLimit"], MAX_INT32);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], MAX_INT32);
        assert!(d["spec"].get("rollbackTo").is_none());
        assert!(
            w[0].contains("extensions/v1beta1 Deployment is deprecated"),
            "{w:?}"
        );
        assert!(w[0].contains("apps/v1 Deployment"), "{w:?}");
        assert!(w[1].contains("spec.rollbackTo"), "{w:?}");
    }

    #[test]
    fn apps_v1beta1_deployment() {
        let (d, _) = convert(&format!(
            "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {{name: web}}\nspec:{TEMPLATE}"
        ));
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 2);
        // 25% surge/unavailable and 600 s progress deadline are shared with apps/v1 and
        // left to defaulting.
        assert!(d["spec"].get("strategy").is_none());
        assert!(d["spec"].get("progressDeadlineSeconds").is_none());
    }

    #[test]
    fn apps_v1beta2_deployment_keeps_its_selector_requirement() {
        let (d, _) = convert(&format!(
            "apiVersion: apps/v1beta2\nkind: Deployment\nmetadata: {{name: web}}\nspec:{TEMPLATE}"
        ));
        assert!(
            d["spec"].get("selector").is_none(),
            "apps/v1beta2 never defaulted it"
        );
        assert!(d["spec"].get("revisionHistoryLimit").is_none());
    }

    #[test]
    fn extensions_v1beta1_daemonset() {
        let (d, w) = convert(&format!(
            "apiVersion: extensions/v1beta1\nkind: DaemonSet\nmetadata: {{name: agent}}\nspec:{TEMPLATE}\n  templateGeneration: 3"
        ));
        assert_eq!(d["apiVersion"], "apps/v1");
        assert_eq!(d["spec"]["updateStrategy"]["type"], "OnDelete");
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
        assert!(d["spec"].get("templateGeneration").is_none());
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn apps_v1beta2_daemonset() {
        let (d, _) = convert(&format!(
            "apiVersion: apps/v1beta2\nkind: DaemonSet\nmetadata: {{name: agent}}\nspec:{TEMPLATE}\n  selector: {{matchLabels: {{app: web}}}}"
        ));
        assert!(
            d["spec"].get("updateStrategy").is_none(),
            "RollingUpdate is left to defaulting"
        );
    }

    #[test]
    fn extensions_v1beta1_replicaset() {
        let (d, _) = convert(&format!(
            "apiVersion: extensions/v1beta1\nkind: ReplicaSet\nmetadata: {{name: rs}}\nspec:{TEMPLATE}"
        ));
        assert_eq!(d["apiVersion"], "apps/v1");
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    }

    #[test]
    fn apps_v1beta2_replicaset() {
        let (d, _) = convert(&format!(
            "apiVersion: apps/v1beta2\nkind: ReplicaSet\nmetadata: {{name: rs}}\nspec:{TEMPLATE}"
        ));
        assert!(d["spec"].get("selector").is_none());
    }

    #[test]
    fn apps_v1beta1_statefulset() {
        let (d, _) = convert(&format!(
            "apiVersion: apps/v1beta1\nkind: StatefulSet\nmetadata: {{name: db}}\nspec:{TEMPLATE}\n  serviceName: db"
        ));
        assert_eq!(d["spec"]["updateStrategy"]["type"], "OnDelete");
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    }

    #[test]
    fn apps_v1beta2_statefulset() {
        let (d, _) = convert(&format!(
            "apiVersion: apps/v1beta2\nkind: StatefulSet\nmetadata: {{name: db}}\nspec:{TEMPLATE}\n  serviceName: db"
        ));
        assert_eq!(d["spec"]["updateStrategy"]["type"], "RollingUpdate");
        assert_eq!(d["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0);
    }

    #[test]
    fn batch_v1beta1_cronjob() {
        let (d, w) = convert(
            "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {name: hello}\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: hello, image: busybox}]",
        );
        assert_eq!(d["apiVersion"], "batch/v1");
        assert_eq!(d["spec"]["schedule"], "* * * * *");
        assert!(
            w[0].contains("batch/v1beta1 CronJob is deprecated, unavailable in Kubernetes v1.25+")
        );
    }

    #[test]
    fn extensions_v1beta1_ingress() {
        let (d, _) = convert(
            "apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: web}
spec:
  backend: {serviceName: default-http, servicePort: 80}
  rules:
  - host: blog.example.com
    http:
      paths:
      - path: /
        backend: {serviceName: myblog, servicePort: http}",
        );
        assert_eq!(d["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(
            d["spec"]["defaultBackend"]["service"]["name"],
            "default-http"
        );
        assert_eq!(d["spec"]["defaultBackend"]["service"]["port"]["number"], 80);
        let path = &d["spec"]["rules"][0]["http"]["paths"][0];
        assert_eq!(path["backend"]["service"]["name"], "myblog");
        assert_eq!(path["backend"]["service"]["port"]["name"], "http");
        assert_eq!(path["pathType"], "ImplementationSpecific");
        assert!(d["spec"].get("backend").is_none());
    }

    #[test]
    fn networking_v1beta1_ingress() {
        let (d, _) = convert(
            "apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: web}\nspec: {backend: {serviceName: s, servicePort: 8080}}",
        );
        assert_eq!(
            d["spec"]["defaultBackend"]["service"]["port"]["number"],
            8080
        );
    }
}
