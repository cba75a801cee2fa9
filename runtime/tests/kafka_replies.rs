//! Replies through a real broker: a slow stream's items go out as they are made (not held
//! back until the next one exists); a caller that stops reading its stream is cut off with
//! `RESOURCE_EXHAUSTED` instead of buffering without bound; a reply the broker cannot take
//! (too large) becomes a small error reply at once instead of a silent wait for the timeout.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    pub mod broker;
}

use std::time::Duration;

use axion_runtime::futures::StreamExt as _;
use axion_runtime::kafka::{
    ensure_topics, KafkaClient, KafkaServer, ServerHandle, MAX_BUFFERED_REPLIES,
};
use axion_runtime::{codes, CallOptions, Handler, Incoming, RawReplies, Reply, ServiceContract};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::{GetProjectRequest, ListProjectsRequest, GRAPH_SERVICE_CONTRACT};
use support::broker::{config, Broker};

/// Streams `count` projects for every request, `gap` before each.
struct Projects {
    count: usize,
    gap: Duration,
}

impl Handler for Projects {
    fn contract(&self) -> &'static ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }
    fn handle(&self, _incoming: Incoming) -> RawReplies {
        let (count, gap) = (self.count, self.gap);
        Box::pin(axion_runtime::futures::stream::unfold(
            0,
            move |n| async move {
                if n == count {
                    return None;
                }
                if !gap.is_zero() {
                    tokio::time::sleep(gap).await;
                }
                let payload = format!(r#"{{"id":"p{n}","name":"project {n}"}}"#);
                Some((Ok(Reply::from(payload.into_bytes())), n + 1))
            },
        ))
    }
}

/// Answers every request with one project whose name is `bytes` long.
struct Huge {
    bytes: usize,
}

impl Handler for Huge {
    fn contract(&self) -> &'static ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }
    fn handle(&self, _incoming: Incoming) -> RawReplies {
        let payload = format!(r#"{{"id":"p","name":"{}"}}"#, "x".repeat(self.bytes));
        Box::pin(axion_runtime::futures::stream::once(async move {
            Ok(Reply::from(payload.into_bytes()))
        }))
    }
}

async fn serve(
    broker: &Broker,
    client_id: &str,
    handler: impl Handler,
) -> (ServerHandle, GraphServiceClient) {
    let cfg = config(broker, client_id);
    ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let server = KafkaServer::start(&cfg, handler).await.unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let kafka = KafkaClient::connect(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    (server, GraphServiceClient::new(kafka.client()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_streams_items_arrive_as_they_are_made() {
    let broker = Broker::start();
    // An item every 1.2 s, each wait bounded by 2 s: holding an item back until the next one
    // exists would make the first arrive after 2.4 s, past the timeout.
    let (server, client) = serve(
        &broker,
        "it-stream-slow",
        Projects {
            count: 2,
            gap: Duration::from_millis(1200),
        },
    )
    .await;
    let options = CallOptions::new().timeout(Duration::from_secs(2));
    let items: Vec<_> = client
        .list_projects_with(&ListProjectsRequest::default(), options)
        .await
        .unwrap()
        .collect()
        .await;
    let names: Vec<String> = items
        .into_iter()
        .map(|p| p.expect("each item in time").name)
        .collect();
    assert_eq!(names, ["project 0", "project 1"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_stops_reading_is_cut_off_not_buffered_without_bound() {
    let broker = Broker::start();
    let (server, client) = serve(
        &broker,
        "it-stream-unread",
        Projects {
            count: MAX_BUFFERED_REPLIES + 200,
            gap: Duration::ZERO,
        },
    )
    .await;
    let mut stream = client
        .list_projects(&ListProjectsRequest::default())
        .await
        .unwrap();
    // Read the first item, then nothing until the whole stream must have arrived.
    assert!(stream.next().await.unwrap().is_ok());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut read = 1;
    let mut ended_with = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(_) => read += 1,
            Err(e) => {
                ended_with = Some(e);
                break;
            }
        }
    }
    let e = ended_with.expect("the stream ends with an error, not silently short");
    assert!(e.is(codes::RESOURCE_EXHAUSTED), "{e:?}");
    assert!(
        read <= MAX_BUFFERED_REPLIES + 1,
        "{read} items read: more than the buffer holds"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_too_large_for_the_broker_becomes_an_error_reply_at_once() {
    let broker = Broker::start();
    // The server's producer takes at most 2 × KAFKA_MAX_MESSAGE_BYTES (at least 1 MB).
    let (server, client) = serve(&broker, "it-reply-huge", Huge { bytes: 3_000_000 }).await;
    let options = CallOptions::new().timeout(Duration::from_secs(60));
    let e = client
        .get_project_with(&GetProjectRequest { id: "p".into() }, options)
        .await
        .unwrap_err();
    // Without the notice the caller would wait its full 60 s for DEADLINE_EXCEEDED.
    assert!(e.is(codes::INTERNAL), "{e:?}");
    assert_eq!(e.details["reason"], "reply-undeliverable", "{e:?}");
    assert!(e.message.contains("could not be delivered"), "{e:?}");
    server.shutdown().await;
}
