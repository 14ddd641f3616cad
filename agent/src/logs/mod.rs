//! Container logs: CRI-format files with size-based rotation, and their readers.
//!
//! The per-pod monitor holds the read ends of each container's stdout and stderr pipes and
//! feeds what comes out to a [`LogWriter`], one per container. `kelp-agent logs` reads the
//! files back with [`read_tail`] and [`follow`], and prints them with a [`LogPrinter`].
//!
//! # Format
//!
//! The files use the CRI logging format that the kubelet reads and containerd writes, one
//! record per line:
//!
//! ```text
//! 2016-10-06T00:17:09.669794202Z stdout F a whole line
//! 2016-10-06T00:17:09.669794202Z stderr P the first 16 KiB of a longer line…
//! 2016-10-06T00:17:09.669794202Z stderr F …and the rest of it
//! ```
//!
//! That is: an RFC 3339 UTC timestamp with nanoseconds, the stream, a tag, and the content
//! without its line ending. The tag is `F` for a record that ends a line and `P` for a
//! partial one, as containerd's CRI logger does it: a line longer than [`MAX_LINE`] bytes is
//! cut into `P` records followed by an `F` record, and output left without a newline when
//! the stream ends is written as a `P` record. A `\r\n` line ending is dropped like `\n`.
//! kelp always writes nine fractional digits, so timestamps are fixed-width; readers accept
//! any RFC 3339 timestamp, as the kubelet does.
//!
//! # Files
//!
//! One log per container, `NAME.log`, rotated by size into `NAME.log.1` (the newest rotated
//! file), `NAME.log.2`, … up to [`LogConfig::max_files`] files in all. A restarted container
//! appends to its log. Records are never split across files.

mod follow;
mod print;
mod reader;
mod record;
mod timestamp;
mod writer;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use follow::{follow, follow_window};
pub use print::{join_lines, print_tail, print_window, LogPrinter, PrintOptions};
pub use reader::{read_tail, read_tail_counted, LogTail};
pub use record::{LogRecord, ParseError};
pub use writer::{LogConfig, LogWriter};

/// Longest content of one record in bytes; longer lines are cut into partial records.
///
/// This is containerd's default `max_container_log_line_size`.
pub const MAX_LINE: usize = 16 * 1024;

/// A container's output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The stream's name in a log record: `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// A small index for per-stream state.
    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A span of time records are read from: one run of a container, since a restarted
/// container appends to its log. Records are stamped when the agent reads them, after the
/// run's start was recorded, so a run's records are those from its start to the next run's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Records before this time are left out.
    pub since: Option<SystemTime>,
    /// Records at or after this time are left out.
    pub until: Option<SystemTime>,
}

impl Window {
    /// Every record.
    pub const ALL: Window = Window {
        since: None,
        until: None,
    };

    /// Whether a record of time `t` is inside.
    pub fn contains(&self, t: SystemTime) -> bool {
        !self.is_before(t) && !self.is_after(t)
    }

    /// Whether `t` is older than the window.
    fn is_before(&self, t: SystemTime) -> bool {
        self.since.is_some_and(|since| t < since)
    }

    /// Whether `t` is at or after the window's end.
    fn is_after(&self, t: SystemTime) -> bool {
        self.until.is_some_and(|until| t >= until)
    }
}

/// The path of the `n`th rotated file of the log at `path` (`NAME.log.n`).
fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Adds `path` to an I/O error's message, keeping its kind.
fn with_path(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}
