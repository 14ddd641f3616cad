//! The embedded default backend: one redb file.
//!
//! Two tables: `objects` maps `(kind, namespace, name)` to `(revision, JSON bytes)`, and `meta`
//! holds the layout version, the session marker (in use / closed cleanly) and a revision
//! record. The store's revision is the larger of that
//! record and the newest object's revision; a commit writes the record only when its last
//! change is a deletion (nothing else then carries the revision). Each table a commit touches
//! costs a B-tree page on disk, so leaving `meta` alone saves about 4 KiB of the ~32 KiB one
//! small durable commit writes.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::backend::{Backend, Change, Loaded};
use super::{Key, Revision, StoreError};

const OBJECTS: TableDefinition<(&str, &str, &str), (u64, &[u8])> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
/// 1 from `begin` to `close`: still 1 at `load` means the last session did not close.
const META_IN_USE: &str = "in_use";
const META_LAYOUT: &str = "layout";
const LAYOUT_VERSION: u64 = 1;

/// The redb page cache. The store reads the file once at open and keeps its own copy in
/// memory, so the cache only has to hold the B-tree paths a write batch touches.
const DEFAULT_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// [`Backend`] on a redb database.
pub struct RedbBackend {
    db: redb::Database,
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend").finish_non_exhaustive()
    }
}

fn backend_error(context: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{context}: {err}"))
}

impl RedbBackend {
    /// Opens (or creates) the redb file at `path`.
    pub fn open(path: &Path) -> Result<RedbBackend, StoreError> {
        let db = builder()
            .create(path)
            .map_err(|e| backend_error(&format!("open {}", path.display()), e))?;
        RedbBackend::init(db)
    }

    /// Opens (or creates) a database on any redb storage backend (in memory, a test double).
    pub fn with_storage(storage: impl redb::StorageBackend) -> Result<RedbBackend, StoreError> {
        let db = builder()
            .create_with_backend(storage)
            .map_err(|e| backend_error("open", e))?;
        RedbBackend::init(db)
    }

    /// Creates the tables of a new database and checks the layout version of an old one.
    fn init(db: redb::Database) -> Result<RedbBackend, StoreError> {
        let txn = db.begin_write().map_err(|e| backend_error("init", e))?;
        {
            txn.open_table(OBJECTS)
                .map_err(|e| backend_error("init objects table", e))?;
            let mut meta = txn
                .open_table(META)
                .map_err(|e| backend_error("init meta table", e))?;
            let layout = meta
                .get(META_LAYOUT)
                .map_err(|e| backend_error("read layout", e))?
                .map(|v| v.value());
            match layout {
                None => {
                    meta.insert(META_LAYOUT, LAYOUT_VERSION)
                        .map_err(|e| backend_error("write layout", e))?;
                }
                Some(LAYOUT_VERSION) => {}
                Some(other) => {
                    return Err(StoreError::Backend(format!(
                        "store layout version {other} is not supported (this kelp reads {LAYOUT_VERSION})"
                    )));
                }
            }
        }
        txn.commit().map_err(|e| backend_error("init commit", e))?;
        Ok(RedbBackend { db })
    }
}

impl RedbBackend {
    /// A durable commit of the revision record and the session marker.
    fn write_meta(&mut self, revision: Revision, in_use: u64) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| backend_error("begin", e))?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| backend_error("open meta table", e))?;
            meta.insert(META_REVISION, revision)
                .map_err(|e| backend_error("write revision", e))?;
            meta.insert(META_IN_USE, in_use)
                .map_err(|e| backend_error("write session marker", e))?;
        }
        txn.commit().map_err(|e| backend_error("commit", e))
    }
}

fn builder() -> redb::Builder {
    let mut builder = redb::Builder::new();
    builder.set_cache_size(DEFAULT_CACHE_BYTES);
    builder
}

impl Backend for RedbBackend {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        let txn = self.db.begin_read().map_err(|e| backend_error("load", e))?;
        let meta = txn
            .open_table(META)
            .map_err(|e| backend_error("load meta table", e))?;
        let mut revision = meta
            .get(META_REVISION)
            .map_err(|e| backend_error("load revision", e))?
            .map_or(0, |v| v.value());
        let table = txn
            .open_table(OBJECTS)
            .map_err(|e| backend_error("load objects table", e))?;
        let mut objects = Vec::new();
        for row in table.iter().map_err(|e| backend_error("load objects", e))? {
            let (k, v) = row.map_err(|e| backend_error("load object", e))?;
            let (kind, namespace, name) = k.value();
            let (object_revision, json) = v.value();
            revision = revision.max(object_revision);
            objects.push((
                Key::new(kind, namespace, name),
                object_revision,
                json.to_vec(),
            ));
        }
        let clean = meta
            .get(META_IN_USE)
            .map_err(|e| backend_error("load session marker", e))?
            .is_none_or(|v| v.value() == 0);
        Ok(Loaded {
            revision,
            objects,
            clean,
        })
    }

    fn begin(&mut self, revision: Revision) -> Result<(), StoreError> {
        self.write_meta(revision, 1)
    }

    fn close(&mut self, revision: Revision) -> Result<(), StoreError> {
        self.write_meta(revision, 0)
    }

    fn commit(
        &mut self,
        changes: &[Change],
        revision: Revision,
        durable: bool,
    ) -> Result<(), StoreError> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| backend_error("begin", e))?;
        txn.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })
        .map_err(|e| backend_error("set durability", e))?;
        {
            let mut objects = txn
                .open_table(OBJECTS)
                .map_err(|e| backend_error("open objects table", e))?;
            for change in changes {
                match change {
                    Change::Put {
                        key,
                        revision,
                        json,
                    } => {
                        objects
                            .insert(
                                (key.kind.as_str(), key.namespace.as_str(), key.name.as_str()),
                                (*revision, json.as_slice()),
                            )
                            .map_err(|e| backend_error(&format!("write {key}"), e))?;
                    }
                    Change::Delete { key } => {
                        objects
                            .remove((key.kind.as_str(), key.namespace.as_str(), key.name.as_str()))
                            .map_err(|e| backend_error(&format!("delete {key}"), e))?;
                    }
                }
            }
            // The revision is the newest object's unless the batch ends with a deletion:
            // writing it only then saves a page per commit (see the module doc).
            if matches!(changes.last(), Some(Change::Delete { .. })) {
                let mut meta = txn
                    .open_table(META)
                    .map_err(|e| backend_error("open meta table", e))?;
                meta.insert(META_REVISION, revision)
                    .map_err(|e| backend_error("write revision", e))?;
            }
        }
        txn.commit().map_err(|e| backend_error("commit", e))
    }
}
