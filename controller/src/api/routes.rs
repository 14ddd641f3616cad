//! Parsing Kubernetes API paths and query strings.

use kelp_shared::api::kinds::{self, KindInfo};

use super::status::ApiError;

/// What a request path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/version`.
    Version,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/api/v1` or `/apis/{group}/{version}`.
    Resources {
        /// The group (`""` for core).
        group: String,
        /// The version.
        version: String,
    },
    /// A collection: `/api/v1/pods` (all namespaces), `/api/v1/namespaces/ns/pods`,
    /// `/api/v1/nodes`.
    Collection {
        /// The kind.
        info: &'static KindInfo,
        /// The namespace; `None` for cluster-scoped kinds or all namespaces.
        namespace: Option<String>,
    },
    /// One object, optionally a subresource (`status`; a pod's `log` and `exec`).
    Object {
        /// The kind.
        info: &'static KindInfo,
        /// The namespace (`None` for cluster-scoped kinds).
        namespace: Option<String>,
        /// The name.
        name: String,
        /// `status`, `log` or `exec`, when the path ends in it.
        subresource: Option<String>,
    },
}

/// Parses a request path.
pub fn parse(path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::Groups),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route(path)),
    };
    let known = kinds::KINDS
        .iter()
        .any(|k| k.group == group && k.version == version);
    if !known {
        return Err(ApiError::no_route(path));
    }
    let kind = |plural: &str| {
        kinds::by_group_plural(group, plural).ok_or_else(|| ApiError::no_route(path))
    };
    let object = |info: &'static KindInfo, ns: Option<&str>, name: &str, sub: Option<&str>| {
        let known = match sub {
            None | Some("status") => true,
            // A pod's log and exec, served by its node.
            Some("log" | "exec") => info.kind == "Pod",
            Some(_) => false,
        };
        if !known {
            return Err(ApiError::no_route(path));
        }
        Ok(Route::Object {
            info,
            namespace: ns.map(str::to_string),
            name: name.to_string(),
            subresource: sub.map(str::to_string),
        })
    };
    let scoped = |info: &'static KindInfo, ns: Option<&str>| {
        // A namespaced path for a cluster-scoped kind, or the reverse for a single object,
        // names nothing.
        if ns.is_some() && !info.namespaced {
            return Err(ApiError::no_route(path));
        }
        Ok(info)
    };
    match rest {
        [] => Ok(Route::Resources {
            group: group.to_string(),
            version: version.to_string(),
        }),
        ["namespaces", ns, "status"] if group.is_empty() => {
            object(kind("namespaces")?, None, ns, Some("status"))
        }
        ["namespaces", ns, plural] => {
            let info = scoped(kind(plural)?, Some(ns))?;
            Ok(Route::Collection {
                info,
                namespace: Some(ns.to_string()),
            })
        }
        ["namespaces", ns, plural, name] => {
            object(scoped(kind(plural)?, Some(ns))?, Some(ns), name, None)
        }
        ["namespaces", ns, plural, name, sub] => {
            object(scoped(kind(plural)?, Some(ns))?, Some(ns), name, Some(sub))
        }
        [plural] => Ok(Route::Collection {
            info: kind(plural)?,
            namespace: None,
        }),
        [plural, name] => {
            let info = kind(plural)?;
            if info.namespaced {
                return Err(ApiError::no_route(path));
            }
            object(info, None, name, None)
        }
        [plural, name, sub] => {
            let info = kind(plural)?;
            if info.namespaced {
                return Err(ApiError::no_route(path));
            }
            object(info, None, name, Some(sub))
        }
        _ => Err(ApiError::no_route(path)),
    }
}

/// The query parameters kelp understands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `watch=true|1`.
    pub watch: bool,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `timeoutSeconds` (watches).
    pub timeout_seconds: Option<u64>,
    /// `gracePeriodSeconds` (deletes).
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy` (deletes): `Background`, `Foreground` or `Orphan`.
    pub propagation_policy: Option<String>,
    /// `container` (a pod's log and exec).
    pub container: Option<String>,
    /// `follow=true|1` (a pod's log).
    pub follow: bool,
    /// `previous=true|1` (a pod's log).
    pub previous: bool,
    /// `tailLines` (a pod's log), as given.
    pub tail_lines: Option<String>,
    /// `command`, once per argument (a pod's exec).
    pub command: Vec<String>,
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    /// Parses a query string (percent-decoding values).
    pub fn parse(q: &str) -> Query {
        let mut out = Query::default();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v);
            match k {
                "labelSelector" => out.label_selector = Some(v),
                "fieldSelector" => out.field_selector = Some(v),
                "watch" => out.watch = v == "true" || v == "1",
                "resourceVersion" => out.resource_version = Some(v),
                "timeoutSeconds" => out.timeout_seconds = v.parse().ok(),
                "gracePeriodSeconds" => out.grace_period_seconds = v.parse().ok(),
                "propagationPolicy" => out.propagation_policy = Some(v).filter(|p| !p.is_empty()),
                "container" => out.container = Some(v).filter(|c| !c.is_empty()),
                "follow" => out.follow = v == "true" || v == "1",
                "previous" => out.previous = v == "true" || v == "1",
                "tailLines" => out.tail_lines = Some(v),
                "command" => out.command.push(v),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(r: &Route) -> (&'static str, Option<String>) {
        match r {
            Route::Collection { info, namespace } => (info.kind, namespace.clone()),
            Route::Object {
                info, namespace, ..
            } => (info.kind, namespace.clone()),
            _ => ("", None),
        }
    }

    #[test]
    fn kubernetes_paths_parse() {
        assert_eq!(parse("/version").unwrap(), Route::Version);
        assert_eq!(parse("/api").unwrap(), Route::CoreVersions);
        assert_eq!(parse("/apis").unwrap(), Route::Groups);
        assert!(matches!(
            parse("/apis/apps/v1").unwrap(),
            Route::Resources { .. }
        ));
        assert_eq!(info(&parse("/api/v1/pods").unwrap()), ("Pod", None));
        assert_eq!(
            info(&parse("/api/v1/namespaces/luffy/pods").unwrap()),
            ("Pod", Some("luffy".into()))
        );
        assert_eq!(
            info(&parse("/api/v1/namespaces/luffy").unwrap()),
            ("Namespace", None)
        );
        assert_eq!(
            info(&parse("/api/v1/namespaces").unwrap()),
            ("Namespace", None)
        );
        assert_eq!(
            info(&parse("/apis/apps/v1/namespaces/x/deployments/web").unwrap()),
            ("Deployment", Some("x".into()))
        );
        assert!(matches!(
            parse("/api/v1/namespaces/x/pods/p/status").unwrap(),
            Route::Object { subresource: Some(ref s), .. } if s == "status"
        ));
        assert!(matches!(
            parse("/api/v1/nodes/pi-1/status").unwrap(),
            Route::Object {
                subresource: Some(_),
                ..
            }
        ));
        assert!(matches!(
            parse("/api/v1/namespaces/luffy/status").unwrap(),
            Route::Object {
                subresource: Some(_),
                ..
            }
        ));
        for bad in [
            "/api/v2/pods",
            "/apis/apps/v1/pods/x",
            "/api/v1/widgets",
            "/api/v1/namespaces/x/nodes",
            "/apis/apps/v1beta1/deployments",
            "/healthz/x/y",
            "/api/v1/namespaces/x/pods/p/attach",
            "/api/v1/namespaces/x/configmaps/c/log",
            "/api/v1/nodes/n/exec",
        ] {
            assert_eq!(parse(bad).unwrap_err().code, 404, "{bad}");
        }
    }

    #[test]
    fn pods_have_log_and_exec() {
        for sub in ["log", "exec"] {
            let route = parse(&format!("/api/v1/namespaces/x/pods/p/{sub}")).unwrap();
            assert!(
                matches!(&route, Route::Object { info, subresource: Some(s), name, .. }
                    if info.kind == "Pod" && s == sub && name == "p"),
                "{route:?}"
            );
        }
        let q = Query::parse("container=c&follow=true&tailLines=5&previous=1&command=sh&command=-c&command=echo+a%26b");
        assert_eq!(q.container.as_deref(), Some("c"));
        assert!(q.follow && q.previous);
        assert_eq!(q.tail_lines.as_deref(), Some("5"));
        assert_eq!(q.command, ["sh", "-c", "echo a&b"]);
    }

    #[test]
    fn queries_parse() {
        let q = Query::parse("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=true&resourceVersion=12&gracePeriodSeconds=0");
        assert_eq!(q.label_selector.as_deref(), Some("app=web,tier in (a)"));
        assert!(q.watch);
        assert_eq!(q.resource_version.as_deref(), Some("12"));
        assert_eq!(q.grace_period_seconds, Some(0));
    }
}
