//! Object metadata and the small shared shapes of `meta/v1`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_with::skip_serializing_none;

/// A string-keyed map, as Kubernetes uses for labels, annotations, data and resource lists.
pub type Map<V = String> = BTreeMap<String, V>;

/// `metav1.Time`: an RFC 3339 timestamp with second precision, always in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub DateTime<Utc>);

impl Time {
    /// The current time, truncated to whole seconds as Kubernetes stores it.
    pub fn now() -> Self {
        let now = Utc::now();
        Time(DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Time(t.with_timezone(&Utc)))
            .map_err(|e| serde::de::Error::custom(format!("invalid RFC 3339 time {s:?}: {e}")))
    }
}

/// Bytes that travel as base64 text, as in `Secret.data` and `ConfigMap.binaryData`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteString(pub Vec<u8>);

impl fmt::Debug for ByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secret values never reach logs.
        write!(f, "ByteString({} bytes)", self.0.len())
    }
}

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Kubernetes accepts standard base64 with padding; whitespace is not allowed.
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(ByteString)
            .map_err(|e| serde::de::Error::custom(format!("illegal base64 data: {e}")))
    }
}

/// `metav1.ObjectMeta`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: Option<String>,
    pub generate_name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
    pub creation_timestamp: Option<Time>,
    pub deletion_timestamp: Option<Time>,
    pub deletion_grace_period_seconds: Option<i64>,
    pub labels: Option<Map>,
    pub annotations: Option<Map>,
    pub owner_references: Option<Vec<OwnerReference>>,
    pub finalizers: Option<Vec<String>>,
    pub managed_fields: Option<Vec<serde_json::Value>>,
    pub self_link: Option<String>,
}

impl ObjectMeta {
    /// The name, or "" when it is not set yet.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// The namespace, or "" when it is not set.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

/// `metav1.OwnerReference`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub controller: Option<bool>,
    pub block_owner_deletion: Option<bool>,
}

/// `metav1.ListMeta`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    pub resource_version: Option<String>,
    #[serde(rename = "continue")]
    pub continue_: Option<String>,
    pub remaining_item_count: Option<i64>,
    pub self_link: Option<String>,
}

/// `metav1.LabelSelector`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: Option<Map>,
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// One expression of a [`LabelSelector`].
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    pub values: Option<Vec<String>>,
}

impl LabelSelector {
    /// Whether `labels` satisfy this selector (an empty selector matches everything).
    pub fn matches(&self, labels: Option<&Map>) -> bool {
        let empty = Map::new();
        let labels = labels.unwrap_or(&empty);
        let by_labels = self
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        let by_exprs = self.match_expressions.iter().flatten().all(|req| {
            let values = req.values.as_deref().unwrap_or(&[]);
            match req.operator.as_str() {
                "In" => labels.get(&req.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&req.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&req.key),
                "DoesNotExist" => !labels.contains_key(&req.key),
                _ => false,
            }
        });
        by_labels && by_exprs
    }
}

/// `corev1.ObjectReference`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub field_path: Option<String>,
}

/// `corev1.LocalObjectReference`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    pub name: Option<String>,
}

/// `corev1.TypedLocalObjectReference`.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypedLocalObjectReference {
    pub api_group: Option<String>,
    pub kind: String,
    pub name: String,
}

/// `metav1.Condition` and the per-kind condition shapes, which share these fields.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub observed_generation: Option<i64>,
    pub last_probe_time: Option<Time>,
    pub last_heartbeat_time: Option<Time>,
    pub last_update_time: Option<Time>,
    pub last_transition_time: Option<Time>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips_in_kubernetes_format() {
        let t: Time = serde_json::from_str("\"2024-03-01T10:20:30Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2024-03-01T10:20:30Z\""
        );
        let t: Time = serde_json::from_str("\"2024-03-01T12:20:30+02:00\"").unwrap();
        assert_eq!(t.to_string(), "2024-03-01T10:20:30Z");
        assert!(serde_json::from_str::<Time>("\"yesterday\"").is_err());
    }

    #[test]
    fn byte_string_is_base64() {
        let b: ByteString = serde_json::from_str("\"YWRtaW4=\"").unwrap();
        assert_eq!(b.0, b"admin");
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"YWRtaW4=\"");
        let err = serde_json::from_str::<ByteString>("\"not base64!\"").unwrap_err();
        assert!(err.to_string().contains("illegal base64 data"), "{err}");
    }

    #[test]
    fn label_selector_semantics() {
        let labels: Map = [("app".to_string(), "web".to_string())].into();
        let sel = |y: &str| serde_yaml_ng::from_str::<LabelSelector>(y).unwrap();
        assert!(sel("{}").matches(Some(&labels)));
        assert!(sel("matchLabels: {app: web}").matches(Some(&labels)));
        assert!(!sel("matchLabels: {app: db}").matches(Some(&labels)));
        assert!(
            sel("matchExpressions: [{key: app, operator: In, values: [web, x]}]")
                .matches(Some(&labels))
        );
        assert!(
            !sel("matchExpressions: [{key: app, operator: NotIn, values: [web]}]")
                .matches(Some(&labels))
        );
        assert!(sel("matchExpressions: [{key: tier, operator: DoesNotExist}]").matches(None));
        assert!(!sel("matchExpressions: [{key: tier, operator: Exists}]").matches(Some(&labels)));
    }
}
