//! `kelp delete`: by manifest, by type and name, or by label selector; waits until the
//! objects are gone unless told not to.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kelp_shared::api::kinds::KindInfo;
use serde_json::{json, Value};

use super::client::{report_errors, ApiError, Client};
use super::get::{list, list_query};
use super::printer::str_at;
use super::resource::{kind_display, object_path, parse_args};
use super::{emit, exit_code, load_manifests, object_namespace, source_name, Context, DeleteArgs};

/// How objects are deleted, from the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePlan {
    /// `gracePeriodSeconds`, when not the object's own default.
    pub grace_period: Option<i64>,
    /// `--force`: bypass graceful deletion.
    pub force: bool,
    /// `Background`, `Foreground` or `Orphan`.
    pub propagation: &'static str,
}

impl DeletePlan {
    /// kubectl's rules: `--now` is a grace period of 1, `--grace-period=0` without `--force`
    /// becomes 1, `--force` without a grace period becomes 0.
    pub fn from_args(args: &DeleteArgs) -> Result<Self, ApiError> {
        let mut grace = args.grace_period;
        if args.now {
            if grace != -1 {
                return Err(ApiError::Other(
                    "--now and --grace-period cannot be specified together".into(),
                ));
            }
            grace = 1;
        }
        if grace == 0 && !args.force {
            grace = 1;
        }
        if args.force && grace < 0 {
            grace = 0;
        }
        let propagation = match args.cascade.as_str() {
            "background" | "true" => "Background",
            "foreground" => "Foreground",
            "orphan" | "false" => "Orphan",
            other => {
                return Err(ApiError::Other(format!(
                    "invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\""
                )))
            }
        };
        Ok(DeletePlan {
            grace_period: (grace >= 0).then_some(grace),
            force: args.force,
            propagation,
        })
    }

    /// The query parameters of the DELETE.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(g) = self.grace_period {
            q.push(("gracePeriodSeconds", g.to_string()));
        }
        q.push(("propagationPolicy", self.propagation.to_string()));
        q
    }

    /// The `DeleteOptions` body, sent for `--force`.
    pub fn body(&self) -> Option<Value> {
        self.force.then(|| {
            json!({
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "gracePeriodSeconds": self.grace_period.unwrap_or(0),
                "propagationPolicy": self.propagation,
            })
        })
    }

    /// `deleted` or, for an immediate forced deletion, `force deleted`.
    pub fn verb(&self) -> &'static str {
        if self.force && self.grace_period == Some(0) {
            "force deleted"
        } else {
            "deleted"
        }
    }
}

/// One object to delete.
#[derive(Debug, Clone)]
struct Target {
    info: &'static KindInfo,
    namespace: Option<String>,
    name: String,
    /// The manifest it came from, for messages.
    source: String,
}

/// `kelp delete`.
pub fn run(ctx: &Context, args: &DeleteArgs) -> ExitCode {
    let plan = match DeletePlan::from_args(args) {
        Ok(p) => p,
        Err(e) => {
            report_errors(&[e]);
            return ExitCode::FAILURE;
        }
    };
    let mut errors = Vec::new();
    let mut targets = Vec::new();
    let client = match ctx.client() {
        Ok(c) => c,
        Err(e) => {
            report_errors(&[e]);
            return ExitCode::FAILURE;
        }
    };
    if !args.filename.is_empty() {
        if !args.resources.is_empty() {
            report_errors(&[ApiError::Other(
                "resource names and -f cannot be combined".into(),
            )]);
            return ExitCode::FAILURE;
        }
        let (docs, load_errors) = load_manifests(&args.filename);
        errors.extend(load_errors);
        for doc in docs {
            let info = doc.object.kind_info();
            let meta = doc.object.metadata();
            match object_namespace(info, meta.namespace.as_deref(), ctx.namespace.as_deref()) {
                Ok(namespace) => targets.push(Target {
                    info,
                    namespace,
                    name: meta.name().to_string(),
                    source: source_name(&doc.origin),
                }),
                Err(e) => errors.push(e),
            }
        }
    } else {
        let selection = match parse_args(&args.resources) {
            Ok(s) => s,
            Err(e) => {
                report_errors(&[ApiError::Other(e.to_string())]);
                return ExitCode::FAILURE;
            }
        };
        for (info, names) in &selection.groups {
            let namespace = info.namespaced.then(|| ctx.default_namespace().to_string());
            if names.is_empty() {
                if args.selector.is_none() && !args.all {
                    report_errors(&[ApiError::Other(
                        "resource(s) were provided, but no name was specified".into(),
                    )]);
                    return ExitCode::FAILURE;
                }
                let list_ns = if args.all_namespaces {
                    None
                } else {
                    namespace.as_deref()
                };
                let query = list_query(args.selector.as_deref(), None);
                match list(client, info, list_ns, &query) {
                    Ok((items, _)) => targets.extend(items.iter().map(|o| {
                        Target {
                            info,
                            namespace: info
                                .namespaced
                                .then(|| str_at(o, "metadata.namespace").to_string()),
                            name: str_at(o, "metadata.name").to_string(),
                            source: String::new(),
                        }
                    })),
                    Err(e) => errors.push(e),
                }
            } else {
                targets.extend(names.iter().map(|name| Target {
                    info,
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source: String::new(),
                }));
            }
        }
        if targets.is_empty() && errors.is_empty() && !args.ignore_not_found {
            match (
                selection.groups.iter().all(|(k, _)| k.namespaced),
                args.all_namespaces,
            ) {
                (true, false) => eprintln!(
                    "No resources found in {} namespace.",
                    ctx.default_namespace()
                ),
                _ => eprintln!("No resources found"),
            }
        }
    }

    if plan.force && plan.grace_period == Some(0) && !targets.is_empty() {
        eprintln!("Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.");
    }

    let query = plan.query();
    let body = plan.body();
    let mut waiting = Vec::new();
    for t in targets {
        let path = object_path(t.info, t.namespace.as_deref(), &t.name);
        match client.delete(&path, &query, body.as_ref()) {
            Ok(response) => {
                if args.output.as_deref() == Some("name") {
                    emit(&format!("{}/{}\n", kind_display(t.info), t.name));
                } else {
                    emit(&format!(
                        "{} {:?} {}\n",
                        kind_display(t.info),
                        t.name,
                        plan.verb()
                    ));
                }
                let uid = match response.get("kind").and_then(Value::as_str) {
                    Some("Status") | None => String::new(),
                    Some(_) => str_at(&response, "metadata.uid").to_string(),
                };
                waiting.push((path, t, uid));
            }
            Err(e) if e.is_not_found() && args.ignore_not_found => {}
            Err(e) => errors.push(e.with_source("deleting", &t.source)),
        }
    }

    if args.wait {
        let deadline =
            (args.timeout > 0).then(|| Instant::now() + Duration::from_secs(args.timeout));
        for (path, t, uid) in waiting {
            if let Err(e) = wait_until_gone(client, &path, &uid, deadline) {
                let resource = match t.info.group {
                    "" => t.info.plural.to_string(),
                    g => format!("{}.{g}", t.info.plural),
                };
                errors.push(match e {
                    WaitError::Timeout => ApiError::Other(format!(
                        "timed out waiting for the condition on {resource}/{}",
                        t.name
                    )),
                    WaitError::Api(e) => e,
                });
            }
        }
    }

    report_errors(&errors);
    exit_code(&errors)
}

enum WaitError {
    Timeout,
    Api(ApiError),
}

/// Polls until the object is gone (or replaced by another with a different uid).
fn wait_until_gone(
    client: &Client,
    path: &str,
    uid: &str,
    deadline: Option<Instant>,
) -> Result<(), WaitError> {
    let mut delay = Duration::from_millis(100);
    loop {
        match client.get(path, &[]) {
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(WaitError::Api(e)),
            Ok(obj) => {
                let live_uid = str_at(&obj, "metadata.uid");
                if !uid.is_empty() && !live_uid.is_empty() && live_uid != uid {
                    return Ok(());
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() + delay > d) {
            return Err(WaitError::Timeout);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: DeleteArgs,
    }

    fn plan(flags: &[&str]) -> Result<DeletePlan, ApiError> {
        let cli =
            Cli::try_parse_from(std::iter::once("delete").chain(flags.iter().copied())).unwrap();
        DeletePlan::from_args(&cli.args)
    }

    #[test]
    fn grace_period_rules_follow_kubectl() {
        let p = plan(&["pod", "x"]).unwrap();
        assert_eq!(p.grace_period, None);
        assert_eq!(p.query(), [("propagationPolicy", "Background".to_string())]);
        assert_eq!(p.body(), None);
        assert_eq!(p.verb(), "deleted");

        let p = plan(&["pod", "x", "--grace-period=0"]).unwrap();
        assert_eq!(p.grace_period, Some(1), "0 without --force means 1");

        let p = plan(&["pod", "x", "--force"]).unwrap();
        assert_eq!(p.grace_period, Some(0));
        assert_eq!(p.verb(), "force deleted");
        assert_eq!(
            p.query(),
            [
                ("gracePeriodSeconds", "0".to_string()),
                ("propagationPolicy", "Background".to_string())
            ]
        );
        assert_eq!(
            p.body().unwrap(),
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0, "propagationPolicy": "Background"})
        );

        let p = plan(&["pod", "x", "--grace-period=30", "--cascade=foreground"]).unwrap();
        assert_eq!(p.grace_period, Some(30));
        assert_eq!(p.propagation, "Foreground");

        assert_eq!(plan(&["pod", "x", "--now"]).unwrap().grace_period, Some(1));
        assert!(plan(&["pod", "x", "--now", "--grace-period=5"]).is_err());
        assert!(plan(&["pod", "x", "--cascade=sideways"]).is_err());
    }
}
