//! `logbrook consumer`: an interactive consumer.

use std::time::Duration;

use structopt::StructOpt;

use crate::client::{Consumer, ConsumerConfig, Message};
use crate::error::Error;
use crate::names::{ConsumerGroupId, ServerId, Topic};

use super::shell::{self, first_word, usage, Commands, Next};
use super::{AuthArgs, DEFAULT_LEADER};

/// Arguments of `logbrook consumer`.
#[derive(Debug, StructOpt)]
pub struct Args {
    /// The leader's address
    #[structopt(long, env = "LOGBROOK_LEADER", default_value = DEFAULT_LEADER)]
    leader: String,
    /// This consumer's unique id (default: consumer-<process id>)
    #[structopt(long)]
    id: Option<String>,
    #[structopt(flatten)]
    auth: AuthArgs,
}

const HELP: &str = "\
logbrook consumer: type a command and press Enter.
  join GROUP            join a consumer group (needed before subscribe and poll)
  leave                 leave the group (subscriptions are kept for the next join)
  subscribe TOPIC       receive the topic's messages produced from now on
  unsubscribe TOPIC     stop receiving a topic
  poll [SECONDS]        print new messages; wait up to SECONDS (default 0) for some
  status                show id, group and subscriptions
  help                  show this help
  quit                  exit (end of input, Ctrl-D, exits too)";

struct ConsumerShell {
    consumer: Consumer,
}

fn print_message(m: &Message) {
    let value = String::from_utf8_lossy(&m.value);
    match &m.key {
        Some(key) => println!(
            "{} partition {} offset {} key {}: {value}",
            m.topic,
            m.partition,
            m.offset,
            String::from_utf8_lossy(key)
        ),
        None => println!(
            "{} partition {} offset {}: {value}",
            m.topic, m.partition, m.offset
        ),
    }
}

impl Commands for ConsumerShell {
    fn prompt(&self) -> String {
        match self.consumer.group() {
            Some(g) => format!("consumer[{g}]> "),
            None => "consumer> ".into(),
        }
    }

    fn help(&self) -> &'static str {
        HELP
    }

    async fn execute(&mut self, command: &str, rest: &str) -> Result<Next, Error> {
        let arg = first_word(rest).0;
        match command {
            "join" => {
                if arg.is_empty() {
                    return Err(usage("join GROUP"));
                }
                self.consumer
                    .join_consumer_group(ConsumerGroupId::new(arg)?)
                    .await?;
                println!("joined group {arg}");
            }
            "leave" => {
                self.consumer.leave_consumer_group().await?;
                println!("left the group");
            }
            "subscribe" | "unsubscribe" => {
                if arg.is_empty() {
                    return Err(usage(&format!("{command} TOPIC")));
                }
                let topic = Topic::new(arg)?;
                if command == "subscribe" {
                    self.consumer.subscribe(topic).await?;
                } else {
                    self.consumer.unsubscribe(topic).await?;
                }
                println!("{command}d {arg}");
            }
            "poll" => {
                let wait: f64 = if arg.is_empty() {
                    0.0
                } else {
                    arg.parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                        .ok_or_else(|| usage("poll [SECONDS]"))?
                };
                let messages = self
                    .consumer
                    .poll_timeout(Duration::from_secs_f64(wait.min(3600.0)))
                    .await?;
                messages.iter().for_each(print_message);
                println!("{} message(s)", messages.len());
            }
            "status" => {
                let subs: Vec<String> = self
                    .consumer
                    .subscriptions()
                    .map(ToString::to_string)
                    .collect();
                println!(
                    "id {} group {} subscriptions [{}]",
                    self.consumer.id(),
                    self.consumer
                        .group()
                        .map_or("(none)".to_string(), ToString::to_string),
                    subs.join(", ")
                );
            }
            other => return Err(shell::unknown_command(other)),
        }
        Ok(Next::Continue)
    }
}

impl Args {
    pub(super) async fn run(self) -> Result<(), Error> {
        let id = self
            .id
            .unwrap_or_else(|| format!("consumer-{}", std::process::id()));
        let config = ConsumerConfig {
            auth_token: self.auth.auth_token,
            ..ConsumerConfig::default()
        };
        let consumer =
            Consumer::with_config(ServerId::new(id)?, ServerId::new(self.leader)?, config).await?;
        shell::run(ConsumerShell { consumer }).await
    }
}
