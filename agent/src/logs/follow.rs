//! Following a log as it grows and rotates (`kelp-agent logs -f`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, SystemTime};

use super::reader::{complete_end, file_id, read_lines, visit_window, FileId, LogSet};
use super::{with_path, LogPrinter, LogRecord, PrintOptions, Window};

/// Prints the last `tail` records of the log at `path` (all of them for `None`) to `out`,
/// then keeps printing records as they are written, until `stop()` returns true. Returns
/// how many malformed lines were skipped.
///
/// Every `poll`, the log is checked by polling: new bytes in the followed file are printed;
/// a new file at `path` (a rotation) is taken up after the rest of the old file, and after
/// any rotated files written in between, so no record is lost or printed twice; a file that
/// shrank (truncated in place) is read again from its start. `stop` is called once per poll,
/// after printing what had arrived.
pub fn follow(
    path: &Path,
    tail: Option<usize>,
    options: PrintOptions,
    out: &mut dyn Write,
    stop: &dyn Fn() -> bool,
    poll: Duration,
) -> io::Result<usize> {
    follow_window(path, None, tail, options, out, stop, poll)
}

/// [`follow`] from the run that started at `since`: the tail counts only records from then
/// on (earlier runs of the container are left out).
pub fn follow_window(
    path: &Path,
    since: Option<SystemTime>,
    tail: Option<usize>,
    options: PrintOptions,
    out: &mut dyn Write,
    stop: &dyn Fn() -> bool,
    poll: Duration,
) -> io::Result<usize> {
    let window = Window { since, until: None };
    let mut follower = Follower::start(path, window, tail, options, out)?;
    loop {
        follower.poll(out)?;
        out.flush()?;
        if stop() {
            return Ok(follower.sink.malformed);
        }
        thread::sleep(poll);
    }
}

/// Where printed records go.
struct Sink {
    printer: LogPrinter,
    malformed: usize,
}

impl Sink {
    fn line(&mut self, line: &[u8], out: &mut dyn Write) -> io::Result<()> {
        match LogRecord::parse(line) {
            Ok(record) => self.printer.print(&record, out),
            Err(_) => {
                self.malformed += 1;
                Ok(())
            }
        }
    }
}

/// The file being followed.
struct Followed {
    file: File,
    id: FileId,
    /// Where the next read starts.
    pos: u64,
    /// The beginning of a record still being written.
    unfinished: Vec<u8>,
}

struct Follower {
    path: PathBuf,
    sink: Sink,
    /// The current log file as last seen, unless it was missing.
    current: Option<Followed>,
    /// The newest file read from: where to resume after rotations.
    last: Option<FileId>,
}

impl Follower {
    /// Prints the tail and starts following where it ended.
    fn start(
        path: &Path,
        window: Window,
        tail: Option<usize>,
        options: PrintOptions,
        out: &mut dyn Write,
    ) -> io::Result<Self> {
        let set = LogSet::open(path)?;
        let mut sink = Sink {
            printer: LogPrinter::new(options),
            malformed: 0,
        };
        visit_window(&set, window, tail, &mut sink.malformed, &mut |record| {
            sink.printer.print(&record, out)
        })?;
        let last = set.newest_first().next().map(|log| log.id);
        let current = match set.current {
            Some(log) => Some(Followed {
                // The tail left out a record still being written: start with it.
                pos: complete_end(&log.file, log.len).map_err(|e| with_path(path, e))?,
                file: log.file,
                id: log.id,
                unfinished: Vec::new(),
            }),
            None => None,
        };
        Ok(Follower {
            path: path.to_owned(),
            sink,
            current,
            last,
        })
    }

    /// Prints what was written since the last poll.
    fn poll(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let now = match fs::metadata(&self.path) {
            Ok(meta) => Some((file_id(&meta), meta.len())),
            // Between a rotation's rename and create, or removed: wait for it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(with_path(&self.path, e)),
        };
        if let Some(followed) = &mut self.current {
            if let Some((id, len)) = now {
                if id == followed.id && len < followed.pos {
                    followed.pos = 0;
                    followed.unfinished.clear();
                }
            }
            // If `path` is another file now, the rotation renamed this one after its last
            // write: reading it to its end loses nothing.
            followed.pos = read_lines(
                &followed.file,
                followed.pos,
                None,
                &mut followed.unfinished,
                &mut |line| self.sink.line(line, out),
            )
            .map_err(|e| with_path(&self.path, e))?;
        }
        let rotated = now.is_some_and(|(id, _)| self.current.as_ref().is_none_or(|f| f.id != id));
        if rotated {
            self.catch_up(out)
        } else {
            Ok(())
        }
    }

    /// After a rotation: prints the rotated files newer than the last one read, and follows
    /// the new current file from its start.
    fn catch_up(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let set = match LogSet::open(&self.path) {
            Ok(set) => set,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let following = self.current.as_ref().map(|f| f.id);
        if set
            .current
            .as_ref()
            .is_some_and(|log| Some(log.id) == following)
        {
            return Ok(());
        }
        // If the last file read is gone, the writer rotated more often than it keeps files
        // since the last poll: everything still there is newer.
        let newer = self
            .last
            .and_then(|last| set.rotated.iter().position(|log| log.id == last))
            .unwrap_or(set.rotated.len());
        for log in set.rotated[..newer].iter().rev() {
            read_lines(&log.file, 0, None, &mut Vec::new(), &mut |line| {
                self.sink.line(line, out)
            })
            .map_err(|e| with_path(&log.path, e))?;
            self.last = Some(log.id);
        }
        self.current = set.current.map(|log| {
            self.last = Some(log.id);
            Followed {
                file: log.file,
                id: log.id,
                pos: 0,
                unfinished: Vec::new(),
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    use super::super::{rotated_path, LogConfig, LogWriter, Stream};
    use super::*;

    /// An output shared with the test while `follow` runs in its thread.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }

        /// Waits until the output has `lines` lines.
        fn wait_for_lines(&self, lines: usize) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.text().lines().count() < lines {
                assert!(Instant::now() < deadline, "only got {:?}", self.text());
                thread::sleep(Duration::from_millis(2));
            }
        }
    }

    struct Running {
        out: Shared,
        stop: Arc<AtomicBool>,
        handle: JoinHandle<io::Result<usize>>,
    }

    fn spawn_follow(path: &Path, tail: Option<usize>) -> Running {
        let out = Shared::default();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (path, mut out, stop) = (path.to_owned(), out.clone(), stop.clone());
            thread::spawn(move || {
                follow(
                    &path,
                    tail,
                    PrintOptions::default(),
                    &mut out,
                    &|| stop.load(Ordering::SeqCst),
                    Duration::from_millis(2),
                )
            })
        };
        Running { out, stop, handle }
    }

    impl Running {
        /// Stops `follow` and returns its output and malformed count.
        fn stop(self) -> (String, usize) {
            self.stop.store(true, Ordering::SeqCst);
            let malformed = self.handle.join().unwrap().unwrap();
            (self.out.text(), malformed)
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn write_lines(w: &mut LogWriter, range: std::ops::Range<u32>) {
        for i in range {
            w.write(Stream::Stdout, format!("line {i:04}\n").as_bytes(), now())
                .unwrap();
        }
    }

    fn numbered(range: std::ops::Range<u32>) -> String {
        range.map(|i| format!("line {i:04}\n")).collect()
    }

    #[test]
    fn prints_the_tail_then_appended_records() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::default();
        let mut w = LogWriter::open(dir.path().join("c.log"), config).unwrap();
        write_lines(&mut w, 0..10);
        let running = spawn_follow(w.path(), Some(3));
        running.out.wait_for_lines(3);
        assert_eq!(running.out.text(), numbered(7..10));
        write_lines(&mut w, 10..12);
        running.out.wait_for_lines(5);
        // A line split across writes prints once it is whole.
        w.write(Stream::Stderr, b"slow ", now()).unwrap();
        w.write(Stream::Stderr, b"line\n", now()).unwrap();
        write_lines(&mut w, 12..13);
        running.out.wait_for_lines(7);
        let (text, malformed) = running.stop();
        assert_eq!(text, numbered(7..12) + "slow line\n" + &numbered(12..13));
        assert_eq!(malformed, 0);
    }

    #[test]
    fn follows_across_rotations_without_loss_or_repeats() {
        let dir = tempfile::tempdir().unwrap();
        // 4 records a file, and enough files that none is dropped.
        let config = LogConfig {
            max_size: 230,
            max_files: 1000,
        };
        let mut w = LogWriter::open(dir.path().join("c.log"), config).unwrap();
        write_lines(&mut w, 0..6);
        let running = spawn_follow(w.path(), None);
        running.out.wait_for_lines(6);
        // Some rotations one by one, then many between two polls.
        for i in 6..40 {
            write_lines(&mut w, i..i + 1);
            thread::sleep(Duration::from_millis(1));
        }
        let chunk: String = (40..400).map(|i| format!("line {i:04}\n")).collect();
        w.write(Stream::Stdout, chunk.as_bytes(), now()).unwrap();
        running.out.wait_for_lines(400);
        let (text, _) = running.stop();
        assert_eq!(text, numbered(0..400));
    }

    #[test]
    fn follows_when_rotation_drops_the_files_it_was_reading() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            max_size: 230,
            max_files: 2,
        };
        let mut w = LogWriter::open(dir.path().join("c.log"), config).unwrap();
        write_lines(&mut w, 0..2);
        let running = spawn_follow(w.path(), None);
        running.out.wait_for_lines(2);
        write_lines(&mut w, 2..6);
        running.out.wait_for_lines(6);
        let (text, _) = running.stop();
        assert_eq!(text, numbered(0..6));
    }

    #[test]
    fn rereads_a_truncated_file_and_stops_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
        write_lines(&mut w, 0..3);
        let running = spawn_follow(&path, Some(1));
        running.out.wait_for_lines(1);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        // Wait for the follower to see the truncation before writing again.
        thread::sleep(Duration::from_millis(50));
        let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
        write_lines(&mut w, 3..4);
        running.out.wait_for_lines(2);
        let (text, _) = running.stop();
        assert_eq!(text, numbered(2..4));
    }

    #[test]
    fn starts_after_a_record_being_written_and_counts_malformed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let stamp = "2023-11-14T22:13:20.000000000Z";
        fs::write(rotated_path(&path, 1), "garbage\n").unwrap();
        fs::write(&path, format!("{stamp} stdout F a\n{stamp} stdout F b")).unwrap();
        let running = spawn_follow(&path, Some(5));
        running.out.wait_for_lines(1);
        // The rest of the record being written when follow started.
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"c\n")
            .unwrap();
        running.out.wait_for_lines(2);
        let (text, malformed) = running.stop();
        assert_eq!(text, "a\nbc\n");
        assert_eq!(malformed, 1);
    }
}
