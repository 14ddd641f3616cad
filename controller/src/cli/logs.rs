//! `kelp logs` and `kelp exec`: a pod's container log, and a command run in a container,
//! answered by the pod's node (through the API's `log` and `exec` subresources).
//!
//! Like kubectl, a pod with several containers and no `-c` uses the one named by the
//! `kubectl.kubernetes.io/default-container` annotation, else its first container, and says
//! so on stderr. `kelp exec` is not interactive: it prints the command's stdout and stderr
//! once it ended, and exits with its exit code.

use std::io::{Read, Write};
use std::process::ExitCode;

use kelp_shared::api::kinds;
use serde_json::Value;
use ureq::http;

use super::client::{report_errors, ApiError, Client};
use super::resource::object_path;
use super::{Context, ExecArgs, LogsArgs};

/// The annotation naming a pod's default container.
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// `pod/NAME`, `pods/NAME`, `po/NAME` or `NAME` → `NAME`.
fn pod_name(arg: &str) -> Result<&str, ApiError> {
    match arg.split_once('/') {
        None => Ok(arg),
        Some(("pod" | "pods" | "po", name)) if !name.is_empty() => Ok(name),
        Some((kind, _)) => Err(ApiError::Other(format!(
            "cannot get the logs or exec into {kind:?}: only pods are supported"
        ))),
    }
}

/// The pod's path, and the container to use (picked as kubectl does when not given).
fn target(
    ctx: &Context,
    client: &Client,
    pod: &str,
    container: Option<&str>,
) -> Result<(String, String), ApiError> {
    let info = kinds::by_kind("Pod").expect("Pod is a known kind");
    let path = object_path(info, Some(ctx.default_namespace()), pod_name(pod)?);
    let object = client.get(&path, &[])?;
    if let Some(c) = container {
        return Ok((path, c.to_string()));
    }
    Ok((path, default_container(&object)?))
}

/// kubectl's choice of container when none is named.
pub fn default_container(pod: &Value) -> Result<String, ApiError> {
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let annotated = pod["metadata"]["annotations"][DEFAULT_CONTAINER]
        .as_str()
        .filter(|a| names.contains(a));
    match (annotated, names.as_slice()) {
        (Some(name), _) => Ok(name.to_string()),
        (None, [only]) => Ok(only.to_string()),
        (None, [first, ..]) => {
            eprintln!("Defaulted container {first:?} out of: {}", names.join(", "));
            Ok(first.to_string())
        }
        (None, []) => Err(ApiError::Other(format!(
            "pod {} has no containers",
            pod["metadata"]["name"].as_str().unwrap_or("")
        ))),
    }
}

/// `kelp logs`.
pub fn run_logs(ctx: &Context, args: &LogsArgs) -> ExitCode {
    match logs(ctx, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_errors(&[e]);
            ExitCode::FAILURE
        }
    }
}

fn logs(ctx: &Context, args: &LogsArgs) -> Result<(), ApiError> {
    let client = ctx.client()?;
    let (path, container) = target(ctx, client, &args.pod, args.container.as_deref())?;
    let mut query = vec![("container", container)];
    if args.follow {
        query.push(("follow", "true".into()));
    }
    if args.previous {
        query.push(("previous", "true".into()));
    }
    if args.tail >= 0 {
        query.push(("tailLines", args.tail.to_string()));
    }
    let mut body = client.stream(&format!("{path}/log"), &query)?;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ApiError::Other(format!("the log stream broke off: {e}"))),
        };
        // A closed stdout (`| head`) ends the command quietly.
        if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
    }
}

/// `kelp exec`.
pub fn run_exec(ctx: &Context, args: &ExecArgs) -> ExitCode {
    if args.stdin || args.tty {
        report_errors(&[ApiError::Other(
            "interactive exec (-i, -t) is not supported: kelp exec runs a command and prints its output".into(),
        )]);
        return ExitCode::FAILURE;
    }
    match exec(ctx, args) {
        Ok(result) => {
            let text = |field: &str| result[field].as_str().unwrap_or("").to_string();
            let _ = std::io::stdout().write_all(text("stdout").as_bytes());
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().write_all(text("stderr").as_bytes());
            match result["exitCode"].as_i64() {
                Some(0) => ExitCode::SUCCESS,
                Some(code) => {
                    eprintln!("command terminated with exit code {code}");
                    ExitCode::from(u8::try_from(code).unwrap_or(1).max(1))
                }
                None => {
                    eprintln!("error: the node reported no exit code");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            report_errors(&[e]);
            ExitCode::FAILURE
        }
    }
}

fn exec(ctx: &Context, args: &ExecArgs) -> Result<Value, ApiError> {
    let client = ctx.client()?;
    let (path, container) = target(ctx, client, &args.pod, args.container.as_deref())?;
    let mut query = vec![("container", container)];
    query.extend(args.command.iter().map(|c| ("command", c.clone())));
    if let Some(timeout) = args.timeout {
        query.push(("timeoutSeconds", timeout.to_string()));
    }
    client.request(http::Method::POST, &format!("{path}/exec"), &query, None)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pod_arguments_and_default_containers() {
        assert_eq!(pod_name("web").unwrap(), "web");
        assert_eq!(pod_name("pod/web").unwrap(), "web");
        assert!(pod_name("deployment/web").is_err());
        let pod = |annotations: Value| {
            json!({"metadata": {"name": "web", "annotations": annotations},
                   "spec": {"containers": [{"name": "a"}, {"name": "b"}]}})
        };
        assert_eq!(default_container(&pod(json!({}))).unwrap(), "a");
        assert_eq!(
            default_container(&pod(json!({DEFAULT_CONTAINER: "b"}))).unwrap(),
            "b"
        );
        // An annotation naming no container of the pod is ignored.
        assert_eq!(
            default_container(&pod(json!({DEFAULT_CONTAINER: "zz"}))).unwrap(),
            "a"
        );
    }
}
