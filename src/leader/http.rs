//! The leader's HTTP endpoints (documented in `docs/protocol.md`): each route parses
//! its request, calls [`Leader`] and renders the outcome.

use tide::Request;

use crate::error::Error;
use crate::http::auth::RequireToken;
use crate::http::reply::{json_body, name_param, number_param, reply, JsonErrors};
use crate::names::{ConsumerGroupId, Topic};
use crate::protocol::control::{
    Ack, AlterInSyncRequest, CommitRequest, CreateTopicRequest, HeartbeatRequest, JoinGroupRequest,
    MemberRequest, ProducerIdResponse, RegisterBrokerRequest, RegisterConsumerRequest,
    SubscriptionRequest,
};

use super::Leader;

/// The tide app serving `leader`.
pub fn app(leader: Leader) -> tide::Server<Leader> {
    let auth = RequireToken::new(leader.config().auth_token.as_deref());
    let mut app = tide::with_state(leader);
    app.with(JsonErrors);
    app.with(auth);
    app.at("/metadata").get(metadata);
    app.at("/topics").post(create_topic);
    app.at("/topics/:topic").get(topic).delete(remove_topic);
    app.at("/topics/:topic/partitions").get(describe_topic);
    app.at("/partitions/in-sync").post(alter_in_sync);
    app.at("/producers").post(new_producer);
    app.at("/brokers/register").post(register_broker);
    app.at("/brokers/:id/heartbeat").post(heartbeat);
    app.at("/brokers/:id/assignment").get(broker_assignment);
    app.at("/consumers").post(register_consumer);
    app.at("/groups/:group/join").post(join);
    app.at("/groups/:group/leave").post(leave);
    app.at("/groups/:group/subscribe").post(subscribe);
    app.at("/groups/:group/unsubscribe").post(unsubscribe);
    app.at("/groups/:group/sync").post(sync);
    app.at("/groups/:group/commit").post(commit);
    app
}

async fn metadata(req: Request<Leader>) -> tide::Result {
    reply(Ok::<_, Error>(req.state().cluster_metadata()))
}

async fn topic(req: Request<Leader>) -> tide::Result {
    reply(
        async {
            req.state()
                .topic_metadata(&name_param::<Topic, _>(&req, "topic")?)
        }
        .await,
    )
}

async fn create_topic(mut req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let body: CreateTopicRequest = json_body(&mut req).await?;
            req.state()
                .create_topic(&body.name, body.partitions, body.replication_factor)
                .await
        }
        .await,
    )
}

async fn describe_topic(req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let topic: Topic = name_param(&req, "topic")?;
            req.state().describe_topic(&topic).await
        }
        .await,
    )
}

async fn alter_in_sync(mut req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let body: AlterInSyncRequest = json_body(&mut req).await?;
            req.state().alter_in_sync(&body).await
        }
        .await,
    )
}

async fn new_producer(req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let producer_id = req.state().new_producer_id().await?;
            Ok::<_, Error>(ProducerIdResponse { producer_id })
        }
        .await,
    )
}

async fn remove_topic(req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let topic: Topic = name_param(&req, "topic")?;
            req.state().remove_topic(&topic).await.map(|()| Ack {})
        }
        .await,
    )
}

async fn register_broker(mut req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let body: RegisterBrokerRequest = json_body(&mut req).await?;
            req.state().register_broker(body.broker_id, body.addr).await
        }
        .await,
    )
}

async fn heartbeat(mut req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let id = number_param(&req, "id")?;
            let body: HeartbeatRequest = json_body(&mut req).await?;
            req.state()
                .heartbeat(id, &body.addr, body.assignment_version)
                .await
        }
        .await,
    )
}

async fn broker_assignment(req: Request<Leader>) -> tide::Result {
    reply(async { req.state().broker_assignment(number_param(&req, "id")?) }.await)
}

async fn register_consumer(mut req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let body: RegisterConsumerRequest = json_body(&mut req).await?;
            req.state()
                .register_consumer(&body.consumer)
                .map(|()| Ack {})
        }
        .await,
    )
}

async fn join(mut req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let group: ConsumerGroupId = name_param(&req, "group")?;
            let body: JoinGroupRequest = json_body(&mut req).await?;
            req.state()
                .join_group(&group, &body.member, body.subscriptions)
                .await
        }
        .await,
    )
}

async fn leave(mut req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let group: ConsumerGroupId = name_param(&req, "group")?;
            let body: MemberRequest = json_body(&mut req).await?;
            req.state()
                .leave_group(&group, &body.member)
                .await
                .map(|()| Ack {})
        }
        .await,
    )
}

async fn subscribe(mut req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let group: ConsumerGroupId = name_param(&req, "group")?;
            let body: SubscriptionRequest = json_body(&mut req).await?;
            req.state()
                .subscribe(&group, &body.member, &body.topic)
                .await
        }
        .await,
    )
}

async fn unsubscribe(mut req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let group: ConsumerGroupId = name_param(&req, "group")?;
            let body: SubscriptionRequest = json_body(&mut req).await?;
            req.state()
                .unsubscribe(&group, &body.member, &body.topic)
                .await
        }
        .await,
    )
}

async fn sync(mut req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let group: ConsumerGroupId = name_param(&req, "group")?;
            let body: MemberRequest = json_body(&mut req).await?;
            req.state().sync(&group, &body.member).await
        }
        .await,
    )
}

async fn commit(mut req: Request<Leader>) -> tide::Result {
    reply(
        async {
            let group: ConsumerGroupId = name_param(&req, "group")?;
            let body: CommitRequest = json_body(&mut req).await?;
            req.state()
                .commit(&group, &body.member, body.generation, &body.moves)
                .await
        }
        .await,
    )
}
