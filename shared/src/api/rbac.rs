//! `rbac.authorization.k8s.io/v1`: roles and bindings (stored now, enforced later).

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::core::object;
use super::meta::LabelSelector;

object!(
    /// A ClusterRole: cluster-wide permissions.
    ClusterRole { rules: Option<Vec<PolicyRule>>, aggregation_rule: Option<AggregationRule> }
);
object!(
    /// A Role: permissions within a namespace.
    Role { rules: Option<Vec<PolicyRule>> }
);
object!(
    /// A ClusterRoleBinding.
    ClusterRoleBinding { subjects: Option<Vec<Subject>>, #[serde(default)] role_ref: RoleRef }
);
object!(
    /// A RoleBinding.
    RoleBinding { subjects: Option<Vec<Subject>>, #[serde(default)] role_ref: RoleRef }
);

/// `PolicyRule`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub verbs: Vec<String>,
    pub api_groups: Option<Vec<String>>,
    pub resources: Option<Vec<String>>,
    pub resource_names: Option<Vec<String>>,
    #[serde(rename = "nonResourceURLs")]
    pub non_resource_urls: Option<Vec<String>>,
}

/// `AggregationRule`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregationRule {
    pub cluster_role_selectors: Option<Vec<LabelSelector>>,
}

/// `Subject`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    #[serde(default)]
    pub kind: String,
    pub api_group: Option<String>,
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
}

/// `RoleRef`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    #[serde(default)]
    pub api_group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}
