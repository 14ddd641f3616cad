//! [`Object`]: any kind kelp stores, with dispatch from `apiVersion`/`kind`.

use serde::de::{Deserialize, Deserializer};
use serde::{Serialize, Serializer};

use super::apps::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use super::batch::{CronJob, Job};
use super::core::{
    ConfigMap, Event, LimitRange, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ResourceQuota, Secret, Service, ServiceAccount,
};
use super::kinds::{self, KindInfo};
use super::meta::ObjectMeta;
use super::networking::Ingress;
use super::rbac::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

macro_rules! objects {
    ($($kind:ident),* $(,)?) => {
        /// Any object kelp stores, at its current version.
        #[derive(Clone, Debug, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Object {
            $(
                #[doc = concat!("A ", stringify!($kind), ".")]
                $kind($kind),
            )*
        }

        impl Object {
            /// The kind's name, `"Pod"`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Object::$kind(_) => stringify!($kind),)*
                }
            }

            /// The object's metadata.
            pub fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(Object::$kind(o) => &o.metadata,)*
                }
            }

            /// The object's metadata, for changing.
            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Object::$kind(o) => &mut o.metadata,)*
                }
            }

            /// Sets `apiVersion` and `kind` to the stored version.
            pub fn set_type_meta(&mut self) {
                let info = self.kind_info();
                match self {
                    $(Object::$kind(o) => {
                        o.api_version = Some(info.api_version());
                        o.kind = Some(info.kind.to_string());
                    })*
                }
            }

            /// Deserializes `kind` at its current version from any deserializer.
            /// `Ok(None)` means kelp does not know the kind.
            pub fn deserialize_current<'de, D: Deserializer<'de>>(
                kind: &str,
                de: D,
            ) -> Result<Option<Object>, D::Error> {
                Ok(Some(match kind {
                    $(stringify!($kind) => Object::$kind($kind::deserialize(de)?),)*
                    _ => return Ok(None),
                }))
            }
        }

        $(
            impl From<$kind> for Object {
                fn from(o: $kind) -> Object {
                    Object::$kind(o)
                }
            }
        )*

        impl Serialize for Object {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Object::$kind(o) => o.serialize(s),)*
                }
            }
        }
    };
}

objects!(
    Namespace,
    Node,
    Pod,
    ConfigMap,
    Secret,
    Service,
    ServiceAccount,
    PersistentVolume,
    PersistentVolumeClaim,
    ResourceQuota,
    LimitRange,
    Event,
    ReplicaSet,
    Deployment,
    DaemonSet,
    StatefulSet,
    Job,
    CronJob,
    Ingress,
    ClusterRole,
    ClusterRoleBinding,
    Role,
    RoleBinding,
);

impl Object {
    /// The kind table's row for this object.
    pub fn kind_info(&self) -> &'static KindInfo {
        kinds::by_kind(self.kind()).expect("every Object variant has a row in KINDS")
    }

    /// The object as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("API objects always serialize to JSON")
    }

    /// Reads an object of `kind` from JSON at its current version.
    pub fn from_json(kind: &str, value: serde_json::Value) -> Result<Object, serde_json::Error> {
        Object::deserialize_current(kind, value)?
            .ok_or_else(|| serde::de::Error::custom(format!("unsupported kind {kind:?}")))
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn key(&self) -> String {
        let m = self.metadata();
        match m.namespace.as_deref() {
            Some(ns) if self.kind_info().namespaced => format!("{ns}/{}", m.name()),
            _ => m.name().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_in_the_table_has_a_variant() {
        for info in kinds::KINDS {
            let obj = Object::from_json(info.kind, serde_json::json!({"metadata": {"name": "x"}}))
                .unwrap_or_else(|e| panic!("{}: {e}", info.kind));
            assert_eq!(obj.kind(), info.kind);
            assert_eq!(obj.kind_info(), info);
        }
    }
}
