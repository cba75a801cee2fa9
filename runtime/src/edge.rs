//! The HTTP/WebSocket edge a service shows behind Traefik (feature `edge`, axum).
//!
//! Two routes, the ones the generated Traefik snippet points at:
//!
//! - `GET <health path>` (default `/health`): runs every readiness [`Probe`] (concurrently, each
//!   bounded by a timeout) and answers `200 {"status":"ready","checks":[...]}` when all pass,
//!   else `503 {"status":"unavailable","checks":[...]}`. Traefik's load-balancer health check
//!   reads it, so an instance without its Kafka assignment gets no traffic.
//! - `GET <events path>` (default `/events`): a WebSocket that pushes every event published to
//!   the edge's [`Events`] as a JSON text message
//!   `{"event":"ProjectCreated","pattern":"axion.graph-service.project-created","data":{...}}`
//!   (`data` is the event's NestJS JSON, exactly as on the bus). An upgrade request whose
//!   `Origin` is not one of the trusted origins (the generated `*_TRUSTED_ORIGINS`) is refused
//!   with `403`. `Origin` only guards against other sites in a browser (any other client just
//!   leaves it out): [`Edge::authenticate`] checks the upgrade request's headers (a token,
//!   a cookie) and refuses it with `401`. Clients send nothing but control frames, so inbound
//!   frames are capped small ([`Edge::max_frame_bytes`], 4 KiB); at most
//!   [`Edge::max_connections`] clients are served at once (then `503`); a client that answers
//!   no ping within [`Edge::pong_timeout`] is dropped.
//!
//! - `GET /metrics`: the runtime's Prometheus metrics ([`crate::metrics`]) and any the service
//!   recorded through it, in the Prometheus text format. [`Edge::metrics_path`]
//!   moves or removes it (Traefik routes every path of the host to the edge: scrape the
//!   instance directly and keep `/metrics` off the public router if it must not be seen).
//!
//! With a path prefix (the Traefik option `path_prefix`, which Traefik does not strip) the
//! routes are also served under it: `/graph/health`, `/graph/events`, `/graph/metrics`.
//!
//! ```no_run
//! # // A service includes its build script's output; the checked-in goldens stand in here.
//! # mod contracts {
//! #     include!(concat!(env!("CARGO_MANIFEST_DIR"), "/../generated/mod.rs"));
//! # }
//! # use std::sync::Arc;
//! # use axion_runtime::edge::{kafka, Edge, Events};
//! # use axion_runtime::kafka::{KafkaConfig, ServerHandle};
//! # use contracts::axion::graph::v1::{
//! #     GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_TRAEFIK, GRAPH_SERVICE_TRUSTED_ORIGINS,
//! # };
//! # async fn serve_edge(
//! #     config: KafkaConfig,
//! #     server: Arc<ServerHandle>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! let events = Events::new(256);
//! let feed = kafka::EventFeed::start(&config, &GRAPH_SERVICE_CONTRACT, events.clone()).await?;
//! let edge = Edge::new(GRAPH_SERVICE_TRUSTED_ORIGINS)
//!     .check("kafka-consumer", server.clone())            // Arc<ServerHandle>
//!     .check("kafka-producer", kafka::BrokerProbe::new(&config, &GRAPH_SERVICE_CONTRACT)?)
//!     .check("event-feed", feed.clone())
//!     .events(events);
//! let listener = tokio::net::TcpListener::bind(("0.0.0.0", GRAPH_SERVICE_TRAEFIK::PORT)).await?;
//! edge.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::{broadcast, watch};

use crate::transport::BoxFuture;

/// A readiness check for `GET /health`: `Ok(())` when ready, else why not.
pub trait Probe: Send + Sync + 'static {
    /// Runs the check once.
    fn probe(&self) -> BoxFuture<'_, Result<(), String>>;
}

impl<P: Probe + ?Sized> Probe for Arc<P> {
    fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
        (**self).probe()
    }
}

/// A [`Probe`] from an async closure: `probe_fn(|| async { Ok(()) })`.
pub fn probe_fn<F, Fut>(f: F) -> impl Probe
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    struct FnProbe<F>(F);
    impl<F, Fut> Probe for FnProbe<F>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin((self.0)())
        }
    }
    FnProbe(f)
}

/// Where a service publishes the events its WebSocket clients get. Cheap to clone; every
/// clone feeds the same clients. A client that falls more than `capacity` events behind
/// skips the oldest ones (and is told how many, `{"lagged":N}`).
#[derive(Clone, Debug)]
pub struct Events {
    tx: broadcast::Sender<Arc<str>>,
}

impl Events {
    /// A hub buffering up to `capacity` events per slow client.
    pub fn new(capacity: usize) -> Self {
        Events {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// Publishes `{"event":event,"pattern":pattern,"data":data}` to every connected client;
    /// returns how many clients it reached.
    pub fn publish_json(&self, event: &str, pattern: &str, data: serde_json::Value) -> usize {
        let text = serde_json::json!({ "event": event, "pattern": pattern, "data": data });
        self.tx.send(Arc::from(text.to_string())).unwrap_or(0)
    }

    /// Publishes a typed event (a generated message: its NestJS JSON).
    pub fn publish<T: serde::Serialize>(&self, event: &str, pattern: &str, data: &T) -> usize {
        match serde_json::to_value(data) {
            Ok(value) => self.publish_json(event, pattern, value),
            Err(e) => {
                tracing::warn!(event, error = %e, "event not serializable; not pushed");
                0
            }
        }
    }

    /// Connected WebSocket clients.
    pub fn clients(&self) -> usize {
        self.tx.receiver_count()
    }

    /// A receiver of the JSON texts pushed to clients (what a WebSocket connection reads).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }
}

impl Default for Events {
    fn default() -> Self {
        Events::new(256)
    }
}

/// The edge: health and an event WebSocket, served with [`Edge::serve`] or mounted with
/// [`Edge::router`].
pub struct Edge {
    trusted_origins: Vec<String>,
    checks: Vec<(String, Arc<dyn Probe>)>,
    events: Events,
    health_path: String,
    events_path: String,
    metrics_path: Option<String>,
    path_prefix: Option<String>,
    check_timeout: Duration,
    ping_interval: Duration,
    guards: Guards,
}

/// What keeps the WebSocket from being abused.
#[derive(Clone)]
struct Guards {
    authenticate: Option<Arc<Authenticate>>,
    max_frame_bytes: usize,
    max_connections: usize,
    pong_timeout: Duration,
}

/// Checks a WebSocket upgrade request's headers: `Err(why)` refuses it with `401`.
type Authenticate = dyn Fn(&HeaderMap) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("trusted_origins", &self.trusted_origins)
            .field(
                "checks",
                &self.checks.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("health_path", &self.health_path)
            .field("events_path", &self.events_path)
            .field("path_prefix", &self.path_prefix)
            .finish_non_exhaustive()
    }
}

struct Shared {
    trusted_origins: Vec<String>,
    checks: Vec<(String, Arc<dyn Probe>)>,
    events: Events,
    check_timeout: Duration,
    ping_interval: Duration,
    guards: Guards,
    /// WebSocket clients connected now.
    connections: std::sync::atomic::AtomicUsize,
    /// `None` when nothing can stop the edge ([`Edge::router`]).
    stop: Option<watch::Receiver<bool>>,
}

/// Completes when the edge stops (or its `serve` is gone); never without a stop signal.
async fn stopped(stop: &mut Option<watch::Receiver<bool>>) {
    match stop {
        Some(rx) => {
            let _ = rx.wait_for(|s| *s).await;
        }
        None => std::future::pending().await,
    }
}

impl Edge {
    /// An edge trusting `trusted_origins` (exact `scheme://host[:port]` matches, e.g. the
    /// generated `GRAPH_SERVICE_TRUSTED_ORIGINS`), with no checks (always ready) and its own
    /// [`Events`] hub.
    pub fn new(trusted_origins: &[&str]) -> Self {
        Edge {
            trusted_origins: trusted_origins.iter().map(|o| o.to_string()).collect(),
            checks: Vec::new(),
            events: Events::default(),
            health_path: "/health".to_owned(),
            events_path: "/events".to_owned(),
            metrics_path: Some("/metrics".to_owned()),
            path_prefix: None,
            check_timeout: Duration::from_secs(2),
            ping_interval: Duration::from_secs(25),
            guards: Guards {
                authenticate: None,
                max_frame_bytes: 4 * 1024,
                max_connections: 1024,
                pong_timeout: Duration::from_secs(60),
            },
        }
    }

    /// Checks each WebSocket upgrade request's headers before it is accepted: `Err(why)`
    /// refuses it with `401` (and `why` in the log, not in the answer).
    ///
    /// ```
    /// # let edge = axion_runtime::edge::Edge::new(&[]);
    /// let edge = edge.authenticate(|headers| match headers.get("authorization") {
    ///     Some(v) if v == "Bearer s3cret" => Ok(()),
    ///     _ => Err("no valid bearer token".into()),
    /// });
    /// # drop(edge);
    /// ```
    pub fn authenticate(
        mut self,
        check: impl Fn(&HeaderMap) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.guards.authenticate = Some(Arc::new(check));
        self
    }

    /// Largest frame (and message) a client may send; a bigger one closes its connection.
    /// Default 4 KiB (clients only send control frames).
    pub fn max_frame_bytes(mut self, bytes: usize) -> Self {
        self.guards.max_frame_bytes = bytes;
        self
    }

    /// Most WebSocket clients served at once; more are refused with `503`. Default 1024.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.guards.max_connections = connections;
        self
    }

    /// How long a client may stay silent (no pong, no frame at all) before it is dropped;
    /// the edge pings every [`Edge::ping_interval`]. Default 60 s.
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.guards.pong_timeout = timeout;
        self
    }

    /// Adds a readiness check, reported under `name`.
    pub fn check(mut self, name: impl Into<String>, probe: impl Probe) -> Self {
        self.checks.push((name.into(), Arc::new(probe)));
        self
    }

    /// The hub whose events the WebSocket pushes (default: a fresh one, see [`Edge::hub`]).
    pub fn events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// The hub whose events the WebSocket pushes.
    pub fn hub(&self) -> &Events {
        &self.events
    }

    /// Path of the health route (the Traefik option `health_path`). Default `/health`.
    pub fn health_path(mut self, path: impl Into<String>) -> Self {
        self.health_path = path.into();
        self
    }

    /// Path of the WebSocket route. Default `/events`.
    pub fn events_path(mut self, path: impl Into<String>) -> Self {
        self.events_path = path.into();
        self
    }

    /// Path of the Prometheus route (`None`: not served). Default `/metrics`.
    pub fn metrics_path(mut self, path: Option<&str>) -> Self {
        self.metrics_path = path.map(str::to_owned);
        self
    }

    /// Also serve the routes under this prefix (the Traefik option `path_prefix`; empty:
    /// none).
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let prefix = prefix.trim_end_matches('/');
        self.path_prefix = (!prefix.is_empty()).then(|| prefix.to_owned());
        self
    }

    /// How long one check may take before it counts as failed. Default 2 s.
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// How often the WebSocket pings idle clients (keeps proxies from timing it out).
    /// Default 25 s.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// The routes as an axum [`Router`] (WebSocket clients are closed when `stop` turns true).
    fn build(self, stop: Option<watch::Receiver<bool>>) -> Router {
        let mut prefixes = vec![String::new()];
        prefixes.extend(self.path_prefix.clone());
        let metrics_path = self.metrics_path.clone();
        let shared = Arc::new(Shared {
            trusted_origins: self.trusted_origins,
            checks: self.checks,
            events: self.events,
            check_timeout: self.check_timeout,
            ping_interval: self.ping_interval,
            guards: self.guards,
            connections: std::sync::atomic::AtomicUsize::new(0),
            stop,
        });
        let mut router = Router::new();
        for prefix in prefixes {
            router = router
                .route(
                    &format!("{prefix}{}", self.health_path),
                    get(health_handler),
                )
                .route(
                    &format!("{prefix}{}", self.events_path),
                    get(events_handler),
                );
            if let Some(path) = &metrics_path {
                router = router.route(&format!("{prefix}{path}"), get(metrics_handler));
            }
        }
        router.with_state(shared)
    }

    /// The routes as an axum [`Router`], to merge into an app of your own.
    pub fn router(self) -> Router {
        // Nothing stops it: WebSocket clients stay until they leave.
        self.build(None)
    }

    /// Serves on `listener` until `shutdown` completes, then closes WebSocket clients (close
    /// frame `1001 going away`) and finishes in-flight requests.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let router = self.build(Some(stop_rx));
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stop_tx.send(true);
            })
            .await
    }
}

async fn health_handler(State(shared): State<Arc<Shared>>) -> Response {
    let timeout = shared.check_timeout;
    let results =
        futures_util::future::join_all(shared.checks.iter().map(|(name, probe)| async move {
            let outcome = match tokio::time::timeout(timeout, probe.probe()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
            };
            (name.as_str(), outcome)
        }))
        .await;
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let checks: Vec<serde_json::Value> = results
        .into_iter()
        .map(|(name, r)| match r {
            Ok(()) => serde_json::json!({ "name": name, "ok": true }),
            Err(e) => serde_json::json!({ "name": name, "ok": false, "error": e }),
        })
        .collect();
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": checks,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

async fn metrics_handler() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        crate::metrics::global().render(),
    )
        .into_response()
}

async fn events_handler(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    use std::sync::atomic::Ordering;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let trusted = origin
            .to_str()
            .map(|o| shared.trusted_origins.iter().any(|t| t == o))
            .unwrap_or(false);
        if !trusted {
            tracing::info!(origin = ?origin, "WebSocket refused: untrusted Origin");
            return (StatusCode::FORBIDDEN, "origin not trusted\n").into_response();
        }
    }
    if let Some(check) = &shared.guards.authenticate {
        if let Err(why) = check(&headers) {
            tracing::info!(why, "WebSocket refused: not authenticated");
            return (StatusCode::UNAUTHORIZED, "not authenticated\n").into_response();
        }
    }
    let max = shared.guards.max_connections;
    let taken = shared
        .connections
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < max).then_some(n + 1)
        });
    if taken.is_err() {
        tracing::warn!(max, "WebSocket refused: connection cap reached");
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n").into_response();
    }
    let slot = Slot(shared.clone());
    let rx = shared.events.subscribe();
    let limit = shared.guards.max_frame_bytes;
    ws.max_frame_size(limit)
        .max_message_size(limit)
        .on_upgrade(move |socket| async move {
            push_events(socket, rx, &slot.0).await;
            drop(slot);
        })
}

/// One of the edge's WebSocket connections; frees its place when dropped.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Pushes events to one client until it leaves, goes silent past the pong timeout, the edge
/// stops, or a send fails.
async fn push_events(
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<Arc<str>>,
    shared: &Shared,
) {
    let mut stop = shared.stop.clone();
    let mut ping = tokio::time::interval(shared.ping_interval);
    ping.tick().await;
    let silence = shared.guards.pong_timeout;
    let mut heard = tokio::time::Instant::now();
    loop {
        let deaf = tokio::time::sleep_until(heard + silence);
        tokio::select! {
            event = rx.recv() => {
                let text = match event {
                    Ok(text) => text.to_string(),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        serde_json::json!({ "lagged": n }).to_string()
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                // Too big a frame is an error here: the connection ends.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // Pings are answered by the library; any frame shows the client is there.
                Some(Ok(_)) => heard = tokio::time::Instant::now(),
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            _ = deaf => {
                tracing::info!(silent_ms = silence.as_millis() as u64, "WebSocket client dropped: no pong");
                break;
            }
            _ = stopped(&mut stop) => break,
        }
    }
    let _ = socket
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: 1001,
            reason: "going away".into(),
        })))
        .await;
}

/// The Kafka side of the edge (features `edge` + `kafka`): readiness probes and a feed of the
/// service's events.
#[cfg(feature = "kafka")]
pub mod kafka {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::producer::{BaseProducer, Producer};
    use rdkafka::{Message, Offset, TopicPartitionList};

    use super::{Events, Probe};
    use crate::kafka::{KafkaConfig, ServerHandle};
    use crate::transport::BoxFuture;
    use crate::{MethodKind, RpcError, ServiceContract};

    impl Probe for ServerHandle {
        fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
            let ready = self.is_ready();
            let problem = self.problem();
            let group = self.group().to_owned();
            Box::pin(async move {
                if let Some(problem) = problem {
                    Err(format!("consumer group {group}: {problem}"))
                } else if ready {
                    Ok(())
                } else {
                    Err(format!(
                        "consumer group {group}: no partitions, or their positions are not resolved yet"
                    ))
                }
            })
        }
    }

    /// Whether the brokers answer a metadata request (with the service's own settings: brokers,
    /// SASL, TLS), within a short timeout; the answer is cached for a second so health checks
    /// do not load the cluster.
    pub struct BrokerProbe {
        producer: Arc<BaseProducer>,
        topic: Option<String>,
        timeout: Duration,
        cache: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
    }

    impl std::fmt::Debug for BrokerProbe {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("BrokerProbe")
                .field("topic", &self.topic)
                .finish_non_exhaustive()
        }
    }

    impl BrokerProbe {
        /// A probe asking for the metadata of `contract`'s first topic.
        pub fn new(config: &KafkaConfig, contract: &ServiceContract) -> Result<Self, RpcError> {
            let mut probe_config = config.common();
            probe_config.set("client.id", format!("{}-probe", config.client_group()));
            config.librdkafka.apply(&mut probe_config);
            let producer: BaseProducer = probe_config
                .create()
                .map_err(|e| crate::kafka::unavailable("cannot create a Kafka probe", e))?;
            Ok(BrokerProbe {
                producer: Arc::new(producer),
                topic: contract.methods.first().map(|m| m.pattern.to_owned()),
                timeout: Duration::from_millis(1500),
                cache: tokio::sync::Mutex::new(None),
            })
        }
    }

    impl Probe for BrokerProbe {
        fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async move {
                let mut cache = self.cache.lock().await;
                if let Some((at, result)) = cache.as_ref() {
                    if at.elapsed() < Duration::from_secs(1) {
                        return result.clone();
                    }
                }
                let producer = self.producer.clone();
                let topic = self.topic.clone();
                let timeout = self.timeout;
                let result = tokio::task::spawn_blocking(move || {
                    producer
                        .client()
                        .fetch_metadata(topic.as_deref(), timeout)
                        .map_err(|e| format!("brokers unreachable: {e}"))
                        .and_then(|m| {
                            if m.brokers().is_empty() {
                                Err("no brokers in metadata".to_owned())
                            } else {
                                Ok(())
                            }
                        })
                })
                .await
                .unwrap_or_else(|e| Err(format!("probe task failed: {e}")));
                *cache = Some((Instant::now(), result.clone()));
                result
            })
        }
    }

    /// Reads every event topic of a contract (`option (axion.method).event`) in **no consumer
    /// group**, from the end, on every partition, and publishes each event to an [`Events`]
    /// hub: every instance of a service pushes every event to its own WebSocket clients, even
    /// though the service's consumer group splits the events among instances. Stops on drop
    /// of the last clone.
    #[derive(Clone)]
    pub struct EventFeed {
        inner: Arc<FeedInner>,
    }

    struct FeedInner {
        task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    }

    impl Drop for FeedInner {
        fn drop(&mut self) {
            if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
                task.abort();
            }
        }
    }

    impl std::fmt::Debug for EventFeed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("EventFeed")
                .field("assigned", &self.is_assigned())
                .finish()
        }
    }

    impl EventFeed {
        /// Assigns every partition of `contract`'s event topics at their end offsets, then
        /// publishes what arrives. Fails with `UNAVAILABLE` if the brokers cannot be reached
        /// or an event topic does not exist.
        pub async fn start(
            config: &KafkaConfig,
            contract: &'static ServiceContract,
            events: Events,
        ) -> Result<EventFeed, RpcError> {
            let mut feed_config = config.common();
            feed_config
                .set("client.id", format!("{}-edge", config.client_group()))
                // Needed by librdkafka, never joined: partitions are assigned directly.
                .set("group.id", format!("{}-edge", config.client_group()))
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "false")
                .set(
                    "fetch.wait.max.ms",
                    config.fetch_wait.as_millis().to_string(),
                );
            config.librdkafka.apply(&mut feed_config);
            let consumer: StreamConsumer = feed_config
                .create()
                .map_err(|e| crate::kafka::unavailable("cannot create a Kafka consumer", e))?;
            let consumer = Arc::new(consumer);
            let topics: Vec<(&'static str, &'static str)> = contract
                .methods
                .iter()
                .filter(|m| m.kind == MethodKind::Event)
                .map(|m| (m.pattern, m.rpc))
                .collect();
            let timeout = config.request_timeout;
            let c = consumer.clone();
            let wanted: Vec<&'static str> = topics.iter().map(|(t, _)| *t).collect();
            let tpl = tokio::task::spawn_blocking(move || assignment(&c, &wanted, timeout))
                .await
                .map_err(|e| RpcError::internal(format!("metadata task failed: {e}")))??;
            consumer
                .assign(&tpl)
                .map_err(|e| crate::kafka::unavailable("cannot read the event topics", e))?;
            tracing::debug!(partitions = tpl.count(), "event feed assigned");
            let inner = Arc::new(FeedInner {
                task: std::sync::Mutex::new(None),
            });
            let task = tokio::spawn(async move {
                loop {
                    let msg = match consumer.recv().await {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(error = %e, "event feed error");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let Some(&(pattern, rpc)) = topics.iter().find(|(t, _)| *t == msg.topic())
                    else {
                        continue;
                    };
                    let data = match msg.payload().map(serde_json::from_slice) {
                        Some(Ok(value)) => value,
                        None => serde_json::Value::Null,
                        Some(Err(e)) => {
                            tracing::warn!(pattern, error = %e, "event is not JSON; not pushed");
                            continue;
                        }
                    };
                    events.publish_json(rpc, pattern, data);
                }
            });
            *inner.task.lock().expect("feed task") = Some(task);
            Ok(EventFeed { inner })
        }

        /// Whether the feed holds its partitions and is reading them (assigned directly, they
        /// are never revoked; false only if its reader stopped).
        pub fn is_assigned(&self) -> bool {
            self.inner
                .task
                .lock()
                .map(|t| t.as_ref().is_some_and(|t| !t.is_finished()))
                .unwrap_or(false)
        }
    }

    impl Probe for EventFeed {
        fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
            let ok = self.is_assigned();
            Box::pin(async move {
                if ok {
                    Ok(())
                } else {
                    Err("event feed not assigned".to_owned())
                }
            })
        }
    }

    /// Every partition of `topics` at its end offset.
    fn assignment(
        consumer: &StreamConsumer,
        topics: &[&str],
        timeout: Duration,
    ) -> Result<TopicPartitionList, RpcError> {
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), timeout)
                .map_err(|e| crate::kafka::unavailable("brokers unreachable", e))?;
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == *topic)
                .map(|t| t.partitions().len())
                .unwrap_or(0);
            if partitions == 0 {
                return Err(RpcError::unavailable(format!(
                    "event topic {topic} does not exist; create the contract's topics first (ensure_topics / axion-gen topics)"
                )));
            }
            for p in 0..partitions as i32 {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p, timeout)
                    .map_err(|e| crate::kafka::unavailable("cannot read an event topic", e))?;
                tpl.add_partition_offset(topic, p, Offset::Offset(high))
                    .map_err(|e| crate::kafka::unavailable("bad event partition", e))?;
            }
        }
        Ok(tpl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn start(edge: Edge) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(edge.serve(listener, std::future::pending()));
        addr
    }

    /// Sends `request` and returns the response head and what body arrived within 300 ms.
    async fn raw(addr: std::net::SocketAddr, request: String) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut out = Vec::new();
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn get(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    }

    fn upgrade(path: &str, origin: Option<&str>) -> String {
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n"
        )
    }

    #[tokio::test]
    async fn health_is_ready_only_when_every_check_passes() {
        let ready = start(Edge::new(&[]).check("a", probe_fn(|| async { Ok(()) }))).await;
        let r = raw(ready, get("/health")).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("application/json"), "{r}");
        assert!(
            r.contains(r#"{"checks":[{"name":"a","ok":true}],"status":"ready"}"#),
            "{r}"
        );

        let edge = Edge::new(&[])
            .check("a", probe_fn(|| async { Ok(()) }))
            .check("b", probe_fn(|| async { Err("broker down".to_owned()) }))
            .check(
                "slow",
                probe_fn(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(())
                }),
            )
            .check_timeout(Duration::from_millis(50));
        let not_ready = start(edge).await;
        let r = raw(not_ready, get("/health")).await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.contains(r#""status":"unavailable""#), "{r}");
        assert!(
            r.contains(r#"{"error":"broker down","name":"b","ok":false}"#),
            "{r}"
        );
        assert!(
            r.contains(r#"{"error":"no answer within 50 ms","name":"slow","ok":false}"#),
            "{r}"
        );
    }

    #[tokio::test]
    async fn websocket_refuses_untrusted_origins_and_pushes_events() {
        let edge = Edge::new(&["https://app.example"])
            .health_path("/hz")
            .path_prefix("/graph/");
        let events = edge.hub().clone();
        let addr = start(edge).await;
        for path in ["/hz", "/graph/hz"] {
            assert!(
                raw(addr, get(path)).await.starts_with("HTTP/1.1 200"),
                "{path}"
            );
        }
        assert!(raw(addr, get("/health")).await.starts_with("HTTP/1.1 404"));
        let r = raw(addr, upgrade("/events", Some("https://evil.example"))).await;
        assert!(r.starts_with("HTTP/1.1 403"), "{r}");
        // Near misses are untrusted too: exact scheme://host[:port] only.
        for origin in ["http://app.example", "https://app.example:8443", "null"] {
            let r = raw(addr, upgrade("/events", Some(origin))).await;
            assert!(r.starts_with("HTTP/1.1 403"), "{origin}: {r}");
        }
        for (path, origin) in [
            ("/events", Some("https://app.example")),
            ("/graph/events", None),
        ] {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(upgrade(path, origin).as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            assert_eq!(events.clients(), 1);
            events.publish_json("Made", "p.made", serde_json::json!({ "x": 1 }));
            // One unmasked text frame (server to client): 0x81, length, payload.
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(buf[0], 0x81);
            let len = buf[1] as usize;
            let text = std::str::from_utf8(&buf[2..2 + len]).unwrap();
            assert_eq!(n, 2 + len);
            assert_eq!(
                text,
                r#"{"data":{"x":1},"event":"Made","pattern":"p.made"}"#
            );
            drop(s);
            // The edge notices the client left (on its next send) and unsubscribes.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while events.clients() > 0 && std::time::Instant::now() < deadline {
                events.publish_json("Ping", "p", serde_json::Value::Null);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(events.clients(), 0);
        }
    }
}
