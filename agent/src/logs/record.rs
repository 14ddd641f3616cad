//! One log record: its encoding as a CRI log line and its parser.

use std::time::SystemTime;

use super::{timestamp, Stream};

/// Tag of a record that ends a line.
const TAG_FULL: u8 = b'F';
/// Tag of a record that does not end a line.
const TAG_PARTIAL: u8 = b'P';
/// How much of a malformed line an error quotes.
const QUOTE_LEN: usize = 80;

/// One record of a container log: one line of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// When the agent read the content from the container.
    pub time: SystemTime,
    /// The stream the content came from.
    pub stream: Stream,
    /// Whether the content does not end a line (tag `P`): the line goes on in the stream's
    /// next record, or the stream ended without a newline.
    pub partial: bool,
    /// The content, without its line ending.
    pub content: Vec<u8>,
}

/// Why a line is not a log record. Each variant quotes the start of the offending line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line has fewer than the four space-separated fields.
    #[error("log line {line:?}: missing {field}")]
    Missing {
        /// The first field missing: `stream`, `tag` or `content`.
        field: &'static str,
        /// The start of the line.
        line: String,
    },
    /// The first field is not an RFC 3339 timestamp.
    #[error("log line {line:?}: bad timestamp")]
    Timestamp {
        /// The start of the line.
        line: String,
    },
    /// The stream is neither `stdout` nor `stderr`.
    #[error("log line {line:?}: bad stream")]
    Stream {
        /// The start of the line.
        line: String,
    },
    /// The tag does not start with `F` or `P`.
    #[error("log line {line:?}: bad tag")]
    Tag {
        /// The start of the line.
        line: String,
    },
}

impl LogRecord {
    /// Parses one line of a log file; a trailing `\n` is ignored.
    ///
    /// The tag field may carry further `:`-separated tags after `F` or `P`, as the CRI format
    /// allows; they are ignored.
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let quote = || String::from_utf8_lossy(&line[..line.len().min(QUOTE_LEN)]).into_owned();
        let missing = |field| ParseError::Missing {
            field,
            line: quote(),
        };

        let mut fields = line.splitn(4, |&b| b == b' ');
        let time = fields.next().unwrap_or_default();
        let stream = fields.next().ok_or_else(|| missing("stream"))?;
        let tag = fields.next().ok_or_else(|| missing("tag"))?;
        let content = fields.next().ok_or_else(|| missing("content"))?;

        let time = timestamp::parse(time).ok_or_else(|| ParseError::Timestamp { line: quote() })?;
        let stream = match stream {
            b"stdout" => Stream::Stdout,
            b"stderr" => Stream::Stderr,
            _ => return Err(ParseError::Stream { line: quote() }),
        };
        let partial = match tag.split(|&b| b == b':').next() {
            Some([TAG_FULL]) => false,
            Some([TAG_PARTIAL]) => true,
            _ => return Err(ParseError::Tag { line: quote() }),
        };
        Ok(LogRecord {
            time,
            stream,
            partial,
            content: content.to_vec(),
        })
    }

    /// Appends the record as a log file line, with its trailing newline.
    ///
    /// The content must not contain a newline, or the line would read back as two.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        timestamp::format_into(self.time, buf);
        encode_after_stamp(buf, self.stream, self.partial, &self.content);
    }
}

/// Appends the rest of a record to `buf`, which ends with the record's formatted timestamp.
///
/// The writer formats the timestamp once for all the records of a call; this finishes each.
pub(super) fn encode_after_stamp(buf: &mut Vec<u8>, stream: Stream, partial: bool, content: &[u8]) {
    buf.push(b' ');
    buf.extend_from_slice(stream.as_str().as_bytes());
    buf.push(b' ');
    buf.push(if partial { TAG_PARTIAL } else { TAG_FULL });
    buf.push(b' ');
    buf.extend_from_slice(content);
    buf.push(b'\n');
}

/// Length in bytes of an encoded record, newline included.
pub(super) fn encoded_len(stamp_len: usize, stream: Stream, content: &[u8]) -> usize {
    // "<stamp> <stream> <tag> <content>\n"
    stamp_len + stream.as_str().len() + content.len() + 5
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn record(stream: Stream, partial: bool, content: &[u8]) -> LogRecord {
        LogRecord {
            time: UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_202),
            stream,
            partial,
            content: content.to_vec(),
        }
    }

    fn encode(record: &LogRecord) -> Vec<u8> {
        let mut buf = Vec::new();
        record.encode_into(&mut buf);
        buf
    }

    #[test]
    fn encodes_full_and_partial_records() {
        assert_eq!(
            encode(&record(Stream::Stdout, false, b"hello world")),
            b"2016-10-06T00:17:09.669794202Z stdout F hello world\n"
        );
        assert_eq!(
            encode(&record(Stream::Stderr, true, b"part")),
            b"2016-10-06T00:17:09.669794202Z stderr P part\n"
        );
        assert_eq!(
            encode(&record(Stream::Stdout, false, b"")),
            b"2016-10-06T00:17:09.669794202Z stdout F \n"
        );
        let r = record(Stream::Stdout, false, b"x");
        assert_eq!(encoded_len(30, r.stream, &r.content), encode(&r).len());
    }

    #[test]
    fn parses_what_it_encodes() {
        for r in [
            record(Stream::Stdout, false, b"hello world"),
            record(Stream::Stderr, true, b" leading and trailing spaces "),
            record(Stream::Stdout, false, b""),
            record(Stream::Stderr, false, "caf\u{e9} \u{1f980}\r".as_bytes()),
            record(Stream::Stdout, true, &[0xff, 0xfe, b'\t']),
        ] {
            assert_eq!(LogRecord::parse(&encode(&r)), Ok(r));
        }
    }

    #[test]
    fn parses_records_of_other_writers() {
        let r = LogRecord::parse(b"2016-10-06T00:17:09.669794202+00:00 stderr F:x:y a b").unwrap();
        assert_eq!(r, record(Stream::Stderr, false, b"a b"));
        let r = LogRecord::parse(b"2016-10-06T00:17:09.6697942Z stdout P c").unwrap();
        assert_eq!(
            r.time,
            UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_200)
        );
        assert!(r.partial);
    }

    #[test]
    fn rejects_malformed_lines() {
        let ts = "2016-10-06T00:17:09.669794202Z";
        let kind = |line: &str| match LogRecord::parse(line.as_bytes()) {
            Ok(r) => panic!("{line:?} parsed as {r:?}"),
            Err(ParseError::Missing { field, .. }) => field,
            Err(ParseError::Timestamp { .. }) => "timestamp",
            Err(ParseError::Stream { .. }) => "bad stream",
            Err(ParseError::Tag { .. }) => "bad tag",
        };
        assert_eq!(kind(""), "stream");
        assert_eq!(kind("plain text from somewhere else"), "timestamp");
        assert_eq!(kind(ts), "stream");
        assert_eq!(kind(&format!("{ts} stdout")), "tag");
        assert_eq!(kind(&format!("{ts} stdout F")), "content");
        assert_eq!(kind(&format!("{ts} stdin F x")), "bad stream");
        assert_eq!(kind(&format!("{ts} stdout X x")), "bad tag");
        assert_eq!(kind(&format!("{ts} stdout FP x")), "bad tag");
        assert_eq!(kind(&format!("{ts} stdout  F x")), "bad tag");
        assert_eq!(kind("2016-10-06T00:17:09 stdout F x"), "timestamp");
        let err = LogRecord::parse("x".repeat(1000).as_bytes()).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }
}
