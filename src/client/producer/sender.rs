//! The producer's background sender: takes sendable batches from the accumulator and
//! sends each to the broker hosting its partition, one request in flight per
//! partition and all partitions in parallel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::task;
use futures_lite::future;

use crate::deadline;
use crate::error::Error;
use crate::names::{ServerId, Topic};
use crate::protocol::control::Acks;

use super::accumulator::ReadyBatch;
use super::Shared;

/// Runs until the accumulator is closed and everything buffered is settled.
pub(super) async fn run(shared: Arc<Shared>, woken: async_channel::Receiver<()>) {
    loop {
        let (batches, next_deadline) = shared.acc.take_sendable(Instant::now());
        for batch in batches {
            task::spawn(send_batch(shared.clone(), batch));
        }
        if woken.is_closed() {
            if shared.acc.pending_records() == 0 {
                return;
            }
            shared.acc.progress().await;
            continue;
        }
        match next_deadline {
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(Instant::now());
                let _ = deadline::within(wait, woken.recv()).await;
            }
            None => {
                let _ = woken.recv().await;
            }
        }
    }
}

/// Sends `batch`, then each next batch of its partition that may go as soon as
/// the one before completes.
pub(super) async fn send_batch(shared: Arc<Shared>, mut batch: ReadyBatch) {
    loop {
        batch.apply_stamp();
        crate::stages::mark_sent(&batch.bytes);
        let outcome = deliver(&shared, &batch).await;
        match shared.acc.complete(batch, outcome) {
            Some(next) => batch = next,
            None => return,
        }
    }
}

/// Sends one batch. On an error worth retrying (the partition's leader moved or is
/// unreachable, the in-sync replicas were slow, the controller is restarting) it
/// refreshes the metadata and retries with backoff until the delivery timeout. A
/// retry carries the same producer id and sequence, so the partition leader stores
/// the batch once however many attempts reach it. With `acks=none` nothing is
/// retried.
async fn deliver(shared: &Shared, batch: &ReadyBatch) -> Result<u64, Error> {
    // `None`: a timeout too large for the clock, i.e. no deadline.
    let deadline = Instant::now().checked_add(shared.config.delivery_timeout);
    let acks = shared.config.acks;
    let mut backoff = Duration::from_millis(5);
    loop {
        let sent = async {
            let broker = shared.broker_for(&batch.topic, batch.partition).await?;
            let produce = shared.brokers.produce(
                &broker,
                &batch.topic,
                batch.partition,
                batch.bytes.clone(),
                acks,
                shared.config.ack_timeout,
            );
            let moved = leader_moved(shared, &batch.topic, batch.partition, &broker);
            future::or(produce, async {
                moved.await;
                Err(Error::Unavailable {
                    addr: broker.to_string(),
                    reason: "the partition's leader moved while the request was out".into(),
                })
            })
            .await
        }
        .await;
        match sent {
            Ok(ack) => return Ok(ack.base_offset),
            Err(err)
                if acks != Acks::None
                    && err.is_retriable()
                    && deadline.is_none_or(|d| Instant::now() + backoff < d) =>
            {
                shared.forget_metadata(&batch.topic);
                task::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(250));
            }
            Err(err) => {
                // The broker may have moved or died: the next batch asks the leader.
                shared.forget_metadata(&batch.topic);
                return Err(err);
            }
        }
    }
}

/// How long a produce request may go unanswered before the producer asks the
/// controller whether the partition's leader moved: a paused or cut-off leader holds
/// requests until they time out (`ack_timeout` + 1 s), long after a new leader took
/// over.
const LEADER_CHECK_AFTER: Duration = Duration::from_millis(1000);
/// How often it asks from then on.
const LEADER_CHECK_EVERY: Duration = Duration::from_millis(250);

/// Completes once the controller names a live leader other than `broker` for the
/// partition (the request to `broker` is then given up and the batch sent to the new
/// leader: idempotence makes the retry safe). Never completes otherwise.
async fn leader_moved(shared: &Shared, topic: &Topic, partition: u32, broker: &ServerId) {
    deadline::sleep(LEADER_CHECK_AFTER).await;
    loop {
        if let Ok(meta) = shared.leader.topic(topic).await {
            let moved = meta
                .partitions
                .get(partition as usize)
                .is_some_and(|p| p.alive && &p.broker_addr != broker);
            if moved {
                return; // the retry forgets the topic's metadata and loads it afresh
            }
        }
        deadline::sleep(LEADER_CHECK_EVERY).await;
    }
}
