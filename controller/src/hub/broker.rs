//! The embedded MQTT broker (rumqttd) of `kelp server`: on 127.0.0.1:1883 by default, every
//! client authenticated. The controller logs in as [`CONTROLLER_USER`] with the password in
//! its data dir; node N logs in as user `N`, client id `N`, with the password `kelp node add`
//! stored in the Secret `kube-system/kelp-node-N` (checked at every CONNECT, so a node added
//! or deleted takes effect at once).
//!
//! rumqttd has no topic ACLs and keeps retained messages in memory only: right for one
//! machine, not for an untrusted fleet (use Mosquitto through `--mqtt-url`).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use kelp_shared::wire::{valid_node_name, MAX_PACKET};
use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};
use subtle::ConstantTimeEq;

use super::HubError;
use crate::store::{Key, Store};

/// The controller's MQTT user name (not a valid node name, so no node can take it).
pub const CONTROLLER_USER: &str = "kelp:controller";

/// The namespace of node credential Secrets.
pub const CREDENTIALS_NAMESPACE: &str = "kube-system";

/// The Secret type of node credentials.
pub const CREDENTIALS_TYPE: &str = "kelp.dev/node-credentials";

/// The name of node `node`'s credentials Secret.
pub fn credentials_secret(node: &str) -> String {
    format!("kelp-node-{node}")
}

/// The `data` of node `node`'s credentials Secret (base64, as a Secret's data is).
pub fn credentials_data(node: &str, password: &str) -> serde_json::Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    serde_json::json!({"username": b64(node), "password": b64(password)})
}

/// Node `node`'s credentials Secret (without uid and creation time: the API or the caller
/// adds them).
pub fn credentials_secret_object(node: &str, password: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": credentials_secret(node),
            "namespace": CREDENTIALS_NAMESPACE,
            "labels": {"kelp.dev/node": node},
        },
        "type": CREDENTIALS_TYPE,
        "data": credentials_data(node, password),
    })
}

/// The largest MQTT packet either side accepts: the envelope limit plus room for the topic
/// and headers.
pub const MAX_MQTT_PACKET: usize = MAX_PACKET + 64 * 1024;

fn eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether a CONNECT with these credentials may in.
pub fn authorize(
    store: &Store,
    controller_password: &str,
    client_id: &str,
    user: &str,
    password: &str,
) -> bool {
    if user == CONTROLLER_USER {
        return eq(password, controller_password);
    }
    if let Some(observer) = user.strip_prefix("observer@") {
        // An observer (rumqttd cannot hold it to reading: see `--insecure-shared-broker`).
        let secret = store.get(&Key::new(
            "Secret",
            CREDENTIALS_NAMESPACE,
            &super::mosquitto::observer_secret(observer),
        ));
        return secret.is_some_and(|s| {
            s.object["type"] == super::mosquitto::OBSERVER_TYPE
                && stored_password(&s.object).is_some_and(|p| eq(&p, password))
        });
    }
    // A node's client id is its name, or its name and a suffix (`NODE.BOOTID`: one per agent
    // run, so a second agent with the name does not take the first one's session over).
    let own_id = client_id == user
        || client_id
            .strip_prefix(user)
            .is_some_and(|rest| rest.starts_with('.'));
    if !valid_node_name(user) || !own_id {
        return false;
    }
    if store.get(&Key::new("Node", "", user)).is_none() {
        return false;
    }
    let Some(secret) = store.get(&Key::new(
        "Secret",
        CREDENTIALS_NAMESPACE,
        &credentials_secret(user),
    )) else {
        return false;
    };
    stored_password(&secret.object).is_some_and(|p| eq(&p, password))
}

/// The clear-text password of a credentials Secret.
fn stored_password(secret: &serde_json::Value) -> Option<String> {
    let stored = secret["data"]["password"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .ok()?;
    // Empty: a node that logs in with a client certificate, never by password.
    (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned())
}

/// Starts the broker on `listen` (port 0: a free port is picked) in threads of its own;
/// returns the address it listens on once it accepts connections.
pub fn start(
    listen: SocketAddr,
    store: Store,
    controller_password: String,
) -> Result<SocketAddr, HubError> {
    let bind_error = |source: std::io::Error| HubError::Listen {
        addr: listen,
        source,
    };
    // rumqttd binds inside its own thread and only logs a failure: bind here first, for a
    // clear error (and to learn the port when asked for port 0).
    let probe = TcpListener::bind(listen).map_err(bind_error)?;
    let addr = probe.local_addr().map_err(bind_error)?;
    drop(probe);

    let auth: rumqttd::AuthHandler = Arc::new(move |client_id, user, password| {
        let ok = authorize(&store, &controller_password, &client_id, &user, &password);
        if !ok {
            tracing::warn!(%client_id, %user, "MQTT login refused");
        }
        ok
    });
    let server = ServerSettings {
        name: "kelp-mqtt".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 5000,
            max_payload_size: MAX_MQTT_PACKET,
            max_inflight_count: 100,
            auth: None,
            external_auth: Some(auth),
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_100,
            max_outgoing_packet_count: 200,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("kelp".to_owned(), server)])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(err) = broker.start() {
                tracing::error!(error = %err, "embedded MQTT broker stopped");
            }
        })
        .map_err(bind_error)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(HubError::Listen {
                addr,
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the embedded broker did not start listening",
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(addr)
}

/// Serves MQTT over TLS on `listen` in front of the embedded broker at `broker` (plain, on
/// loopback): each connection's TLS is ended here, with the API's serving certificate (signed
/// by the cluster CA that join files carry), and its bytes relayed to the broker. Logins are
/// checked by the broker as on its plain listener. Returns the address it listens on.
pub async fn start_tls_front(
    listen: SocketAddr,
    broker: SocketAddr,
    config: Arc<rustls::ServerConfig>,
) -> Result<SocketAddr, HubError> {
    let bind_error = |source: std::io::Error| HubError::Listen {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "MQTT TLS listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let handshake =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                let mut tls = match handshake {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(err)) => {
                        tracing::warn!(%peer, error = %err, "MQTT TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "MQTT TLS handshake timed out");
                        return;
                    }
                };
                let mut plain = match tokio::net::TcpStream::connect(broker).await {
                    Ok(stream) => stream,
                    Err(err) => {
                        tracing::warn!(%peer, error = %err, "cannot reach the embedded broker");
                        return;
                    }
                };
                let _ = plain.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    Ok(addr)
}
