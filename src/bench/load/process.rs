//! The cluster process of a load run, and the memory and CPU figures read from `/proc`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_std::task;

use crate::error::Error;
use crate::names::ServerId;

use super::clients::lock;
use super::SpawnConfig;

/// How long the spawned cluster may take to print its leader line, and to exit after
/// SIGTERM.
const CLUSTER_WAIT: Duration = Duration::from_secs(30);

/// Resident memory of a process, from `/proc/PID/status` (KiB).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Rss {
    pub(super) rss_kib: u64,
    pub(super) hwm_kib: u64,
}

fn read_rss(pid: &str) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some(Rss {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// CPU seconds (user + system) a process used, from `/proc/PID/stat` (assumes the
/// usual 100 clock ticks per second).
pub(super) fn read_cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// One memory sample.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    pub(super) secs: f64,
    pub(super) cluster: Option<Rss>,
    pub(super) client: Rss,
}

pub(super) struct Sampler {
    pub(super) start: Instant,
    pub(super) cluster_pid: Option<String>,
    pub(super) samples: Mutex<Vec<Sample>>,
    pub(super) stop: AtomicBool,
}

impl Sampler {
    pub(super) fn sample(&self) -> Sample {
        let s = Sample {
            secs: self.start.elapsed().as_secs_f64(),
            cluster: self.cluster_pid.as_deref().and_then(read_rss),
            client: read_rss("self").unwrap_or_default(),
        };
        lock(&self.samples).push(s);
        s
    }
}

/// Bytes of the files under `dir`.
pub(super) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A `logbrook cluster` process in a temporary dir.
pub(super) struct SpawnedCluster {
    pub(super) child: Child,
    pub(super) leader: ServerId,
    pub(super) data_dir: PathBuf,
    pub(super) stderr_path: PathBuf,
    // Last: removed after the process stopped.
    pub(super) _temp: tempfile::TempDir,
}

impl SpawnedCluster {
    pub(super) fn start(
        spawn: &SpawnConfig,
        auth_token: Option<&str>,
    ) -> Result<SpawnedCluster, Error> {
        let temp = tempfile::Builder::new()
            .prefix("logbrook-load-")
            .tempdir()
            .map_err(|e| Error::storage(format!("cannot create a temporary dir: {e}")))?;
        let data_dir = temp.path().join("data");
        let stderr_path = temp.path().join("cluster.stderr");
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| Error::storage(format!("cannot create {}: {e}", stderr_path.display())))?;
        let mut command = Command::new(&spawn.exe);
        command
            .arg("cluster")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--brokers")
            .arg(spawn.brokers.to_string())
            .arg("--fsync")
            .arg(&spawn.fsync)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        match auth_token {
            Some(token) => command.env("LOGBROOK_AUTH_TOKEN", token),
            None => command.env_remove("LOGBROOK_AUTH_TOKEN"),
        };
        let mut child = command.spawn().map_err(|e| Error::Unavailable {
            addr: spawn.exe.display().to_string(),
            reason: format!("cannot start the cluster process: {e}"),
        })?;
        // Read its stdout in a thread (for ever: it must not block on a full pipe).
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + CLUSTER_WAIT;
        let leader = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("leader ") {
                        break ServerId::from(addr.trim());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Unavailable {
                        addr: "127.0.0.1:0".into(),
                        reason: format!(
                            "the cluster process printed no leader line within {} s: {}",
                            CLUSTER_WAIT.as_secs(),
                            tail(&stderr_path)
                        ),
                    });
                }
            }
        };
        Ok(SpawnedCluster {
            child,
            leader,
            data_dir,
            stderr_path,
            _temp: temp,
        })
    }

    /// SIGTERM, then waits for the exit: `Ok` if it exited with status 0.
    pub(super) async fn stop(mut self) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").arg("-TERM").arg(&pid).status();
        if !matches!(sent, Ok(s) if s.success()) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return Err(format!("could not send SIGTERM to pid {pid}: {sent:?}"));
        }
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!(
                        "exited with {status} after SIGTERM; stderr: {}",
                        tail(&self.stderr_path)
                    ))
                }
                Ok(None) if Instant::now() < deadline => {
                    task::sleep(Duration::from_millis(20)).await
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "still running {} s after SIGTERM (killed); stderr: {}",
                        CLUSTER_WAIT.as_secs(),
                        tail(&self.stderr_path)
                    ));
                }
                Err(err) => return Err(format!("cannot wait for it: {err}")),
            }
        }
    }
}

/// The last lines of a file (the cluster's stderr), for error messages.
fn tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(10);
    match lines[start..].join(" | ") {
        s if s.is_empty() => "(empty)".into(),
        s => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_of_this_process() {
        let rss = read_rss("self").expect("/proc/self/status");
        assert!(rss.rss_kib > 0 && rss.hwm_kib >= rss.rss_kib);
        assert!(read_cpu_secs("self").is_some());
    }
}
