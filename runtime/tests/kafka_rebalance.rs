//! Many callers, many servers, membership changes mid-load: every request gets its own reply
//! (never another caller's), none is lost. Three client instances share two reply partitions
//! (more instances than partitions, where NestJS callers hang); a second server joins the
//! group and the first one leaves while requests are in flight.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    #[allow(dead_code)]
    pub mod broker;
    #[allow(dead_code)]
    pub mod raw;
}
#[path = "../../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaConfig, KafkaServer};
use axion_runtime::{codes, Handler, Incoming, RawReplies, ServiceContract};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{
    CreateProjectRequest, GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS,
};
use support::broker::Broker;

const CLIENTS: usize = 3;
const REQUESTS_PER_CLIENT: usize = 60;
const IN_FLIGHT_PER_CLIENT: usize = 4;

/// Counts handler runs per request name (the example graph itself would hide a duplicate
/// behind ALREADY_EXISTS), then hands the request to the real service.
struct Counted<H> {
    inner: H,
    runs: Arc<Mutex<HashMap<String, usize>>>,
}

impl<H: Handler> Handler for Counted<H> {
    fn contract(&self) -> &'static ServiceContract {
        self.inner.contract()
    }
    fn handle(&self, incoming: Incoming) -> RawReplies {
        if let Ok(r) = axion_runtime::json::decode::<CreateProjectRequest>(&incoming.payload) {
            *self.runs.lock().unwrap().entry(r.name).or_default() += 1;
        }
        self.inner.handle(incoming)
    }
}

#[derive(Default)]
struct Tally {
    answered: AtomicUsize,
    crossed: AtomicUsize,
    timed_out: AtomicUsize,
    /// Names of the calls that timed out.
    unanswered: Mutex<Vec<String>>,
    other_errors: AtomicUsize,
    sent: AtomicUsize,
}

fn cfg(broker: &Broker, client_id: &str) -> KafkaConfig {
    KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id(client_id)
        .fetch_wait_ms(5)
        .request_timeout_ms(30_000)
        .session_timeout_ms(6_000)
        .topic_partitions(2)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_reply_is_lost_or_crossed_while_servers_join_and_leave() {
    // The runtime's account of the handover (assignments with their start positions, revokes
    // with what they committed), shown if the test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "axion_runtime=info".to_owned()),
        )
        .with_test_writer()
        .try_init();
    let broker = Broker::start();
    ensure_topics(&cfg(&broker, "setup"), &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();

    let service_a = GraphServiceServer::new(graph::Graph::default());
    let graph_a = service_a.service().clone();
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counted = |inner| Counted {
        inner,
        runs: runs.clone(),
    };
    let server_a = KafkaServer::start(&cfg(&broker, "server-a"), counted(service_a))
        .await
        .unwrap();
    assert!(server_a.wait_assigned(Duration::from_secs(20)).await);

    let tally = Arc::new(Tally::default());
    let mut callers = Vec::new();
    for c in 0..CLIENTS {
        let kafka = KafkaClient::connect(
            &cfg(&broker, &format!("caller-{c}")),
            &[&GRAPH_SERVICE_CONTRACT],
        )
        .await
        .unwrap();
        let client = GraphServiceClient::new(kafka.client());
        for lane in 0..IN_FLIGHT_PER_CLIENT {
            let client = client.clone();
            let tally = tally.clone();
            callers.push(tokio::spawn(async move {
                // Bounded: each lane sends its share once, each call bounded by its timeout.
                for n in (lane..REQUESTS_PER_CLIENT).step_by(IN_FLIGHT_PER_CLIENT) {
                    let name = format!("c{c}-r{n}");
                    tally.sent.fetch_add(1, Ordering::SeqCst);
                    let result = client
                        .create_project(&CreateProjectRequest {
                            name: name.clone(),
                            ..Default::default()
                        })
                        .await;
                    let counter = match result {
                        Ok(reply)
                            if reply.project.as_ref().map(|p| p.name.as_str()) == Some(&name) =>
                        {
                            &tally.answered
                        }
                        Ok(_) => &tally.crossed,
                        Err(e) if e.is(codes::DEADLINE_EXCEEDED) => {
                            tally.unanswered.lock().unwrap().push(name.clone());
                            &tally.timed_out
                        }
                        Err(e) => {
                            eprintln!("{name}: {e}");
                            &tally.other_errors
                        }
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }));
        }
    }

    let total = CLIENTS * REQUESTS_PER_CLIENT;
    let wait_until = |fraction: usize| {
        let tally = tally.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while tally.sent.load(Ordering::SeqCst) < total * fraction / 3
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };

    wait_until(1).await;
    let service_b = GraphServiceServer::new(graph::Graph::default());
    let graph_b = service_b.service().clone();
    let server_b = KafkaServer::start(&cfg(&broker, "server-b"), counted(service_b))
        .await
        .unwrap();
    wait_until(2).await;
    server_a.shutdown().await;

    for caller in callers {
        caller.await.unwrap();
    }
    server_b.shutdown().await;

    let answered = tally.answered.load(Ordering::SeqCst);
    let crossed = tally.crossed.load(Ordering::SeqCst);
    let timed_out = tally.timed_out.load(Ordering::SeqCst);
    let other = tally.other_errors.load(Ordering::SeqCst);
    let (handled_a, handled_b) = (graph_a.project_count(), graph_b.project_count());
    eprintln!("sent {total}, answered {answered}, crossed {crossed}, timed out {timed_out}, other errors {other}; handled by A {handled_a}, by B {handled_b} (duplicates: {})", (handled_a + handled_b).saturating_sub(total));
    assert!(
        handled_a > 0 && handled_b > 0,
        "both servers must have served (the membership really changed)"
    );
    // Where each request landed: a request missing from the topic (or there twice) is the
    // broker's or the producer's doing, not the servers'.
    let census = census(&broker, total);
    let unanswered = tally.unanswered.lock().unwrap().clone();
    let unanswered: Vec<String> = unanswered
        .iter()
        .map(|name| format!("{name} at {:?}", census.get(name)))
        .collect();
    let twice: Vec<_> = census.iter().filter(|(_, at)| at.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "requests in the topic more than once: {twice:?}; unanswered: {unanswered:?}"
    );
    assert_eq!(
        census.len(),
        total,
        "requests missing from the topic; unanswered: {unanswered:?}"
    );
    assert_eq!(crossed, 0, "a caller got another request's reply");
    assert_eq!(other, 0);
    assert_eq!(
        timed_out, 0,
        "requests lost during the rebalance: {unanswered:?}"
    );
    assert_eq!(answered, total);
    // A graceful join and leave hand partitions over after their running handlers finished
    // and were committed: no request is handled twice.
    let runs = runs.lock().unwrap().clone();
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    assert_eq!(runs.len(), total, "every request handled");
}

/// Request name -> where it is in the create-project topic (partition, offset).
fn census(broker: &Broker, total: usize) -> HashMap<String, Vec<(i32, i64)>> {
    use rdkafka::Message as _;
    let topic = GRAPH_SERVICE_PATTERNS::CREATE_PROJECT;
    let mut at: HashMap<String, Vec<(i32, i64)>> = HashMap::new();
    let records = support::raw::read_settled(
        &broker.address(),
        topic,
        2,
        total,
        Duration::from_secs(20),
        Duration::from_millis(500),
    );
    for m in records {
        let name =
            axion_runtime::json::decode::<CreateProjectRequest>(m.payload().unwrap_or_default())
                .map(|r| r.name)
                .unwrap_or_default();
        at.entry(name)
            .or_default()
            .push((m.partition(), m.offset()));
    }
    at
}
