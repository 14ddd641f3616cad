//! `kelp api-resources` (from the server's discovery documents) and `kelp version`.

use std::process::ExitCode;

use serde_json::Value;

use super::client::{report_errors, ApiError, Client};
use super::printer::{list_at, str_at};
use super::tabwriter::TabWriter;
use super::{emit, ApiResourcesArgs, Context, VersionArgs};

/// One resource as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResource {
    /// `""` for the core group.
    pub group: String,
    /// `v1`, `apps/v1`.
    pub group_version: String,
    /// Plural name: `pods`.
    pub name: String,
    /// `po`.
    pub short_names: Vec<String>,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// `Pod`.
    pub kind: String,
    /// `get`, `list`, ...
    pub verbs: Vec<String>,
    /// `all`, ...
    pub categories: Vec<String>,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    list_at(v, key)
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// The resources of one `APIResourceList` (subresources such as `pods/status` left out).
pub fn parse_resource_list(list: &Value) -> Vec<ApiResource> {
    let group_version = str_at(list, "groupVersion").to_string();
    let group = group_version
        .split_once('/')
        .map_or("", |(g, _)| g)
        .to_string();
    list_at(list, "resources")
        .iter()
        .filter(|r| !str_at(r, "name").contains('/'))
        .map(|r| ApiResource {
            group: group.clone(),
            group_version: group_version.clone(),
            name: str_at(r, "name").to_string(),
            short_names: strings(r, "shortNames"),
            namespaced: r
                .get("namespaced")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            kind: str_at(r, "kind").to_string(),
            verbs: strings(r, "verbs"),
            categories: strings(r, "categories"),
        })
        .collect()
}

/// Every resource the server serves, at each group's preferred version.
pub fn discover(client: &Client) -> Result<Vec<ApiResource>, ApiError> {
    let mut out = Vec::new();
    let core = client.get("/api", &[])?;
    for version in strings(&core, "versions") {
        let list = client.get(&format!("/api/{version}"), &[])?;
        out.extend(parse_resource_list(&list));
    }
    let groups = client.get("/apis", &[])?;
    for g in list_at(&groups, "groups") {
        let mut gv = str_at(g, "preferredVersion.groupVersion").to_string();
        if gv.is_empty() {
            gv = list_at(g, "versions")
                .first()
                .map(|v| str_at(v, "groupVersion").to_string())
                .unwrap_or_default();
        }
        if gv.is_empty() {
            continue;
        }
        let list = client.get(&format!("/apis/{gv}"), &[])?;
        out.extend(parse_resource_list(&list));
    }
    Ok(out)
}

/// The `api-resources` output for these resources and flags.
pub fn render_api_resources(mut resources: Vec<ApiResource>, args: &ApiResourcesArgs) -> String {
    resources.retain(|r| {
        args.namespaced.is_none_or(|n| r.namespaced == n)
            && args.api_group.as_deref().is_none_or(|g| r.group == g)
            && args.verbs.iter().all(|v| r.verbs.contains(v))
    });
    // kubectl sorts by group, then name.
    resources.sort_by(|a, b| a.group.cmp(&b.group).then_with(|| a.name.cmp(&b.name)));
    let output = args.output.as_deref().unwrap_or("");
    if output == "name" {
        return resources
            .iter()
            .map(|r| {
                if r.group.is_empty() {
                    format!("{}\n", r.name)
                } else {
                    format!("{}.{}\n", r.name, r.group)
                }
            })
            .collect();
    }
    let wide = output == "wide";
    let mut tw = TabWriter::for_tables();
    if !args.no_headers {
        let mut h = vec!["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"];
        if wide {
            h.extend(["VERBS", "CATEGORIES"]);
        }
        tw.write_row(&h);
    }
    for r in &resources {
        let mut row = vec![
            r.name.clone(),
            r.short_names.join(","),
            r.group_version.clone(),
            r.namespaced.to_string(),
            r.kind.clone(),
        ];
        if wide {
            row.push(format!("[{}]", r.verbs.join(" ")));
            row.push(r.categories.join(","));
        }
        tw.write_row(&row);
    }
    tw.flush()
}

/// `kelp api-resources`.
pub fn run_api_resources(ctx: &Context, args: &ApiResourcesArgs) -> ExitCode {
    if let Some(o) = args.output.as_deref() {
        if o != "wide" && o != "name" {
            eprintln!("error: --output {o} is not available");
            return ExitCode::FAILURE;
        }
    }
    match ctx.client().and_then(discover) {
        Ok(resources) => {
            emit(&render_api_resources(resources, args));
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_errors(&[e]);
            ExitCode::FAILURE
        }
    }
}

/// `kelp version`.
pub fn run_version(ctx: &Context, args: &VersionArgs) -> ExitCode {
    emit(&format!("Client Version: v{}\n", kelp_shared::VERSION));
    if args.client {
        return ExitCode::SUCCESS;
    }
    match ctx.client().and_then(|c| c.get("/version", &[])) {
        Ok(v) => {
            emit(&format!("Server Version: {}\n", str_at(&v, "gitVersion")));
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_errors(&[e]);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args() -> ApiResourcesArgs {
        ApiResourcesArgs {
            namespaced: None,
            api_group: None,
            verbs: vec![],
            output: None,
            no_headers: false,
        }
    }

    fn sample() -> Vec<ApiResource> {
        let core = json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
             "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": ["po"], "categories": ["all"]},
            {"name": "pods/status", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
            {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
             "verbs": ["create", "get", "list"], "shortNames": ["ns"]},
            {"name": "configmaps", "namespaced": true, "kind": "ConfigMap", "verbs": ["get"], "shortNames": ["cm"]}]});
        let apps = json!({"groupVersion": "apps/v1", "resources": [
            {"name": "deployments", "namespaced": true, "kind": "Deployment", "verbs": ["get", "list"], "shortNames": ["deploy"]}]});
        let mut r = parse_resource_list(&apps);
        r.extend(parse_resource_list(&core));
        r
    }

    #[test]
    fn api_resources_table() {
        assert_eq!(
            render_api_resources(sample(), &args()),
            "\
NAME          SHORTNAMES   APIVERSION   NAMESPACED   KIND
configmaps    cm           v1           true         ConfigMap
namespaces    ns           v1           false        Namespace
pods          po           v1           true         Pod
deployments   deploy       apps/v1      true         Deployment
"
        );
    }

    #[test]
    fn api_resources_filters_and_formats() {
        let mut a = args();
        a.namespaced = Some(false);
        assert!(render_api_resources(sample(), &a).contains("namespaces"));
        assert!(!render_api_resources(sample(), &a).contains("pods"));
        let mut a = args();
        a.output = Some("name".into());
        assert_eq!(
            render_api_resources(sample(), &a),
            "configmaps\nnamespaces\npods\ndeployments.apps\n"
        );
        let mut a = args();
        a.api_group = Some("apps".into());
        a.no_headers = true;
        assert_eq!(
            render_api_resources(sample(), &a),
            "deployments   deploy   apps/v1   true   Deployment\n"
        );
        let mut a = args();
        a.output = Some("wide".into());
        a.verbs = vec!["watch".into()];
        let out = render_api_resources(sample(), &a);
        assert!(
            out.contains("[create delete get list patch update watch]   all"),
            "{out}"
        );
        assert_eq!(out.lines().count(), 2);
    }
}
