//! Untrusted MQTT payloads: decode an envelope, open (decompress) its body, decode every
//! message type from the body and from the raw input, and parse the input as a topic.
//! Nothing may panic, hang or allocate without bound.

#![no_main]

use kelp_shared::wire::{
    decode_message, encode_message, Birth, DesiredState, Envelope, EventBatch, MetricsBatch,
    Offline, Reported, Request, Response, Samples, Topics,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

/// Decodes a `T`; when that works, re-encoding and decoding again gives the same value.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    if let Ok(value) = decode_message::<T>(bytes) {
        let again = encode_message(&value).expect("a decoded message encodes");
        assert_eq!(decode_message::<T>(&again).expect("re-decodes"), value);
    }
}

fn decode_messages(bytes: &[u8]) {
    round_trip::<Birth>(bytes);
    round_trip::<Offline>(bytes);
    round_trip::<Reported>(bytes);
    round_trip::<DesiredState>(bytes);
    round_trip::<EventBatch>(bytes);
    // f64 samples may be NaN, which is not equal to itself: decode only.
    let _ = decode_message::<MetricsBatch>(bytes);
    round_trip::<Samples>(bytes);
    if let Ok(samples) = decode_message::<Samples>(bytes) {
        for series in &samples.series {
            let _ = series.values();
            let _ = series.last();
        }
    }
    round_trip::<Request>(bytes);
    round_trip::<Response>(bytes);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        // Decoding accepts only the canonical encoding.
        assert_eq!(envelope.encode(), data);
        let _ = envelope.signing_bytes();
        if let Ok(body) = envelope.open_body() {
            decode_messages(&body);
        }
    }
    decode_messages(data);
    if let Ok(topic) = std::str::from_utf8(data) {
        if let Some((node, kind)) = Topics::default().parse(topic) {
            assert_eq!(Topics::default().topic(&node, &kind).as_deref(), Ok(topic));
        }
    }
});
