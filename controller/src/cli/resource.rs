//! What the user typed → which kind, which URL.
//!
//! Resource names resolve through the kind table ([`kinds::by_resource`]): plural, singular,
//! short name or kind, optionally group-qualified (`deployments.apps`). Arguments come in
//! kubectl's two shapes: `TYPE[,TYPE...] [NAME...]` or `TYPE/NAME...`.

use kelp_shared::api::kinds::{self, KindInfo};

/// A resource type the server does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No kind answers to the name.
    #[error("the server doesn't have a resource type {0:?}")]
    UnknownType(String),
    /// Nothing to act on.
    #[error("{0}")]
    Usage(String),
}

/// Resolves a typed resource name (`po`, `pods`, `deployments.apps`, `Pod`).
pub fn resolve(typed: &str) -> Result<&'static KindInfo, ResolveError> {
    kinds::by_resource(typed).ok_or_else(|| ResolveError::UnknownType(typed.to_string()))
}

/// The resources named on a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Each requested type with the names asked for (empty: all of that type).
    pub groups: Vec<(&'static KindInfo, Vec<String>)>,
}

impl Selection {
    /// Whether more than one resource type was requested (kubectl then prefixes names).
    pub fn multiple_types(&self) -> bool {
        self.groups.len() > 1
    }
}

/// Parses `TYPE[,TYPE...] [NAME...]` or `TYPE/NAME [TYPE/NAME...]`.
pub fn parse_args(args: &[String]) -> Result<Selection, ResolveError> {
    let Some(first) = args.first() else {
        return Err(ResolveError::Usage(
            "You must specify the type of resource to get. Use \"kelp api-resources\" for a complete list of supported resources.".into(),
        ));
    };
    if first.contains('/') {
        let mut groups: Vec<(&'static KindInfo, Vec<String>)> = Vec::new();
        for arg in args {
            let Some((ty, name)) = arg.split_once('/') else {
                return Err(ResolveError::Usage(format!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'kelp get resource/<resource_name>' instead of 'kelp get resource resource/<resource_name>'): {arg:?}"
                )));
            };
            if name.is_empty() {
                return Err(ResolveError::Usage(format!(
                    "arguments in resource/name form must have a single resource and name: {arg:?}"
                )));
            }
            let info = resolve(ty)?;
            match groups.iter_mut().find(|(k, _)| *k == info) {
                Some((_, names)) => names.push(name.to_string()),
                None => groups.push((info, vec![name.to_string()])),
            }
        }
        return Ok(Selection { groups });
    }
    let names: Vec<String> = args[1..].to_vec();
    if let Some(bad) = names.iter().find(|n| n.contains('/')) {
        return Err(ResolveError::Usage(format!(
            "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'kelp get resource/<resource_name>' instead of 'kelp get resource resource/<resource_name>'): {bad:?}"
        )));
    }
    let mut groups = Vec::new();
    for ty in first.split(',').filter(|t| !t.is_empty()) {
        let info = resolve(ty)?;
        if !groups
            .iter()
            .any(|(k, _): &(&KindInfo, Vec<String>)| *k == info)
        {
            groups.push((info, names.clone()));
        }
    }
    if groups.is_empty() {
        return Err(ResolveError::UnknownType(first.clone()));
    }
    if groups.len() > 1 && !names.is_empty() {
        return Err(ResolveError::Usage(
            "you may only specify a single resource type when naming objects".into(),
        ));
    }
    Ok(Selection { groups })
}

/// How kubectl names a kind in its messages: `pod`, `deployment.apps`,
/// `clusterrole.rbac.authorization.k8s.io`.
pub fn kind_display(info: &KindInfo) -> String {
    let kind = info.kind.to_ascii_lowercase();
    if info.group.is_empty() {
        kind
    } else {
        format!("{kind}.{}", info.group)
    }
}

/// The collection URL: `/api/v1/namespaces/{ns}/pods`, `/api/v1/nodes`, or with `ns` None
/// for a namespaced kind, the all-namespaces list `/api/v1/pods`.
pub fn collection_path(info: &KindInfo, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if info.namespaced => format!(
            "{}/namespaces/{}/{}",
            info.path_prefix(),
            escape_segment(ns),
            info.plural
        ),
        _ => format!("{}/{}", info.path_prefix(), info.plural),
    }
}

/// The URL of one object.
pub fn object_path(info: &KindInfo, namespace: Option<&str>, name: &str) -> String {
    format!(
        "{}/{}",
        collection_path(info, namespace),
        escape_segment(name)
    )
}

/// Percent-encodes a path segment (names are DNS-like, but never trust input).
pub fn escape_segment(s: &str) -> String {
    escape(s, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':')
    })
}

/// Percent-encodes a query component (`labelSelector=app=web,tier!=db`).
pub fn escape_query(s: &str) -> String {
    escape(s, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
    })
}

fn escape(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn short_plural_singular_and_group_forms_resolve() {
        for (typed, kind) in [
            ("po", "Pod"),
            ("pod", "Pod"),
            ("pods", "Pod"),
            ("deploy", "Deployment"),
            ("deployments.apps", "Deployment"),
            ("ns", "Namespace"),
            ("svc", "Service"),
            ("cm", "ConfigMap"),
            ("ds", "DaemonSet"),
            ("rs", "ReplicaSet"),
            ("no", "Node"),
        ] {
            assert_eq!(resolve(typed).unwrap().kind, kind, "{typed}");
        }
        assert_eq!(
            resolve("widgets").unwrap_err().to_string(),
            r#"the server doesn't have a resource type "widgets""#
        );
    }

    #[test]
    fn argument_shapes() {
        let s = parse_args(&args(&["po", "a", "b"])).unwrap();
        assert_eq!(s.groups.len(), 1);
        assert_eq!(s.groups[0].0.kind, "Pod");
        assert_eq!(s.groups[0].1, ["a", "b"]);

        let s = parse_args(&args(&["pods,svc"])).unwrap();
        assert!(s.multiple_types());
        assert_eq!(s.groups[1].0.kind, "Service");

        let s = parse_args(&args(&["pod/a", "deploy/web", "pod/b"])).unwrap();
        assert_eq!(s.groups[0].1, ["a", "b"]);
        assert_eq!(s.groups[1].0.kind, "Deployment");

        assert!(parse_args(&args(&["pod/a", "b"])).is_err());
        assert!(parse_args(&args(&["pod", "svc/b"])).is_err());
        assert!(matches!(
            parse_args(&args(&["pods,widgets"])),
            Err(ResolveError::UnknownType(t)) if t == "widgets"
        ));
        assert!(parse_args(&[]).is_err());
    }

    #[test]
    fn display_names_and_paths() {
        let pod = resolve("po").unwrap();
        let deploy = resolve("deploy").unwrap();
        let ns = resolve("ns").unwrap();
        assert_eq!(kind_display(pod), "pod");
        assert_eq!(kind_display(deploy), "deployment.apps");
        assert_eq!(
            object_path(pod, Some("luffy"), "myblog"),
            "/api/v1/namespaces/luffy/pods/myblog"
        );
        assert_eq!(collection_path(pod, None), "/api/v1/pods");
        assert_eq!(
            collection_path(deploy, Some("default")),
            "/apis/apps/v1/namespaces/default/deployments"
        );
        assert_eq!(
            object_path(ns, Some("x"), "luffy"),
            "/api/v1/namespaces/luffy"
        );
        assert_eq!(escape_query("app=web,tier!=db"), "app%3Dweb%2Ctier%21%3Ddb");
        assert_eq!(escape_segment("a b/c"), "a%20b%2Fc");
    }
}
