//! The reading side: the records of a log and its rotations, oldest first.

use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{rotated_path, with_path, LogRecord, Window};

/// Bytes read at a time.
const BLOCK: usize = 64 * 1024;

/// Identifies a file across renames: (device, inode).
pub(super) type FileId = (u64, u64);

pub(super) fn file_id(meta: &Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

/// Opening a log's files again when a rotation moved them meanwhile: at most this often.
const OPEN_ATTEMPTS: usize = 100;

/// An open log file and its length when opened.
#[derive(Debug)]
pub(super) struct LogFile {
    pub file: File,
    /// The name it was opened by.
    pub path: PathBuf,
    pub id: FileId,
    pub len: u64,
}

/// The open files of a log: the current one and its rotations.
#[derive(Debug)]
pub(super) struct LogSet {
    /// `NAME.log`, unless it was missing (between a rotation's rename and create).
    pub current: Option<LogFile>,
    /// `NAME.log.1`, `NAME.log.2`, …: newest first.
    pub rotated: Vec<LogFile>,
}

impl LogSet {
    /// Opens the log at `path`: the current file, then each rotation.
    ///
    /// A rotation while this runs moves files from name to name under it, and could leave
    /// the set out of order; so once all are open, each name is checked to still be the
    /// file opened by it (by inode), and if one is not, everything is opened again. A
    /// rotation that starts after the check does not matter: the files opened keep their
    /// data and order whatever their names. After [`OPEN_ATTEMPTS`] the last try is used.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut attempts = 1;
        loop {
            let set = Self::open_once(path)?;
            if attempts >= OPEN_ATTEMPTS || set.is_current(path)? {
                return Ok(set);
            }
            attempts += 1;
        }
    }

    fn open_once(path: &Path) -> io::Result<Self> {
        let current = open_if_exists(path)?;
        let numbers = rotation_numbers(path)?;
        if current.is_none() && numbers.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such log", path.display()),
            ));
        }
        let mut rotated: Vec<LogFile> = Vec::new();
        for n in numbers {
            if let Some(log) = open_if_exists(&rotated_path(path, n))? {
                // Met twice if moved while opening; the check after will fail.
                let seen = |other: &LogFile| other.id == log.id;
                if !current.iter().any(seen) && !rotated.iter().any(seen) {
                    rotated.push(log);
                }
            }
        }
        Ok(LogSet { current, rotated })
    }

    /// Whether every file is still at the name it was opened by, and `path` is still the
    /// current file (or still missing).
    fn is_current(&self, path: &Path) -> io::Result<bool> {
        for log in &self.rotated {
            if id_at(&log.path)? != Some(log.id) {
                return Ok(false);
            }
        }
        Ok(id_at(path)? == self.current.as_ref().map(|log| log.id))
    }

    /// The files from the newest (the current one) to the oldest.
    pub fn newest_first(&self) -> impl DoubleEndedIterator<Item = &LogFile> {
        self.current.iter().chain(&self.rotated)
    }
}

/// The identity of the file at `path`, if there is one.
pub(super) fn id_at(path: &Path) -> io::Result<Option<FileId>> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(file_id(&meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(with_path(path, e)),
    }
}

/// Records read from a log, and how many malformed lines were skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTail {
    /// The records, oldest first.
    pub records: Vec<LogRecord>,
    /// Lines that were not records (torn by a crash, or not written by kelp), skipped.
    pub malformed: usize,
}

/// Reads the last `tail` records of the log at `path` and its rotations, oldest first, or
/// all of them when `tail` is `None`. Malformed lines are skipped, and do not count.
///
/// Like the kubelet's `--tail`, this counts records (lines of the files), so a long line cut
/// into partial records counts as several. A record still being written is left out.
/// Reading the tail reads the files backwards, so it costs what the tail holds, not what
/// the files hold.
pub fn read_tail(path: &Path, tail: Option<usize>) -> io::Result<Vec<LogRecord>> {
    read_tail_counted(path, tail).map(|tail| tail.records)
}

/// [`read_tail`], also counting the malformed lines it skipped.
pub fn read_tail_counted(path: &Path, tail: Option<usize>) -> io::Result<LogTail> {
    let set = LogSet::open(path)?;
    let mut result = LogTail::default();
    let records = &mut result.records;
    visit_tail(&set, tail, &mut result.malformed, &mut |record| {
        records.push(record);
        Ok(())
    })?;
    Ok(result)
}

/// Calls `on_record` with the last `tail` records of `set` (all of them for `None`), oldest
/// first, counting the malformed lines skipped in `malformed`. Without a tail the records
/// are streamed; with one, up to `tail` records are held.
pub(super) fn visit_tail(
    set: &LogSet,
    tail: Option<usize>,
    malformed: &mut usize,
    on_record: &mut dyn FnMut(LogRecord) -> io::Result<()>,
) -> io::Result<()> {
    visit_window(set, Window::ALL, tail, malformed, on_record)
}

/// [`visit_tail`] of the records inside `window` only: the tail counts records of the
/// window. Records are in time order, so reading backwards stops at the first record
/// older than the window.
pub(super) fn visit_window(
    set: &LogSet,
    window: Window,
    tail: Option<usize>,
    malformed: &mut usize,
    on_record: &mut dyn FnMut(LogRecord) -> io::Result<()>,
) -> io::Result<()> {
    match tail {
        Some(0) => {}
        Some(wanted) => {
            let mut newest_first = Vec::new();
            let mut before_window = false;
            for log in set.newest_first() {
                lines_rev(&log.file, log.len, BLOCK, &mut |line| {
                    match LogRecord::parse(line) {
                        Ok(record) if window.is_after(record.time) => {}
                        Ok(record) if window.is_before(record.time) => {
                            before_window = true;
                            return Ok(false);
                        }
                        Ok(record) => newest_first.push(record),
                        Err(_) => *malformed += 1,
                    }
                    Ok(newest_first.len() < wanted)
                })
                .map_err(|e| with_path(&log.path, e))?;
                if before_window || newest_first.len() >= wanted {
                    break;
                }
            }
            for record in newest_first.into_iter().rev() {
                on_record(record)?;
            }
        }
        None => {
            for log in set.newest_first().rev() {
                let mut unfinished = Vec::new();
                read_lines(&log.file, 0, Some(log.len), &mut unfinished, &mut |line| {
                    match LogRecord::parse(line) {
                        Ok(record) if window.contains(record.time) => on_record(record),
                        Ok(_) => Ok(()),
                        Err(_) => {
                            *malformed += 1;
                            Ok(())
                        }
                    }
                })
                .map_err(|e| with_path(&log.path, e))?;
            }
        }
    }
    Ok(())
}

/// Reads `file` from `pos` up to `end` (to its end of file for `None`), calling `on_line`
/// with each line completed, without its newline. A line's beginning left over from an
/// earlier call is in `unfinished`, and this call's leftover is left there. Returns the
/// position read up to.
pub(super) fn read_lines(
    file: &File,
    mut pos: u64,
    end: Option<u64>,
    unfinished: &mut Vec<u8>,
    on_line: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut buf = vec![0; BLOCK];
    loop {
        let want = match end {
            Some(end) if pos >= end => break,
            Some(end) => usize::try_from(end - pos).map_or(BLOCK, |left| left.min(BLOCK)),
            None => BLOCK,
        };
        let read = match file.read_at(&mut buf[..want], pos) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        pos += read as u64;
        let mut chunk = &buf[..read];
        while let Some(newline) = chunk.iter().position(|&b| b == b'\n') {
            if unfinished.is_empty() {
                on_line(&chunk[..newline])?;
            } else {
                unfinished.extend_from_slice(&chunk[..newline]);
                on_line(unfinished)?;
                unfinished.clear();
            }
            chunk = &chunk[newline + 1..];
        }
        unfinished.extend_from_slice(chunk);
    }
    Ok(pos)
}

/// Calls `on_line` with each line of `file` before `end` that ends with a newline, from
/// the last to the first and without the newline, reading `block` bytes at a time, until
/// `on_line` returns `false`.
fn lines_rev(
    file: &File,
    end: u64,
    block: usize,
    on_line: &mut dyn FnMut(&[u8]) -> io::Result<bool>,
) -> io::Result<()> {
    let mut pos = end;
    // The bytes from `pos` to the end of the line being put together.
    let mut carry = Vec::new();
    // Bytes after the last newline are a record still being written: skip them.
    let mut seen_newline = false;
    while pos > 0 {
        let start = pos.saturating_sub(block as u64);
        let mut buf = vec![0; (pos - start) as usize];
        file.read_exact_at(&mut buf, start)?;
        pos = start;
        buf.extend_from_slice(&carry);
        let mut line_end = buf.len();
        while let Some(newline) = buf[..line_end].iter().rposition(|&b| b == b'\n') {
            if seen_newline && !on_line(&buf[newline + 1..line_end])? {
                return Ok(());
            }
            seen_newline = true;
            line_end = newline;
        }
        buf.truncate(line_end);
        carry = buf;
    }
    if seen_newline {
        on_line(&carry)?;
    }
    Ok(())
}

/// The position just after the last newline of `file` before `len`: where the complete
/// records end.
pub(super) fn complete_end(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0; BLOCK];
    let mut pos = len;
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK as u64);
        let buf = &mut buf[..(pos - start) as usize];
        file.read_exact_at(buf, start)?;
        if let Some(newline) = buf.iter().rposition(|&b| b == b'\n') {
            return Ok(start + newline as u64 + 1);
        }
        pos = start;
    }
    Ok(0)
}

fn open_if_exists(path: &Path) -> io::Result<Option<LogFile>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(with_path(path, e)),
    };
    let meta = file.metadata().map_err(|e| with_path(path, e))?;
    Ok(Some(LogFile {
        id: file_id(&meta),
        len: meta.len(),
        file,
        path: path.to_owned(),
    }))
}

/// The numbers `n` of the existing `NAME.log.n` files, ascending (newest first).
fn rotation_numbers(path: &Path) -> io::Result<Vec<u32>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(with_path(dir, e)),
    };
    let mut numbers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| with_path(dir, e))?;
        let entry_name = entry.file_name();
        let number = entry_name
            .as_bytes()
            .strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"."))
            .filter(|digits| !digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
            .and_then(|digits| std::str::from_utf8(digits).ok()?.parse::<u32>().ok())
            .filter(|&n| n > 0);
        numbers.extend(number);
    }
    numbers.sort_unstable();
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::super::{LogConfig, LogWriter, Stream};
    use super::*;

    fn at(i: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i)
    }

    /// Writes `line 0000` … to a log with the given limits.
    fn write_numbered(dir: &Path, config: LogConfig, range: std::ops::Range<u64>) -> LogWriter {
        let mut w = LogWriter::open(dir.join("c.log"), config).unwrap();
        for i in range {
            w.write(Stream::Stdout, format!("line {i:04}\n").as_bytes(), at(i))
                .unwrap();
        }
        w
    }

    fn contents(records: &[LogRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8(r.content.clone()).unwrap())
            .collect()
    }

    fn numbered(range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|i| format!("line {i:04}")).collect()
    }

    const SMALL: LogConfig = LogConfig {
        max_size: 230,
        max_files: 4,
    };

    #[test]
    fn reads_everything_oldest_first_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let w = write_numbered(dir.path(), SMALL, 0..30);
        // 4 records a file: 28..30 in the current one, 16..28 in three rotated files.
        let all = read_tail(w.path(), None).unwrap();
        assert_eq!(contents(&all), numbered(16..30));
        assert_eq!(all[0].time, at(16));
        assert_eq!(all[0].stream, Stream::Stdout);
        assert!(!all[0].partial);
    }

    /// The contents of the records inside `window`, last `tail` of them.
    fn in_window(path: &Path, window: Window, tail: Option<usize>) -> Vec<String> {
        let set = LogSet::open(path).unwrap();
        let mut records = Vec::new();
        visit_window(&set, window, tail, &mut 0, &mut |r| {
            records.push(r);
            Ok(())
        })
        .unwrap();
        contents(&records)
    }

    #[test]
    fn a_window_keeps_one_run_and_its_tail_counts_only_that_run() {
        let dir = tempfile::tempdir().unwrap();
        let big = LogConfig {
            max_size: 1 << 20,
            max_files: 2,
        };
        // Three runs appended to one log: 0..10, 10..20, 20..30.
        let w = write_numbered(dir.path(), big, 0..30);
        let run = |a: u64, b: Option<u64>| Window {
            since: Some(at(a)),
            until: b.map(at),
        };
        assert_eq!(in_window(w.path(), run(20, None), None), numbered(20..30));
        assert_eq!(
            in_window(w.path(), run(10, Some(20)), None),
            numbered(10..20)
        );
        // The tail of the middle run is its own last lines, not the log's.
        assert_eq!(
            in_window(w.path(), run(10, Some(20)), Some(3)),
            numbered(17..20)
        );
        // A tail longer than the run stops at the run's start.
        assert_eq!(
            in_window(w.path(), run(25, None), Some(100)),
            numbered(25..30)
        );
        assert_eq!(
            in_window(w.path(), run(40, None), Some(5)),
            Vec::<String>::new()
        );
        assert_eq!(in_window(w.path(), Window::ALL, Some(2)), numbered(28..30));
    }

    #[test]
    fn tail_spans_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let w = write_numbered(dir.path(), SMALL, 0..30);
        assert_eq!(
            contents(&read_tail(w.path(), Some(1)).unwrap()),
            numbered(29..30)
        );
        assert_eq!(
            contents(&read_tail(w.path(), Some(2)).unwrap()),
            numbered(28..30)
        );
        assert_eq!(
            contents(&read_tail(w.path(), Some(7)).unwrap()),
            numbered(23..30)
        );
        assert_eq!(
            contents(&read_tail(w.path(), Some(14)).unwrap()),
            numbered(16..30)
        );
        assert_eq!(
            contents(&read_tail(w.path(), Some(100)).unwrap()),
            numbered(16..30)
        );
    }

    #[test]
    fn tail_zero_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let w = write_numbered(dir.path(), SMALL, 0..30);
        assert_eq!(read_tail(w.path(), Some(0)).unwrap(), []);
    }

    #[test]
    fn tail_of_an_empty_log_is_empty_and_of_no_log_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let w = write_numbered(dir.path(), SMALL, 0..0);
        assert_eq!(read_tail(w.path(), None).unwrap(), []);
        assert_eq!(read_tail(w.path(), Some(3)).unwrap(), []);
        let err = read_tail(&dir.path().join("other.log"), Some(3)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("other.log"), "{err}");
    }

    #[test]
    fn tail_reads_backwards_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            max_size: u64::MAX,
            max_files: 1,
        };
        // 250 KB: four blocks.
        let w = write_numbered(dir.path(), config, 0..5000);
        assert_eq!(
            contents(&read_tail(w.path(), Some(4321)).unwrap()),
            numbered(679..5000)
        );
        assert_eq!(
            contents(&read_tail(w.path(), None).unwrap()),
            numbered(0..5000)
        );
    }

    #[test]
    fn reverse_lines_at_every_block_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "\nab\n\ncde\nf\nunfinished").unwrap();
        let file = File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        for block in 1..=len as usize + 1 {
            let mut lines = Vec::new();
            lines_rev(&file, len, block, &mut |line| {
                lines.push(String::from_utf8(line.to_vec()).unwrap());
                Ok(true)
            })
            .unwrap();
            assert_eq!(lines, ["f", "cde", "", "ab", ""], "block {block}");
        }
        let mut first = Vec::new();
        lines_rev(&file, len, 2, &mut |line| {
            first.push(line.to_vec());
            Ok(false)
        })
        .unwrap();
        assert_eq!(first, [b"f"]);
        assert_eq!(complete_end(&file, len).unwrap(), 11);
    }

    #[test]
    fn malformed_lines_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let stamp = "2016-10-06T00:17:09.669794202Z";
        fs::write(
            rotated_path(&path, 1),
            format!("{stamp} stdout F one\nnot a record\n{stamp} stdout F two\n"),
        )
        .unwrap();
        fs::write(
            &path,
            format!("{stamp} stdin F bad\n{stamp} stderr F three\n\0\0\0\0\n{stamp} stdout F fo"),
        )
        .unwrap();
        let all = read_tail_counted(&path, None).unwrap();
        assert_eq!(contents(&all.records), ["one", "two", "three"]);
        assert_eq!(all.malformed, 3);
        let tail = read_tail_counted(&path, Some(2)).unwrap();
        assert_eq!(contents(&tail.records), ["two", "three"]);
        assert_eq!(tail.malformed, 2);
    }

    #[test]
    fn rotation_numbers_ignore_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        for name in [
            "c.log.3",
            "c.log.1",
            "c.log.10",
            "c.log.0",
            "c.log.x",
            "c.log.2.tmp",
            "d.log.4",
            "c.log",
        ] {
            fs::write(dir.path().join(name), "").unwrap();
        }
        assert_eq!(rotation_numbers(&path).unwrap(), [1, 3, 10]);
        let set = LogSet::open(&path).unwrap();
        assert!(set.current.is_some());
        assert_eq!(set.rotated.len(), 3);
    }
}
