//! `logbrook describe`: a topic's partitions as the leader (controller) sees them.

use std::time::Duration;

use structopt::StructOpt;

use crate::client::api::LeaderClient;
use crate::error::Error;
use crate::http::client::HttpClient;
use crate::names::{ServerId, Topic};
use crate::protocol::control::TopicMetadata;

use super::{AuthArgs, DEFAULT_LEADER};

/// Arguments of `logbrook describe`.
#[derive(Debug, StructOpt)]
pub struct Args {
    /// The topic
    topic: String,
    /// The leader's address
    #[structopt(long, env = "LOGBROOK_LEADER", default_value = DEFAULT_LEADER)]
    leader: String,
    /// Print the JSON the leader answers instead of a table
    #[structopt(long)]
    json: bool,
    #[structopt(flatten)]
    auth: AuthArgs,
}

impl Args {
    pub(super) async fn run(self) -> Result<(), Error> {
        let topic = Topic::new(self.topic)?;
        let http = HttpClient::new(Duration::from_secs(10))
            .with_auth_token(self.auth.auth_token.as_deref());
        let leader = LeaderClient::new(http, ServerId::new(self.leader)?);
        let described = leader.describe(&topic).await?;
        if self.json {
            let text = serde_json::to_string_pretty(&described).map_err(|e| Error::Protocol {
                reason: e.to_string(),
            })?;
            println!("{text}");
        } else {
            print!("{}", render(&described));
        }
        Ok(())
    }
}

/// The table `describe` prints: one line per partition.
pub fn render(topic: &TopicMetadata) -> String {
    let mut out = format!(
        "topic {} (id {}): {} partition(s), replication factor {}\n",
        topic.name,
        topic.topic_id,
        topic.partitions.len(),
        topic.replication_factor
    );
    out.push_str("partition  leader                 epoch  high-watermark  replicas / in-sync\n");
    for p in &topic.partitions {
        let leader = if p.alive {
            p.broker_addr.to_string()
        } else {
            format!("offline ({})", p.broker_addr)
        };
        let hw = p
            .high_watermark
            .map_or_else(|| "?".to_string(), |h| h.to_string());
        let list = |v: &[ServerId]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push_str(&format!(
            "{:<10} {:<22} {:<6} {:<15} [{}] / [{}]\n",
            p.partition,
            leader,
            p.leader_epoch,
            hw,
            list(&p.replicas),
            list(&p.in_sync)
        ));
    }
    out
}
