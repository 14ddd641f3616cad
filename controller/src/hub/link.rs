//! The controller's MQTT connection (rumqttc): the event loop polled in a task of its own,
//! with a back-off between reconnects, subscribing again after every CONNACK; incoming
//! publishes and connections reach the hub over a bounded channel.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use super::broker::MAX_MQTT_PACKET;
use super::HubError;

/// Where the controller's broker is and how to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerTarget {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// TLS (`mqtts://`).
    pub tls: bool,
}

impl std::fmt::Debug for BrokerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(
            f,
            "{scheme}://{}@{}:{}",
            self.username, self.host, self.port
        )
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl BrokerTarget {
    /// Parses `mqtt://USER:PASSWORD@HOST[:PORT]` or `mqtts://…` (TLS; port 8883 by
    /// default), user and password percent-encoded.
    pub fn parse(url: &str) -> Result<BrokerTarget, HubError> {
        let bad = |reason: &str| HubError::MqttUrl {
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected mqtt://USER:PASSWORD@HOST[:PORT]"))?;
        let (tls, default_port) = match scheme {
            "mqtt" => (false, 1883),
            "mqtts" => (true, 8883),
            other => return Err(bad(&format!("unsupported scheme {other:?}"))),
        };
        let rest = rest.trim_end_matches('/');
        let (auth, hostport) = rest
            .rsplit_once('@')
            .ok_or_else(|| bad("the URL needs USER:PASSWORD@ (every client logs in)"))?;
        let (user, password) = auth
            .split_once(':')
            .ok_or_else(|| bad("the URL needs USER:PASSWORD@"))?;
        let username =
            percent_decode(user).ok_or_else(|| bad("bad percent-encoding in the user"))?;
        let password =
            percent_decode(password).ok_or_else(|| bad("bad percent-encoding in the password"))?;
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            match after.strip_prefix(':') {
                Some(port) => (host, port.parse().map_err(|_| bad("bad port"))?),
                None => (host, default_port),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, port.parse().map_err(|_| bad("bad port"))?),
                None => (hostport, default_port),
            }
        };
        if host.is_empty() || username.is_empty() {
            return Err(bad("empty host or user"));
        }
        Ok(BrokerTarget {
            host: host.to_owned(),
            port,
            username,
            password,
            tls,
        })
    }
}

/// What the link tells the hub.
#[derive(Debug)]
pub enum LinkEvent {
    /// A CONNACK: (re)subscribed; retained messages follow.
    Connected,
    /// A publish on a subscribed topic.
    Message {
        /// Topic name.
        topic: String,
        /// Payload.
        payload: Vec<u8>,
    },
}

/// Connects (in the background, retrying with back-off) and subscribes to `topics` after
/// every CONNACK.
pub fn connect(
    target: &BrokerTarget,
    client_id: &str,
    topics: Vec<(String, QoS)>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> (AsyncClient, mpsc::Receiver<LinkEvent>) {
    let mut options = MqttOptions::new(client_id, target.host.clone(), target.port);
    options
        .set_credentials(target.username.clone(), target.password.clone())
        .set_keep_alive(Duration::from_secs(60))
        .set_clean_session(true)
        .set_max_packet_size(MAX_MQTT_PACKET, MAX_MQTT_PACKET);
    if let Some(tls) = tls {
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        ));
    }
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let (tx, rx) = mpsc::channel(1024);
    let subscriber = client.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(100);
                    let filters = topics
                        .iter()
                        .map(|(t, q)| rumqttc::SubscribeFilter::new(t.clone(), *q));
                    if let Err(err) = subscriber.try_subscribe_many(filters) {
                        tracing::warn!(error = %err, "cannot subscribe");
                    }
                    if tx.send(LinkEvent::Connected).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let event = LinkEvent::Message {
                        topic: publish.topic,
                        payload: publish.payload.to_vec(),
                    };
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    if tx.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %err, retry_in = ?backoff, "MQTT connection failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    });
    (client, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = BrokerTarget::parse("mqtt://kelp:p%40ss@broker.lan:1884").unwrap();
        assert_eq!(
            t,
            BrokerTarget {
                host: "broker.lan".into(),
                port: 1884,
                username: "kelp".into(),
                password: "p@ss".into(),
                tls: false,
            }
        );
        assert!(!format!("{t:?}").contains("p@ss"));
        assert_eq!(BrokerTarget::parse("mqtt://u:p@[::1]").unwrap().port, 1883);
        let tls = BrokerTarget::parse("mqtts://u:p@h").unwrap();
        assert!(tls.tls && tls.port == 8883);
        for (bad, want) in [
            ("http://u:p@h", "unsupported scheme"),
            ("mqtt://h:1883", "USER:PASSWORD"),
            ("mqtt://u:p@h:x", "bad port"),
            ("h", "expected"),
        ] {
            let err = BrokerTarget::parse(bad).unwrap_err().to_string();
            assert!(err.contains(want), "{bad}: {err}");
        }
    }
}
