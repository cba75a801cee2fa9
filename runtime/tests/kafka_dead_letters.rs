//! Dead letters a user can act on, on a real broker: events whose handler keeps failing are
//! listed with their reason, attempts, key and headers, and the selected ones re-driven to
//! their topic reach the (now healthy) handler with their headers and a re-drive marker.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    pub mod broker;
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axion_runtime::kafka::dead_letters::{self, DLQ_REDRIVEN_FROM};
use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaServer, RetryPolicy};
use axion_runtime::{CallOptions, Handler, Incoming, RawReplies, RpcError, ServiceContract};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::{
    Project, ProjectCreatedEvent, GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS,
};
use support::broker::{config, Broker};

/// Project-created events: fail with UNAVAILABLE while `failing`, else recorded as
/// (name, x-tenant, re-driven-from).
#[derive(Clone, Default)]
struct Flaky {
    failing: Arc<AtomicBool>,
    handled: Arc<Mutex<Vec<Handled>>>,
}

/// An event's project name, its `x-tenant` header and its re-drive marker.
type Handled = (String, Option<String>, Option<String>);

impl Handler for Flaky {
    fn contract(&self) -> &'static ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }
    fn handle(&self, incoming: Incoming) -> RawReplies {
        use axion_runtime::futures::StreamExt as _;
        let me = self.clone();
        let outcome = async move {
            if me.failing.load(Ordering::SeqCst) {
                return Err(RpcError::unavailable("the database is down"));
            }
            let event: ProjectCreatedEvent = axion_runtime::json::decode(&incoming.payload)?;
            let header = |name: &str| incoming.headers.get_str(name).map(str::to_owned);
            me.handled.lock().unwrap().push((
                event.project.map(|p| p.name).unwrap_or_default(),
                header("x-tenant"),
                header(DLQ_REDRIVEN_FROM),
            ));
            Ok(())
        };
        // An event's stream yields nothing on success, its error on failure.
        Box::pin(
            axion_runtime::futures::stream::once(outcome)
                .filter_map(|r| async move { r.err().map(Err) }),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_with_their_reasons_and_selected_ones_re_driven() {
    let broker = Broker::start();
    let cfg = config(&broker, "it-dead-letters");
    ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let handler = Flaky::default();
    handler.failing.store(true, Ordering::SeqCst);
    let server = KafkaServer::builder(&cfg, handler.clone())
        .retry(RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
            ..RetryPolicy::default()
        })
        .start()
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let kafka = KafkaClient::connect(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    for name in ["alpha", "beta", "gamma"] {
        let event = ProjectCreatedEvent {
            project: Some(Project {
                name: name.into(),
                ..Default::default()
            }),
        };
        let options = CallOptions::new()
            .key(name)
            .header("x-tenant", format!("tenant-{name}"));
        client.project_created_with(&event, options).await.unwrap();
    }

    let pattern = GRAPH_SERVICE_PATTERNS::PROJECT_CREATED;
    let deadline = Instant::now() + Duration::from_secs(60);
    let letters = loop {
        let letters = dead_letters::list(&cfg, pattern, 100).await.unwrap();
        if letters.len() >= 3 || Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(letters.len(), 3, "{letters:#?}");
    for letter in &letters {
        assert_eq!(letter.reason, "handler-failed", "{letter:?}");
        assert_eq!(letter.attempts, 2, "{letter:?}");
        assert!(letter.error.contains("the database is down"), "{letter:?}");
        assert_eq!(letter.origin_topic, pattern);
        assert!(letter.origin.is_some());
        let name = String::from_utf8(letter.key.clone().unwrap()).unwrap();
        assert_eq!(
            letter.headers.get_str("x-tenant"),
            Some(format!("tenant-{name}").as_str()),
            "the original headers are kept: {letter:?}"
        );
        assert!(!letter
            .headers
            .iter()
            .any(|(k, _)| k.starts_with("axion-dlq-")));
    }
    assert_eq!(
        dead_letters::list(&cfg, pattern, 2).await.unwrap().len(),
        2,
        "the limit holds"
    );

    // The database is back: re-drive two of the three.
    handler.failing.store(false, Ordering::SeqCst);
    let key = |l: &dead_letters::DeadLetter| String::from_utf8(l.key.clone().unwrap()).unwrap();
    let selected: Vec<_> = letters
        .iter()
        .filter(|l| key(l) != "beta")
        .cloned()
        .collect();
    assert_eq!(dead_letters::redrive(&cfg, &selected).await.unwrap(), 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while handler.handled.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut handled = handler.handled.lock().unwrap().clone();
    handled.sort();
    assert_eq!(handled.len(), 2, "{handled:?}");
    for ((name, tenant, from), letter) in handled.iter().zip(&selected) {
        assert_eq!(name, &key(letter));
        assert_eq!(tenant.as_deref(), Some(format!("tenant-{name}").as_str()));
        assert_eq!(
            from.as_deref(),
            Some(format!("{}/{}/{}", letter.topic, letter.partition, letter.offset).as_str())
        );
    }
    eprintln!(
        "dead letters: {} listed, {} re-driven and handled",
        letters.len(),
        handled.len()
    );
    server.shutdown().await;
}
