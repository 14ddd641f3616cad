//! `kelp create -f FILE` and `kelp create namespace NAME`.

use std::process::ExitCode;

use serde_json::{json, Value};

use super::apply::with_last_applied;
use super::client::report_errors;
use super::resource::{collection_path, kind_display};
use super::{
    emit, exit_code, load_manifests, object_namespace, source_name, Context, CreateArgs, CreateWhat,
};

/// `kelp create`.
pub fn run(ctx: &Context, args: &CreateArgs) -> ExitCode {
    match &args.what {
        Some(CreateWhat::Namespace { name }) => create_namespace(ctx, name),
        None => create_from_files(ctx, args),
    }
}

/// The Namespace object `kelp create namespace NAME` sends.
pub fn namespace_object(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn create_namespace(ctx: &Context, name: &str) -> ExitCode {
    let result = ctx
        .client()
        .and_then(|c| c.create("/api/v1/namespaces", &namespace_object(name)));
    match result {
        Ok(_) => {
            emit(&format!("namespace/{name} created\n"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_errors(&[e]);
            ExitCode::FAILURE
        }
    }
}

fn create_from_files(ctx: &Context, args: &CreateArgs) -> ExitCode {
    let (docs, mut errors) = load_manifests(&args.filename);
    if !docs.is_empty() {
        match ctx.client() {
            Ok(client) => {
                for doc in docs {
                    let info = doc.object.kind_info();
                    let source = source_name(&doc.origin);
                    let meta = doc.object.metadata();
                    let ns = match object_namespace(
                        info,
                        meta.namespace.as_deref(),
                        ctx.namespace.as_deref(),
                    ) {
                        Ok(ns) => ns,
                        Err(e) => {
                            errors.push(e);
                            continue;
                        }
                    };
                    let mut object = doc.object.to_json();
                    if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                        match &ns {
                            Some(ns) => {
                                m.insert("namespace".into(), Value::String(ns.clone()));
                            }
                            None => {
                                m.remove("namespace");
                            }
                        }
                    }
                    if args.save_config {
                        object = with_last_applied(&object);
                    }
                    match client.create(&collection_path(info, ns.as_deref()), &object) {
                        Ok(created) => {
                            let name = created
                                .pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .unwrap_or(meta.name());
                            emit(&format!("{}/{name} created\n", kind_display(info)));
                        }
                        Err(e) => errors.push(e.with_source("creating", &source)),
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    report_errors(&errors);
    exit_code(&errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_object_is_minimal() {
        assert_eq!(
            namespace_object("luffy"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "luffy"}})
        );
    }
}
