//! Support for `tests/faults.rs`: a cluster of real `logbrook` processes (one
//! `brokerlead`, N `broker`s, each its own process on an ephemeral loopback port with
//! its own data dir), fault injection (SIGKILL, SIGSTOP/SIGCONT, truncated segment
//! files), a workload that records every acknowledged and every delivered record, and
//! the checker that judges the resulting history.
//!
//! Every child process is SIGKILLed when its handle drops, also when a test panics.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use async_std::task::{self, JoinHandle};
use logbrook::client::partitioner::partition_for_key;
use logbrook::protocol::batch;
use logbrook::protocol::control::{Acks, PartitionInfo};
use logbrook::{Consumer, ConsumerConfig, Error, Producer, ProducerConfig};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_logbrook");
/// The prefix of the topic each scenario writes (`faults-<scenario>`: a distinct name
/// per scenario, so a request that reaches another scenario's process, through a
/// port reused after a kill, cannot land in a partition there).
pub const TOPIC_PREFIX: &str = "faults";
/// Its partition count.
pub const PARTITIONS: u32 = 3;
/// Its replication factor.
pub const REPLICATION: u32 = 3;
/// The consumer group reading it.
pub const GROUP: &str = "faults-group";
/// Members of that group, each polling in its own task.
pub const MEMBERS: usize = 2;
/// The bound asserted on the measured unavailability (the target is 5 s; this is
/// generous so a loaded 2-core machine running debug builds does not flake).
pub const UNAVAILABILITY_BOUND: Duration = Duration::from_secs(15);
/// How long a process may take to print its ready line.
const START_WAIT: Duration = Duration::from_secs(30);
/// Records a writer queues before it waits for their acknowledgements.
const ROUND: usize = 4;
/// Pause between a writer's rounds (keeps the load moderate on 2 cores).
const PACE: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------

/// One `logbrook` child process; its stdout lines arrive on a channel (so reads can
/// time out), its stderr is appended to a log file kept for failure reports.
pub struct Proc {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(name: &str, args: &[String], dir: &Path, stderr_path: &Path) -> Proc {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", stderr_path.display()));
        let _ = writeln!(log, "=== {name}: logbrook {}", args.join(" "));
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .env_remove("LOGBROOK_LEADER")
            .env_remove("LOGBROOK_AUTH_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_string(),
            child,
            lines,
        }
    }

    /// The next stdout line starting with `prefix`. `Err(exited, why)`: `exited` is
    /// true when the process ended without printing it.
    fn line_starting(&mut self, prefix: &str, timeout: Duration) -> Result<String, (bool, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err((
                        false,
                        format!("{}: no line '{prefix}...' within {timeout:?}", self.name),
                    ))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait();
                    return Err((
                        true,
                        format!(
                            "{} exited ({status:?}) before printing '{prefix}...'",
                            self.name
                        ),
                    ));
                }
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal with kill(1): `-STOP`, `-CONT`, `-TERM`...
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {} failed", self.name);
    }

    /// SIGKILL (`Child::kill`) and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn field(line: &str, index: usize) -> String {
    line.split_whitespace()
        .nth(index)
        .unwrap_or_else(|| panic!("no field {index} in {line:?}"))
        .to_string()
}

/// One broker: its stable id and data dir, its current address and process.
pub struct BrokerSlot {
    pub id: u32,
    pub addr: String,
    pub data_dir: PathBuf,
    proc: Option<Proc>,
    pub paused: bool,
}

impl BrokerSlot {
    pub fn is_running(&self) -> bool {
        self.proc.is_some()
    }
}

/// A brokerlead and brokers, each a `logbrook` process, in a temp dir. Dropping it
/// SIGKILLs every process (paused ones included) and, on panic, prints the tail of
/// every process's stderr.
pub struct ProcCluster {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    pub leader_addr: String,
    leader_data: PathBuf,
    leader: Option<Proc>,
    leader_starts: usize,
    pub brokers: Vec<BrokerSlot>,
    pub broker_timeout_ms: u64,
    pub heartbeat_ms: u64,
}

impl ProcCluster {
    /// Starts a brokerlead (replication factor 3) and `brokers` brokers on free
    /// loopback ports; returns once every broker has registered.
    pub fn start(brokers: usize, broker_timeout_ms: u64, heartbeat_ms: u64) -> ProcCluster {
        let dir = tempfile::Builder::new()
            .prefix("logbrook-faults-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("logs")).expect("logs dir");
        let mut cluster = ProcCluster {
            dir: Some(dir),
            leader_data: root.join("leader"),
            root,
            leader_addr: String::new(),
            leader: None,
            leader_starts: 0,
            brokers: Vec::new(),
            broker_timeout_ms,
            heartbeat_ms,
        };
        let mut leader = cluster.spawn_leader("127.0.0.1:0");
        let line = leader
            .line_starting("leader ", START_WAIT)
            .unwrap_or_else(|(_, e)| panic!("{e}\n{}", cluster.stderr_tails()));
        cluster.leader_addr = field(&line, 1);
        cluster.leader = Some(leader);
        // Start every broker, then read their lines (they register concurrently).
        let mut procs = Vec::new();
        for i in 0..brokers {
            let data = cluster.root.join(format!("broker-{i}"));
            procs.push((data.clone(), cluster.spawn_broker(i, &data, "127.0.0.1:0")));
        }
        for (data, mut proc) in procs {
            let line = proc
                .line_starting("broker ", START_WAIT)
                .unwrap_or_else(|(_, e)| panic!("{e}\n{}", cluster.stderr_tails()));
            cluster.brokers.push(BrokerSlot {
                id: field(&line, 1).parse().expect("broker id"),
                addr: field(&line, 2),
                data_dir: data,
                proc: Some(proc),
                paused: false,
            });
        }
        cluster
    }

    /// The temp dir holding data dirs and logs.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn spawn_leader(&mut self, addr: &str) -> Proc {
        self.leader_starts += 1;
        let args: Vec<String> = [
            "brokerlead",
            "--addr",
            addr,
            "--data-dir",
            &self.leader_data.to_string_lossy(),
            "--broker-timeout-ms",
            &self.broker_timeout_ms.to_string(),
            "--replication-factor",
            &REPLICATION.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Proc::spawn(
            &format!("brokerlead (start {})", self.leader_starts),
            &args,
            &self.root,
            &self.root.join("logs/brokerlead.stderr"),
        )
    }

    fn spawn_broker(&self, slot: usize, data: &Path, addr: &str) -> Proc {
        let args: Vec<String> = [
            "broker",
            "--leader",
            &self.leader_addr,
            "--addr",
            addr,
            "--data-dir",
            &data.to_string_lossy(),
            "--heartbeat-ms",
            &self.heartbeat_ms.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Proc::spawn(
            &format!("broker slot {slot}"),
            &args,
            &self.root,
            &self.root.join(format!("logs/broker-{slot}.stderr")),
        )
    }

    /// The slot of the broker with id `id`.
    pub fn slot_of_id(&self, id: u32) -> usize {
        self.brokers
            .iter()
            .position(|b| b.id == id)
            .unwrap_or_else(|| panic!("no broker with id {id}"))
    }

    /// The id of the broker currently at `addr`.
    pub fn id_of_addr(&self, addr: &str) -> Option<u32> {
        self.brokers.iter().find(|b| b.addr == addr).map(|b| b.id)
    }

    /// SIGKILLs broker `slot` and reaps it.
    pub fn kill_broker(&mut self, slot: usize) {
        let mut proc = self.brokers[slot].proc.take().expect("broker is running");
        proc.kill9();
        self.brokers[slot].paused = false;
    }

    /// SIGSTOPs broker `slot`.
    pub fn pause_broker(&mut self, slot: usize) {
        let b = &mut self.brokers[slot];
        b.proc.as_ref().expect("broker is running").signal("-STOP");
        b.paused = true;
    }

    /// SIGCONTs broker `slot`.
    pub fn resume_broker(&mut self, slot: usize) {
        let b = &mut self.brokers[slot];
        b.proc.as_ref().expect("broker is running").signal("-CONT");
        b.paused = false;
    }

    /// Starts broker `slot` again on its data dir (keeping its id and data) and its
    /// old address; returns once it has registered. If its old port cannot be bound
    /// (taken meanwhile), it falls back to a new free port.
    pub fn restart_broker(&mut self, slot: usize) -> Result<(), String> {
        assert!(
            self.brokers[slot].proc.is_none(),
            "broker {slot} still runs"
        );
        let data = self.brokers[slot].data_dir.clone();
        let mut why = String::new();
        for attempt in 0..20 {
            let addr = if attempt < 10 {
                self.brokers[slot].addr.clone()
            } else {
                "127.0.0.1:0".to_string()
            };
            let mut proc = self.spawn_broker(slot, &data, &addr);
            match proc.line_starting("broker ", START_WAIT) {
                Ok(line) => {
                    let id: u32 = field(&line, 1).parse().expect("broker id");
                    let b = &mut self.brokers[slot];
                    if id != b.id {
                        return Err(format!(
                            "broker slot {slot} restarted as id {id}, expected {} (its data dir \
                             should keep its id)",
                            b.id
                        ));
                    }
                    b.addr = field(&line, 2);
                    b.proc = Some(proc);
                    return Ok(());
                }
                // Exited: most likely its port is in use; try again.
                Err((true, e)) => {
                    why = e;
                    thread::sleep(Duration::from_millis(200));
                }
                Err((false, e)) => return Err(e),
            }
        }
        Err(format!("broker slot {slot} would not restart: {why}"))
    }

    /// SIGKILLs the brokerlead.
    pub fn kill_leader(&mut self) {
        let mut proc = self.leader.take().expect("brokerlead is running");
        proc.kill9();
    }

    /// Starts the brokerlead again on its address and data dir.
    pub fn restart_leader(&mut self) -> Result<(), String> {
        assert!(self.leader.is_none(), "brokerlead still runs");
        let addr = self.leader_addr.clone();
        let mut why = String::new();
        for _ in 0..50 {
            let mut proc = self.spawn_leader(&addr);
            match proc.line_starting("leader ", START_WAIT) {
                Ok(line) => {
                    let announced = field(&line, 1);
                    if announced != addr {
                        return Err(format!("brokerlead came back on {announced}, not {addr}"));
                    }
                    self.leader = Some(proc);
                    return Ok(());
                }
                Err((true, e)) => {
                    why = e;
                    thread::sleep(Duration::from_millis(100));
                }
                Err((false, e)) => return Err(e),
            }
        }
        Err(format!("brokerlead would not restart on {addr}: {why}"))
    }

    /// The last lines of every process's stderr log.
    pub fn stderr_tails(&self) -> String {
        let mut out = String::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.root.join("logs"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        for path in names {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(25)..];
            let _ = writeln!(
                out,
                "--- {} (last {} lines) ---",
                path.file_name().unwrap_or_default().to_string_lossy(),
                tail.len()
            );
            for l in tail {
                let _ = writeln!(out, "{l}");
            }
        }
        out
    }

    /// The newest `.log` segment of `partition` of the topic `dir_name`
    /// (`<topic>.<topic_id>`) in broker `slot`'s data dir.
    pub fn newest_segment(&self, slot: usize, dir_name: &str, partition: u32) -> PathBuf {
        let dir = partition_dir(&self.brokers[slot].data_dir, dir_name, partition);
        segment_files(&dir)
            .into_iter()
            .next_back()
            .unwrap_or_else(|| panic!("no .log segment in {}", dir.display()))
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        // Paused processes die on SIGKILL too; kill the leader first so brokers do not
        // re-register while we go.
        if let Some(mut p) = self.leader.take() {
            p.kill9();
        }
        for b in &mut self.brokers {
            if let Some(mut p) = b.proc.take() {
                p.kill9();
            }
        }
        if thread::panicking() {
            eprintln!(
                "process logs of the failed scenario:\n{}",
                self.stderr_tails()
            );
            if std::env::var_os("LOGBROOK_FAULTS_KEEP").is_some() {
                if let Some(dir) = self.dir.take() {
                    eprintln!("data kept in {}", dir.keep().display());
                }
            }
        }
    }
}

fn partition_dir(data_dir: &Path, topic_dir: &str, partition: u32) -> PathBuf {
    data_dir
        .join("partitions")
        .join(topic_dir)
        .join(partition.to_string())
}

/// The `<20 digits>.log` files of a partition dir, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.strip_suffix(".log"))
                        .is_some_and(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Every record stored in a partition dir's segments, `(offset, value)` in file
/// order. Err if a segment does not decode (a torn or corrupt batch).
pub fn read_replica_log(dir: &Path) -> Result<Vec<(u64, String)>, String> {
    let mut out = Vec::new();
    for path in segment_files(dir) {
        let bytes = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        for b in batch::batches(&bytes) {
            let b = b.map_err(|e| format!("{}: {e}", path.display()))?;
            let records = batch::records(b).map_err(|e| format!("{}: {e}", path.display()))?;
            for r in records {
                let r = r.map_err(|e| format!("{}: {e}", path.display()))?;
                out.push((
                    r.offset as u64,
                    String::from_utf8_lossy(r.value).into_owned(),
                ));
            }
        }
    }
    Ok(out)
}

/// Cuts `bytes` off the end of `path` (a torn write, as a crash mid-append leaves).
/// Returns (old length, new length).
pub fn truncate_tail(path: &Path, bytes: u64) -> (u64, u64) {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let len = file.metadata().expect("metadata").len();
    assert!(len > bytes, "{} has only {len} bytes", path.display());
    file.set_len(len - bytes).expect("truncate");
    file.sync_all().expect("sync");
    (len, len - bytes)
}

// ---------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------

/// A record the producer had acknowledged (acks=all): where it says it is.
#[derive(Debug, Clone)]
pub struct Ack {
    pub value: String,
    pub partition: u32,
    pub offset: u64,
    pub at: Instant,
}

/// A record the producer reported failed (it may or may not be stored).
#[derive(Debug, Clone)]
pub struct Failure {
    pub value: String,
    pub partition: u32,
    pub error: String,
    pub at: Instant,
}

/// A record a member of the group received from a poll.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub member: usize,
    pub partition: u32,
    pub offset: u64,
    pub value: String,
    pub at: Instant,
}

/// Everything that happened in a scenario.
#[derive(Debug, Default)]
pub struct History {
    pub acks: Vec<Ack>,
    pub failures: Vec<Failure>,
    pub deliveries: Vec<Delivery>,
    pub poll_errors: Vec<(Instant, usize, String)>,
    pub events: Vec<(Instant, String)>,
}

type Shared = Arc<Mutex<History>>;

fn lock(h: &Shared) -> MutexGuard<'_, History> {
    h.lock().unwrap_or_else(|p| p.into_inner())
}

/// A key whose records go to `partition` (Kafka's murmur2 partitioner).
pub fn key_for(partition: u32, partitions: u32) -> Vec<u8> {
    (0u32..)
        .map(|n| format!("key-{n}").into_bytes())
        .find(|k| partition_for_key(k, partitions) == partition)
        .expect("some key hashes to every partition")
}

/// One writer per partition: queues `ROUND` keyed records, waits for each one's
/// acknowledgement (or failure), records it, and goes again until told to stop.
/// Waiting per record (`Appended::result`) rather than with `flush()` keeps the
/// partitions independent, so the unavailability of one partition is measured on
/// its own.
async fn writer(
    producer: Producer,
    topic: String,
    partition: u32,
    stop: Arc<AtomicBool>,
    hist: Shared,
) {
    let key = key_for(partition, PARTITIONS);
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let mut pending = Vec::with_capacity(ROUND);
        for _ in 0..ROUND {
            let value = format!("p{partition}-{seq:07}");
            seq += 1;
            match producer.append(&topic, Some(&key), value.as_bytes()).await {
                Ok(appended) => pending.push((value, appended)),
                Err(e) => lock(&hist).failures.push(Failure {
                    value,
                    partition,
                    error: format!("append: {e}"),
                    at: Instant::now(),
                }),
            }
        }
        for (value, appended) in pending {
            let outcome = appended.result.wait().await;
            let at = appended.result.completed_at().unwrap_or_else(Instant::now);
            match outcome {
                Ok(base) => lock(&hist).acks.push(Ack {
                    value,
                    partition: appended.partition,
                    offset: base + u64::from(appended.index),
                    at,
                }),
                Err(e) => lock(&hist).failures.push(Failure {
                    value,
                    partition: appended.partition,
                    error: e.to_string(),
                    at,
                }),
            }
        }
        task::sleep(PACE).await;
    }
}

/// A group member polling until told to stop; records every delivered record and
/// every poll error.
async fn member(mut consumer: Consumer, member: usize, stop: Arc<AtomicBool>, hist: Shared) {
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll_timeout(Duration::from_millis(250)).await {
            Ok(messages) => {
                let at = Instant::now();
                let mut h = lock(&hist);
                for m in messages {
                    h.deliveries.push(Delivery {
                        member,
                        partition: m.partition,
                        offset: m.offset,
                        value: String::from_utf8_lossy(&m.value).into_owned(),
                        at,
                    });
                }
            }
            Err(e) => {
                lock(&hist)
                    .poll_errors
                    .push((Instant::now(), member, format!("{e:?}")));
                task::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Samples the partition metadata every 200 ms and records each change of a
/// partition's leader, epoch, liveness or in-sync set as a timeline event (brokers
/// named by the ids learnt from the leaders seen).
async fn monitor(
    producer: Producer,
    topic: String,
    name: &'static str,
    t0: Instant,
    stop: Arc<AtomicBool>,
    hist: Shared,
) {
    let mut names: HashMap<String, u32> = HashMap::new();
    // Per partition: leader id, leader epoch, alive, in-sync names.
    type State = Vec<(u32, u32, bool, Vec<String>)>;
    let mut last: Option<State> = None;
    while !stop.load(Ordering::SeqCst) {
        if let Ok(parts) = producer.partition_metadata(topic.as_str().into()).await {
            for p in &parts {
                names.insert(p.broker_addr.to_string(), p.broker_id);
            }
            let name_of = |a: &str| names.get(a).map_or(a.to_string(), |id| format!("b{id}"));
            let state: State = parts
                .iter()
                .map(|p| {
                    let isr = p.in_sync.iter().map(|a| name_of(a.as_str())).collect();
                    (p.broker_id, p.leader_epoch, p.alive, isr)
                })
                .collect();
            if last.as_ref() != Some(&state) {
                let now = Instant::now();
                let text = format!(
                    "metadata: {}",
                    parts
                        .iter()
                        .zip(&state)
                        .map(|(p, (leader, epoch, alive, isr))| format!(
                            "p{} b{leader} e{epoch}{} isr [{}] hw {}",
                            p.partition,
                            if *alive { "" } else { " OFFLINE" },
                            isr.join(","),
                            p.high_watermark.map_or("?".into(), |h| h.to_string())
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                eprintln!(
                    "[{name} +{:.2}s] {text}",
                    now.saturating_duration_since(t0).as_secs_f64()
                );
                lock(&hist).events.push((now, text));
                last = Some(state);
            }
        }
        task::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------
// Scenario
// ---------------------------------------------------------------------------------

/// Settings of a scenario's cluster.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub broker_timeout_ms: u64,
    pub heartbeat_ms: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            broker_timeout_ms: 3000,
            heartbeat_ms: 500,
        }
    }
}

/// A running scenario: the cluster, a producer with one writer per partition, a
/// group of `MEMBERS` consumers polling concurrently, and the history they record.
pub struct Scenario {
    pub name: &'static str,
    pub cluster: ProcCluster,
    pub producer: Producer,
    pub t0: Instant,
    /// The topic written (`faults-<scenario>`).
    pub topic: String,
    /// Its directory name on brokers: `<topic>.<topic_id>`.
    pub topic_dir: String,
    hist: Shared,
    stop_writers: Arc<AtomicBool>,
    stop_members: Arc<AtomicBool>,
    writers: Vec<JoinHandle<()>>,
    members: Vec<JoinHandle<()>>,
    stop_monitor: Arc<AtomicBool>,
    monitor: Option<JoinHandle<()>>,
    notes: Vec<String>,
}

impl Scenario {
    /// Starts the cluster, creates the topic (3 partitions, replication factor 3),
    /// starts the group members and the writers, and returns once every partition
    /// has some acknowledged records.
    pub async fn start(name: &'static str, opts: Opts) -> Scenario {
        let t0 = Instant::now();
        let topic = format!("{TOPIC_PREFIX}-{name}");
        let cluster = ProcCluster::start(3, opts.broker_timeout_ms, opts.heartbeat_ms);
        let leader = cluster.leader_addr.clone();
        let config = ProducerConfig {
            acks: Acks::All,
            ..ProducerConfig::default()
        };
        let producer = Producer::with_config(leader.as_str().into(), config)
            .await
            .expect("producer connects");
        producer
            .create_topic(topic.as_str().into(), Some(PARTITIONS), Some(REPLICATION))
            .await
            .expect("create topic");
        let topic_id = producer
            .list_topics()
            .await
            .expect("list topics")
            .into_iter()
            .find(|t| t.name.as_str() == topic)
            .expect("topic listed")
            .topic_id;
        let mut scenario = Scenario {
            name,
            cluster,
            producer,
            t0,
            topic_dir: format!("{topic}.{topic_id}"),
            topic: topic.clone(),
            hist: Arc::default(),
            stop_writers: Arc::default(),
            stop_members: Arc::default(),
            writers: Vec::new(),
            members: Vec::new(),
            stop_monitor: Arc::default(),
            monitor: None,
            notes: Vec::new(),
        };
        scenario
            .wait_meta(
                "every partition led, all replicas in sync",
                Duration::from_secs(30),
                |s, parts| s.healthy(parts),
            )
            .await;
        for m in 0..MEMBERS {
            let mut consumer = Consumer::with_config(
                format!("{name}-member-{m}").as_str().into(),
                leader.as_str().into(),
                ConsumerConfig::default(),
            )
            .await
            .expect("consumer connects");
            consumer
                .join_consumer_group(GROUP.into())
                .await
                .expect("join group");
            consumer
                .subscribe(topic.as_str().into())
                .await
                .expect("subscribe");
            scenario.members.push(task::spawn(member(
                consumer,
                m,
                scenario.stop_members.clone(),
                scenario.hist.clone(),
            )));
        }
        for p in 0..PARTITIONS {
            scenario.writers.push(task::spawn(writer(
                scenario.producer.clone(),
                scenario.topic.clone(),
                p,
                scenario.stop_writers.clone(),
                scenario.hist.clone(),
            )));
        }
        scenario.monitor = Some(task::spawn(monitor(
            scenario.producer.clone(),
            scenario.topic.clone(),
            scenario.name,
            t0,
            scenario.stop_monitor.clone(),
            scenario.hist.clone(),
        )));
        scenario.event("cluster up, writers and group members running");
        scenario
            .wait_acks(30, t0, Duration::from_secs(30), "warm-up writes")
            .await;
        scenario
    }

    /// Seconds since the scenario started.
    pub fn since(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64()
    }

    /// Notes a timeline event (printed as progress and in failure reports).
    pub fn event(&self, text: impl Into<String>) {
        let text = text.into();
        let now = Instant::now();
        eprintln!("[{} +{:.2}s] {text}", self.name, self.since(now));
        lock(&self.hist).events.push((now, text));
    }

    /// Adds a line to the scenario's final report.
    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        self.event(format!("note: {text}"));
        self.notes.push(text);
    }

    /// Fresh partition metadata from the controller.
    pub async fn meta(&self) -> Result<Vec<PartitionInfo>, Error> {
        self.producer
            .partition_metadata(self.topic.as_str().into())
            .await
    }

    /// Broker id of an address (or the address itself if unknown), for reports.
    pub fn name_of(&self, addr: &str) -> String {
        self.cluster
            .id_of_addr(addr)
            .map_or_else(|| addr.to_string(), |id| format!("b{id}"))
    }

    /// One line per partition: leader, epoch, liveness, in-sync set, high watermark.
    pub fn fmt_meta(&self, parts: &[PartitionInfo]) -> String {
        parts
            .iter()
            .map(|p| {
                let isr: Vec<String> = p.in_sync.iter().map(|a| self.name_of(a.as_str())).collect();
                format!(
                    "p{} leader b{} epoch {} {} isr [{}] hw {}",
                    p.partition,
                    p.broker_id,
                    p.leader_epoch,
                    if p.alive { "alive" } else { "OFFLINE" },
                    isr.join(","),
                    p.high_watermark.map_or("?".to_string(), |h| h.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether broker `slot` (at its current address) is in the in-sync set.
    pub fn in_sync(&self, p: &PartitionInfo, slot: usize) -> bool {
        let addr = &self.cluster.brokers[slot].addr;
        p.in_sync.iter().any(|a| a.as_str() == addr)
    }

    /// Every partition has a live leader and every running broker in its in-sync
    /// set (and all replicas when all brokers run).
    pub fn healthy(&self, parts: &[PartitionInfo]) -> bool {
        parts.len() == PARTITIONS as usize
            && parts.iter().all(|p| {
                p.alive
                    && p.in_sync.len() == REPLICATION as usize
                    && (0..self.cluster.brokers.len()).all(|s| self.in_sync(p, s))
            })
    }

    /// Polls the metadata until `condition` holds; fails the scenario (with the full
    /// report) after `timeout`. Errors (controller down) are retried.
    pub async fn wait_meta(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&Scenario, &[PartitionInfo]) -> bool,
    ) -> Vec<PartitionInfo> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.meta().await {
                Ok(parts) => {
                    if condition(self, &parts) {
                        return parts;
                    }
                    self.fmt_meta(&parts)
                }
                Err(e) => format!("describe failed: {e}"),
            };
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "timed out after {timeout:?} waiting until {what}; last metadata: {last}"
                ));
            }
            task::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Acknowledged records per partition since `since`.
    pub fn acks_since(&self, since: Instant) -> Vec<usize> {
        let h = lock(&self.hist);
        let mut n = vec![0; PARTITIONS as usize];
        for a in h.acks.iter().filter(|a| a.at >= since) {
            n[a.partition as usize] += 1;
        }
        n
    }

    /// Waits until every partition has `n` acknowledgements after `since` (writes go
    /// on, the cluster takes writes everywhere).
    pub async fn wait_acks(&self, n: usize, since: Instant, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.acks_since(since);
            if got.iter().all(|c| *c >= n) {
                return;
            }
            if Instant::now() >= deadline {
                let meta = match self.meta().await {
                    Ok(parts) => self.fmt_meta(&parts),
                    Err(e) => format!("describe failed: {e}"),
                };
                self.fail(&format!(
                    "{what}: timed out after {timeout:?} waiting for {n} acknowledgements per \
                     partition (got {got:?}); metadata: {meta}"
                ));
            }
            task::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Panics with `why`, the timeline, and a history summary (the cluster's drop
    /// adds every process's stderr).
    pub fn fail(&self, why: &str) -> ! {
        let h = lock(&self.hist);
        let mut out = format!("fault {}: {why}\n", self.name);
        let _ = writeln!(
            out,
            "history: {} acked, {} failed, {} delivered, {} poll errors",
            h.acks.len(),
            h.failures.len(),
            h.deliveries.len(),
            h.poll_errors.len()
        );
        out.push_str(&self.timeline(&h));
        drop(h);
        panic!("{out}");
    }

    fn timeline(&self, h: &History) -> String {
        let mut out = String::from("timeline:\n");
        for (at, text) in &h.events {
            let _ = writeln!(out, "  +{:.2}s {text}", self.since(*at));
        }
        for f in h.failures.iter().take(5) {
            let _ = writeln!(
                out,
                "  failed record {} (p{}) at +{:.2}s: {}",
                f.value,
                f.partition,
                self.since(f.at),
                f.error
            );
        }
        for (at, m, e) in h.poll_errors.iter().take(5) {
            let _ = writeln!(
                out,
                "  poll error member {m} at +{:.2}s: {e}",
                self.since(*at)
            );
        }
        out
    }

    /// Ends the scenario: stops the writers, waits for the cluster to be whole again
    /// (every broker in every in-sync set), drains the group until it has every
    /// acknowledged record and everything below each high watermark, reads every
    /// replica's segment files, checks the history and prints the one-line summary.
    pub async fn finish(mut self) -> Summary {
        self.stop_writers.store(true, Ordering::SeqCst);
        for w in std::mem::take(&mut self.writers) {
            w.await;
        }
        let writers_stopped = Instant::now();
        self.event("writers stopped");
        let parts = self
            .wait_meta(
                "healed: every broker back in every in-sync set",
                Duration::from_secs(60),
                |s, parts| s.healthy(parts) && parts.iter().all(|p| p.high_watermark.is_some()),
            )
            .await;
        // With writes stopped and every replica in sync, the high watermark is the
        // log end; read it until two answers agree.
        let mut hw: BTreeMap<u32, u64> = parts
            .iter()
            .map(|p| (p.partition, p.high_watermark.unwrap_or(0)))
            .collect();
        let settle = Instant::now() + Duration::from_secs(30);
        loop {
            task::sleep(Duration::from_millis(200)).await;
            let again = self
                .wait_meta(
                    "high watermarks known",
                    Duration::from_secs(30),
                    |s, parts| s.healthy(parts) && parts.iter().all(|p| p.high_watermark.is_some()),
                )
                .await;
            let next: BTreeMap<u32, u64> = again
                .iter()
                .map(|p| (p.partition, p.high_watermark.unwrap_or(0)))
                .collect();
            if next == hw || Instant::now() > settle {
                hw = next;
                self.event(format!("final metadata: {}", self.fmt_meta(&again)));
                break;
            }
            hw = next;
        }
        // Drain: until the group has every acknowledged value and everything below
        // each high watermark (or a generous deadline; the check reports what is
        // missing).
        let drain_deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let done = {
                let h = lock(&self.hist);
                let delivered: BTreeSet<&str> =
                    h.deliveries.iter().map(|d| d.value.as_str()).collect();
                let mut per: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
                for d in &h.deliveries {
                    per.entry(d.partition).or_default().insert(d.offset);
                }
                h.acks.iter().all(|a| delivered.contains(a.value.as_str()))
                    && hw
                        .iter()
                        .all(|(p, mark)| per.get(p).map_or(0, |s| s.len() as u64) >= *mark)
            };
            if done {
                break;
            }
            if Instant::now() >= drain_deadline {
                self.event("drain deadline passed with records missing");
                break;
            }
            task::sleep(Duration::from_millis(50)).await;
        }
        // A quiet second: anything delivered now would be a duplicate or beyond the
        // high watermark, which the check reports.
        task::sleep(Duration::from_millis(1000)).await;
        self.stop_members.store(true, Ordering::SeqCst);
        for m in std::mem::take(&mut self.members) {
            m.await;
        }
        self.event("group members stopped");
        self.stop_monitor.store(true, Ordering::SeqCst);
        if let Some(m) = self.monitor.take() {
            m.await;
        }
        let mut replicas = Vec::new();
        for b in &self.cluster.brokers {
            for p in 0..PARTITIONS {
                let dir = partition_dir(&b.data_dir, &self.topic_dir, p);
                replicas.push((b.id, p, read_replica_log(&dir)));
            }
        }
        let h = lock(&self.hist);
        let check = check_history(&h, &hw, &replicas);
        let gaps = unavailability(&h, self.t0);
        // The consumers' side: the longest time the group delivered nothing while
        // writes were going on.
        let mut delivered_at: Vec<Instant> = h
            .deliveries
            .iter()
            .map(|d| d.at)
            .filter(|at| *at <= writers_stopped)
            .collect();
        delivered_at.sort();
        let delivery_gap = delivered_at
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        let summary = Summary {
            acked: h.acks.len(),
            failed: h.failures.len(),
            delivered: h.deliveries.len(),
            unavailable: gaps.worst,
            any_partition_gap: gaps.any,
            delivery_gap,
            poll_errors: h.poll_errors.len(),
        };
        let line = format!(
            "fault {}: acked {}, failed {}, delivered {}, unavailable {:.2} s (partition {} from \
             +{:.1}s; longest gap with no ack on any partition {:.2} s; with no delivery {:.2} s), \
             poll errors {}",
            self.name,
            summary.acked,
            summary.failed,
            summary.delivered,
            gaps.worst.as_secs_f64(),
            gaps.worst_partition,
            gaps.worst_from,
            gaps.any.as_secs_f64(),
            delivery_gap.as_secs_f64(),
            summary.poll_errors
        );
        eprintln!("{line}");
        for n in &self.notes {
            eprintln!("    {n}");
        }
        if let Some(path) = std::env::var_os("LOGBROOK_FAULTS_SUMMARY") {
            if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "{line}");
            }
        }
        let mut violations = check.violations;
        for (at, m, e) in &h.poll_errors {
            violations.push(format!(
                "member {m} poll failed at +{:.2}s (consumers should ride through retriable \
                 errors for 30 s): {e}",
                self.since(*at)
            ));
        }
        if !violations.is_empty() {
            let mut out = format!("{} violation(s) of the history checks:\n", violations.len());
            for v in violations.iter().take(30) {
                let _ = writeln!(out, "  - {v}");
            }
            for d in check.details.iter().take(60) {
                let _ = writeln!(out, "    {d}");
            }
            let _ = writeln!(out, "final high watermarks {hw:?}");
            let _ = writeln!(out, "{line}");
            drop(h);
            self.fail(&out);
        }
        drop(h);
        if gaps.worst >= UNAVAILABILITY_BOUND {
            self.fail(&format!(
                "unavailable for {:.2} s (partition {}, from +{:.2}s), over the bound \
                 {UNAVAILABILITY_BOUND:?}",
                gaps.worst.as_secs_f64(),
                gaps.worst_partition,
                gaps.worst_from
            ));
        }
        summary
    }
}

impl Drop for Scenario {
    /// Stops the writer, member and monitor tasks (also when a test panics, so they
    /// do not keep running against killed processes while other tests run).
    fn drop(&mut self) {
        self.stop_writers.store(true, Ordering::SeqCst);
        self.stop_members.store(true, Ordering::SeqCst);
        self.stop_monitor.store(true, Ordering::SeqCst);
    }
}

/// A scenario's numbers.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub acked: usize,
    pub failed: usize,
    pub delivered: usize,
    /// The longest gap between two consecutive acknowledgements of one partition
    /// (the worst partition).
    pub unavailable: Duration,
    /// The longest gap between two consecutive acknowledgements of any partition.
    pub any_partition_gap: Duration,
    /// The longest gap between two deliveries to the group while writes ran.
    pub delivery_gap: Duration,
    pub poll_errors: usize,
}

struct Gaps {
    worst: Duration,
    worst_partition: u32,
    worst_from: f64,
    any: Duration,
}

fn unavailability(h: &History, t0: Instant) -> Gaps {
    let mut worst = Gaps {
        worst: Duration::ZERO,
        worst_partition: 0,
        worst_from: 0.0,
        any: Duration::ZERO,
    };
    let mut all: Vec<Instant> = h.acks.iter().map(|a| a.at).collect();
    all.sort();
    for w in all.windows(2) {
        worst.any = worst.any.max(w[1] - w[0]);
    }
    for p in 0..PARTITIONS {
        let mut times: Vec<Instant> = h
            .acks
            .iter()
            .filter(|a| a.partition == p)
            .map(|a| a.at)
            .collect();
        times.sort();
        for w in times.windows(2) {
            let gap = w[1] - w[0];
            if gap > worst.worst {
                worst.worst = gap;
                worst.worst_partition = p;
                worst.worst_from = w[0].saturating_duration_since(t0).as_secs_f64();
            }
        }
    }
    worst
}

/// One replica's copy of a partition as read from its segment files: broker id,
/// partition, and its records `(offset, value)` (or why they could not be read).
pub type ReplicaLog = (u32, u32, Result<Vec<(u64, String)>, String>);

/// What the checker found.
#[derive(Debug, Default)]
pub struct Check {
    /// Broken guarantees, one line each.
    pub violations: Vec<String>,
    /// History excerpts around them.
    pub details: Vec<String>,
}

/// Judges a history:
/// 1. every acknowledged record was delivered to the group;
/// 2. nothing was delivered twice (by value, and by partition and offset);
/// 3. each member saw each partition's offsets strictly increasing, the group got
///    every offset below the high watermark and nothing beyond, and every
///    acknowledged (partition, offset) holds the acknowledged value;
/// 4. nothing delivered was never sent, no two acknowledgements name the same place;
/// 5. every replica's segment files hold exactly the delivered records below the high
///    watermark, and nothing beyond it.
pub fn check_history(h: &History, hw: &BTreeMap<u32, u64>, replicas: &[ReplicaLog]) -> Check {
    let mut c = Check::default();
    // After writes stopped and with every replica in sync, the high watermark is the
    // common log end of the replicas. If they all end at the same offset and the
    // controller reports another mark, the report is wrong (stale): say so, and
    // judge the history against the replicas' end.
    let mut hw = hw.clone();
    for p in 0..PARTITIONS {
        let ends: BTreeSet<u64> = replicas
            .iter()
            .filter(|(_, q, _)| *q == p)
            .filter_map(|(_, _, log)| log.as_ref().ok())
            .map(|log| log.last().map_or(0, |(o, _)| o + 1))
            .collect();
        let reported = hw.get(&p).copied().unwrap_or(0);
        if let (1, Some(&end)) = (ends.len(), ends.iter().next()) {
            if end != reported {
                c.violations.push(format!(
                    "HW MISMATCH: p{p}: the controller reports high watermark {reported} after \
                     writes stopped, but every replica's log ends at {end} (checked against {end})"
                ));
                hw.insert(p, end);
            }
        }
    }
    let hw = &hw;
    let mut by_value: HashMap<&str, Vec<&Delivery>> = HashMap::new();
    let mut by_place: BTreeMap<(u32, u64), Vec<&Delivery>> = BTreeMap::new();
    for d in &h.deliveries {
        by_value.entry(&d.value).or_default().push(d);
        by_place.entry((d.partition, d.offset)).or_default().push(d);
    }
    let excerpt = |c: &mut Check, p: u32, o: u64| {
        let lo = o.saturating_sub(3);
        for off in lo..=o + 3 {
            let got: Vec<String> = by_place
                .get(&(p, off))
                .map(|ds| {
                    ds.iter()
                        .map(|d| format!("{} (member {})", d.value, d.member))
                        .collect()
                })
                .unwrap_or_default();
            let acked: Vec<&str> = h
                .acks
                .iter()
                .filter(|a| a.partition == p && a.offset == off)
                .map(|a| a.value.as_str())
                .collect();
            c.details.push(format!(
                "  p{p}/{off}: delivered {got:?}, acknowledged {acked:?}"
            ));
        }
    };
    // 1 and the value half of 3.
    let mut acked_at: BTreeMap<(u32, u64), Vec<&Ack>> = BTreeMap::new();
    for a in &h.acks {
        acked_at.entry((a.partition, a.offset)).or_default().push(a);
        match by_value.get(a.value.as_str()) {
            None => {
                c.violations.push(format!(
                    "LOST: acknowledged record {} at p{}/{} was never delivered",
                    a.value, a.partition, a.offset
                ));
                if c.details.len() < 40 {
                    c.details
                        .push(format!("around p{}/{}:", a.partition, a.offset));
                    excerpt(&mut c, a.partition, a.offset);
                }
            }
            Some(ds) => {
                if !ds
                    .iter()
                    .any(|d| d.partition == a.partition && d.offset == a.offset)
                {
                    c.violations.push(format!(
                        "MOVED: acknowledged record {} at p{}/{} was delivered at {:?}",
                        a.value,
                        a.partition,
                        a.offset,
                        ds.iter()
                            .map(|d| (d.partition, d.offset))
                            .collect::<Vec<_>>()
                    ));
                }
            }
        }
        if let Some(ds) = by_place.get(&(a.partition, a.offset)) {
            if ds.iter().any(|d| d.value != a.value) {
                c.violations.push(format!(
                    "OVERWRITTEN: p{}/{} was acknowledged as {} but the log holds {:?}",
                    a.partition,
                    a.offset,
                    a.value,
                    ds.iter().map(|d| d.value.as_str()).collect::<Vec<_>>()
                ));
                if c.details.len() < 40 {
                    c.details
                        .push(format!("around p{}/{}:", a.partition, a.offset));
                    excerpt(&mut c, a.partition, a.offset);
                }
            }
        }
    }
    for ((p, o), acks) in &acked_at {
        let values: BTreeSet<&str> = acks.iter().map(|a| a.value.as_str()).collect();
        if values.len() > 1 {
            c.violations.push(format!(
                "DOUBLE ACK: p{p}/{o} was acknowledged for {values:?}"
            ));
        }
    }
    // 2.
    for (value, ds) in &by_value {
        if ds.len() > 1 {
            c.violations.push(format!(
                "DUPLICATE: {value} delivered {} times: {:?}",
                ds.len(),
                ds.iter()
                    .map(|d| format!("member {} p{}/{}", d.member, d.partition, d.offset))
                    .collect::<Vec<_>>()
            ));
        }
    }
    for ((p, o), ds) in &by_place {
        if ds.len() > 1 {
            c.violations.push(format!(
                "DUPLICATE: p{p}/{o} delivered {} times: {:?}",
                ds.len(),
                ds.iter()
                    .map(|d| (d.member, d.value.as_str()))
                    .collect::<Vec<_>>()
            ));
        }
    }
    // 3: order per member and partition, completeness below the high watermark.
    let mut last: HashMap<(usize, u32), u64> = HashMap::new();
    for d in &h.deliveries {
        if let Some(prev) = last.insert((d.member, d.partition), d.offset) {
            if d.offset <= prev {
                c.violations.push(format!(
                    "ORDER: member {} got p{}/{} ({}) after p{}/{prev}",
                    d.member, d.partition, d.offset, d.value, d.partition
                ));
            }
        }
    }
    for p in 0..PARTITIONS {
        let mark = hw.get(&p).copied().unwrap_or(0);
        let offsets: BTreeSet<u64> = by_place
            .keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        let missing: Vec<u64> = (0..mark).filter(|o| !offsets.contains(o)).collect();
        if !missing.is_empty() {
            c.violations.push(format!(
                "GAP: p{p} has high watermark {mark} but the group never got {} offsets below \
                 it (first {:?})",
                missing.len(),
                &missing[..missing.len().min(10)]
            ));
        }
        let beyond: Vec<u64> = offsets.iter().copied().filter(|o| *o >= mark).collect();
        if !beyond.is_empty() {
            c.violations.push(format!(
                "BEYOND HW: p{p} delivered offsets {:?} at or above the high watermark {mark}",
                &beyond[..beyond.len().min(10)]
            ));
        }
    }
    // 4.
    let sent: BTreeSet<&str> = h
        .acks
        .iter()
        .map(|a| a.value.as_str())
        .chain(h.failures.iter().map(|f| f.value.as_str()))
        .collect();
    for d in &h.deliveries {
        if !sent.contains(d.value.as_str()) {
            c.violations.push(format!(
                "PHANTOM: p{}/{} delivered {}, which the producer never had settled",
                d.partition, d.offset, d.value
            ));
        }
        if !d.value.starts_with(&format!("p{}-", d.partition)) {
            c.violations.push(format!(
                "WRONG PARTITION: {} delivered from p{}/{}",
                d.value, d.partition, d.offset
            ));
        }
    }
    // 5.
    for (broker, p, log) in replicas {
        let mark = hw.get(p).copied().unwrap_or(0);
        let log = match log {
            Ok(log) => log,
            Err(e) => {
                c.violations
                    .push(format!("REPLICA b{broker} p{p}: unreadable segment: {e}"));
                continue;
            }
        };
        let mut prev: Option<u64> = None;
        let mut diverged = 0usize;
        let mut first_divergence = None;
        for (o, v) in log {
            if prev.is_some_and(|q| *o <= q) {
                c.violations.push(format!(
                    "REPLICA b{broker} p{p}: offset {o} follows {} in its segment files",
                    prev.unwrap_or(0)
                ));
            }
            prev = Some(*o);
            if *o < mark {
                let delivered = by_place.get(&(*p, *o)).and_then(|ds| ds.first());
                if delivered.is_none_or(|d| d.value != *v) {
                    diverged += 1;
                    first_divergence.get_or_insert((
                        *o,
                        v.clone(),
                        delivered.map(|d| d.value.clone()),
                    ));
                }
            }
        }
        if let Some((o, v, d)) = first_divergence {
            c.violations.push(format!(
                "REPLICA b{broker} p{p}: {diverged} record(s) differ from the delivered log, \
                 first at offset {o}: replica holds {v}, group got {d:?}"
            ));
        }
        let end = prev.map_or(0, |o| o + 1);
        let count = log.iter().filter(|(o, _)| *o < mark).count() as u64;
        if end < mark || count < mark {
            c.violations.push(format!(
                "REPLICA b{broker} p{p}: holds {count} records below the high watermark {mark} \
                 (log end {end})"
            ));
        }
        if end > mark {
            c.violations.push(format!(
                "REPLICA b{broker} p{p}: log end {end} is beyond the high watermark {mark} \
                 after writes stopped (an uncommitted suffix was kept)"
            ));
        }
    }
    c
}

impl Scenario {
    /// Records delivered to the group so far.
    pub fn deliveries(&self) -> usize {
        lock(&self.hist).deliveries.len()
    }

    /// Records acknowledged between two instants.
    pub fn acks_between(&self, from: Instant, to: Instant) -> usize {
        lock(&self.hist)
            .acks
            .iter()
            .filter(|a| a.at >= from && a.at <= to)
            .count()
    }
}
