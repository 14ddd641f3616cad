//! The postcard codec for kelp's messages and the zstd body compression.

use std::io::Read;

use ruzstd::decoding::{FrameDecoder, StreamingDecoder};
use ruzstd::encoding::{compress_to_vec, CompressionLevel};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::WireError;
use super::MAX_BODY;

/// The last path segment of a type's name, for error messages (`"Birth"`, not
/// `"kelp_shared::wire::messages::Birth"`).
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    if full.starts_with(['(', '[', '&']) {
        return full;
    }
    // Generic parameters may contain `::` too; only look before the first `<`.
    let head = full.split('<').next().unwrap_or(full);
    match head.rfind("::") {
        Some(at) => &full[at + 2..],
        None => full,
    }
}

/// Encodes one of kelp's messages (or any serde type) as postcard bytes.
///
/// This is the body of an envelope before compression; most callers want
/// [`crate::wire::Envelope::seal_message`] instead. Fails only for types postcard cannot
/// represent (none of kelp's).
pub fn encode_message<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    postcard::to_stdvec(message).map_err(|err| WireError::Encode {
        what: short_type_name::<T>(),
        reason: err.to_string(),
    })
}

/// Decodes exactly one `T` from untrusted postcard bytes.
///
/// Refuses input over [`MAX_BODY`] before parsing, rejects bytes left over after the value
/// ([`WireError::TrailingBytes`]) and never panics.
pub fn decode_message<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let what = short_type_name::<T>();
    if bytes.len() > MAX_BODY {
        return Err(WireError::TooLarge {
            what,
            size: bytes.len(),
            limit: MAX_BODY,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|err| WireError::from_postcard(what, err))?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes {
            what,
            count: rest.len(),
        });
    }
    Ok(value)
}

/// The window kelp's own encoder uses.
const MIN_WINDOW: u64 = 128 * 1024;

/// Compresses `data` into one zstd frame (pure Rust, fastest level, 128 KiB window, with
/// a content checksum).
pub(crate) fn zstd_compress(data: &[u8]) -> Vec<u8> {
    compress_to_vec(data, CompressionLevel::Fastest)
}

/// Decompresses exactly one zstd frame from untrusted bytes, producing at most `limit`
/// bytes.
///
/// The frame's window may not exceed `limit` either (128 KiB at least; so a hostile header cannot make the
/// decoder allocate more), the content checksum is verified when present, skippable
/// frames and dictionaries are refused, and bytes after the frame are an error.
pub(crate) fn zstd_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
    let decompress = |reason: String| WireError::Decompress { reason };
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);

    let mut source = input;
    let mut frame = FrameDecoder::new();
    // A window larger than the whole allowed output is never needed (but kelp's own
    // encoder always uses 128 KiB, so allow that much even under a smaller limit).
    frame.set_max_window_size(limit_u64.max(MIN_WINDOW));
    let mut decoder = StreamingDecoder::new_with_decoder(&mut source, frame)
        .map_err(|err| decompress(err.to_string()))?;
    // A declared content size (0 when absent) is checked before any block is decoded.
    if decoder.decoder.content_size() > limit_u64 {
        return Err(WireError::BodyTooLarge { limit });
    }

    let mut out = Vec::new();
    (&mut decoder)
        .take(limit_u64.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|err| decompress(err.to_string()))?;
    if out.len() > limit {
        return Err(WireError::BodyTooLarge { limit });
    }
    if !decoder.decoder.is_finished() {
        return Err(decompress("frame ended early".to_owned()));
    }
    if let (Some(stored), Some(computed)) = (
        decoder.decoder.get_checksum_from_data(),
        decoder.decoder.get_calculated_checksum(),
    ) {
        if stored != computed {
            return Err(decompress(format!(
                "content checksum mismatch (frame says {stored:08x}, data hashes to {computed:08x})"
            )));
        }
    }
    drop(decoder);
    if !source.is_empty() {
        return Err(WireError::TrailingBytes {
            what: "zstd frame",
            count: source.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(short_type_name::<u64>(), "u64");
        assert_eq!(short_type_name::<WireError>(), "WireError");
        assert_eq!(
            short_type_name::<Vec<String>>(),
            "Vec<alloc::string::String>"
        );
    }

    #[test]
    fn message_round_trip_and_trailing_bytes() {
        let value = (7u64, "seven".to_owned(), vec![1u16, 2, 3]);
        let mut bytes = encode_message(&value).unwrap();
        assert_eq!(
            decode_message::<(u64, String, Vec<u16>)>(&bytes).unwrap(),
            value
        );
        bytes.push(0);
        assert_eq!(
            decode_message::<(u64, String, Vec<u16>)>(&bytes),
            Err(WireError::TrailingBytes {
                what: "(u64, alloc::string::String, alloc::vec::Vec<u16>)",
                count: 1
            })
        );
    }

    #[test]
    fn message_size_limit_before_parsing() {
        let big = vec![0u8; MAX_BODY + 1];
        assert!(matches!(
            decode_message::<Vec<u8>>(&big),
            Err(WireError::TooLarge { size, limit: MAX_BODY, .. }) if size == MAX_BODY + 1
        ));
    }

    #[test]
    fn zstd_round_trip() {
        let data = b"kelp kelp kelp kelp kelp kelp kelp kelp kelp kelp".repeat(100);
        let packed = zstd_compress(&data);
        assert!(packed.len() < data.len());
        assert_eq!(zstd_decompress(&packed, MAX_BODY).unwrap(), data);
        assert_eq!(zstd_decompress(&zstd_compress(b""), MAX_BODY).unwrap(), b"");
    }

    #[test]
    fn zstd_limit_and_errors() {
        let data = vec![0u8; 10_000];
        let packed = zstd_compress(&data);
        assert_eq!(
            zstd_decompress(&packed, 9_999),
            Err(WireError::BodyTooLarge { limit: 9_999 })
        );
        assert_eq!(zstd_decompress(&packed, 10_000).unwrap(), data);

        let mut trailing = packed.clone();
        trailing.extend_from_slice(&packed);
        assert!(matches!(
            zstd_decompress(&trailing, MAX_BODY),
            Err(WireError::TrailingBytes { .. })
        ));

        for len in 0..packed.len() {
            assert!(
                zstd_decompress(&packed[..len], MAX_BODY).is_err(),
                "prefix {len}"
            );
        }

        // Flip a byte of the checksum (the frame's last four bytes).
        let mut corrupt = packed;
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(matches!(
            zstd_decompress(&corrupt, MAX_BODY),
            Err(WireError::Decompress { .. })
        ));
    }
}
