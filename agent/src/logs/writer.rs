//! The writing side: a container's output, cut into records, appended to a rotated log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::mem;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::record::{encode_after_stamp, encoded_len};
use super::{rotated_path, timestamp, with_path, Stream, MAX_LINE};

/// Size limits of one container's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Largest size in bytes of one log file before it is rotated. A single record larger
    /// than this still gets a file of its own rather than being split.
    pub max_size: u64,
    /// How many files to keep, the current one included; `0` counts as `1` (no rotated
    /// files: rotation discards the log).
    pub max_files: u32,
}

impl Default for LogConfig {
    /// 10 MiB and 5 files, the kubelet's defaults.
    fn default() -> Self {
        LogConfig {
            max_size: 10 << 20,
            max_files: 5,
        }
    }
}

/// Appends one container's stdout and stderr to its log file as CRI log records.
///
/// Made for a single-threaded poll loop: [`write`](Self::write) whatever a pipe gave, and
/// [`finish`](Self::finish) a stream at its end of file. An unfinished line is held per
/// stream until its newline comes, or until it is longer than [`MAX_LINE`] and a partial
/// record is cut from it. Every call writes its records with a single `write_all` per file,
/// and nothing at all when no record is complete. There is no `fsync`: the page cache is
/// trusted, to spare SD cards.
///
/// Dropping the writer without [`finish`](Self::finish) loses the unfinished lines.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    config: LogConfig,
    file: File,
    /// Bytes in `file`.
    size: u64,
    /// Whether `file` may end inside a record (a torn write), so that the next write must
    /// begin with a newline to keep its first record on a line of its own.
    torn: bool,
    /// Each stream's unfinished line, at most [`MAX_LINE`] bytes.
    unfinished: [Vec<u8>; 2],
    /// Formatted records not yet written.
    out: Vec<u8>,
    /// The formatted timestamp of the current call.
    stamp: Vec<u8>,
    /// The first error met during a call, reported at its end.
    error: Option<io::Error>,
}

impl LogWriter {
    /// Opens the log at `path` for appending, creating it if needed. Its directory must
    /// exist. A log that ends inside a record (the agent died mid-write) gets a newline, so
    /// the torn record stays a malformed line of its own.
    pub fn open(path: impl Into<PathBuf>, config: LogConfig) -> io::Result<Self> {
        let path = path.into();
        let file = open_append(&path)?;
        let size = file.metadata().map_err(|e| with_path(&path, e))?.len();
        let torn = ends_inside_record(&file, size).map_err(|e| with_path(&path, e))?;
        Ok(LogWriter {
            path,
            config,
            file,
            size,
            torn,
            unfinished: [Vec::new(), Vec::new()],
            out: Vec::new(),
            stamp: Vec::new(),
            error: None,
        })
    }

    /// The path of the current log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's limits.
    pub fn config(&self) -> LogConfig {
        self.config
    }

    /// Takes a chunk of `stream`'s output, read at `now`: lines may be split across chunks
    /// anywhere, even inside a UTF-8 sequence. Writes the records it completes.
    ///
    /// On an error the records of this call may be lost (as containerd does, so that the
    /// container's pipe keeps being drained); a failed rotation instead keeps writing to the
    /// current file, and reports the error after.
    pub fn write(&mut self, stream: Stream, chunk: &[u8], now: SystemTime) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.set_stamp(now);
        let mut unfinished = mem::take(&mut self.unfinished[stream.index()]);
        let mut rest = chunk;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..newline];
            if unfinished.is_empty() {
                self.cut_line(stream, line);
            } else {
                unfinished.extend_from_slice(line);
                self.cut_line(stream, &unfinished);
                unfinished.clear();
            }
            rest = &rest[newline + 1..];
        }
        unfinished.extend_from_slice(rest);
        // Like containerd, cut a partial record only once the line is known to be longer.
        let mut start = 0;
        while unfinished.len() - start > MAX_LINE {
            self.push_record(stream, true, &unfinished[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        unfinished.drain(..start);
        self.unfinished[stream.index()] = unfinished;
        self.flush_records()
    }

    /// Ends `stream` (end of file on its pipe) at `now`: its unfinished line, if any, is
    /// written as a partial record, as containerd does.
    pub fn finish(&mut self, stream: Stream, now: SystemTime) -> io::Result<()> {
        let mut unfinished = mem::take(&mut self.unfinished[stream.index()]);
        if unfinished.is_empty() {
            return Ok(());
        }
        self.set_stamp(now);
        self.push_record(stream, true, &unfinished);
        unfinished.clear();
        self.unfinished[stream.index()] = unfinished;
        self.flush_records()
    }

    fn set_stamp(&mut self, now: SystemTime) {
        self.stamp.clear();
        timestamp::format_into(now, &mut self.stamp);
    }

    /// Cuts a whole line (without its `\n`) into records: partial ones of [`MAX_LINE`] bytes
    /// while more than that is left, then a full one.
    fn cut_line(&mut self, stream: Stream, line: &[u8]) {
        let mut line = line.strip_suffix(b"\r").unwrap_or(line);
        while line.len() > MAX_LINE {
            let (head, tail) = line.split_at(MAX_LINE);
            self.push_record(stream, true, head);
            line = tail;
        }
        self.push_record(stream, false, line);
    }

    /// Queues one record, first writing out the queue and rotating the log when the record
    /// would not fit in the current file.
    fn push_record(&mut self, stream: Stream, partial: bool, content: &[u8]) {
        let len = encoded_len(self.stamp.len(), stream, content) as u64;
        let used = self.size + self.out.len() as u64;
        if used > 0 && used + len > self.config.max_size {
            self.write_queued();
            if let Err(e) = self.rotate() {
                self.error.get_or_insert(e);
            }
        }
        self.out.extend_from_slice(&self.stamp);
        encode_after_stamp(&mut self.out, stream, partial, content);
    }

    /// Writes the queued records, then reports the first error of the call, if any.
    fn flush_records(&mut self) -> io::Result<()> {
        self.write_queued();
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writes the queued records with one `write_all`, keeping an error for the end of the
    /// call.
    fn write_queued(&mut self) {
        if self.out.is_empty() {
            return;
        }
        if self.torn {
            self.out.insert(0, b'\n');
        }
        match self.file.write_all(&self.out) {
            Ok(()) => {
                self.size += self.out.len() as u64;
                self.torn = false;
            }
            Err(e) => {
                // Part of it may have been written: learn where the file ends now.
                if let Ok(meta) = self.file.metadata() {
                    self.size = meta.len();
                    self.torn = ends_inside_record(&self.file, self.size).unwrap_or(true);
                }
                self.error.get_or_insert(with_path(&self.path, e));
            }
        }
        self.out.clear();
    }

    /// Moves `NAME.log.n` to `NAME.log.(n+1)` for each kept rotation, dropping the oldest
    /// (and any left beyond the limit by a larger `max_files` before), moves the current
    /// file to `NAME.log.1`, and starts a new current file.
    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.config.max_files.max(1);
        let mut n = (keep - 1).max(1);
        loop {
            let stale = rotated_path(&self.path, n);
            match fs::remove_file(&stale) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(with_path(&stale, e)),
            }
        }
        for n in (1..keep - 1).rev() {
            let from = rotated_path(&self.path, n);
            match fs::rename(&from, rotated_path(&self.path, n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(with_path(&from, e)),
            }
        }
        let moved = if keep > 1 {
            fs::rename(&self.path, rotated_path(&self.path, 1))
        } else {
            fs::remove_file(&self.path)
        };
        match moved {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(with_path(&self.path, e)),
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        self.torn = false;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| with_path(path, e))
}

/// Whether a file of `size` bytes does not end with a newline.
fn ends_inside_record(file: &File, size: u64) -> io::Result<bool> {
    if size == 0 {
        return Ok(false);
    }
    let mut last = [0];
    file.read_exact_at(&mut last, size - 1)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::LogRecord;
    use super::*;

    const STAMP: &str = "2016-10-06T00:17:09.669794202Z";

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_202)
    }

    fn unlimited() -> LogConfig {
        LogConfig {
            max_size: u64::MAX,
            max_files: 2,
        }
    }

    fn setup(config: LogConfig) -> (tempfile::TempDir, LogWriter) {
        let dir = tempfile::tempdir().unwrap();
        let writer = LogWriter::open(dir.path().join("c.log"), config).unwrap();
        (dir, writer)
    }

    fn text(path: &Path) -> String {
        String::from_utf8(fs::read(path).unwrap()).unwrap()
    }

    /// The (stream, partial, content) of each record of a file.
    fn records(path: &Path) -> Vec<(Stream, bool, Vec<u8>)> {
        fs::read(path)
            .unwrap()
            .split_inclusive(|&b| b == b'\n')
            .map(|line| {
                let r = LogRecord::parse(line).unwrap();
                (r.stream, r.partial, r.content)
            })
            .collect()
    }

    #[test]
    fn writes_full_records() {
        let (_dir, mut w) = setup(unlimited());
        w.write(Stream::Stdout, b"hello\nworld\n", now()).unwrap();
        w.write(Stream::Stderr, b"oops\r\n\n", now()).unwrap();
        assert_eq!(
            text(w.path()),
            format!(
                "{STAMP} stdout F hello\n{STAMP} stdout F world\n\
                 {STAMP} stderr F oops\n{STAMP} stderr F \n"
            )
        );
    }

    #[test]
    fn joins_chunks_split_mid_line_and_mid_utf8() {
        let (_dir, mut w) = setup(unlimited());
        let line = "h\u{e9}llo w\u{f6}rld \u{1f980}\n".as_bytes();
        for i in 0..line.len() {
            w.write(Stream::Stdout, &line[i..i + 1], now()).unwrap();
        }
        let mut crlf_split = b"tail\r".to_vec();
        w.write(Stream::Stdout, &crlf_split, now()).unwrap();
        crlf_split.clear();
        crlf_split.push(b'\n');
        w.write(Stream::Stdout, &crlf_split, now()).unwrap();
        assert_eq!(
            text(w.path()),
            format!("{STAMP} stdout F h\u{e9}llo w\u{f6}rld \u{1f980}\n{STAMP} stdout F tail\n")
        );
    }

    #[test]
    fn nothing_is_written_before_a_line_completes() {
        let (_dir, mut w) = setup(unlimited());
        w.write(Stream::Stdout, b"", now()).unwrap();
        w.write(Stream::Stdout, b"no newline yet", now()).unwrap();
        w.finish(Stream::Stderr, now()).unwrap();
        assert_eq!(fs::metadata(w.path()).unwrap().len(), 0);
        w.write(Stream::Stdout, b"!\n", now()).unwrap();
        assert_eq!(
            text(w.path()),
            format!("{STAMP} stdout F no newline yet!\n")
        );
    }

    #[test]
    fn finish_writes_the_unfinished_line_as_partial() {
        let (_dir, mut w) = setup(unlimited());
        w.write(Stream::Stdout, b"done\nprompt> ", now()).unwrap();
        w.finish(Stream::Stdout, now()).unwrap();
        w.finish(Stream::Stdout, now()).unwrap();
        assert_eq!(
            text(w.path()),
            format!("{STAMP} stdout F done\n{STAMP} stdout P prompt> \n")
        );
    }

    #[test]
    fn streams_keep_separate_unfinished_lines() {
        let (_dir, mut w) = setup(unlimited());
        w.write(Stream::Stdout, b"out-a", now()).unwrap();
        w.write(Stream::Stderr, b"err-a", now()).unwrap();
        w.write(Stream::Stdout, b"out-b\nout-2", now()).unwrap();
        w.write(Stream::Stderr, b"err-b\n", now()).unwrap();
        w.write(Stream::Stdout, b"\n", now()).unwrap();
        assert_eq!(
            records(w.path()),
            [
                (Stream::Stdout, false, b"out-aout-b".to_vec()),
                (Stream::Stderr, false, b"err-aerr-b".to_vec()),
                (Stream::Stdout, false, b"out-2".to_vec()),
            ]
        );
    }

    #[test]
    fn long_lines_are_cut_at_16_kib() {
        let (_dir, mut w) = setup(unlimited());
        let exact = vec![b'a'; MAX_LINE];
        w.write(Stream::Stdout, &[&exact[..], b"\n"].concat(), now())
            .unwrap();
        let over = vec![b'b'; MAX_LINE + 1];
        w.write(Stream::Stdout, &[&over[..], b"\n"].concat(), now())
            .unwrap();
        assert_eq!(
            records(w.path()),
            [
                (Stream::Stdout, false, exact.clone()),
                (Stream::Stdout, true, vec![b'b'; MAX_LINE]),
                (Stream::Stdout, false, b"b".to_vec()),
            ]
        );
    }

    #[test]
    fn long_lines_in_small_chunks_are_cut_as_they_come() {
        let (_dir, mut w) = setup(unlimited());
        let line: Vec<u8> = (0..40_000).map(|i| b'a' + (i % 26) as u8).collect();
        let mut written = Vec::new();
        for chunk in line.chunks(1000) {
            w.write(Stream::Stderr, chunk, now()).unwrap();
            written.push(fs::metadata(w.path()).unwrap().len());
        }
        // The first partial record is out as soon as the line is longer than 16 KiB.
        assert_eq!(written[15], 0);
        assert!(written[16] > 0);
        w.write(Stream::Stderr, b"\n", now()).unwrap();
        assert_eq!(
            records(w.path()),
            [
                (Stream::Stderr, true, line[..MAX_LINE].to_vec()),
                (Stream::Stderr, true, line[MAX_LINE..2 * MAX_LINE].to_vec()),
                (Stream::Stderr, false, line[2 * MAX_LINE..].to_vec()),
            ]
        );
    }

    #[test]
    fn reopening_appends() {
        let (dir, mut w) = setup(unlimited());
        w.write(Stream::Stdout, b"first run\n", now()).unwrap();
        drop(w);
        let mut w = LogWriter::open(dir.path().join("c.log"), unlimited()).unwrap();
        w.write(Stream::Stdout, b"second run\n", now()).unwrap();
        assert_eq!(
            text(w.path()),
            format!("{STAMP} stdout F first run\n{STAMP} stdout F second run\n")
        );
    }

    #[test]
    fn reopening_a_torn_log_keeps_the_next_record_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        fs::write(&path, format!("{STAMP} stdout F ok\n{STAMP} std")).unwrap();
        let mut w = LogWriter::open(&path, unlimited()).unwrap();
        w.write(Stream::Stdout, b"after\n", now()).unwrap();
        assert_eq!(
            text(&path),
            format!("{STAMP} stdout F ok\n{STAMP} std\n{STAMP} stdout F after\n")
        );
    }

    /// The numbered lines `0..count` written one chunk each, and the files they ended in.
    fn write_numbered(config: LogConfig, count: usize) -> (tempfile::TempDir, PathBuf) {
        let (dir, mut w) = setup(config);
        for i in 0..count {
            w.write(Stream::Stdout, format!("line {i:04}\n").as_bytes(), now())
                .unwrap();
        }
        (dir, w.path().to_owned())
    }

    /// Every line of the current file and its rotations, oldest first.
    fn all_lines(path: &Path, max_files: u32) -> Vec<Vec<u8>> {
        let mut paths: Vec<_> = (1..max_files)
            .rev()
            .map(|n| rotated_path(path, n))
            .collect();
        paths.push(path.to_owned());
        paths
            .iter()
            .filter(|p| p.exists())
            .flat_map(|p| records(p).into_iter().map(|(_, _, content)| content))
            .collect()
    }

    #[test]
    fn rotation_keeps_every_record_once_in_order() {
        // 50-byte records, 4 to a 230-byte file: 250 records make 63 files.
        let config = LogConfig {
            max_size: 230,
            max_files: 100,
        };
        let (_dir, path) = write_numbered(config, 250);
        let expected: Vec<Vec<u8>> = (0..250).map(|i| format!("line {i:04}").into()).collect();
        assert_eq!(all_lines(&path, 100), expected);
        for n in 1..63 {
            let size = fs::metadata(rotated_path(&path, n)).unwrap().len();
            assert_eq!(size, 4 * 50, "file {n}");
        }
        assert!(!rotated_path(&path, 63).exists());
    }

    #[test]
    fn rotation_keeps_max_files() {
        let config = LogConfig {
            max_size: 230,
            max_files: 3,
        };
        let (dir, path) = write_numbered(config, 250);
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["c.log", "c.log.1", "c.log.2"]);
        // The newest records, contiguous: 4 in each rotated file, 2 in the current one.
        let expected: Vec<Vec<u8>> = (240..250).map(|i| format!("line {i:04}").into()).collect();
        assert_eq!(all_lines(&path, 3), expected);
    }

    #[test]
    fn one_call_spanning_a_rotation_splits_at_a_record_boundary() {
        let (_dir, mut w) = setup(LogConfig {
            max_size: 230,
            max_files: 5,
        });
        let chunk: String = (0..10).map(|i| format!("line {i:04}\n")).collect();
        w.write(Stream::Stdout, chunk.as_bytes(), now()).unwrap();
        let path = w.path().to_owned();
        assert_eq!(records(&rotated_path(&path, 2)).len(), 4);
        assert_eq!(records(&rotated_path(&path, 1)).len(), 4);
        assert_eq!(records(&path).len(), 2);
    }

    #[test]
    fn a_record_larger_than_max_size_gets_a_file_of_its_own() {
        let (_dir, mut w) = setup(LogConfig {
            max_size: 100,
            max_files: 5,
        });
        w.write(Stream::Stdout, b"short\n", now()).unwrap();
        w.write(Stream::Stdout, &[&[b'x'; 500][..], b"\n"].concat(), now())
            .unwrap();
        w.write(Stream::Stdout, b"short again\n", now()).unwrap();
        let path = w.path().to_owned();
        assert_eq!(records(&rotated_path(&path, 2))[0].2, b"short");
        assert_eq!(records(&rotated_path(&path, 1))[0].2, vec![b'x'; 500]);
        assert_eq!(records(&path)[0].2, b"short again");
    }

    #[test]
    fn one_file_means_rotation_discards_and_stale_rotations_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        for n in 1..=4 {
            fs::write(rotated_path(&path, n), "old\n").unwrap();
        }
        let mut w = LogWriter::open(
            &path,
            LogConfig {
                max_size: 100,
                max_files: 1,
            },
        )
        .unwrap();
        for i in 0..5 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes(), now())
                .unwrap();
        }
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(records(&path).last().unwrap().2, b"line 4");
    }
}
