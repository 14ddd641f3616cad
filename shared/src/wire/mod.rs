//! The MQTT wire format: envelope, kelp's own messages, topics.
