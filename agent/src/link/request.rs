//! Requests on `cmd/{name}/req` (`kelp logs`, `kelp exec`) and their answers on
//! `cmd/{name}/resp`.
//!
//! A request is opened with the checks of a desired state ([`open_request`]: the pinned
//! cluster, a signature by the pinned controller key, addressed to this node) and one more:
//! its deadline has not passed. QoS 1 may deliver a request twice; [`Seen`] lets each id
//! through once. A [`Responder`] publishes the answer: numbered responses (QoS 1, not
//! retained, unsigned, sealed with the cluster id), never blocking the link thread.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kelp_shared::wire::{ClusterId, Envelope, Request, Response, ResponseBody};
use rumqttc::{Client, QoS};

use super::LinkConfig;

/// How long after its deadline a request may still be answered (the final `Error` of an
/// exec killed at its deadline).
pub const ANSWER_GRACE: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A request payload, checked: decoded, of the pinned cluster, signed by the pinned key,
/// for this node and not past its deadline at `now_ms`. The error says why it was dropped.
pub fn open_request(payload: &[u8], config: &LinkConfig, now_ms: u64) -> Result<Request, String> {
    let request: Request = super::open_signed(payload, config)?;
    if request.node != config.node {
        return Err(format!(
            "request {} is addressed to node {:?}, this is {:?}",
            request.id, request.node, config.node
        ));
    }
    if request.deadline_unix_ms <= now_ms {
        return Err(format!(
            "request {} expired {} ms ago (its deadline passed before it arrived)",
            request.id,
            now_ms - request.deadline_unix_ms
        ));
    }
    Ok(request)
}

/// The ids of requests already taken, kept until their deadlines pass.
#[derive(Debug, Default)]
pub struct Seen {
    ids: HashMap<u64, u64>,
}

impl Seen {
    /// Whether request `id` (with its deadline) arrives for the first time; forgets the
    /// ids whose deadlines passed (an expired request is refused before it gets here).
    pub fn first_time(&mut self, id: u64, deadline_unix_ms: u64, now_ms: u64) -> bool {
        self.ids.retain(|_, deadline| *deadline > now_ms);
        self.ids.insert(id, deadline_unix_ms).is_none()
    }
}

/// Publishes the responses of one request, numbered from 0.
pub struct Responder {
    client: Client,
    topic: String,
    cluster: ClusterId,
    id: u64,
    seq: u64,
    /// After this, nothing is published any more.
    give_up: SystemTime,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("topic", &self.topic)
            .field("id", &self.id)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// A responder for request `id` on `topic`, answering until [`ANSWER_GRACE`] after
    /// `deadline_unix_ms`.
    pub fn new(
        client: Client,
        topic: String,
        cluster: ClusterId,
        id: u64,
        deadline_unix_ms: u64,
    ) -> Self {
        Self {
            client,
            topic,
            cluster,
            id,
            seq: 0,
            give_up: UNIX_EPOCH + Duration::from_millis(deadline_unix_ms) + ANSWER_GRACE,
        }
    }

    /// The request's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Publishes one response (QoS 1, not retained). The client's queue is shared with the
    /// link; while it is full this waits, up to the request's deadline (and grace). False
    /// when the response could not be sent.
    pub fn send(&mut self, body: ResponseBody) -> bool {
        let response = Response {
            id: self.id,
            seq: self.seq,
            body,
        };
        let payload = match Envelope::seal_message(self.cluster, &response, false) {
            Ok(envelope) => envelope.encode(),
            Err(e) => {
                tracing::warn!(id = self.id, "response not sent: {e}");
                return false;
            }
        };
        loop {
            match self.client.try_publish(
                self.topic.clone(),
                QoS::AtLeastOnce,
                false,
                payload.clone(),
            ) {
                Ok(()) => {
                    self.seq += 1;
                    return true;
                }
                Err(_) if SystemTime::now() < self.give_up => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    tracing::warn!(id = self.id, "response not sent: {e}");
                    return false;
                }
            }
        }
    }
}
