//! Durable storage of the leader's metadata: a JSON snapshot replaced atomically,
//! plus a journal of group position moves.
//!
//! A snapshot is written to a temporary file and renamed over the old one, so a
//! crash leaves either the old or the new snapshot, never a mix. Position moves are
//! by far the most frequent change (one per poll that returns records), so instead of
//! a whole snapshot each appends one line to `positions.journal`. Loading replays
//! the journal over the snapshot; positions only move forward within one incarnation
//! of a topic, so a move is applied as "at least this offset", which makes replaying
//! an entry the snapshot already holds harmless. Writing a snapshot clears the
//! journal while holding the journal's lock, so no entry is cleared before a
//! snapshot holding its position exists. Snapshots follow every other change, and
//! the leader writes one as well when the journal passes
//! `LeaderConfig::positions_journal_max_bytes`, so a group that commits for hours
//! keeps the journal (and a restart's replay) small.
//!
//! Everything written is in the kernel before the caller answers its request, so it
//! survives a crash of the leader process; `fsync` decides about power loss.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::names::{ConsumerGroupId, Topic};

use super::metadata::Metadata;

const FILE_NAME: &str = "leader-metadata.json";
const TMP_NAME: &str = "leader-metadata.json.tmp";
pub(crate) const JOURNAL_NAME: &str = "positions.journal";

/// One position move, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionRecord {
    /// The group.
    pub group: ConsumerGroupId,
    /// The topic.
    pub topic: Topic,
    /// The topic's incarnation: a move of a removed topic's namesake is ignored.
    pub topic_id: u64,
    /// The partition.
    pub partition: u32,
    /// The group's new position.
    pub offset: u64,
}

/// The leader's metadata files in its data dir.
#[derive(Debug)]
pub struct MetadataStore {
    dir: PathBuf,
    journal: Mutex<File>,
    /// The journal's length: what a load would replay.
    journal_len: AtomicU64,
}

impl MetadataStore {
    /// Uses `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<MetadataStore, Error> {
        fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        let path = dir.join(JOURNAL_NAME);
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error("open", &path, e))?;
        let len = journal
            .metadata()
            .map_err(|e| io_error("stat", &path, e))?
            .len();
        Ok(MetadataStore {
            dir: dir.to_path_buf(),
            journal: Mutex::new(journal),
            journal_len: AtomicU64::new(len),
        })
    }

    /// Bytes in the position journal since the last snapshot.
    pub fn journal_len(&self) -> u64 {
        self.journal_len.load(Ordering::Relaxed)
    }

    fn journal(&self) -> MutexGuard<'_, File> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the last snapshot (empty metadata when there is none) and replays the
    /// journal over it. A torn last journal line (a crash mid-write) is ignored.
    pub fn load(&self) -> Result<Metadata, Error> {
        let path = self.dir.join(FILE_NAME);
        let mut meta = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Storage {
                reason: format!("{} is not valid leader metadata: {e}", path.display()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Metadata::default(),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        let journal_path = self.dir.join(JOURNAL_NAME);
        let file = File::open(&journal_path).map_err(|e| io_error("open", &journal_path, e))?;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| io_error("read", &journal_path, e))?;
            match serde_json::from_str::<PositionRecord>(&line) {
                Ok(record) => meta.apply_position(&record),
                Err(_) => break, // only the last line can be torn
            }
        }
        Ok(meta)
    }

    /// Appends position moves to the journal (fsynced with `fsync`). Blocking.
    pub fn append_positions(&self, records: &[PositionRecord], fsync: bool) -> Result<(), Error> {
        let mut lines = Vec::with_capacity(records.len() * 96);
        for record in records {
            serde_json::to_writer(&mut lines, record).map_err(Error::storage)?;
            lines.push(b'\n');
        }
        let path = self.dir.join(JOURNAL_NAME);
        let mut journal = self.journal();
        journal
            .write_all(&lines)
            .map_err(|e| io_error("append to", &path, e))?;
        self.journal_len
            .fetch_add(lines.len() as u64, Ordering::Relaxed);
        if fsync {
            journal
                .sync_data()
                .map_err(|e| io_error("fsync", &path, e))?;
        }
        Ok(())
    }

    /// Replaces the snapshot with the bytes `snapshot` returns (serialised
    /// [`Metadata`], taken while the journal is locked so that no position move
    /// can slip between the snapshot and the clearing of the journal), then clears the
    /// journal. Returns what `snapshot` returned alongside the bytes. Blocking.
    pub fn write_snapshot<T>(
        &self,
        snapshot: impl FnOnce() -> Result<(T, Vec<u8>), Error>,
        fsync: bool,
    ) -> Result<T, Error> {
        let journal = self.journal();
        let (out, bytes) = snapshot()?;
        let tmp = self.dir.join(TMP_NAME);
        let path = self.dir.join(FILE_NAME);
        let mut file = File::create(&tmp).map_err(|e| io_error("create", &tmp, e))?;
        file.write_all(&bytes)
            .map_err(|e| io_error("write", &tmp, e))?;
        if fsync {
            file.sync_all().map_err(|e| io_error("fsync", &tmp, e))?;
        }
        fs::rename(&tmp, &path).map_err(|e| io_error("rename", &path, e))?;
        if fsync {
            self.sync_dir()?;
        }
        let journal_path = self.dir.join(JOURNAL_NAME);
        journal
            .set_len(0)
            .map_err(|e| io_error("truncate", &journal_path, e))?;
        self.journal_len.store(0, Ordering::Relaxed);
        Ok(out)
    }

    /// fsyncs the snapshot, its directory entry and the journal (the `every-ms`
    /// timer, and shutdown).
    pub fn sync(&self) -> Result<(), Error> {
        let journal = self.journal();
        let path = self.dir.join(FILE_NAME);
        match File::open(&path) {
            Ok(file) => file.sync_all().map_err(|e| io_error("fsync", &path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("open", &path, e)),
        }
        self.sync_dir()?;
        journal
            .sync_data()
            .map_err(|e| io_error("fsync", &self.dir.join(JOURNAL_NAME), e))
    }

    fn sync_dir(&self) -> Result<(), Error> {
        let dir = File::open(&self.dir).map_err(|e| io_error("open", &self.dir, e))?;
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
    use crate::names::ServerId;

    fn write(store: &MetadataStore, meta: &Metadata, fsync: bool) {
        store
            .write_snapshot(|| Ok(((), serde_json::to_vec(meta).unwrap())), fsync)
            .unwrap();
    }

    /// Loads as the leader does: the derived group assignments are recomputed.
    fn load(store: &MetadataStore) -> Metadata {
        let mut meta = store.load().unwrap();
        meta.refresh_group_assignments();
        meta
    }

    fn meta_with_group() -> Metadata {
        let mut meta = Metadata::default();
        let b = meta.register_broker(None, ServerId::from("127.0.0.1:1"));
        meta.create_topic(&Topic::from("t"), 2, 1, &[b]).unwrap();
        let group = meta.groups.entry(ConsumerGroupId::from("g")).or_default();
        group.join(ServerId::from("m"), [Topic::from("t")]);
        group.init_position(&Topic::from("t"), 0, 0);
        group.init_position(&Topic::from("t"), 1, 0);
        meta
    }

    fn record(topic_id: u64, partition: u32, offset: u64) -> PositionRecord {
        PositionRecord {
            group: ConsumerGroupId::from("g"),
            topic: Topic::from("t"),
            topic_id,
            partition,
            offset,
        }
    }

    #[test]
    fn snapshot_round_trips_and_replaces_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(&dir.path().join("nested")).unwrap();
        assert_eq!(store.load().unwrap(), Metadata::default());
        let mut meta = meta_with_group();
        meta.refresh_group_assignments();
        write(&store, &meta, true);
        assert_eq!(load(&store), meta);
        meta.remove_topic(&Topic::from("t")).unwrap();
        write(&store, &meta, false);
        assert_eq!(load(&store), meta);
        store.sync().unwrap();
    }

    /// A store in `dir` whose snapshot is [`meta_with_group`]; returns the topic's id.
    fn snapshot_with_group(dir: &Path) -> (MetadataStore, u64) {
        let store = MetadataStore::open(dir).unwrap();
        let meta = meta_with_group();
        let topic_id = meta.topics[&Topic::from("t")].topic_id;
        write(&store, &meta, false);
        (store, topic_id)
    }

    #[test]
    fn journaled_moves_replay_over_the_snapshot_and_a_snapshot_clears_them() {
        let dir = tempfile::tempdir().unwrap();
        let (store, topic_id) = snapshot_with_group(dir.path());
        store
            .append_positions(&[record(topic_id, 0, 5), record(topic_id, 1, 3)], false)
            .unwrap();
        // Replayed twice or out of order, a move never goes backwards.
        store
            .append_positions(&[record(topic_id, 0, 4)], true)
            .unwrap();
        // A move of an older incarnation of the topic is ignored.
        store
            .append_positions(&[record(topic_id + 100, 1, 99)], false)
            .unwrap();
        let loaded = store.load().unwrap();
        let g = &loaded.groups[&ConsumerGroupId::from("g")];
        assert_eq!(g.position(&Topic::from("t"), 0), Some(5));
        assert_eq!(g.position(&Topic::from("t"), 1), Some(3));
        // A snapshot holds them; the journal is empty afterwards.
        write(&store, &loaded, false);
        assert_eq!(
            fs::metadata(dir.path().join(JOURNAL_NAME)).unwrap().len(),
            0
        );
        assert_eq!(store.load().unwrap(), loaded);
    }

    #[test]
    fn the_journal_length_counts_appends_survives_a_reopen_and_resets_with_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (store, topic_id) = snapshot_with_group(dir.path());
        assert_eq!(store.journal_len(), 0);
        store
            .append_positions(&[record(topic_id, 0, 5), record(topic_id, 1, 3)], false)
            .unwrap();
        let on_disk = fs::metadata(dir.path().join(JOURNAL_NAME)).unwrap().len();
        assert!(on_disk > 0);
        assert_eq!(store.journal_len(), on_disk);
        drop(store);
        let store = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(store.journal_len(), on_disk, "read back at open");
        write(&store, &store.load().unwrap(), false);
        assert_eq!(store.journal_len(), 0);
    }

    #[test]
    fn a_torn_journal_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (store, topic_id) = snapshot_with_group(dir.path());
        store
            .append_positions(&[record(topic_id, 0, 7)], false)
            .unwrap();
        let mut journal = OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL_NAME))
            .unwrap();
        journal.write_all(b"{\"group\":\"g\",\"topic\"").unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(
            loaded.groups[&ConsumerGroupId::from("g")].position(&Topic::from("t"), 0),
            Some(7)
        );
    }

    #[test]
    fn a_corrupt_snapshot_is_a_storage_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        assert!(matches!(store.load(), Err(Error::Storage { .. })));
    }
}
