//! Requests to nodes (`kelp logs`, `kelp exec`) and the streams of their responses.
//!
//! The API calls [`NodeRequests::send`]: it gives the request an id, publishes it signed on
//! `{prefix}/nodes/{node}/cmd/{name}/req` (QoS 1, not retained) and returns a
//! [`ResponseStream`]. The hub task hands every message on `cmd/+/resp` to
//! [`NodeRequests::deliver`], which checks it (the cluster id, a `Response` envelope, sent on
//! the topic of the node the request went to) and passes it on by id, in `seq` order with
//! duplicates dropped ([`Reorder`]: QoS 1 may deliver twice). A request's entry goes at its
//! `End` or `Error`, or when its stream is dropped (the API call ended: done, past its
//! deadline, or its client gone); a stream dropped before the end sends the node a `Cancel`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kelp_shared::wire::{
    sign, Envelope, Request, RequestBody, Response, ResponseBody, TopicError, TopicKind, Topics,
    WireError,
};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::mpsc;

use super::identity::Identity;

/// Responses waiting for the API to take them, per request; a client that reads slower than
/// this loses its request.
const QUEUE: usize = 256;

/// Responses held while an earlier one is missing, per request.
const MAX_HELD: usize = 256;

/// How long a `Cancel` is valid for.
const CANCEL_DEADLINE: Duration = Duration::from_secs(10);

/// Something that publishes a QoS 1, not retained message without waiting; false when it
/// cannot take it now.
pub trait RequestPublisher: Send + Sync {
    /// Queues the publish.
    fn publish_request(&self, topic: &str, payload: Vec<u8>) -> bool;
}

impl RequestPublisher for AsyncClient {
    fn publish_request(&self, topic: &str, payload: Vec<u8>) -> bool {
        self.try_publish(topic, QoS::AtLeastOnce, false, payload)
            .is_ok()
    }
}

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The node's name cannot be a topic.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The request does not fit in a packet.
    #[error("cannot encode the request to node {node:?}: {source}")]
    Encode {
        /// The node.
        node: String,
        /// Why.
        source: WireError,
    },
    /// The MQTT client's queue is full.
    #[error("the controller's MQTT queue is full; cannot send the request to node {node:?} now")]
    Busy {
        /// The node.
        node: String,
    },
}

/// Puts one request's responses in `seq` order, dropping duplicates.
#[derive(Debug, Default)]
pub struct Reorder {
    next: u64,
    held: BTreeMap<u64, ResponseBody>,
}

impl Reorder {
    /// Takes response `seq`; returns the responses that are now in order (none while an
    /// earlier one is missing, none for a duplicate). Fails when too many are held.
    pub fn accept(&mut self, seq: u64, body: ResponseBody) -> Result<Vec<ResponseBody>, String> {
        if seq < self.next || self.held.contains_key(&seq) {
            return Ok(Vec::new());
        }
        if self.held.len() >= MAX_HELD {
            return Err(format!(
                "response {} is missing and {MAX_HELD} later ones arrived",
                self.next
            ));
        }
        self.held.insert(seq, body);
        let mut ready = Vec::new();
        while let Some(body) = self.held.remove(&self.next) {
            ready.push(body);
            self.next += 1;
        }
        Ok(ready)
    }
}

/// A request waiting for its responses.
struct Pending {
    node: String,
    order: Reorder,
    tx: mpsc::Sender<ResponseBody>,
}

/// The requests in flight, shared by the API (which sends) and the hub task (which
/// delivers).
pub struct NodeRequests {
    identity: Arc<Identity>,
    topics: Topics,
    publisher: Box<dyn RequestPublisher>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
}

impl std::fmt::Debug for NodeRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRequests")
            .field("pending", &self.lock().len())
            .finish_non_exhaustive()
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl NodeRequests {
    /// Requests signed with `identity`'s key, published through `publisher`.
    pub fn new(
        identity: Arc<Identity>,
        topics: Topics,
        publisher: Box<dyn RequestPublisher>,
    ) -> Arc<Self> {
        // Ids start at a random point, so responses to an earlier controller run's
        // requests do not match this run's.
        let first = rand::random::<u64>() >> 1;
        Arc::new(Self {
            identity,
            topics,
            publisher,
            next_id: AtomicU64::new(first),
            pending: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn encode(&self, request: &Request) -> Result<Vec<u8>, WireError> {
        let mut envelope = Envelope::seal_message(self.identity.cluster_id, request, false)?;
        sign(&mut envelope, &self.identity.key);
        Ok(envelope.encode())
    }

    /// Publishes `body` to `node` on command channel `name` (`logs`, `exec`), valid until
    /// `deadline`, and returns the stream its responses come on.
    pub fn send(
        self: &Arc<Self>,
        node: &str,
        name: &'static str,
        body: RequestBody,
        deadline: SystemTime,
    ) -> Result<ResponseStream, RequestError> {
        let topic = self.topics.cmd_req(node, name)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Request {
            id,
            deadline_unix_ms: unix_ms(deadline),
            node: node.to_string(),
            body,
        };
        let payload = self
            .encode(&request)
            .map_err(|source| RequestError::Encode {
                node: node.to_string(),
                source,
            })?;
        let (tx, rx) = mpsc::channel(QUEUE);
        self.lock().insert(
            id,
            Pending {
                node: node.to_string(),
                order: Reorder::default(),
                tx,
            },
        );
        // From here on, dropping the stream forgets the request.
        let mut stream = ResponseStream {
            id,
            node: node.to_string(),
            name,
            rx,
            requests: self.clone(),
            finished: false,
        };
        if !self.publisher.publish_request(&topic, payload) {
            stream.finished = true;
            return Err(RequestError::Busy {
                node: node.to_string(),
            });
        }
        tracing::debug!(%node, id, %name, "request sent");
        Ok(stream)
    }

    /// Takes a message from the link. Returns false when `topic` is not a response topic
    /// (the message is someone else's); a response that fails a check is dropped.
    pub fn deliver(&self, topic: &str, payload: &[u8]) -> bool {
        let Some((node, TopicKind::CmdResp(_))) = self.topics.parse(topic) else {
            return false;
        };
        let response = match self.open(payload) {
            Ok(response) => response,
            Err(why) => {
                tracing::debug!(%topic, "dropping response: {why}");
                return true;
            }
        };
        let mut pending = self.lock();
        let Some(entry) = pending.get_mut(&response.id) else {
            // Finished, given up on, or not ours.
            return true;
        };
        if entry.node != node {
            tracing::debug!(%topic, id = response.id, "dropping a response from another node than the request's");
            return true;
        }
        let ready = match entry.order.accept(response.seq, response.body) {
            Ok(ready) => ready,
            Err(why) => {
                tracing::warn!(%node, id = response.id, "giving up on request: {why}");
                pending.remove(&response.id);
                return true;
            }
        };
        for body in ready {
            let last = matches!(body, ResponseBody::End { .. } | ResponseBody::Error(_));
            if entry.tx.try_send(body).is_err() {
                tracing::warn!(%node, id = response.id, "giving up on request: its client does not keep up (or is gone)");
                pending.remove(&response.id);
                return true;
            }
            if last {
                pending.remove(&response.id);
                return true;
            }
        }
        true
    }

    fn open(&self, payload: &[u8]) -> Result<Response, String> {
        let envelope = Envelope::decode(payload).map_err(|e| e.to_string())?;
        if envelope.cluster != self.identity.cluster_id {
            return Err(format!("it is for cluster {}", envelope.cluster));
        }
        envelope.open::<Response>().map_err(|e| e.to_string())
    }

    /// Forgets request `id`; asks its node to stop it when it had not ended.
    fn finish(&self, id: u64, node: &str, name: &'static str, cancel: bool) {
        let was_pending = self.lock().remove(&id).is_some();
        if !(cancel && was_pending) {
            return;
        }
        let Ok(topic) = self.topics.cmd_req(node, name) else {
            return;
        };
        let request = Request {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            deadline_unix_ms: unix_ms(SystemTime::now() + CANCEL_DEADLINE),
            node: node.to_string(),
            body: RequestBody::Cancel { request_id: id },
        };
        match self.encode(&request) {
            Ok(payload) => {
                if !self.publisher.publish_request(&topic, payload) {
                    tracing::debug!(%node, id, "cancel not sent: the MQTT queue is full");
                }
            }
            Err(e) => tracing::warn!(%node, id, "cannot encode a cancel: {e}"),
        }
    }

    /// How many requests are waiting for responses.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }
}

/// The responses to one request, in order. Dropping it before the end cancels the request.
pub struct ResponseStream {
    id: u64,
    node: String,
    name: &'static str,
    rx: mpsc::Receiver<ResponseBody>,
    requests: Arc<NodeRequests>,
    finished: bool,
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStream")
            .field("id", &self.id)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl ResponseStream {
    /// The node the request went to.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The next response; `None` after `End` or `Error`, or when the request was given up.
    pub async fn next(&mut self) -> Option<ResponseBody> {
        if self.finished {
            return None;
        }
        let body = self.rx.recv().await;
        if matches!(
            body,
            None | Some(ResponseBody::End { .. } | ResponseBody::Error(_))
        ) {
            self.finished = true;
        }
        body
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        self.requests
            .finish(self.id, &self.node, self.name, !self.finished);
    }
}

#[cfg(test)]
mod tests {
    use kelp_shared::wire::{verify, ClusterId};

    use super::*;

    /// A published (topic, payload).
    type Published = (String, Vec<u8>);

    /// Records what is published.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<Published>>>);

    impl RequestPublisher for Captured {
        fn publish_request(&self, topic: &str, payload: Vec<u8>) -> bool {
            self.0.lock().unwrap().push((topic.to_string(), payload));
            true
        }
    }

    impl Captured {
        fn requests(&self) -> Vec<(String, Request)> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(|(t, p)| (t.clone(), Envelope::decode(p).unwrap().open().unwrap()))
                .collect()
        }
    }

    fn setup() -> (
        Arc<NodeRequests>,
        Captured,
        Arc<Identity>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let identity = Arc::new(Identity::load_or_create(dir.path()).unwrap());
        let captured = Captured::default();
        let requests = NodeRequests::new(
            identity.clone(),
            Topics::default(),
            Box::new(captured.clone()),
        );
        (requests, captured, identity, dir)
    }

    fn response(cluster: ClusterId, id: u64, seq: u64, body: ResponseBody) -> Vec<u8> {
        Envelope::seal_message(cluster, &Response { id, seq, body }, false)
            .unwrap()
            .encode()
    }

    fn chunk(text: &str) -> ResponseBody {
        ResponseBody::Chunk(text.as_bytes().to_vec())
    }

    #[test]
    fn responses_come_in_seq_order_and_duplicates_are_dropped() {
        let mut order = Reorder::default();
        assert_eq!(order.accept(1, chunk("b")).unwrap(), vec![]);
        assert_eq!(order.accept(1, chunk("b")).unwrap(), vec![], "duplicate");
        assert_eq!(
            order.accept(0, chunk("a")).unwrap(),
            vec![chunk("a"), chunk("b")]
        );
        assert_eq!(
            order.accept(0, chunk("a")).unwrap(),
            vec![],
            "old duplicate"
        );
        assert_eq!(order.accept(2, chunk("c")).unwrap(), vec![chunk("c")]);
        // A gap that never fills: held up to a limit, then an error.
        let mut order = Reorder::default();
        for seq in 1..=MAX_HELD as u64 {
            assert_eq!(order.accept(seq, chunk("x")).unwrap(), vec![]);
        }
        let err = order.accept(MAX_HELD as u64 + 1, chunk("x")).unwrap_err();
        assert!(err.contains("response 0 is missing"), "{err}");
    }

    #[tokio::test]
    async fn a_request_is_signed_for_its_node_and_its_responses_reach_its_stream() {
        let (requests, captured, identity, _dir) = setup();
        let deadline = SystemTime::now() + Duration::from_secs(30);
        let mut stream = requests
            .send(
                "pi-1",
                "exec",
                RequestBody::Exec {
                    namespace: "default".into(),
                    pod: "web".into(),
                    container: "c".into(),
                    command: vec!["true".into()],
                    stdin: false,
                    tty: false,
                },
                deadline,
            )
            .unwrap();
        let published = captured.0.lock().unwrap()[0].clone();
        assert_eq!(published.0, "kelp/v1/nodes/pi-1/cmd/exec/req");
        let envelope = Envelope::decode(&published.1).unwrap();
        verify(&envelope, &identity.key.public_key()).unwrap();
        let request: Request = envelope.open().unwrap();
        assert_eq!(request.node, "pi-1");
        assert_eq!(request.deadline_unix_ms, unix_ms(deadline));
        let id = request.id;

        let cluster = identity.cluster_id;
        let topic = "kelp/v1/nodes/pi-1/cmd/exec/resp";
        // Not a response topic: not taken.
        assert!(!requests.deliver("kelp/v1/nodes/pi-1/status", &[1]));
        // Another cluster's, another node's, another request's: dropped.
        assert!(requests.deliver(topic, &response(ClusterId([9; 16]), id, 0, chunk("x"))));
        assert!(requests.deliver(
            "kelp/v1/nodes/pi-2/cmd/exec/resp",
            &response(cluster, id, 0, chunk("x"))
        ));
        assert!(requests.deliver(topic, &response(cluster, id + 1000, 0, chunk("x"))));
        assert!(requests.deliver(topic, b"garbage"));
        // Out of order and duplicated.
        requests.deliver(
            topic,
            &response(cluster, id, 1, ResponseBody::Stderr(b"e".to_vec())),
        );
        requests.deliver(topic, &response(cluster, id, 0, chunk("o")));
        requests.deliver(topic, &response(cluster, id, 0, chunk("o")));
        requests.deliver(
            topic,
            &response(cluster, id, 2, ResponseBody::End { exit_code: Some(3) }),
        );
        assert_eq!(stream.next().await, Some(chunk("o")));
        assert_eq!(
            stream.next().await,
            Some(ResponseBody::Stderr(b"e".to_vec()))
        );
        assert_eq!(
            stream.next().await,
            Some(ResponseBody::End { exit_code: Some(3) })
        );
        assert_eq!(stream.next().await, None);
        assert_eq!(requests.pending(), 0, "the entry goes at End");
        drop(stream);
        assert_eq!(captured.requests().len(), 1, "no cancel after the end");
    }

    #[tokio::test]
    async fn a_stream_dropped_early_cancels_its_request() {
        let (requests, captured, _identity, _dir) = setup();
        let stream = requests
            .send(
                "pi-1",
                "logs",
                RequestBody::Logs {
                    namespace: "default".into(),
                    pod: "web".into(),
                    container: "c".into(),
                    tail_lines: None,
                    follow: true,
                    previous: false,
                },
                SystemTime::now() + Duration::from_secs(30),
            )
            .unwrap();
        assert_eq!(requests.pending(), 1);
        drop(stream);
        assert_eq!(requests.pending(), 0);
        let sent = captured.requests();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].0, "kelp/v1/nodes/pi-1/cmd/logs/req");
        assert_eq!(
            sent[1].1.body,
            RequestBody::Cancel {
                request_id: sent[0].1.id
            }
        );
        assert_ne!(sent[1].1.id, sent[0].1.id);
    }
}
