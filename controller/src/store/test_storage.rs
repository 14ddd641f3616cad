//! A redb storage backend for tests that can lose power.
//!
//! It keeps the image a disk would hold after a power cut: what was there at the last
//! `sync_data`, plus the writes since then, which a cut may keep, drop or tear. redb assumes
//! only that single bytes are written atomically, that `fsync` makes writes durable, and that
//! a write changes no bytes outside its range (docs/design.md, "Assumptions about underlying
//! media"); the cut model stays inside those assumptions.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;

/// A write or resize not yet made durable by a sync.
#[derive(Clone, Debug)]
enum Pending {
    Write { offset: usize, data: Vec<u8> },
    SetLen(usize),
}

#[derive(Debug, Default)]
struct DiskState {
    /// What reads see (the page cache).
    current: Vec<u8>,
    /// What survives a power cut for sure.
    durable: Vec<u8>,
    /// Since the last sync, in order.
    pending: Vec<Pending>,
    /// Calls to `write`, `set_len` and `sync_data` since the cut was armed.
    calls: u64,
    /// Cut the power at this call (it fails, and so does everything after it).
    cut_at: Option<u64>,
    powered_off: bool,
    syncs: u64,
}

/// A disk shared between the test and the redb database on it.
#[derive(Clone, Debug, Default)]
pub(super) struct Disk {
    state: Arc<Mutex<DiskState>>,
}

/// The [`redb::StorageBackend`] on a [`Disk`].
#[derive(Debug)]
pub(super) struct DiskStorage(pub(super) Disk);

fn power_off() -> io::Error {
    io::Error::other("power cut")
}

impl Disk {
    /// An empty disk.
    pub(super) fn new() -> Disk {
        Disk::default()
    }

    /// A disk holding `image`, all of it durable.
    pub(super) fn from_image(image: Vec<u8>) -> Disk {
        let disk = Disk::new();
        {
            let mut state = disk.lock();
            state.current = image.clone();
            state.durable = image;
        }
        disk
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A storage backend for redb on this disk.
    pub(super) fn storage(&self) -> DiskStorage {
        DiskStorage(self.clone())
    }

    /// How many times `sync_data` succeeded.
    pub(super) fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// How many write/resize/sync calls since [`Disk::arm_cut`] (or the start).
    pub(super) fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Cuts the power at the `nth` write/resize/sync call from now (1 = the next one).
    pub(super) fn arm_cut(&self, nth: u64) {
        let mut state = self.lock();
        state.calls = 0;
        state.cut_at = Some(nth);
    }

    /// Cuts the power now.
    pub(super) fn cut_now(&self) {
        self.lock().powered_off = true;
    }

    /// Whether the power is off.
    pub(super) fn is_off(&self) -> bool {
        self.lock().powered_off
    }

    /// What the disk holds when the power comes back: the durable image, then each pending
    /// write kept whole, dropped, or torn (a random subset of its 512-byte sectors); each
    /// pending resize kept or dropped. With `tear` false, every pending change is dropped.
    pub(super) fn image_after_cut(&self, rng: &mut impl Rng, tear: bool) -> Vec<u8> {
        let state = self.lock();
        let mut image = state.durable.clone();
        if !tear {
            return image;
        }
        for pending in &state.pending {
            match pending {
                Pending::SetLen(len) => {
                    if rng.random_bool(0.5) {
                        image.resize(*len, 0);
                    }
                }
                Pending::Write { offset, data } => match rng.random_range(0..3) {
                    0 => {}
                    1 => write_at(&mut image, *offset, data),
                    _ => {
                        for (i, sector) in data.chunks(512).enumerate() {
                            if rng.random_bool(0.5) {
                                write_at(&mut image, offset + i * 512, sector);
                            }
                        }
                    }
                },
            }
        }
        image
    }
}

fn write_at(image: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset..end].copy_from_slice(data);
}

impl DiskState {
    /// Counts a mutating call; fails it if the power is (or now goes) off.
    fn tick(&mut self) -> io::Result<()> {
        if self.powered_off {
            return Err(power_off());
        }
        self.calls += 1;
        if self.cut_at == Some(self.calls) {
            self.powered_off = true;
            return Err(power_off());
        }
        Ok(())
    }
}

fn to_usize(value: u64) -> io::Result<usize> {
    usize::try_from(value).map_err(|_| io::Error::other("offset out of range"))
}

impl redb::StorageBackend for DiskStorage {
    fn len(&self) -> io::Result<u64> {
        let state = self.0.lock();
        if state.powered_off {
            return Err(power_off());
        }
        Ok(state.current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = self.0.lock();
        if state.powered_off {
            return Err(power_off());
        }
        let offset = to_usize(offset)?;
        let source = state
            .current
            .get(offset..offset + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(source);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.0.lock();
        state.tick()?;
        let len = to_usize(len)?;
        state.current.resize(len, 0);
        state.pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.0.lock();
        state.tick()?;
        let pending = std::mem::take(&mut state.pending);
        for change in pending {
            match change {
                Pending::SetLen(len) => state.durable.resize(len, 0),
                Pending::Write { offset, data } => write_at(&mut state.durable, offset, &data),
            }
        }
        state.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.0.lock();
        state.tick()?;
        let offset = to_usize(offset)?;
        write_at(&mut state.current, offset, data);
        state.pending.push(Pending::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }
}
