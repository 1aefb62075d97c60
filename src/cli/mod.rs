//! The `logbrook` command: one subcommand per file, each with its arguments and a
//! `run`. `main.rs` (and the Python console script) only call [`main_with_args`].

mod bench;
mod broker;
mod brokerlead;
mod cluster;
mod consumer;
mod describe;
mod producer;
mod shell;

use structopt::StructOpt;

use crate::error::Error;

/// The cluster's optional shared secret, on every subcommand.
#[derive(Debug, StructOpt)]
pub struct AuthArgs {
    /// Shared secret required on every request to the cluster's leader and brokers
    /// (without it they answer 401 and change nothing). Also read from
    /// LOGBROOK_AUTH_TOKEN, which keeps it out of the process list
    #[structopt(long, env = "LOGBROOK_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
}

/// Default address of the leader, for every subcommand that talks to it.
pub const DEFAULT_LEADER: &str = "127.0.0.1:7070";

/// logbrook: a Kafka-style distributed commit log.
#[derive(Debug, StructOpt)]
#[structopt(name = "logbrook")]
pub enum Command {
    /// Run the broker leader (controller): knows the brokers, places topic partitions,
    /// runs consumer groups
    Brokerlead(brokerlead::Args),
    /// Run a broker: hosts partitions on disk, serves produce and fetch
    Broker(broker::Args),
    /// Run a leader and N brokers in one process (the quick way to a local cluster)
    Cluster(cluster::Args),
    /// Interactive producer shell: create/remove topics, send messages
    Producer(producer::Args),
    /// Interactive consumer shell: join a group, subscribe, poll
    Consumer(consumer::Args),
    /// Show a topic's partitions: leader, leader epoch, high watermark, replicas and
    /// in-sync replicas
    Describe(describe::Args),
    /// Measure throughput and latency (produce, consume, e2e) or run a load test (load)
    Bench(bench::Args),
}

/// Parses `args` (the first is the program name) and runs the subcommand; returns
/// the process exit status.
pub fn main_with_args(args: Vec<String>) -> i32 {
    let command = match Command::from_iter_safe(args) {
        Ok(command) => command,
        Err(err) => {
            // --help and --version are "errors" that print to stdout and succeed.
            let status = match err.kind {
                structopt::clap::ErrorKind::HelpDisplayed
                | structopt::clap::ErrorKind::VersionDisplayed => 0,
                _ => 2,
            };
            if status == 0 {
                println!("{}", err.message);
            } else {
                eprintln!("{}", err.message);
            }
            return status;
        }
    };
    let result = async_std::task::block_on(async {
        match command {
            Command::Brokerlead(args) => args.run().await,
            Command::Broker(args) => args.run().await,
            Command::Cluster(args) => args.run().await,
            Command::Producer(args) => args.run().await,
            Command::Consumer(args) => args.run().await,
            Command::Describe(args) => args.run().await,
            Command::Bench(args) => args.run().await,
        }
    });
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("logbrook: error: {err}");
            1
        }
    }
}

/// Resolves when the process gets Ctrl-C or SIGTERM.
pub(crate) fn interrupted() -> Result<async_channel::Receiver<()>, Error> {
    let (tx, rx) = async_channel::bounded(1);
    ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    })
    .map_err(|e| Error::invalid(format!("cannot install the Ctrl-C handler: {e}")))?;
    Ok(rx)
}

/// Prints a line and flushes, so a script reading our stdout through a pipe sees it
/// at once.
pub(crate) fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
