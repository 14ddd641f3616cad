//! `kelp node add NAME`: registers a node and writes its join file; `kelp node remove NAME`
//! revokes it; `kelp observer add|remove NAME`: read-only MQTT users.
//!
//! Creates the Node (refused when the name is taken), stores the node's MQTT credentials in
//! the Secret `kube-system/kelp-node-NAME` (which the embedded broker checks at every
//! CONNECT, and from which `kelp server --mosquitto-passwd/--mosquitto-acl` keeps Mosquitto's
//! files), reads the cluster id, the controller's public key and the broker URL from the
//! ConfigMap `kube-public/kelp-cluster-info`, and writes the join file (mode 0600). With an
//! external broker whose files the server does not keep, it prints the password-file line
//! and ACL lines to install there.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kelp_shared::join::{ClientIdentity, JoinFile};
use kelp_shared::wire::check_node_name;
use serde_json::{json, Value};

use super::client::{report_errors, ApiError};
use super::{emit, Context, NodeAddArgs};
use crate::hub::broker::{
    credentials_data, credentials_secret, credentials_secret_object, CREDENTIALS_NAMESPACE,
};
use crate::hub::mosquitto::{
    acl_lines, observer_secret, observer_user, password_hash, Role, OBSERVER_TYPE,
};
use crate::hub::{identity::random_secret, CLUSTER_INFO, CLUSTER_INFO_NAMESPACE};
use base64::Engine;
use kelp_shared::wire::Topics;

/// `kelp node add`.
pub fn add(ctx: &Context, args: &NodeAddArgs) -> ExitCode {
    match add_inner(ctx, args) {
        Ok((path, manual)) => {
            emit(&format!(
                "node/{} created\njoin file written to {} (keep it secret: it holds the node's MQTT password)\n{}",
                args.name,
                path.display(),
                manual.unwrap_or_default()
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

/// What to install by hand on a broker whose files the server does not keep (`None` for
/// the embedded broker and a Mosquitto the server manages).
fn manual_lines(info: &Value, user: &str, password: &str, role: &Role) -> Option<String> {
    if info["data"]["broker"].as_str() != Some(crate::hub::BROKER_EXTERNAL) {
        return None;
    }
    let topics = Topics::new(info["data"]["topicPrefix"].as_str().unwrap_or("kelp/v1")).ok()?;
    if password.is_empty() {
        return Some(format!(
            "The broker's users are not kept by this server: the node logs in with its certificate (common name {user:?}); add these lines to Mosquitto's ACL file, then reload it (SIGHUP):\n\n{}",
            acl_lines(&topics, user, role)
        ));
    }
    let hash = password_hash(password, &rand::random());
    Some(format!(
        "The broker's users are not kept by this server: add this line to Mosquitto's password file\n\n{user}:{hash}\n\nand these to its ACL file, then reload it (SIGHUP):\n\n{}",
        acl_lines(&topics, user, role)
    ))
}

/// The file to write (`-o`, or `NAME.SUFFIX`), refused when it exists: `what` says what it
/// would have overwritten.
fn new_output(args: &NodeAddArgs, suffix: &str, what: &str) -> Result<PathBuf, ApiError> {
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.{suffix}", args.name)));
    if output.exists() {
        return Err(ApiError::Other(format!(
            "{} exists: not overwriting {what}",
            output.display()
        )));
    }
    Ok(output)
}

/// The cluster info ConfigMap the server writes (cluster id, key, broker URL and kind).
fn cluster_info(client: &super::client::Client) -> Result<Value, ApiError> {
    client.get(
        &format!("/api/v1/namespaces/{CLUSTER_INFO_NAMESPACE}/configmaps/{CLUSTER_INFO}"),
        &[],
    )
}

fn add_inner(ctx: &Context, args: &NodeAddArgs) -> Result<(PathBuf, Option<String>), ApiError> {
    let name = args.name.as_str();
    check_node_name(name).map_err(|e| ApiError::Other(e.to_string()))?;
    let output = new_output(args, "join.yaml", "a join file")?;
    let client = ctx.client()?;
    let info = cluster_info(client)?;
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
        client_identity: None,
    };
    if let Some(url) = &args.broker_url {
        join.broker_url = url.clone();
    }
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path)
            .map_err(|e| ApiError::Other(format!("{}: {e}", path.display())))
    };
    if let Some(ca) = &args.broker_ca {
        join.ca_pem = Some(read(ca)?);
    }
    if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
        if info["data"]["broker"].as_str() == Some(crate::hub::BROKER_EMBEDDED) {
            return Err(ApiError::Other(
                "--client-cert: the embedded broker logs nodes in by password; client certificates need Mosquitto with use_identity_as_username".into(),
            ));
        }
        join.client_identity = Some(ClientIdentity {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        });
        join.password = String::new();
    }
    let password = join.password.clone();
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
    Ok((
        output,
        manual_lines(&info, name, &password, &Role::Node(name.to_owned())),
    ))
}

fn report(result: Result<String, ApiError>) -> ExitCode {
    match result {
        Ok(text) => {
            emit(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_errors(&[e]);
            ExitCode::FAILURE
        }
    }
}

/// `kelp node remove NAME`: the credentials first (the broker refuses the node's next login
/// and, with a managed Mosquitto, its ACL lines go), then the Node (the hub clears its
/// retained topics). Its pods keep running on the machine, on their own.
pub fn remove(ctx: &Context, name: &str) -> ExitCode {
    report((|| {
        let client = ctx.client()?;
        let secret = format!(
            "/api/v1/namespaces/{CREDENTIALS_NAMESPACE}/secrets/{}",
            credentials_secret(name)
        );
        let had_secret = match client.delete(&secret, &[], None) {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e),
        };
        let had_node = match client.delete(&format!("/api/v1/nodes/{name}"), &[], None) {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e),
        };
        if !had_secret && !had_node {
            return Err(ApiError::Other(format!("node {name:?} not found")));
        }
        Ok(format!(
            "node/{name} removed: its MQTT credentials are revoked (its pods keep running on the machine until it is joined again)\n"
        ))
    })())
}

/// An observer's credentials file: what `kelp mqtt nodes` needs to read the fleet straight
/// from the broker.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ObserverFile<'a> {
    broker_url: &'a str,
    username: &'a str,
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_pem: Option<&'a str>,
    cluster_id: &'a str,
    topic_prefix: &'a str,
}

/// `kelp observer add NAME`.
pub fn add_observer(ctx: &Context, args: &NodeAddArgs) -> ExitCode {
    report((|| {
        let name = args.name.as_str();
        check_node_name(name).map_err(|e| ApiError::Other(format!("observer name: {e}")))?;
        let output = new_output(args, "observer.yaml", "a credentials file")?;
        let client = ctx.client()?;
        let info = cluster_info(client)?;
        let user = observer_user(name);
        let password = random_secret();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": observer_secret(name),
                "namespace": CREDENTIALS_NAMESPACE,
                "labels": {"kelp.dev/observer": name},
            },
            "type": OBSERVER_TYPE,
            "data": {"username": b64(&user), "password": b64(&password)},
        });
        client
            .create(
                &format!("/api/v1/namespaces/{CREDENTIALS_NAMESPACE}/secrets"),
                &secret,
            )
            .map_err(|e| {
                if e.is_already_exists() {
                    ApiError::Other(format!(
                        "observer {name:?} already exists: `kelp observer remove {name}` first"
                    ))
                } else {
                    e
                }
            })?;
        let file = ObserverFile {
            broker_url: args
                .broker_url
                .as_deref()
                .unwrap_or(info_field(&info, "brokerUrl")?),
            username: &user,
            password: &password,
            ca_pem: info["data"]["brokerCaPem"].as_str(),
            cluster_id: info_field(&info, "clusterId")?,
            topic_prefix: info_field(&info, "topicPrefix")?,
        };
        let text = serde_yaml_ng::to_string(&file).map_err(|e| ApiError::Other(e.to_string()))?;
        write_private(&output, &text)
            .map_err(|e| ApiError::Other(format!("{}: {e}", output.display())))?;
        Ok(format!(
            "observer/{name} created: MQTT user {user:?} reads every node's status, reports and metrics\ncredentials written to {} (mode 0600)\n{}",
            output.display(),
            manual_lines(&info, &user, &password, &Role::Observer).unwrap_or_default()
        ))
    })())
}

/// `kelp observer remove NAME`.
pub fn remove_observer(ctx: &Context, name: &str) -> ExitCode {
    report((|| {
        let client = ctx.client()?;
        let path = format!(
            "/api/v1/namespaces/{CREDENTIALS_NAMESPACE}/secrets/{}",
            observer_secret(name)
        );
        client.delete(&path, &[], None).map_err(|e| {
            if e.is_not_found() {
                ApiError::Other(format!("observer {name:?} not found"))
            } else {
                e
            }
        })?;
        Ok(format!("observer/{name} removed\n"))
    })())
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
