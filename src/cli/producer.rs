//! `logbrook producer`: an interactive producer.

use structopt::StructOpt;

use crate::client::{Producer, ProducerConfig};
use crate::error::Error;
use crate::names::{ServerId, Topic, Value};

use super::shell::{self, first_word, usage, Commands, Next};
use super::{AuthArgs, DEFAULT_LEADER};

/// Arguments of `logbrook producer`.
#[derive(Debug, StructOpt)]
pub struct Args {
    /// The leader's address
    #[structopt(long, env = "LOGBROOK_LEADER", default_value = DEFAULT_LEADER)]
    leader: String,
    #[structopt(flatten)]
    auth: AuthArgs,
}

const HELP: &str = "\
logbrook producer: type a command and press Enter.
  create TOPIC [PARTITIONS]      create a topic (default partition count: the leader's)
  remove TOPIC                   remove a topic and all its records
  topics                         list topics and the broker of each partition
  send TOPIC MESSAGE...          send the rest of the line as one message
  sendkey TOPIC KEY MESSAGE...   send with a key: one key always goes to one partition
  flush                          wait until every message sent is acknowledged
  help                           show this help
  quit                           exit (end of input, Ctrl-D, exits too)";

struct ProducerShell {
    producer: Producer,
}

impl Commands for ProducerShell {
    fn prompt(&self) -> String {
        "producer> ".into()
    }

    fn help(&self) -> &'static str {
        HELP
    }

    async fn execute(&mut self, command: &str, rest: &str) -> Result<Next, Error> {
        match command {
            "create" => {
                let (topic, count) = first_word(rest);
                if topic.is_empty() {
                    return Err(usage("create TOPIC [PARTITIONS]"));
                }
                let topic = Topic::new(topic)?;
                if count.is_empty() {
                    self.producer.add_topic(topic.clone()).await?;
                } else {
                    let n = count
                        .parse()
                        .map_err(|_| usage("create TOPIC [PARTITIONS] (a positive number)"))?;
                    self.producer
                        .add_topic_with_partitions(topic.clone(), n)
                        .await?;
                }
                println!("created topic {topic}");
            }
            "remove" => {
                let topic = Topic::new(first_word(rest).0)?;
                self.producer.remove_topic(topic.clone()).await?;
                println!("removed topic {topic}");
            }
            "topics" => {
                let topics = self.producer.list_topics().await?;
                if topics.is_empty() {
                    println!("no topics");
                }
                for t in topics {
                    let parts: Vec<String> = t
                        .partitions
                        .iter()
                        .map(|p| {
                            format!(
                                "{}@{}{}",
                                p.partition,
                                p.broker_addr,
                                if p.alive { "" } else { " (down)" }
                            )
                        })
                        .collect();
                    println!("{} partitions: {}", t.name, parts.join(", "));
                }
            }
            "send" => {
                let (topic, message) = first_word(rest);
                if topic.is_empty() {
                    return Err(usage("send TOPIC MESSAGE..."));
                }
                let stored = self
                    .producer
                    .send(Topic::new(topic)?, None, Value::from(message))
                    .await?;
                println!(
                    "sent to {topic} partition {} offset {}",
                    stored.partition, stored.offset
                );
            }
            "sendkey" => {
                let (topic, rest) = first_word(rest);
                let (key, message) = first_word(rest);
                if key.is_empty() {
                    return Err(usage("sendkey TOPIC KEY MESSAGE..."));
                }
                let stored = self
                    .producer
                    .send(
                        Topic::new(topic)?,
                        Some(Value::from(key)),
                        Value::from(message),
                    )
                    .await?;
                println!(
                    "sent to {topic} partition {} offset {}",
                    stored.partition, stored.offset
                );
            }
            "flush" => {
                self.producer.flush().await?;
                println!("flushed");
            }
            other => return Err(shell::unknown_command(other)),
        }
        Ok(Next::Continue)
    }
}

impl Args {
    pub(super) async fn run(self) -> Result<(), Error> {
        let config = ProducerConfig {
            auth_token: self.auth.auth_token,
            ..ProducerConfig::default()
        };
        let producer = Producer::with_config(ServerId::new(self.leader)?, config).await?;
        shell::run(ProducerShell { producer }).await
    }
}
