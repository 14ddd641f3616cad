//! The agent's local state in redb (`<state-dir>/agent.redb`): the pods it was told to run and
//! each container's restart count and back-off level, so a restarted agent (or node) carries
//! on where it was. Written only when something changed: an idle agent writes nothing.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use kelp_shared::api::core::Pod;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::pod::Restarts;

const PODS: TableDefinition<&str, &[u8]> = TableDefinition::new("pods");
/// The last desired state the controller sent, as the signed envelope it came in: a node
/// restarted without network runs from it.
const DESIRED: TableDefinition<&str, &[u8]> = TableDefinition::new("desired");
const DESIRED_KEY: &str = "envelope";

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
        let db = Database::create(path).with_context(|| format!("opening {}", path.display()))?;
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

    /// The persisted desired-state envelope, if any.
    pub fn desired(&self) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DESIRED)?;
        Ok(table.get(DESIRED_KEY)?.map(|v| v.value().to_vec()))
    }

    /// Persists a desired-state envelope (durably, before the agent acts on it).
    pub fn put_desired(&self, envelope: &[u8]) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(DESIRED)?.insert(DESIRED_KEY, envelope)?;
        tx.commit()?;
        Ok(())
    }

    pub fn remove(&self, uid: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(PODS)?.remove(uid)?;
        tx.commit()?;
        Ok(())
    }
}
