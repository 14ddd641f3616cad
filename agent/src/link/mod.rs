//! The agent's MQTT session with the controller (through any broker).
//!
//! One thread owns rumqttc's connection and only ever polls it; the agent's loop talks to it
//! through a channel ([`Link::inbox`]) and rumqttc's non-blocking `try_*` calls. On every
//! CONNACK the thread subscribes to the node's `desired` topic again and publishes the birth
//! (retained; the last will marks the node offline); the agent then re-publishes its reported
//! state. A desired state is handed to the agent only once it is verified: an envelope of
//! the pinned cluster, signed by the pinned controller key, addressed to this node. Whether
//! its generation is new is the agent's call, against the copy it persisted.
//!
//! **One agent per node name.** Each agent run connects with a client id of its own
//! (`NODE.BOOTID`), so a second agent started with the same join file does not take the
//! first one's session over (which would have them flap, each kicking the other off). Both
//! watch the node's `status` topic: an agent that sees the birth of a *newer* run of its
//! node publishes its own birth again; an agent that sees a *live* birth of an *older* run
//! after connecting knows that run is alive, disconnects cleanly (no last will) and stops
//! with an error saying why ([`Inbound::Refused`]). A desired state received in the first
//! `claim_window` after the first connection is held back until the claim settled, so the
//! refused agent starts nothing.
//!
//! Requests (`cmd/+/req`, subscribed on every CONNACK too) are verified the same way, plus
//! their deadline ([`request`]), and handed straight from the link thread to the request
//! handler, which answers each on a thread of its own: the agent's loop never sees them.

pub mod local_copy;
pub mod node_info;
pub mod report;
pub mod request;
pub mod secret_dir;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kelp_shared::join::JoinFile;
use kelp_shared::wire::sign::verify;
use kelp_shared::wire::{
    Birth, BootId, ClusterId, DesiredState, Envelope, MessageKind, Offline, PublicKey, Reported,
    Request, StaticPods, TopicKind, Topics, MAX_PACKET,
};
use rumqttc::{
    Client, Connection, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, RecvTimeoutError,
};

/// How to reach the controller, from the node's join file.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub node: String,
    pub cluster: ClusterId,
    pub controller_key: PublicKey,
    pub topics: Topics,
    /// MQTT keepalive (60 s; tests shorten it).
    pub keepalive: Duration,
    /// First wait before reconnecting, doubled up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// TLS (`mqtts://`): the client configuration trusting the join file's `caPem`.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// How long after the first connection a received desired state is held back while
    /// another live agent with this node's name could still answer (see the module docs).
    pub claim_window: Duration,
}

impl LinkConfig {
    pub fn from_join(join: &JoinFile) -> anyhow::Result<Self> {
        let (host, port, tls) = join.broker_address()?;
        let tls = match (tls, &join.ca_pem) {
            (false, _) => None,
            (true, None) => anyhow::bail!(
                "brokerUrl {:?} is TLS (mqtts://): the join file needs caPem, the CA certificate of the broker",
                join.broker_url
            ),
            (true, Some(pem)) => {
                let identity = join
                    .client_identity
                    .as_ref()
                    .map(|i| (i.cert_pem.as_str(), i.key_pem.as_str()));
                Some(std::sync::Arc::new(
                    kelp_shared::tls::client_config_with_identity(pem, identity)
                        .map_err(|e| anyhow::anyhow!("caPem/clientIdentity: {e}"))?,
                ))
            }
        };
        Ok(Self {
            host,
            port,
            username: join.username.clone(),
            password: join.password.clone(),
            node: join.node_name.clone(),
            cluster: join.cluster_id,
            controller_key: join.controller_public_key,
            topics: Topics::new(join.topic_prefix.clone())?,
            keepalive: Duration::from_secs(60),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            claim_window: Duration::from_secs(2),
            tls,
        })
    }
}

/// What the link tells the agent.
#[derive(Debug)]
pub enum Inbound {
    /// A (new) session is up and the node's name is this agent's: (re-)publish the reported
    /// state.
    Connected,
    /// A verified desired state for this node.
    Desired(Box<DesiredState>),
    /// A message that was dropped, and why (logged by the agent).
    Dropped(String),
    /// Another live agent runs as this node: this one must stop (the link has ended).
    Refused(String),
}

/// What an agent does about the birth of another run of its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Its own birth, or one that proves nothing (a retained birth of an older run may be
    /// left by a run that is gone).
    Nothing,
    /// A newer run appeared: publish our birth again, so it sees we are alive.
    Assert,
    /// An older run is alive: this run is the second agent with the name and must stop.
    Refuse,
}

/// Decides about `other`, a birth seen on our node's `status` topic (`retained`: delivered
/// as the retained message on subscription rather than live). `own` is this run's
/// (start time, boot id); runs are ordered by start time, then boot id.
pub fn claim(own: (u64, BootId), other: &Birth, retained: bool) -> Claim {
    let theirs = (other.agent_start_unix_ms, other.boot_id);
    if theirs == own {
        Claim::Nothing
    } else if theirs > own {
        Claim::Assert
    } else if retained {
        Claim::Nothing
    } else {
        Claim::Refuse
    }
}

/// Takes each verified request with the responder that answers it; must not block.
pub type RequestHandler = Box<dyn Fn(Request, request::Responder) + Send>;

/// The running link.
pub struct Link {
    client: Client,
    config: LinkConfig,
    pub inbox: Receiver<Inbound>,
    shared: Arc<Shared>,
}

/// What the link thread and the publishers on other threads share.
#[derive(Debug, Default)]
struct Shared {
    /// The session (CONNACK count) while connected; 0 while not.
    session: AtomicU64,
    /// When a metrics batch was last queued, in ms after `epoch`; 0: never.
    metrics_sent_ms: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl Shared {
    fn since_epoch(&self, at: Instant) -> u64 {
        let epoch = *self.epoch.get_or_init(Instant::now);
        u64::try_from(at.saturating_duration_since(epoch).as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// When the last metrics batch was queued, if ever.
    fn metrics_sent(&self) -> Option<Instant> {
        let ms = self.metrics_sent_ms.load(Ordering::Relaxed);
        let epoch = *self.epoch.get()?;
        (ms > 0).then(|| epoch + Duration::from_millis(ms))
    }
}

/// Publishes metrics batches on the node's `metrics` topic (QoS 0, not retained) through
/// the link's session; see [`crate::metrics`].
pub struct MetricsPublisher {
    client: Client,
    topic: String,
    cluster: ClusterId,
    shared: Arc<Shared>,
}

impl crate::metrics::Publisher for MetricsPublisher {
    fn session(&self) -> Option<u64> {
        Some(self.shared.session.load(Ordering::Relaxed)).filter(|&s| s != 0)
    }

    fn publish(&self, samples: &kelp_shared::wire::Samples) -> bool {
        let payload = match Envelope::seal_message(self.cluster, samples, true) {
            Ok(envelope) => envelope.encode(),
            Err(e) => {
                tracing::warn!("metrics batch not sent: {e}");
                return false;
            }
        };
        if payload.len() + self.topic.len() + 16 > MAX_PACKET {
            tracing::warn!(
                "metrics batch not sent: {} bytes is over the packet limit",
                payload.len()
            );
            return false;
        }
        let queued = self
            .client
            .try_publish(self.topic.clone(), QoS::AtMostOnce, false, payload)
            .is_ok();
        if queued {
            let now = self.shared.since_epoch(Instant::now());
            self.shared.metrics_sent_ms.store(now, Ordering::Relaxed);
        }
        queued
    }
}

impl Link {
    /// Connects in the background; `birth` is called for each new session (its `seq` counts
    /// sessions); verified requests go to `requests` (without one, they are dropped).
    pub fn start(
        config: LinkConfig,
        offline: Offline,
        mut birth: impl FnMut(u64) -> Birth + Send + 'static,
        requests: Option<RequestHandler>,
    ) -> anyhow::Result<Self> {
        let status = config.topics.status(&config.node)?;
        let will = Envelope::seal_message(config.cluster, &offline, false)?.encode();
        let client_id = format!("{}.{}", config.node, &offline.boot_id.to_string()[..8]);
        let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
        options
            .set_credentials(config.username.clone(), config.password.clone())
            .set_keep_alive(config.keepalive)
            .set_max_packet_size(MAX_PACKET + 1024, MAX_PACKET + 1024)
            // A session per agent run; nothing is lost with it: the desired state is
            // retained and comes again with every subscription.
            .set_clean_session(true)
            .set_last_will(LastWill::new(status.clone(), will, QoS::AtLeastOnce, true));
        if let Some(tls) = &config.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.clone()),
            ));
        }
        let (client, connection) = Client::new(options, 16);
        let (tx, inbox) = mpsc::channel();
        let thread_client = client.clone();
        let thread_config = config.clone();
        let shared = Arc::new(Shared::default());
        shared.since_epoch(Instant::now());
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("mqtt-link".into())
            .spawn(move || {
                run(
                    connection,
                    thread_client,
                    thread_config,
                    tx,
                    &mut birth,
                    requests,
                    &thread_shared,
                )
            })?;
        Ok(Self {
            client,
            config,
            inbox,
            shared,
        })
    }

    /// A publisher of metrics batches through this link.
    pub fn metrics_publisher(&self) -> anyhow::Result<MetricsPublisher> {
        Ok(MetricsPublisher {
            client: self.client.clone(),
            topic: self.config.topics.metrics(&self.config.node)?,
            cluster: self.config.cluster,
            shared: self.shared.clone(),
        })
    }

    /// Publishes the reported state (retained, QoS 1) without blocking; false when the
    /// request queue is full (the next change or session publishes it again).
    pub fn publish_reported(&self, reported: &Reported) -> anyhow::Result<bool> {
        let topic = self.config.topics.reported(&self.config.node)?;
        let payload = Envelope::seal_message(self.config.cluster, reported, true)?.encode();
        Ok(self
            .client
            .try_publish(topic, QoS::AtLeastOnce, true, payload)
            .is_ok())
    }

    /// Publishes a batch of events (QoS 1, not retained) without blocking; false when the
    /// request queue is full.
    pub fn publish_events(&self, batch: &kelp_shared::wire::EventBatch) -> anyhow::Result<bool> {
        let topic = self.config.topics.events(&self.config.node)?;
        let payload = Envelope::seal_message(self.config.cluster, batch, true)?.encode();
        Ok(self
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .is_ok())
    }
}

impl Link {
    /// Publishes the node's static pods (retained, QoS 1) without blocking; false when the
    /// request queue is full.
    pub fn publish_static(&self, pods: &StaticPods) -> anyhow::Result<bool> {
        let topic = self.config.topics.static_pods(&self.config.node)?;
        let payload = Envelope::seal_message(self.config.cluster, pods, true)?.encode();
        Ok(self
            .client
            .try_publish(topic, QoS::AtLeastOnce, true, payload)
            .is_ok())
    }
}

/// The connection thread: polls rumqttc, never blocks on the client.
fn run(
    mut connection: Connection,
    client: Client,
    config: LinkConfig,
    tx: Sender<Inbound>,
    birth: &mut dyn FnMut(u64) -> Birth,
    requests: Option<RequestHandler>,
    shared: &Shared,
) {
    let topics = config
        .topics
        .status(&config.node)
        .and_then(|status| Ok((status, config.topics.desired(&config.node)?)));
    let (status, desired_topic) = match topics {
        Ok(t) => t,
        Err(e) => {
            let _ = tx.send(Inbound::Dropped(format!("link not started: {e}")));
            return;
        }
    };
    let requests_topic = config.topics.node_cmd_req(&config.node).ok();
    let mut seen = request::Seen::default();
    let mut seq = 0u64;
    let mut backoff = config.reconnect_min;
    // This run's (start time, boot id), known from its first birth.
    let mut own: Option<(u64, BootId)> = None;
    let mut asserted: BTreeSet<BootId> = BTreeSet::new();
    // Until the name claim settles: when it does, and the newest desired state held back.
    let mut claim_until: Option<Instant> = None;
    let mut claimed = false;
    let mut connected = false;
    let mut held: Option<Inbound> = None;
    // A heartbeat once per keepalive while connected (see `Heartbeat`).
    let mut next_heartbeat = Instant::now() + config.keepalive;

    let publish_birth =
        |client: &Client, birth: &Birth, tx: &Sender<Inbound>| match Envelope::seal_message(
            config.cluster,
            birth,
            false,
        ) {
            Ok(envelope) => {
                let _ =
                    client.try_publish(status.clone(), QoS::AtLeastOnce, true, envelope.encode());
            }
            Err(e) => {
                let _ = tx.send(Inbound::Dropped(format!("birth not sent: {e}")));
            }
        };
    loop {
        let wait = claim_until
            .map_or(next_heartbeat, |t| t.min(next_heartbeat))
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let event = match connection.recv_timeout(wait) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if !claimed && claim_until.is_some_and(|t| Instant::now() >= t) {
            claimed = true;
            claim_until = None;
            let mut settled: Vec<Inbound> = held.take().into_iter().collect();
            if connected {
                settled.push(Inbound::Connected);
            }
            for message in settled {
                if tx.send(message).is_err() {
                    return;
                }
            }
        }
        // A metrics batch tells the controller the node is alive as well as a heartbeat
        // would (the idle budget has no room for both): none is due until a quarter
        // keepalive after the next batch should have come (still within the controller's
        // grace of 1.5 keepalives), so a batch a few milliseconds late does not bring
        // heartbeats back.
        let metrics_cover = shared
            .metrics_sent()
            .map(|at| at + config.keepalive + config.keepalive / 4)
            .filter(|&until| until > next_heartbeat);
        if let (Some(until), true) = (metrics_cover, Instant::now() >= next_heartbeat) {
            next_heartbeat = until;
        }
        if Instant::now() >= next_heartbeat {
            next_heartbeat = Instant::now() + config.keepalive;
            if let (true, true, Some((_, boot_id))) = (connected, claimed, own) {
                let beat = kelp_shared::wire::Heartbeat {
                    node: config.node.clone(),
                    boot_id,
                };
                if let Ok(envelope) = Envelope::seal_message(config.cluster, &beat, false) {
                    let _ = client.try_publish(
                        status.clone(),
                        QoS::AtMostOnce,
                        false,
                        envelope.encode(),
                    );
                }
            }
        }
        match event {
            None => {}
            Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                backoff = config.reconnect_min;
                next_heartbeat = Instant::now() + config.keepalive;
                seq += 1;
                shared.session.store(seq, Ordering::Relaxed);
                if !claimed && claim_until.is_none() {
                    claim_until = Some(Instant::now() + config.claim_window);
                }
                let _ = client.try_subscribe(desired_topic.clone(), QoS::AtLeastOnce);
                let _ = client.try_subscribe(status.clone(), QoS::AtLeastOnce);
                if let Some(topic) = &requests_topic {
                    let _ = client.try_subscribe(topic.clone(), QoS::AtLeastOnce);
                }
                let b = birth(seq);
                own = Some((b.agent_start_unix_ms, b.boot_id));
                publish_birth(&client, &b, &tx);
                connected = true;
                // The agent reports once the name is ours (see the module docs).
                if claimed && tx.send(Inbound::Connected).is_err() {
                    return;
                }
            }
            Some(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == desired_topic => {
                let message = match open_desired(&p.payload, &config) {
                    Ok(Some(state)) => Inbound::Desired(Box::new(state)),
                    Ok(None) => continue,
                    Err(why) => Inbound::Dropped(format!("desired state dropped: {why}")),
                };
                if !claimed && matches!(message, Inbound::Desired(..)) {
                    held = Some(message);
                } else if tx.send(message).is_err() {
                    return;
                }
            }
            Some(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == status => {
                let Some(own) = own else { continue };
                let Some(other) = open_birth(&p.payload, &config) else {
                    continue;
                };
                match claim(own, &other, p.retain) {
                    Claim::Nothing => {}
                    Claim::Assert => {
                        if asserted.insert(other.boot_id) {
                            tracing::warn!(
                                "another kelp-agent (boot id {}) connected as node {:?}; it will be refused",
                                other.boot_id,
                                config.node
                            );
                            publish_birth(&client, &birth(seq), &tx);
                        }
                    }
                    Claim::Refuse => {
                        let why = format!(
                            "another kelp-agent is already running as node {:?} (boot id {}, started {}); \
                             refusing to run a second agent with the same name: stop the other one, or \
                             join this machine under a name of its own (kelp node add NAME)",
                            config.node,
                            other.boot_id,
                            chrono::DateTime::from_timestamp_millis(other.agent_start_unix_ms as i64)
                                .map(|t| t.to_rfc3339())
                                .unwrap_or_default(),
                        );
                        // A clean DISCONNECT: the broker publishes no last will for us.
                        let _ = client.try_disconnect();
                        let until = Instant::now() + Duration::from_secs(2);
                        while Instant::now() < until {
                            match connection.recv_timeout(Duration::from_millis(200)) {
                                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) => break,
                                Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => {}
                                Err(RecvTimeoutError::Disconnected) => break,
                            }
                        }
                        let _ = tx.send(Inbound::Refused(why));
                        return;
                    }
                }
            }
            Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let Some((node, TopicKind::CmdReq(name))) = config.topics.parse(&p.topic) else {
                    continue;
                };
                if node != config.node {
                    continue;
                }
                let now = request::now_unix_ms();
                let request = match request::open_request(&p.payload, &config, now) {
                    Ok(request) => request,
                    Err(why) => {
                        let why = format!("request on {} dropped: {why}", p.topic);
                        if tx.send(Inbound::Dropped(why)).is_err() {
                            return;
                        }
                        continue;
                    }
                };
                if !seen.first_time(request.id, request.deadline_unix_ms, now) {
                    continue;
                }
                let (Some(handler), Ok(topic)) =
                    (&requests, config.topics.cmd_resp(&config.node, &name))
                else {
                    continue;
                };
                let responder = request::Responder::new(
                    client.clone(),
                    topic,
                    config.cluster,
                    request.id,
                    request.deadline_unix_ms,
                );
                handler(request, responder);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                connected = false;
                shared.session.store(0, Ordering::Relaxed);
                tracing::warn!(
                    "MQTT connection to {}:{}: {e}; retrying in {backoff:?}",
                    config.host,
                    config.port
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(config.reconnect_max);
            }
        }
    }
}

/// A birth on our node's `status` topic (of our cluster), or None for anything else.
fn open_birth(payload: &[u8], config: &LinkConfig) -> Option<Birth> {
    let envelope = Envelope::decode(payload).ok()?;
    if envelope.cluster != config.cluster || envelope.kind != MessageKind::Birth {
        return None;
    }
    let birth: Birth = envelope.open().ok()?;
    (birth.node == config.node).then_some(birth)
}

/// A message from the controller, checked: decoded, of the pinned cluster, signed by the
/// pinned controller key, opened as `M`. The error says why it was dropped.
pub fn open_signed<M: kelp_shared::wire::Message>(
    payload: &[u8],
    config: &LinkConfig,
) -> Result<M, String> {
    let envelope = Envelope::decode(payload).map_err(|e| e.to_string())?;
    if envelope.cluster != config.cluster {
        return Err(format!(
            "it is for cluster {}, this node joined {}",
            envelope.cluster, config.cluster
        ));
    }
    verify(&envelope, &config.controller_key).map_err(|e| e.to_string())?;
    envelope.open().map_err(|e| e.to_string())
}

/// A desired-state payload, checked: None for an empty (deleted) retained message.
pub fn open_desired(payload: &[u8], config: &LinkConfig) -> Result<Option<DesiredState>, String> {
    if payload.is_empty() {
        return Ok(None);
    }
    let state: DesiredState = open_signed(payload, config)?;
    if state.node != config.node {
        return Err(format!(
            "it is addressed to node {:?}, this is {:?}",
            state.node, config.node
        ));
    }
    if state.generation.cluster_id != config.cluster {
        return Err("its generation is of another cluster".into());
    }
    Ok(Some(state))
}

#[cfg(test)]
mod tests;
