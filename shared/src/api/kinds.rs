//! The kind table: every kind kelp knows, in one place.
//!
//! Each row gives the group, the version kelp stores and serves (the current GA one), the
//! resource names a user may type (plural, singular, short names) and whether objects live
//! in a namespace. Legacy versions that Kubernetes once served are listed in [`LEGACY`] and
//! converted on load by [`crate::api::legacy`].

/// One kind kelp knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// API group; `""` is the core group.
    pub group: &'static str,
    /// The version kelp stores and serves.
    pub version: &'static str,
    /// `Pod`, `Deployment`, ...
    pub kind: &'static str,
    /// Resource name in URLs: `pods`.
    pub plural: &'static str,
    /// `pod`.
    pub singular: &'static str,
    /// kubectl's short names: `po`.
    pub short_names: &'static [&'static str],
    /// Whether objects of this kind live in a namespace.
    pub namespaced: bool,
}

impl KindInfo {
    /// `v1`, `apps/v1`, ...
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The URL prefix of the group version: `/api/v1` or `/apis/apps/v1`.
    pub fn path_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

macro_rules! kind {
    ($group:literal, $version:literal, $kind:literal, $plural:literal, $singular:literal,
     [$($short:literal),*], $namespaced:literal) => {
        KindInfo {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: &[$($short),*],
            namespaced: $namespaced,
        }
    };
}

/// Every kind kelp stores, at the version it stores it.
pub static KINDS: &[KindInfo] = &[
    kind!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        ["ns"],
        false
    ),
    kind!("", "v1", "Node", "nodes", "node", ["no"], false),
    kind!("", "v1", "Pod", "pods", "pod", ["po"], true),
    kind!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        ["cm"],
        true
    ),
    kind!("", "v1", "Secret", "secrets", "secret", [], true),
    kind!("", "v1", "Service", "services", "service", ["svc"], true),
    kind!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        ["sa"],
        true
    ),
    kind!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        ["pv"],
        false
    ),
    kind!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        ["pvc"],
        true
    ),
    kind!(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        "resourcequota",
        ["quota"],
        true
    ),
    kind!(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        "limitrange",
        ["limits"],
        true
    ),
    kind!("", "v1", "Event", "events", "event", ["ev"], true),
    kind!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        ["rs"],
        true
    ),
    kind!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        ["deploy"],
        true
    ),
    kind!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        ["ds"],
        true
    ),
    kind!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        ["sts"],
        true
    ),
    kind!("batch", "v1", "Job", "jobs", "job", [], true),
    kind!(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        ["cj"],
        true
    ),
    kind!(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        ["ing"],
        true
    ),
    kind!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        [],
        false
    ),
    kind!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        [],
        false
    ),
    kind!(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        [],
        true
    ),
    kind!(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        [],
        true
    ),
];

/// A version of a kind that Kubernetes once served and kelp converts on load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegacyVersion {
    /// `extensions/v1beta1`, ...
    pub api_version: &'static str,
    /// The kind.
    pub kind: &'static str,
    /// The Kubernetes release that stopped serving it.
    pub removed_in: &'static str,
}

macro_rules! legacy {
    ($api_version:literal, $kind:literal, $removed:literal) => {
        LegacyVersion {
            api_version: $api_version,
            kind: $kind,
            removed_in: $removed,
        }
    };
}

/// Legacy versions accepted with a deprecation warning: those of the seed's table that
/// Kubernetes really served, and their siblings of the same era.
pub static LEGACY: &[LegacyVersion] = &[
    legacy!("extensions/v1beta1", "Deployment", "1.16"),
    legacy!("apps/v1beta1", "Deployment", "1.16"),
    legacy!("apps/v1beta2", "Deployment", "1.16"),
    legacy!("extensions/v1beta1", "DaemonSet", "1.16"),
    legacy!("apps/v1beta2", "DaemonSet", "1.16"),
    legacy!("extensions/v1beta1", "ReplicaSet", "1.16"),
    legacy!("apps/v1beta2", "ReplicaSet", "1.16"),
    legacy!("apps/v1beta1", "StatefulSet", "1.16"),
    legacy!("apps/v1beta2", "StatefulSet", "1.16"),
    legacy!("batch/v1beta1", "CronJob", "1.25"),
    legacy!("extensions/v1beta1", "Ingress", "1.22"),
    legacy!("networking.k8s.io/v1beta1", "Ingress", "1.22"),
];

/// The row for a kind name (`Pod`), exact case.
pub fn by_kind(kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// The row for what a user typed on the command line: plural, singular, short name or kind,
/// in any case, optionally qualified by group (`deployments.apps`).
pub fn by_resource(name: &str) -> Option<&'static KindInfo> {
    let name = name.to_ascii_lowercase();
    let (name, group) = match name.split_once('.') {
        Some((n, g)) => (n.to_string(), Some(g.to_string())),
        None => (name, None),
    };
    KINDS.iter().find(|k| {
        let named = k.plural == name
            || k.singular == name
            || k.kind.eq_ignore_ascii_case(&name)
            || k.short_names.contains(&name.as_str());
        named && group.as_deref().is_none_or(|g| g == k.group)
    })
}

/// The row for a group and plural, as in a URL.
pub fn by_group_plural(group: &str, plural: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.plural == plural)
}

/// The legacy row for an apiVersion and kind, if Kubernetes once served it.
pub fn legacy(api_version: &str, kind: &str) -> Option<&'static LegacyVersion> {
    LEGACY
        .iter()
        .find(|l| l.api_version == api_version && l.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_resolve_like_kubectl() {
        for (typed, kind) in [
            ("po", "Pod"),
            ("pods", "Pod"),
            ("pod", "Pod"),
            ("Pod", "Pod"),
            ("deploy", "Deployment"),
            ("deployments.apps", "Deployment"),
            ("ns", "Namespace"),
            ("svc", "Service"),
            ("cm", "ConfigMap"),
            ("ds", "DaemonSet"),
            ("rs", "ReplicaSet"),
            ("sts", "StatefulSet"),
            ("cj", "CronJob"),
            ("ing", "Ingress"),
            ("pvc", "PersistentVolumeClaim"),
            ("no", "Node"),
            ("clusterrolebindings", "ClusterRoleBinding"),
        ] {
            assert_eq!(by_resource(typed).map(|k| k.kind), Some(kind), "{typed}");
        }
        assert!(by_resource("deployments.batch").is_none());
        assert!(by_resource("widgets").is_none());
    }

    #[test]
    fn the_table_has_no_duplicate_names() {
        let mut names: Vec<&str> = KINDS
            .iter()
            .flat_map(|k| {
                [k.plural, k.singular]
                    .into_iter()
                    .chain(k.short_names.iter().copied())
            })
            .collect();
        let before = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), before);
    }

    #[test]
    fn every_seed_kind_is_known() {
        // The seed's table (§2.5): kind → apiVersions it lists.
        for kind in [
            "ClusterRoleBinding",
            "ClusterRole",
            "ConfigMap",
            "CronJob",
            "DaemonSet",
            "Node",
            "Namespace",
            "Secret",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "Pod",
            "Deployment",
            "Service",
            "Ingress",
            "ReplicaSet",
            "Job",
            "StatefulSet",
        ] {
            assert!(by_kind(kind).is_some(), "{kind}");
        }
        assert_eq!(by_kind("Deployment").unwrap().api_version(), "apps/v1");
        assert_eq!(
            by_kind("Ingress").unwrap().path_prefix(),
            "/apis/networking.k8s.io/v1"
        );
        assert_eq!(by_kind("Pod").unwrap().path_prefix(), "/api/v1");
    }
}
