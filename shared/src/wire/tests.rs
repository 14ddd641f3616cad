//! Property tests: no input makes a decoder panic.

use proptest::prelude::*;

use super::*;

/// Runs every decoder kelp has on `bytes`; none may panic.
fn decode_everything(bytes: &[u8]) {
    if let Ok(envelope) = Envelope::decode(bytes) {
        // A decoded envelope re-encodes to the same bytes (the encoding is canonical).
        assert_eq!(envelope.encode(), bytes);
        let _ = envelope.signing_bytes();
        if let Ok(body) = envelope.open_body() {
            decode_messages(&body);
        }
    }
    decode_messages(bytes);
}

fn decode_messages(bytes: &[u8]) {
    let _ = decode_message::<Birth>(bytes);
    let _ = decode_message::<Offline>(bytes);
    let _ = decode_message::<Reported>(bytes);
    let _ = decode_message::<DesiredState>(bytes);
    let _ = decode_message::<EventBatch>(bytes);
    let _ = decode_message::<MetricsBatch>(bytes);
    if let Ok(samples) = decode_message::<Samples>(bytes) {
        for series in &samples.series {
            let _ = series.values();
            let _ = series.last();
            if let Some(subject) = samples.subject_of(series) {
                let _ = samples.pod_of(subject);
            }
        }
        let _ = samples.slot_unix_ms(samples.slots);
    }
    let _ = decode_message::<Request>(bytes);
    let _ = decode_message::<Response>(bytes);
}

/// Bytes that start like a version-1 envelope, so the fuzzing gets past the header.
fn envelope_like() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..11,
        any::<[u8; 16]>(),
        0u8..3,
        prop::option::of(any::<[u8; 32]>()),
        prop::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(|(kind, cluster, compression, signature, tail)| {
            let mut bytes = vec![1, kind];
            bytes.extend_from_slice(&cluster);
            bytes.push(compression);
            match signature {
                Some(half) => {
                    bytes.push(1);
                    bytes.extend_from_slice(&half);
                    bytes.extend_from_slice(&half);
                }
                None => bytes.push(0),
            }
            bytes.extend_from_slice(&tail);
            bytes
        })
}

/// A well-formed envelope with an arbitrary body (sometimes a real zstd frame).
fn valid_envelope() -> impl Strategy<Value = Envelope> {
    (
        prop::sample::select(MessageKind::ALL.to_vec()),
        any::<[u8; 16]>(),
        prop::option::of(any::<[u8; 32]>()),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
        .prop_map(|(kind, cluster, signature, body, compress)| {
            let (compression, body) = if compress {
                (Compression::Zstd, codec_compress(&body))
            } else {
                (Compression::None, body)
            };
            Envelope {
                version: WIRE_VERSION,
                kind,
                cluster: ClusterId(cluster),
                compression,
                signature: signature.map(|half| {
                    let mut sig = [0; 64];
                    sig[..32].copy_from_slice(&half);
                    sig[32..].copy_from_slice(&half);
                    Signature(sig)
                }),
                body,
            }
        })
}

fn codec_compress(data: &[u8]) -> Vec<u8> {
    super::codec::zstd_compress(data)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        decode_everything(&bytes);
    }

    #[test]
    fn envelope_like_bytes_never_panic(bytes in envelope_like()) {
        decode_everything(&bytes);
    }

    #[test]
    fn envelopes_round_trip(envelope in valid_envelope()) {
        let bytes = envelope.encode();
        prop_assert_eq!(bytes.len(), envelope.encoded_len());
        let decoded = Envelope::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &envelope);
        prop_assert!(decoded.open_body().is_ok());
    }

    #[test]
    fn mutated_envelopes_never_panic(
        envelope in valid_envelope(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = envelope.encode();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        decode_everything(&bytes);
        let len = cut.index(bytes.len());
        decode_everything(&bytes[..len]);
    }
}

#[test]
fn negotiation() {
    assert_eq!(negotiate_version(&[1]), Some(1));
    assert_eq!(negotiate_version(&[3, 2, 1]), Some(1));
    assert_eq!(negotiate_version(&[]), None);
    assert_eq!(negotiate_version(&[0, 2]), None);
    assert!(SUPPORTED_WIRE_VERSIONS.contains(&WIRE_VERSION));
    assert!(SUPPORTED_WIRE_VERSIONS.windows(2).all(|w| w[0] < w[1]));
}
