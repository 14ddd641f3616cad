//! Every MQTT topic name kelp uses, in one place.
//!
//! | topic (under the prefix, default `kelp/v1`) | direction | QoS | retain |
//! |---|---|---|---|
//! | `nodes/{node}/desired` | controller → node | 1 | yes |
//! | `nodes/{node}/status` | node → controller | 1 | yes |
//! | `nodes/{node}/reported` | node → controller | 1 | yes |
//! | `nodes/{node}/events` | node → controller | 1 | no |
//! | `nodes/{node}/metrics` | node → controller | 0 | no |
//! | `nodes/{node}/cmd/{name}/req` | controller → node | 1 | no |
//! | `nodes/{node}/cmd/{name}/resp` | node → controller | 1 | no |
//!
//! Node names are checked ([`valid_node_name`]) before they go into a topic, so no name
//! can contain a level separator or a wildcard.

use super::envelope::MessageKind;

/// The default topic prefix.
pub const DEFAULT_PREFIX: &str = "kelp/v1";

/// Longest node name (a DNS-1123 subdomain).
pub const MAX_NODE_NAME: usize = 253;

/// Longest command channel name (a DNS-1123 label).
pub const MAX_COMMAND_NAME: usize = 63;

/// A topic name or part of one that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The configured prefix cannot be a topic prefix.
    #[error("invalid topic prefix {prefix:?}: {reason}")]
    InvalidPrefix {
        /// The rejected prefix.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not a valid node name.
    #[error("invalid node name {name:?}: {reason}")]
    InvalidNodeName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not a valid command channel name.
    #[error("invalid command name {name:?}: {reason}")]
    InvalidCommandName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// MQTT quality of service, as kelp uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Qos {
    /// QoS 0.
    AtMostOnce,
    /// QoS 1.
    AtLeastOnce,
}

impl Qos {
    /// The MQTT number (0 or 1).
    pub const fn as_u8(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
        }
    }
}

/// Which of a node's topics a topic name is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// `desired`: the node's desired state.
    Desired,
    /// `status`: birth, or the last will.
    Status,
    /// `reported`: observed state.
    Reported,
    /// `events`.
    Events,
    /// `metrics`.
    Metrics,
    /// `cmd/{name}/req`, carrying the command channel name.
    CmdReq(String),
    /// `cmd/{name}/resp`, carrying the command channel name.
    CmdResp(String),
    /// `static`: the node's static pods (shown as mirror pods).
    Static,
}

impl TopicKind {
    /// QoS to publish and subscribe with.
    pub const fn qos(&self) -> Qos {
        match self {
            TopicKind::Metrics => Qos::AtMostOnce,
            _ => Qos::AtLeastOnce,
        }
    }

    /// Whether publishes are retained (`desired`, `status`, `reported`).
    pub const fn retain(&self) -> bool {
        matches!(
            self,
            TopicKind::Desired | TopicKind::Status | TopicKind::Reported | TopicKind::Static
        )
    }

    /// Whether the controller publishes it (otherwise the node does).
    pub const fn from_controller(&self) -> bool {
        matches!(self, TopicKind::Desired | TopicKind::CmdReq(_))
    }

    /// Whether an envelope of `kind` belongs on this topic (anything else is dropped).
    pub const fn carries(&self, kind: MessageKind) -> bool {
        matches!(
            (self, kind),
            (TopicKind::Desired, MessageKind::Desired)
                | (
                    TopicKind::Status,
                    MessageKind::Birth | MessageKind::Offline | MessageKind::Heartbeat
                )
                | (TopicKind::Reported, MessageKind::Reported)
                | (TopicKind::Events, MessageKind::Events)
                | (
                    TopicKind::Metrics,
                    MessageKind::Metrics | MessageKind::Samples
                )
                | (TopicKind::CmdReq(_), MessageKind::Request)
                | (TopicKind::CmdResp(_), MessageKind::Response)
                | (TopicKind::Static, MessageKind::StaticPods)
        )
    }

    /// The topic's levels after `nodes/{node}/`.
    fn suffix(&self) -> String {
        match self {
            TopicKind::Desired => "desired".to_owned(),
            TopicKind::Status => "status".to_owned(),
            TopicKind::Reported => "reported".to_owned(),
            TopicKind::Events => "events".to_owned(),
            TopicKind::Metrics => "metrics".to_owned(),
            TopicKind::CmdReq(name) => format!("cmd/{name}/req"),
            TopicKind::CmdResp(name) => format!("cmd/{name}/resp"),
            TopicKind::Static => "static".to_owned(),
        }
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Why a string is not a DNS-1123 label (length is checked by the callers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelProblem {
    Empty,
    BadEnds,
    BadChar,
}

/// Checks a DNS-1123 label: lowercase alphanumerics and `-`, alphanumeric at both ends.
fn label_problem(name: &str) -> Option<LabelProblem> {
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            if bytes.iter().any(|&b| !is_alnum(b) && b != b'-') {
                Some(LabelProblem::BadChar)
            } else if !is_alnum(first) || !is_alnum(last) {
                Some(LabelProblem::BadEnds)
            } else {
                None
            }
        }
        _ => Some(LabelProblem::Empty),
    }
}

/// Checks a node name: a DNS-1123 subdomain, as Kubernetes requires for Node names — at
/// most 253 characters, dot-separated labels of lowercase letters, digits and `-`, each
/// starting and ending with a letter or digit. So no MQTT wildcard (`+`, `#`), no `/`,
/// never empty.
pub fn check_node_name(name: &str) -> Result<(), TopicError> {
    let invalid = |reason| TopicError::InvalidNodeName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > MAX_NODE_NAME {
        return Err(invalid("longer than 253 characters"));
    }
    for label in name.split('.') {
        match label_problem(label) {
            None => {}
            Some(LabelProblem::Empty) => return Err(invalid("empty label between dots")),
            Some(LabelProblem::BadEnds) => {
                return Err(invalid(
                    "each dot-separated part must start and end with a lowercase letter or digit",
                ))
            }
            Some(LabelProblem::BadChar) => {
                return Err(invalid(
                    "only lowercase letters, digits, '-' and '.' are allowed",
                ))
            }
        }
    }
    Ok(())
}

/// Whether `name` is a valid node name (see [`check_node_name`]).
pub fn valid_node_name(name: &str) -> bool {
    check_node_name(name).is_ok()
}

/// Checks a command channel name (the `{name}` of `cmd/{name}/req`): a DNS-1123 label,
/// at most 63 characters, such as `logs` or `exec`.
pub fn check_command_name(name: &str) -> Result<(), TopicError> {
    let invalid = |reason| TopicError::InvalidCommandName {
        name: name.to_owned(),
        reason,
    };
    if name.len() > MAX_COMMAND_NAME {
        return Err(invalid("longer than 63 characters"));
    }
    match label_problem(name) {
        None => Ok(()),
        Some(LabelProblem::Empty) => Err(invalid("empty")),
        Some(LabelProblem::BadEnds) => Err(invalid(
            "must start and end with a lowercase letter or digit",
        )),
        Some(LabelProblem::BadChar) => Err(invalid(
            "only lowercase letters, digits and '-' are allowed",
        )),
    }
}

/// Topic names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topics {
    prefix: String,
}

impl Default for Topics {
    /// Topics under [`DEFAULT_PREFIX`].
    fn default() -> Self {
        Topics {
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

impl Topics {
    /// Topics under `prefix`: one or more non-empty levels, no wildcards, no leading or
    /// trailing `/`, no NUL, not starting with `$` (reserved by brokers).
    pub fn new(prefix: impl Into<String>) -> Result<Topics, TopicError> {
        let prefix = prefix.into();
        let reason = if prefix.is_empty() {
            Some("empty")
        } else if prefix.split('/').any(str::is_empty) {
            Some("empty level (leading, trailing or double '/')")
        } else if prefix.contains(['+', '#']) {
            Some("contains an MQTT wildcard")
        } else if prefix.contains('\0') {
            Some("contains NUL")
        } else if prefix.starts_with('$') {
            Some("topics starting with '$' are reserved by the broker")
        } else if prefix.len() > 1024 {
            Some("longer than 1024 bytes")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(TopicError::InvalidPrefix { prefix, reason }),
            None => Ok(Topics { prefix }),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The topic of `kind` for `node`.
    pub fn topic(&self, node: &str, kind: &TopicKind) -> Result<String, TopicError> {
        check_node_name(node)?;
        if let TopicKind::CmdReq(name) | TopicKind::CmdResp(name) = kind {
            check_command_name(name)?;
        }
        Ok(format!("{}/nodes/{node}/{}", self.prefix, kind.suffix()))
    }

    /// `{prefix}/nodes/{node}/desired`.
    pub fn desired(&self, node: &str) -> Result<String, TopicError> {
        self.topic(node, &TopicKind::Desired)
    }

    /// `{prefix}/nodes/{node}/status`.
    pub fn status(&self, node: &str) -> Result<String, TopicError> {
        self.topic(node, &TopicKind::Status)
    }

    /// `{prefix}/nodes/{node}/reported`.
    pub fn reported(&self, node: &str) -> Result<String, TopicError> {
        self.topic(node, &TopicKind::Reported)
    }

    /// `{prefix}/nodes/{node}/events`.
    pub fn events(&self, node: &str) -> Result<String, TopicError> {
        self.topic(node, &TopicKind::Events)
    }

    /// `{prefix}/nodes/{node}/metrics`.
    pub fn metrics(&self, node: &str) -> Result<String, TopicError> {
        self.topic(node, &TopicKind::Metrics)
    }

    /// `{prefix}/nodes/{node}/cmd/{name}/req`.
    pub fn cmd_req(&self, node: &str, name: &str) -> Result<String, TopicError> {
        self.topic(node, &TopicKind::CmdReq(name.to_owned()))
    }

    /// `{prefix}/nodes/{node}/cmd/{name}/resp`.
    pub fn cmd_resp(&self, node: &str, name: &str) -> Result<String, TopicError> {
        self.topic(node, &TopicKind::CmdResp(name.to_owned()))
    }

    /// `{prefix}/nodes/+/desired`: every node's desired state (observers).
    pub fn all_desired(&self) -> String {
        format!("{}/nodes/+/desired", self.prefix)
    }

    /// `{prefix}/nodes/+/status`: every node's birth or will.
    pub fn all_status(&self) -> String {
        format!("{}/nodes/+/status", self.prefix)
    }

    /// `{prefix}/nodes/+/reported`.
    pub fn all_reported(&self) -> String {
        format!("{}/nodes/+/reported", self.prefix)
    }

    /// `{prefix}/nodes/{node}/static`.
    pub fn static_pods(&self, node: &str) -> Result<String, TopicError> {
        self.topic(node, &TopicKind::Static)
    }

    /// `{prefix}/nodes/+/static`.
    pub fn all_static(&self) -> String {
        format!("{}/nodes/+/static", self.prefix)
    }

    /// `{prefix}/nodes/+/events`.
    pub fn all_events(&self) -> String {
        format!("{}/nodes/+/events", self.prefix)
    }

    /// `{prefix}/nodes/+/metrics`.
    pub fn all_metrics(&self) -> String {
        format!("{}/nodes/+/metrics", self.prefix)
    }

    /// `{prefix}/nodes/+/cmd/+/resp`: every node's command responses.
    pub fn all_cmd_resp(&self) -> String {
        format!("{}/nodes/+/cmd/+/resp", self.prefix)
    }

    /// `{prefix}/nodes/{node}/cmd/+/req`: one node's command requests.
    pub fn node_cmd_req(&self, node: &str) -> Result<String, TopicError> {
        check_node_name(node)?;
        Ok(format!("{}/nodes/{node}/cmd/+/req", self.prefix))
    }

    /// What the controller subscribes to, with the QoS of each.
    pub fn controller_subscriptions(&self) -> Vec<(String, Qos)> {
        vec![
            (self.all_status(), Qos::AtLeastOnce),
            (self.all_reported(), Qos::AtLeastOnce),
            (self.all_events(), Qos::AtLeastOnce),
            (self.all_metrics(), Qos::AtMostOnce),
            (self.all_cmd_resp(), Qos::AtLeastOnce),
        ]
    }

    /// What the agent of `node` subscribes to, with the QoS of each.
    pub fn agent_subscriptions(&self, node: &str) -> Result<Vec<(String, Qos)>, TopicError> {
        Ok(vec![
            (self.desired(node)?, Qos::AtLeastOnce),
            (self.node_cmd_req(node)?, Qos::AtLeastOnce),
        ])
    }

    /// Parses a concrete topic name (no wildcards) under this prefix into the node name
    /// and which topic it is. `None` for anything else, including invalid node or
    /// command names.
    pub fn parse(&self, topic: &str) -> Option<(String, TopicKind)> {
        let rest = topic.strip_prefix(self.prefix.as_str())?;
        let rest = rest.strip_prefix("/nodes/")?;
        let (node, rest) = rest.split_once('/')?;
        if !valid_node_name(node) {
            return None;
        }
        let kind = match rest {
            "desired" => TopicKind::Desired,
            "status" => TopicKind::Status,
            "reported" => TopicKind::Reported,
            "events" => TopicKind::Events,
            "metrics" => TopicKind::Metrics,
            "static" => TopicKind::Static,
            _ => {
                let cmd = rest.strip_prefix("cmd/")?;
                let (name, end) = cmd.split_once('/')?;
                check_command_name(name).ok()?;
                match end {
                    "req" => TopicKind::CmdReq(name.to_owned()),
                    "resp" => TopicKind::CmdResp(name.to_owned()),
                    _ => return None,
                }
            }
        };
        Some((node.to_owned(), kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        let t = Topics::default();
        assert_eq!(t.prefix(), "kelp/v1");
        assert_eq!(t.desired("pi-1").unwrap(), "kelp/v1/nodes/pi-1/desired");
        assert_eq!(t.status("pi-1").unwrap(), "kelp/v1/nodes/pi-1/status");
        assert_eq!(t.reported("pi-1").unwrap(), "kelp/v1/nodes/pi-1/reported");
        assert_eq!(t.events("pi-1").unwrap(), "kelp/v1/nodes/pi-1/events");
        assert_eq!(t.metrics("pi-1").unwrap(), "kelp/v1/nodes/pi-1/metrics");
        assert_eq!(
            t.cmd_req("pi-1", "logs").unwrap(),
            "kelp/v1/nodes/pi-1/cmd/logs/req"
        );
        assert_eq!(
            t.cmd_resp("pi-1", "exec").unwrap(),
            "kelp/v1/nodes/pi-1/cmd/exec/resp"
        );
        assert_eq!(
            t.node_cmd_req("pi-1").unwrap(),
            "kelp/v1/nodes/pi-1/cmd/+/req"
        );
        assert_eq!(t.all_desired(), "kelp/v1/nodes/+/desired");
        assert_eq!(t.all_cmd_resp(), "kelp/v1/nodes/+/cmd/+/resp");

        let custom = Topics::new("site-7/kelp").unwrap();
        assert_eq!(
            custom.reported("n.example").unwrap(),
            "site-7/kelp/nodes/n.example/reported"
        );
    }

    #[test]
    fn subscriptions() {
        let t = Topics::default();
        assert_eq!(
            t.controller_subscriptions(),
            vec![
                ("kelp/v1/nodes/+/status".to_owned(), Qos::AtLeastOnce),
                ("kelp/v1/nodes/+/reported".to_owned(), Qos::AtLeastOnce),
                ("kelp/v1/nodes/+/events".to_owned(), Qos::AtLeastOnce),
                ("kelp/v1/nodes/+/metrics".to_owned(), Qos::AtMostOnce),
                ("kelp/v1/nodes/+/cmd/+/resp".to_owned(), Qos::AtLeastOnce),
            ]
        );
        assert_eq!(
            t.agent_subscriptions("pi-1").unwrap(),
            vec![
                ("kelp/v1/nodes/pi-1/desired".to_owned(), Qos::AtLeastOnce),
                ("kelp/v1/nodes/pi-1/cmd/+/req".to_owned(), Qos::AtLeastOnce),
            ]
        );
        assert!(t.agent_subscriptions("+").is_err());
    }

    #[test]
    fn qos_and_retain_table() {
        let table = [
            (TopicKind::Desired, 1, true, true),
            (TopicKind::Status, 1, true, false),
            (TopicKind::Reported, 1, true, false),
            (TopicKind::Events, 1, false, false),
            (TopicKind::Metrics, 0, false, false),
            (TopicKind::CmdReq("logs".into()), 1, false, true),
            (TopicKind::CmdResp("logs".into()), 1, false, false),
        ];
        for (kind, qos, retain, from_controller) in table {
            assert_eq!(kind.qos().as_u8(), qos, "{kind:?}");
            assert_eq!(kind.retain(), retain, "{kind:?}");
            assert_eq!(kind.from_controller(), from_controller, "{kind:?}");
        }
    }

    #[test]
    fn carries() {
        assert!(TopicKind::Status.carries(MessageKind::Birth));
        assert!(TopicKind::Status.carries(MessageKind::Offline));
        assert!(!TopicKind::Status.carries(MessageKind::Reported));
        assert!(TopicKind::CmdReq("x".into()).carries(MessageKind::Request));
        assert!(!TopicKind::CmdReq("x".into()).carries(MessageKind::Response));
        for kind in MessageKind::ALL {
            let homes = [
                TopicKind::Desired,
                TopicKind::Status,
                TopicKind::Reported,
                TopicKind::Events,
                TopicKind::Metrics,
                TopicKind::CmdReq("x".into()),
                TopicKind::CmdResp("x".into()),
                TopicKind::Static,
            ]
            .iter()
            .filter(|topic| topic.carries(kind))
            .count();
            assert_eq!(homes, 1, "{kind:?} belongs on exactly one topic");
        }
    }

    #[test]
    fn parse_round_trips() {
        let t = Topics::new("a/b").unwrap();
        for kind in [
            TopicKind::Desired,
            TopicKind::Status,
            TopicKind::Reported,
            TopicKind::Events,
            TopicKind::Metrics,
            TopicKind::CmdReq("logs".into()),
            TopicKind::CmdResp("exec-2".into()),
            TopicKind::Static,
        ] {
            let topic = t.topic("node-1.site", &kind).unwrap();
            assert_eq!(t.parse(&topic), Some(("node-1.site".to_owned(), kind)));
        }
    }

    #[test]
    fn parse_rejects() {
        let t = Topics::default();
        for bad in [
            "",
            "kelp/v1",
            "kelp/v1/nodes/pi/",
            "kelp/v1/nodes//status",
            "kelp/v1/nodes/+/status",
            "kelp/v1/nodes/#",
            "kelp/v1/nodes/Pi/status",
            "kelp/v1/nodes/pi/status/extra",
            "kelp/v1/nodes/pi/unknown",
            "kelp/v1/nodes/pi/cmd/logs",
            "kelp/v1/nodes/pi/cmd/logs/other",
            "kelp/v1/nodes/pi/cmd/+/req",
            "kelp/v1/nodes/pi/cmd//req",
            "kelp/v1/nodes/pi/cmd/a/b/req",
            "kelp/v2/nodes/pi/status",
            "kelp/v1x/nodes/pi/status",
            "other/kelp/v1/nodes/pi/status",
        ] {
            assert_eq!(t.parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn node_names() {
        for good in [
            "a",
            "pi-1",
            "0",
            "node.example.com",
            "a-b.c-d",
            &"a".repeat(253),
        ] {
            assert!(valid_node_name(good), "{good:?}");
        }
        for bad in [
            "",
            "+",
            "#",
            "a/b",
            "a+b",
            "-a",
            "a-",
            "A",
            "a..b",
            ".a",
            "a.",
            "a_b",
            "a b",
            "ä",
            "a\0",
            "$sys",
            &"a".repeat(254),
        ] {
            assert!(!valid_node_name(bad), "{bad:?}");
            assert!(Topics::default().desired(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_node_name("a..b"),
            Err(TopicError::InvalidNodeName {
                name: "a..b".into(),
                reason: "empty label between dots"
            })
        );
    }

    #[test]
    fn command_names() {
        let t = Topics::default();
        assert!(t.cmd_req("pi", "logs").is_ok());
        for bad in ["", "+", "#", "a/b", "a.b", "Logs", "-x", &"x".repeat(64)] {
            assert!(t.cmd_req("pi", bad).is_err(), "{bad:?}");
            assert!(t.cmd_resp("pi", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes() {
        assert!(Topics::new("kelp").is_ok());
        assert!(Topics::new("a/b/c").is_ok());
        for bad in [
            "",
            "/kelp",
            "kelp/",
            "a//b",
            "kelp/+",
            "kelp/#",
            "$SYS/kelp",
            "a\0b",
        ] {
            assert!(
                matches!(Topics::new(bad), Err(TopicError::InvalidPrefix { .. })),
                "{bad:?}"
            );
        }
    }
}
