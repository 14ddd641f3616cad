//! Showing records as `kubectl logs` does: the content alone, partial records joined.

use std::io::{self, Write};
use std::path::Path;

use super::reader::{visit_window, LogSet};
use super::{timestamp, LogRecord, Window};

/// How records are shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// Begin each line with its timestamp and a space (`kubectl logs --timestamps`).
    pub timestamps: bool,
}

/// Prints records one at a time as lines of content, as `kubectl logs` does.
///
/// A full record ends its line; a partial one leaves the line open for the next record, so
/// the pieces of a long line print as one line. With timestamps, a line gets the time of its
/// first record. Like the kubelet, the printer does not tell streams apart: records are
/// printed in file order, as they come.
#[derive(Debug)]
pub struct LogPrinter {
    options: PrintOptions,
    /// Whether the last record printed ended its line.
    at_line_start: bool,
    buf: Vec<u8>,
}

impl LogPrinter {
    /// A printer starting at the beginning of a line.
    pub fn new(options: PrintOptions) -> Self {
        LogPrinter {
            options,
            at_line_start: true,
            buf: Vec::new(),
        }
    }

    /// Prints one record to `out`, with a single write.
    pub fn print(&mut self, record: &LogRecord, out: &mut dyn Write) -> io::Result<()> {
        self.buf.clear();
        if self.options.timestamps && self.at_line_start {
            timestamp::format_into(record.time, &mut self.buf);
            self.buf.push(b' ');
        }
        self.buf.extend_from_slice(&record.content);
        if !record.partial {
            self.buf.push(b'\n');
        }
        self.at_line_start = !record.partial;
        out.write_all(&self.buf)
    }
}

/// Prints the last `tail` records of the log at `path` (all for `None`) to `out`, streaming
/// them rather than holding them all. Returns how many malformed lines were skipped.
pub fn print_tail(
    path: &Path,
    tail: Option<usize>,
    options: PrintOptions,
    out: &mut dyn Write,
) -> io::Result<usize> {
    print_window(path, Window::ALL, tail, options, out)
}

/// [`print_tail`] of the records inside `window` (one run of a container): the tail counts
/// the window's records.
pub fn print_window(
    path: &Path,
    window: Window,
    tail: Option<usize>,
    options: PrintOptions,
    out: &mut dyn Write,
) -> io::Result<usize> {
    let set = LogSet::open(path)?;
    let mut printer = LogPrinter::new(options);
    let mut malformed = 0;
    visit_window(&set, window, tail, &mut malformed, &mut |record| {
        printer.print(&record, out)
    })?;
    out.flush()?;
    Ok(malformed)
}

/// Joins each stream's partial records with the record that ends their line, so that each
/// record returned is one whole line. A joined line has the time of its first record and
/// takes the place of its first record; a line still unfinished at the end stays partial.
pub fn join_lines(records: impl IntoIterator<Item = LogRecord>) -> Vec<LogRecord> {
    let mut lines: Vec<LogRecord> = Vec::new();
    // Per stream, the index in `lines` of its unfinished line.
    let mut open: [Option<usize>; 2] = [None, None];
    for record in records {
        let slot = &mut open[record.stream.index()];
        let i = match *slot {
            Some(i) => {
                let line = &mut lines[i];
                line.content.extend_from_slice(&record.content);
                line.partial = record.partial;
                i
            }
            None => {
                lines.push(record);
                lines.len() - 1
            }
        };
        *slot = lines[i].partial.then_some(i);
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::Stream;
    use super::*;

    fn record(secs: u64, stream: Stream, partial: bool, content: &str) -> LogRecord {
        LogRecord {
            time: UNIX_EPOCH + Duration::new(1_475_713_000 + secs, 0),
            stream,
            partial,
            content: content.into(),
        }
    }

    fn printed(options: PrintOptions, records: &[LogRecord]) -> String {
        let mut printer = LogPrinter::new(options);
        let mut out = Vec::new();
        for r in records {
            printer.print(r, &mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    fn sample() -> Vec<LogRecord> {
        vec![
            record(1, Stream::Stdout, false, "one"),
            record(2, Stream::Stderr, true, "tw"),
            record(3, Stream::Stderr, true, "o-"),
            record(4, Stream::Stderr, false, "two"),
            record(5, Stream::Stdout, true, "prompt> "),
        ]
    }

    #[test]
    fn prints_content_with_partials_joined() {
        assert_eq!(
            printed(PrintOptions::default(), &sample()),
            "one\ntwo-two\nprompt> "
        );
    }

    #[test]
    fn prints_timestamps_at_line_starts() {
        assert_eq!(
            printed(PrintOptions { timestamps: true }, &sample()),
            "2016-10-06T00:16:41.000000000Z one\n\
             2016-10-06T00:16:42.000000000Z two-two\n\
             2016-10-06T00:16:45.000000000Z prompt> "
        );
    }

    #[test]
    fn joins_lines_per_stream() {
        let records = vec![
            record(1, Stream::Stdout, true, "out-"),
            record(2, Stream::Stderr, true, "err-"),
            record(3, Stream::Stdout, false, "a"),
            record(4, Stream::Stdout, false, "b"),
            record(5, Stream::Stderr, false, "c"),
            record(6, Stream::Stderr, true, "left open"),
        ];
        assert_eq!(
            join_lines(records),
            [
                record(1, Stream::Stdout, false, "out-a"),
                record(2, Stream::Stderr, false, "err-c"),
                record(4, Stream::Stdout, false, "b"),
                record(6, Stream::Stderr, true, "left open"),
            ]
        );
    }
}
