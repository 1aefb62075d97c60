//! Durable storage of the leader's metadata: one JSON snapshot replaced atomically.
//!
//! A snapshot is written to a temporary file, fsynced, renamed over the old one and
//! the directory fsynced, so a crash leaves either the old or the new snapshot, never
//! a mix. Writers are serialised and each write captures the newest state, so changes
//! made while a write is in progress share the next fsync (group commit): a burst of
//! position commits costs one or two fsyncs, not one each.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;

use super::metadata::Metadata;

const FILE_NAME: &str = "leader-metadata.json";
const TMP_NAME: &str = "leader-metadata.json.tmp";

/// The leader's metadata file in its data dir.
#[derive(Debug, Clone)]
pub struct MetadataStore {
    dir: PathBuf,
}

impl MetadataStore {
    /// Uses `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<MetadataStore, Error> {
        fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        Ok(MetadataStore {
            dir: dir.to_path_buf(),
        })
    }

    /// Reads the last snapshot, or empty metadata when there is none.
    pub fn load(&self) -> Result<Metadata, Error> {
        let path = self.dir.join(FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Storage {
                reason: format!("{} is not valid leader metadata: {e}", path.display()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Metadata::default()),
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    /// Replaces the snapshot with `bytes` (serialised [`Metadata`]). The new snapshot
    /// survives a crash of this process once this returns (it is in the kernel);
    /// with `fsync` it also survives a power loss. Blocking: call it from a blocking
    /// task.
    pub fn write(&self, bytes: &[u8], fsync: bool) -> Result<(), Error> {
        let tmp = self.dir.join(TMP_NAME);
        let path = self.dir.join(FILE_NAME);
        let mut file = fs::File::create(&tmp).map_err(|e| io_error("create", &tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| io_error("write", &tmp, e))?;
        if fsync {
            file.sync_all().map_err(|e| io_error("fsync", &tmp, e))?;
        }
        fs::rename(&tmp, &path).map_err(|e| io_error("rename", &path, e))?;
        if fsync {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// fsyncs the current snapshot and its directory entry (the `every-ms` timer).
    pub fn sync(&self) -> Result<(), Error> {
        let path = self.dir.join(FILE_NAME);
        match fs::File::open(&path) {
            Ok(file) => file.sync_all().map_err(|e| io_error("fsync", &path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("open", &path, e)),
        }
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), Error> {
        let dir = fs::File::open(&self.dir).map_err(|e| io_error("open", &self.dir, e))?;
        dir.sync_all().map_err(|e| io_error("fsync", &self.dir, e))
    }
}

fn io_error(op: &str, path: &Path, err: std::io::Error) -> Error {
    Error::Storage {
        reason: format!("cannot {op} {}: {err}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{ServerId, Topic};

    #[test]
    fn snapshot_round_trips_and_replaces_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(&dir.path().join("nested")).unwrap();
        assert_eq!(store.load().unwrap(), Metadata::default());
        let mut meta = Metadata::default();
        let b = meta.register_broker(None, ServerId::from("127.0.0.1:1"));
        meta.create_topic(&Topic::from("t"), 2, &[b]).unwrap();
        store
            .write(&serde_json::to_vec(&meta).unwrap(), true)
            .unwrap();
        assert_eq!(store.load().unwrap(), meta);
        meta.remove_topic(&Topic::from("t")).unwrap();
        store
            .write(&serde_json::to_vec(&meta).unwrap(), false)
            .unwrap();
        assert_eq!(store.load().unwrap(), meta);
        store.sync().unwrap();
    }

    #[test]
    fn a_corrupt_snapshot_is_a_storage_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        assert!(matches!(store.load(), Err(Error::Storage { .. })));
    }
}
