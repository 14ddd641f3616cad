//! Discovery: `/version`, `/api`, `/apis` and the resource lists, built from the kind table.

use serde_json::{json, Value};

use kelp_shared::api::kinds::{KindInfo, KINDS};

/// The verbs every kelp resource serves.
const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// `/version`.
pub fn version() -> Value {
    let v = kelp_shared::VERSION;
    let mut parts = v.split('.');
    json!({
        "major": parts.next().unwrap_or("0"),
        "minor": parts.next().unwrap_or("0"),
        "gitVersion": format!("v{v}"),
        "platform": format!("{}/{}", std::env::consts::OS, arch()),
    })
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

/// `/api`.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

fn groups() -> Vec<&'static str> {
    let mut g: Vec<&str> = KINDS
        .iter()
        .map(|k| k.group)
        .filter(|g| !g.is_empty())
        .collect();
    g.dedup();
    g.sort();
    g.dedup();
    g
}

/// `/apis`.
pub fn group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .map(|g| {
            let version = KINDS
                .iter()
                .find(|k| k.group == g)
                .map(|k| k.version)
                .unwrap_or("v1");
            let gv = json!({"groupVersion": format!("{g}/{version}"), "version": version});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    let mut groups = groups;
    // The resource metrics API (`crate::api::metrics`), as metrics-server registers it.
    let gv = json!({
        "groupVersion": format!("{}/{}", crate::metrics::resource::GROUP, crate::metrics::resource::VERSION),
        "version": crate::metrics::resource::VERSION,
    });
    groups.push(json!({"name": crate::metrics::resource::GROUP, "versions": [gv.clone()], "preferredVersion": gv}));
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource(k: &KindInfo) -> Value {
    let mut r = json!({
        "name": k.plural,
        "singularName": k.singular,
        "namespaced": k.namespaced,
        "kind": k.kind,
        "verbs": VERBS,
    });
    if !k.short_names.is_empty() {
        r["shortNames"] = json!(k.short_names);
    }
    r
}

/// `/api/v1` or `/apis/{group}/{version}`: the resources of one group version, with their
/// `status` subresources.
pub fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for k in KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
    {
        resources.push(resource(k));
        resources.push(json!({
            "name": format!("{}/status", k.plural),
            "singularName": "",
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_covers_the_kind_table() {
        let core = resource_list("", "v1");
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"pods")
                && names.contains(&"pods/status")
                && names.contains(&"namespaces")
        );
        let groups = group_list();
        let g: Vec<&str> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            g,
            [
                "apps",
                "batch",
                "networking.k8s.io",
                "rbac.authorization.k8s.io",
                "metrics.k8s.io"
            ]
        );
        let apps = resource_list("apps", "v1");
        let deploy = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments")
            .unwrap();
        assert_eq!(deploy["shortNames"][0], "deploy");
        assert_eq!(deploy["namespaced"], true);
    }
}
