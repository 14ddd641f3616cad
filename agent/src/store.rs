//! The agent's local state in redb (`<state-dir>/agent.redb`): the pods it was told to run and
//! each container's restart count and back-off level, so a restarted agent (or node) carries
//! on where it was. Written only when something changed: an idle agent writes nothing.
//! The Secrets of the desired state are not kept here but in their own files
//! ([`crate::link::secret_dir`]).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use kelp_shared::api::core::Pod;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::pod::Restarts;

const PODS: TableDefinition<&str, &[u8]> = TableDefinition::new("pods");
/// The last desired state the controller sent, verified, with its Secrets replaced by
/// references ([`crate::link::local_copy::LocalCopy`]): a node restarted without network runs
/// from it.
const DESIRED: TableDefinition<&str, &[u8]> = TableDefinition::new("desired");
const DESIRED_KEY: &str = "local-copy";
/// Where agents before the local copy kept the signed envelope, Secrets and all: read once,
/// migrated, removed.
const LEGACY_ENVELOPE_KEY: &str = "envelope";
/// redb's page cache. Its default (1 GiB) is a ceiling the agent's few records never reach,
/// but a node with many pods and a large desired state would keep every page it ever read:
/// the agent lives in single-digit megabytes, so the cache is bounded well below that.
const CACHE_BYTES: usize = 1024 * 1024;

/// What is kept of one pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodRecord {
    pub pod: Pod,
    #[serde(default)]
    pub restarts: BTreeMap<String, Restarts>,
}

pub struct LocalState {
    db: Database,
}

impl LocalState {
    pub fn open(path: &Path) -> Result<Self> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let tx = db.begin_write()?;
        tx.open_table(PODS)?;
        tx.open_table(DESIRED)?;
        tx.commit()?;
        Ok(Self { db })
    }

    pub fn pods(&self) -> Result<BTreeMap<String, PodRecord>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(PODS)?;
        let mut out = BTreeMap::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let record: PodRecord = serde_json::from_slice(v.value())
                .with_context(|| format!("agent state of pod {}", k.value()))?;
            out.insert(k.value().to_string(), record);
        }
        Ok(out)
    }

    pub fn put(&self, uid: &str, record: &PodRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record)?;
        let tx = self.db.begin_write()?;
        tx.open_table(PODS)?.insert(uid, bytes.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    /// The persisted local copy of the desired state, if any.
    pub fn desired(&self) -> Result<Option<Vec<u8>>> {
        self.get_desired(DESIRED_KEY)
    }

    /// The desired-state envelope an older agent persisted, if any.
    pub fn legacy_envelope(&self) -> Result<Option<Vec<u8>>> {
        self.get_desired(LEGACY_ENVELOPE_KEY)
    }

    fn get_desired(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DESIRED)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Persists the local copy of the desired state (durably, before the agent acts on it);
    /// an older agent's envelope goes in the same commit.
    pub fn put_desired(&self, copy: &[u8]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(DESIRED)?;
            table.insert(DESIRED_KEY, copy)?;
            table.remove(LEGACY_ENVELOPE_KEY)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Test helper and migration source: stores an envelope where older agents kept it.
    #[doc(hidden)]
    pub fn put_legacy_envelope(&self, envelope: &[u8]) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(DESIRED)?
            .insert(LEGACY_ENVELOPE_KEY, envelope)?;
        tx.commit()?;
        Ok(())
    }

    /// Compacts the file (after a migration, so that the pages the envelope used are
    /// released and the file shrinks; redb does not overwrite freed pages).
    pub fn compact(&mut self) -> Result<()> {
        while self.db.compact().context("compacting agent.redb")? {}
        Ok(())
    }

    pub fn remove(&self, uid: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(PODS)?.remove(uid)?;
        tx.commit()?;
        Ok(())
    }
}
