//! The `logbrook` binary as real processes: `cluster`, `brokerlead` + `broker`, and
//! the producer/consumer shells driven through piped stdin.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use logbrook::{Consumer, Producer};

const BIN: &str = env!("CARGO_BIN_EXE_logbrook");
const WAIT: Duration = Duration::from_secs(20);

/// A child process whose stdout lines arrive on a channel (so reads can time out).
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(args: &[&str], dir: &Path) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .env_remove("LOGBROOK_LEADER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn logbrook");
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Proc {
            child,
            stdin,
            lines,
        }
    }

    /// The next stdout line satisfying `pred`, skipping others.
    fn line_matching(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.try_line_matching(pred)
            .unwrap_or_else(|_| panic!("no line {what} within {WAIT:?}"))
    }

    /// The first line matching `pred`; `Disconnected` if the process closed its
    /// stdout (exited) first.
    fn try_line_matching(&self, pred: impl Fn(&str) -> bool) -> Result<String, RecvTimeoutError> {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return Ok(line),
                Ok(_) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Spawns a node that must listen on a fixed address and returns it with its
    /// ready line (the first starting with `ready`). A fixed port can be taken for a
    /// moment (a client retrying the stopped node may connect to itself from that
    /// very port; another test may be given it as an ephemeral port), so a node that
    /// exits before it is ready is started again, a few times.
    fn spawn_on_fixed_port(args: &[&str], dir: &Path, ready: &str) -> (Proc, String) {
        for _ in 0..20 {
            let proc = Proc::spawn(args, dir);
            match proc.try_line_matching(|l| l.starts_with(ready)) {
                Ok(line) => return (proc, line),
                Err(RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(100)),
                Err(RecvTimeoutError::Timeout) => panic!("no {ready:?} line within {WAIT:?}"),
            }
        }
        panic!("{args:?} exited before it was ready, 20 times")
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to shell");
        stdin.flush().expect("flush");
    }

    fn close_stdin_and_wait(mut self) -> (i32, Vec<String>) {
        drop(self.stdin.take());
        let status = wait_with_timeout(&mut self.child);
        (status, self.lines.try_iter().collect())
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {signal} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_with_timeout(child: &mut Child) -> i32 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code().unwrap_or(-1);
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit within {WAIT:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn field(line: &str, index: usize) -> String {
    line.split_whitespace()
        .nth(index)
        .expect("field")
        .to_string()
}

/// Runs a shell with the whole script on stdin; returns its exit status and stdout.
fn run_script(args: &[&str], dir: &Path, script: &str) -> (i32, Vec<String>) {
    let mut shell = Proc::spawn(args, dir);
    for line in script.lines() {
        shell.send(line);
    }
    shell.close_stdin_and_wait()
}

/// `logbrook cluster` with 2 brokers on free ports, data in `dir/data`; returns the
/// process and the leader address it announced.
fn spawn_cluster(dir: &Path) -> (Proc, String) {
    let cluster = Proc::spawn(
        &[
            "cluster",
            "--brokers",
            "2",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            "data",
        ],
        dir,
    );
    let leader = field(
        &cluster.line_matching("leader", |l| l.starts_with("leader ")),
        1,
    );
    (cluster, leader)
}

#[test]
fn cluster_command_and_shells_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, leader) = spawn_cluster(dir.path());
    let b0 = cluster.line_matching("broker 0", |l| l.starts_with("broker 0 "));
    let b1 = cluster.line_matching("broker 1", |l| l.starts_with("broker 1 "));
    assert_ne!(field(&b0, 2), field(&b1, 2));

    let (status, out) = run_script(
        &["producer", "--leader", &leader],
        dir.path(),
        "help\ncreate orders 2\ncreate orders\nbogus\ncreate ../x\ntopics\n",
    );
    assert_eq!(status, 0, "{out:?}");
    assert!(
        out.iter().any(|l| l.contains("create TOPIC [PARTITIONS]")),
        "help printed: {out:?}"
    );
    assert!(out.iter().any(|l| l == "created topic orders"), "{out:?}");
    assert!(
        out.iter()
            .any(|l| l.starts_with("error:") && l.contains("already exists")),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with("error:") && l.contains("unknown command")),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with("error:") && l.contains("invalid topic name")),
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l.starts_with("orders partitions: 0@")),
        "{out:?}"
    );
    assert!(
        !out.iter().any(|l| l.contains("producer>")),
        "no prompt when stdin is not a terminal: {out:?}"
    );

    // The consumer stays up: it subscribes first, then records are produced.
    let mut consumer = Proc::spawn(
        &["consumer", "--leader", &leader, "--id", "shell-consumer"],
        dir.path(),
    );
    consumer.send("poll");
    consumer.line_matching("NotInGroup error", |l| {
        l.starts_with("error:") && l.contains("join_consumer_group")
    });
    consumer.send("join billing");
    consumer.line_matching("joined", |l| l == "joined group billing");
    consumer.send("subscribe orders");
    consumer.line_matching("subscribed", |l| l == "subscribed orders");

    let (status, out) = run_script(
        &["producer", "--leader", &leader],
        dir.path(),
        "send orders hello world\nsendkey orders user-1 keyed value\nsend nosuch x\nquit\nsend orders never sent\n",
    );
    assert_eq!(status, 0);
    assert!(
        out.iter()
            .any(|l| l.starts_with("sent to orders partition")),
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l.contains("unknown topic 'nosuch'")),
        "{out:?}"
    );

    consumer.send("poll 5");
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.ends_with("message(s)")) {
        seen.push(consumer.line_matching("poll output", |_| true));
    }
    consumer.send("poll 5");
    let mut more = Vec::new();
    while seen
        .iter()
        .chain(&more)
        .filter(|l| l.contains(": "))
        .count()
        < 2
    {
        more.push(consumer.line_matching("second poll", |_| true));
    }
    let records: Vec<&String> = seen
        .iter()
        .chain(&more)
        .filter(|l| l.starts_with("orders partition"))
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records.iter().any(|l| l.ends_with(": hello world")),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .any(|l| l.contains("key user-1: keyed value")),
        "{records:?}"
    );
    assert!(!records.iter().any(|l| l.contains("never sent")));
    let (status, _) = consumer.close_stdin_and_wait();
    assert_eq!(status, 0, "end of input exits with 0");

    // Ctrl-C (SIGINT) stops the cluster cleanly.
    cluster.signal("-INT");
    let mut cluster = cluster;
    assert_eq!(wait_with_timeout(&mut cluster.child), 0);

    // It comes back with its data: the topic still exists.
    let (cluster, leader) = spawn_cluster(dir.path());
    let (_, out) = run_script(
        &["producer", "--leader", &leader],
        dir.path(),
        "create orders\n",
    );
    assert!(
        out.iter().any(|l| l.contains("already exists")),
        "topic survived the restart: {out:?}"
    );
    cluster.signal("-TERM");
}

#[test]
fn separate_leader_and_broker_processes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    // The broker starts first: it retries until the leader answers.
    let leader_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let leader_addr = format!("127.0.0.1:{leader_port}");
    let broker = Proc::spawn(
        &[
            "broker",
            "--leader",
            &leader_addr,
            "--data-dir",
            "b0",
            "--heartbeat-ms",
            "100",
        ],
        dir.path(),
    );
    let (leader_proc, leader_line) = Proc::spawn_on_fixed_port(
        &["brokerlead", "--addr", &leader_addr, "--data-dir", "lead"],
        dir.path(),
        "leader ",
    );
    assert_eq!(field(&leader_line, 1), leader_addr);
    let broker_line = broker.line_matching("broker registered", |l| l.starts_with("broker "));
    let broker_addr = field(&broker_line, 2);

    async_std::task::block_on(async {
        let mut producer = Producer::new(leader_addr.as_str().into()).await.unwrap();
        producer
            .add_topic_with_partitions("t".into(), 2)
            .await
            .unwrap();
        let mut consumer = Consumer::new("c".into(), leader_addr.as_str().into())
            .await
            .unwrap();
        consumer.join_consumer_group("g".into()).await.unwrap();
        consumer.subscribe("t".into()).await.unwrap();
        for i in 0..20 {
            producer
                .send_message("t".into(), format!("before-{i}").into())
                .await
                .unwrap();
        }
        producer.flush().await.unwrap(); // acknowledged before the kill

        // kill -9 the broker and start it again on the same data dir and port.
        broker.signal("-KILL");
        drop(broker);
        let port = broker_addr.rsplit(':').next().unwrap().to_string();
        let (broker, _) = Proc::spawn_on_fixed_port(
            &[
                "broker",
                "--leader",
                &leader_addr,
                "--data-dir",
                "b0",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--heartbeat-ms",
                "100",
            ],
            dir.path(),
            "broker ",
        );
        for i in 0..20 {
            producer
                .send_message("t".into(), format!("after-{i}").into())
                .await
                .unwrap();
        }
        producer.flush().await.unwrap();
        let mut values = Vec::new();
        let deadline = Instant::now() + WAIT;
        while values.len() < 40 && Instant::now() < deadline {
            for m in consumer.poll().await.unwrap() {
                values.push(String::from_utf8(m.value).unwrap());
            }
        }
        values.sort();
        let mut expected: Vec<String> = (0..20)
            .flat_map(|i| [format!("before-{i}"), format!("after-{i}")])
            .collect();
        expected.sort();
        assert_eq!(
            values, expected,
            "every acknowledged record survived kill -9, none twice"
        );
        broker.signal("-TERM");
    });
    leader_proc.signal("-TERM");
    let mut leader_proc = leader_proc;
    assert_eq!(
        wait_with_timeout(&mut leader_proc.child),
        0,
        "SIGTERM stops the leader cleanly"
    );
}

#[test]
fn every_subcommand_has_complete_help() {
    for sub in ["brokerlead", "broker", "cluster", "producer", "consumer"] {
        let out = Command::new(BIN).args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("USAGE"), "{sub}: {text}");
    }
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["brokerlead", "broker", "cluster", "producer", "consumer"] {
        assert!(text.contains(sub), "top-level help lists {sub}");
    }
    let out = Command::new(BIN)
        .args(["broker", "--fsync", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad option value is a usage error"
    );
}

/// Runs `logbrook ARGS` to success and parses the one JSON object it prints.
fn run_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON object")
}

#[test]
fn bench_e2e_times_every_stage_of_a_records_way_in_process() {
    let report = run_json(&[
        "bench",
        "e2e",
        "--embedded",
        "--records",
        "300",
        "--rate",
        "3000",
        "--linger-ms",
        "0",
        "--stages",
        "--json",
    ]);
    assert_eq!(report["records"], 300);
    let stages = report["stages"].as_array().expect("stages");
    let names: Vec<(&str, &str)> = stages
        .iter()
        .map(|s| (s["from"].as_str().unwrap(), s["to"].as_str().unwrap()))
        .collect();
    // In process, every stage is seen, each timed to the next.
    assert_eq!(names.len(), 7, "{names:?}");
    assert_eq!(names[0], ("append called", "request sent"));
    assert_eq!(names[6], ("decoded", "handed out"));
    for pair in names.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "consecutive: {names:?}");
    }
    for stage in stages {
        assert_eq!(
            stage["records"], 300,
            "every record reached every stage: {stage}"
        );
        let (p50, p99) = (
            stage["p50_us"].as_f64().unwrap(),
            stage["p99_us"].as_f64().unwrap(),
        );
        assert!(p50 >= 0.0 && p50 <= p99, "{stage}");
    }

    let refused = Command::new(BIN)
        .args([
            "bench",
            "e2e",
            "--embedded",
            "--partitions",
            "2",
            "--stages",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--partitions 1"), "{stderr}");
}

#[test]
fn bench_load_checks_a_short_run_against_a_spawned_cluster() {
    let report = run_json(&[
        "bench",
        "load",
        "--producers",
        "4",
        "--consumers",
        "4",
        "--groups",
        "2",
        "--duration-secs",
        "2",
        "--progress-secs",
        "0",
        "--json",
    ]);
    assert_eq!(report["passed"], true, "{report}");
    let acked = report["records"]["acked"].as_u64().unwrap();
    assert!(acked > 0, "{report}");
    assert_eq!(
        report["records"]["in_log"], acked,
        "every acknowledged record is in the log"
    );
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    for group in groups {
        assert_eq!(
            group["delivered"], acked,
            "each group got every record once: {group}"
        );
        assert_eq!(group["duplicates"], 0);
        assert_eq!(group["consumers"], 2);
    }
}
