//! `kelp node add NAME`: registers a node and writes its join file.
//!
//! Creates the Node (refused when the name is taken), stores the node's MQTT credentials in
//! the Secret `kube-system/kelp-node-NAME` (which the embedded broker checks at every
//! CONNECT), reads the cluster id, the controller's public key and the broker URL from the
//! ConfigMap `kube-public/kelp-cluster-info`, and writes the join file (mode 0600).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kelp_shared::join::JoinFile;
use kelp_shared::wire::check_node_name;
use serde_json::{json, Value};

use super::client::{report_errors, ApiError};
use super::{emit, Context, NodeAddArgs};
use crate::hub::broker::{
    credentials_data, credentials_secret, credentials_secret_object, CREDENTIALS_NAMESPACE,
};
use crate::hub::{identity::random_secret, CLUSTER_INFO, CLUSTER_INFO_NAMESPACE};

/// `kelp node add`.
pub fn add(ctx: &Context, args: &NodeAddArgs) -> ExitCode {
    match add_inner(ctx, args) {
        Ok(path) => {
            emit(&format!(
                "node/{} created\njoin file written to {} (keep it secret: it holds the node's MQTT password)\n",
                args.name,
                path.display()
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_errors(&[e]);
            ExitCode::FAILURE
        }
    }
}

fn info_field<'a>(info: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    info["data"][field].as_str().ok_or_else(|| {
        ApiError::Other(format!(
            "configmap {CLUSTER_INFO_NAMESPACE}/{CLUSTER_INFO} has no {field}: is the server's node hub running?"
        ))
    })
}

fn add_inner(ctx: &Context, args: &NodeAddArgs) -> Result<PathBuf, ApiError> {
    let name = args.name.as_str();
    check_node_name(name).map_err(|e| ApiError::Other(e.to_string()))?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.join.yaml")));
    if output.exists() {
        return Err(ApiError::Other(format!(
            "{} exists: not overwriting a join file",
            output.display()
        )));
    }
    let client = ctx.client()?;
    let info = client.get(
        &format!("/api/v1/namespaces/{CLUSTER_INFO_NAMESPACE}/configmaps/{CLUSTER_INFO}"),
        &[],
    )?;
    let password = random_secret();
    let mut join = JoinFile {
        broker_url: info_field(&info, "brokerUrl")?.to_owned(),
        username: name.to_owned(),
        password: password.clone(),
        ca_pem: info["data"]["brokerCaPem"].as_str().map(str::to_owned),
        cluster_id: info_field(&info, "clusterId")?
            .parse()
            .map_err(|e| ApiError::Other(format!("cluster info: {e}")))?,
        controller_public_key: info_field(&info, "controllerPublicKey")?
            .parse()
            .map_err(|e| ApiError::Other(format!("cluster info: {e}")))?,
        node_name: name.to_owned(),
        topic_prefix: info_field(&info, "topicPrefix")?.to_owned(),
    };
    if let Some(url) = &args.broker_url {
        join.broker_url = url.clone();
    }
    join.check().map_err(|e| ApiError::Other(e.to_string()))?;

    // The Node first: creating it is what claims the name.
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    client.create("/api/v1/nodes", &node).map_err(|e| {
        if e.is_already_exists() {
            ApiError::Other(format!(
                "node {name:?} already exists: pick another name, or `kelp delete node {name}` first"
            ))
        } else {
            e
        }
    })?;
    let secret_name = credentials_secret(name);
    let data = credentials_data(name, &password);
    let secret = credentials_secret_object(name, &password);
    let secrets = format!("/api/v1/namespaces/{CREDENTIALS_NAMESPACE}/secrets");
    match client.create(&secrets, &secret) {
        Ok(_) => {}
        // Left over from an earlier node of this name: its password is replaced.
        Err(e) if e.is_already_exists() => {
            client.merge_patch(&format!("{secrets}/{secret_name}"), &json!({"data": data}))?;
        }
        Err(e) => return Err(e),
    }
    write_private(&output, &join.to_yaml())
        .map_err(|e| ApiError::Other(format!("{}: {e}", output.display())))?;
    Ok(output)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
