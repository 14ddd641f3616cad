//! `kelp scale`: sets `spec.replicas` of deployments, replica sets and stateful sets.
//!
//! kelp's API has no `/scale` subresource: the size is a merge patch of `spec.replicas`.
//! With a precondition (`--current-replicas`, `--resource-version`) the object is read
//! first, checked as kubectl checks a `Scale`, and patched with its `resourceVersion`, so a
//! writer in between makes the patch conflict; a conflict re-reads and checks again.

use std::process::ExitCode;

use kelp_shared::api::kinds::KindInfo;
use serde_json::{json, Value};

use super::client::{report_errors, ApiError, Client};
use super::printer::{desired_replicas as current_replicas, str_at};
use super::resource::{kind_display, object_path, parse_args};
use super::{emit, exit_code, Context, ScaleArgs};

/// The kinds with a replica count.
const SCALABLE: &[&str] = &["Deployment", "ReplicaSet", "StatefulSet"];

/// How many times a conflicting write is tried again.
const CONFLICT_RETRIES: usize = 5;

/// kubectl's `ScalePrecondition`: a size (-1: any) and a resourceVersion (empty: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precondition {
    /// `--current-replicas`.
    pub size: i64,
    /// `--resource-version`.
    pub resource_version: String,
}

impl Precondition {
    /// Whether there is anything to check.
    pub fn is_set(&self) -> bool {
        self.size != -1 || !self.resource_version.is_empty()
    }

    /// Checks the live object: kubectl's `Expected replicas to be 3, was 2`.
    pub fn check(&self, live: &Value) -> Result<(), String> {
        let size = current_replicas(live);
        if self.size != -1 && size != self.size {
            return Err(format!("Expected replicas to be {}, was {size}", self.size));
        }
        let rv = str_at(live, "metadata.resourceVersion");
        if !self.resource_version.is_empty() && rv != self.resource_version {
            return Err(format!(
                "Expected resource version to be {}, was {rv}",
                self.resource_version
            ));
        }
        Ok(())
    }
}

/// The merge patch that sets the size, pinned to `resource_version` when given.
pub fn replicas_patch(replicas: i64, resource_version: Option<&str>) -> Value {
    let mut patch = json!({"spec": {"replicas": replicas}});
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    patch
}

/// `kelp scale`.
pub fn run(ctx: &Context, args: &ScaleArgs) -> ExitCode {
    if args.replicas < 0 {
        report_errors(&[ApiError::Other(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"
                .into(),
        )]);
        return ExitCode::FAILURE;
    }
    let selection = match parse_args(&args.resources) {
        Ok(s) => s,
        Err(e) => {
            report_errors(&[ApiError::Other(e.to_string())]);
            return ExitCode::FAILURE;
        }
    };
    let client = match ctx.client() {
        Ok(c) => c,
        Err(e) => {
            report_errors(&[e]);
            return ExitCode::FAILURE;
        }
    };
    let precondition = Precondition {
        size: args.current_replicas,
        resource_version: args.resource_version.clone().unwrap_or_default(),
    };
    let mut errors = Vec::new();
    for (info, names) in &selection.groups {
        if !SCALABLE.contains(&info.kind) {
            errors.push(ApiError::Other(format!(
                "cannot scale {}: only deployments, replicasets and statefulsets have a replica count",
                info.plural
            )));
            continue;
        }
        if names.is_empty() {
            errors.push(ApiError::Other(
                "resource(s) were provided, but no name was specified".into(),
            ));
            continue;
        }
        for name in names {
            match scale_one(
                client,
                info,
                ctx.default_namespace(),
                name,
                args,
                &precondition,
            ) {
                Ok(()) => {
                    emit(&format!("{}/{name} scaled\n", kind_display(info)));
                }
                Err(e) => errors.push(e),
            }
        }
    }
    report_errors(&errors);
    exit_code(&errors)
}

fn scale_one(
    client: &Client,
    info: &KindInfo,
    namespace: &str,
    name: &str,
    args: &ScaleArgs,
    precondition: &Precondition,
) -> Result<(), ApiError> {
    let path = object_path(info, Some(namespace), name);
    if !precondition.is_set() {
        client.merge_patch(&path, &replicas_patch(args.replicas, None))?;
        return Ok(());
    }
    let mut tries = 0;
    loop {
        let live = client.get(&path, &[])?;
        precondition.check(&live).map_err(ApiError::Other)?;
        let rv = str_at(&live, "metadata.resourceVersion");
        match client.merge_patch(&path, &replicas_patch(args.replicas, Some(rv))) {
            Err(e)
                if e.reason() == Some("Conflict")
                    && precondition.resource_version.is_empty()
                    && tries < CONFLICT_RETRIES =>
            {
                tries += 1;
            }
            other => return other.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions_read_like_kubectl() {
        let live = json!({"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 2}});
        let any = Precondition {
            size: -1,
            resource_version: String::new(),
        };
        assert!(!any.is_set());
        assert_eq!(any.check(&live), Ok(()));
        let three = Precondition {
            size: 3,
            ..any.clone()
        };
        assert_eq!(
            three.check(&live),
            Err("Expected replicas to be 3, was 2".into())
        );
        let two = Precondition {
            size: 2,
            ..any.clone()
        };
        assert_eq!(two.check(&live), Ok(()));
        let rv = Precondition {
            resource_version: "6".into(),
            ..any.clone()
        };
        assert_eq!(
            rv.check(&live),
            Err("Expected resource version to be 6, was 7".into())
        );
        // No spec.replicas means 1.
        assert_eq!(current_replicas(&json!({"spec": {}})), 1);
        assert_eq!(
            Precondition { size: 1, ..any }.check(&json!({"spec": {}})),
            Ok(())
        );
    }

    #[test]
    fn patches() {
        assert_eq!(replicas_patch(4, None), json!({"spec": {"replicas": 4}}));
        assert_eq!(
            replicas_patch(0, Some("12")),
            json!({"spec": {"replicas": 0}, "metadata": {"resourceVersion": "12"}})
        );
    }
}
