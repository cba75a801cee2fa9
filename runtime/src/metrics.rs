//! Prometheus metrics of the runtime: the `metrics` crate's handles, recorded by
//! `metrics-exporter-prometheus` into one process-wide registry that the edge serves on
//! `GET /metrics` (feature `edge`) in the Prometheus text format. Named after OpenTelemetry's
//! messaging conventions.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `messaging_process_duration_seconds` | histogram | `messaging_destination_name`, `error_type` (failures) |
//! | `messaging_client_operation_duration_seconds` | histogram | `messaging_destination_name`, `messaging_operation_name` (`send`, `emit`), `error_type` (failures) |
//! | `messaging_client_sent_messages_total` | counter | `messaging_destination_name` |
//! | `messaging_client_consumed_messages_total` | counter | `messaging_destination_name` |
//! | `axion_messages_in_flight` | gauge | `messaging_destination_name` |
//! | `axion_retries_total` | counter | `messaging_destination_name` |
//! | `axion_dead_letters_total` | counter | `messaging_destination_name`, `reason` |
//! | `axion_consumer_lag` | gauge | `messaging_destination_name`, `messaging_destination_partition_id`, `messaging_consumer_group_name` |
//!
//! `error_type` is the error's code if it is one of [`crate::codes`] (`INTERNAL` for one
//! without a code, `_OTHER` for a code of a peer's own). The
//! registry is the runtime's own, not a global recorder; [`install_global_recorder`] makes it
//! the `metrics` crate's global recorder too, so a service's own `metrics::counter!(..)` calls
//! appear on the same page.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Key, Label, Recorder as _, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::{codes, RpcError};

const PROCESS: &str = "messaging_process_duration_seconds";
const OPERATION: &str = "messaging_client_operation_duration_seconds";
const SENT: &str = "messaging_client_sent_messages_total";
const CONSUMED: &str = "messaging_client_consumed_messages_total";
const IN_FLIGHT: &str = "axion_messages_in_flight";
const RETRIES: &str = "axion_retries_total";
const DEAD_LETTERS: &str = "axion_dead_letters_total";
const DEAD_LETTERS_REFUSED: &str = "axion_dead_letter_failures_total";
const BLOCKED: &str = "axion_handlers_blocking_total";
const LAG: &str = "axion_consumer_lag";

const DESTINATION: &str = "messaging_destination_name";
const ERROR_TYPE: &str = "error_type";

/// Bucket bounds of the duration histograms: 0.5 ms to 16 s, doubling.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048,
    4.096, 8.192, 16.384,
];

/// How often recorded histogram samples are folded into the page (bounds their memory when
/// nobody scrapes).
const UPKEEP: Duration = Duration::from_secs(5);

/// The runtime's metrics and the registry they are in.
pub struct Metrics {
    recorder: PrometheusRecorder,
    /// Handles of the success path per pattern, so the hot path builds no key.
    patterns: RwLock<HashMap<String, Arc<Pattern>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The metrics of one pattern on the success path.
pub(crate) struct Pattern {
    name: String,
    processed: Histogram,
    consumed: Counter,
    in_flight: Gauge,
    sent: Counter,
    sends: Histogram,
    emits: Histogram,
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let metrics = Metrics::new();
        let handle = metrics.recorder.handle();
        let upkeep = std::thread::Builder::new()
            .name("axion-metrics".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP);
                handle.run_upkeep();
            });
        if let Err(e) = upkeep {
            tracing::warn!(error = %e, "no metrics upkeep thread; histograms fold on scrape only");
        }
        metrics
    })
}

/// Makes the runtime's registry the `metrics` crate's global recorder, so `metrics::counter!`
/// and friends anywhere in the service land on the edge's `/metrics` too. Fails if another
/// global recorder is installed already.
pub fn install_global_recorder() -> Result<(), RecorderTaken> {
    metrics::set_global_recorder(&global().recorder).map_err(|_| RecorderTaken)
}

/// [`install_global_recorder`] failed: the `metrics` crate has a global recorder already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a global metrics recorder is installed already")]
pub struct RecorderTaken;

fn key(name: &'static str, labels: Vec<Label>) -> Key {
    Key::from_parts(name, labels)
}

fn meta() -> metrics::Metadata<'static> {
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

impl Metrics {
    fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .expect("bucket bounds are not empty")
            .build_recorder();
        let describe = [
            (PROCESS, Some(Unit::Seconds), "Time a handler took to process a message"),
            (OPERATION, Some(Unit::Seconds), "Time a call took to get its reply (send; a stream: until sent) or the bus's acknowledgement (emit)"),
            (SENT, None, "Requests and events sent"),
            (CONSUMED, None, "Messages a server consumed"),
            (IN_FLIGHT, None, "Messages being handled now"),
            (RETRIES, None, "Handler attempts repeated by the retry policy"),
            (DEAD_LETTERS, None, "Messages copied to their dead-letter topic"),
            (BLOCKED, None, "Handler polls that did not return within the handler timeout: handlers blocking their thread"),
            (DEAD_LETTERS_REFUSED, None, "Dead-letter copies the bus refused even without their payload (the record stays uncommitted, its partition paused)"),
            (LAG, None, "Messages waiting after the consumer group's committed offset, per partition"),
        ];
        for (name, unit, help) in describe {
            match name {
                PROCESS | OPERATION => recorder.describe_histogram(name.into(), unit, help.into()),
                IN_FLIGHT | LAG => recorder.describe_gauge(name.into(), unit, help.into()),
                _ => recorder.describe_counter(name.into(), unit, help.into()),
            }
        }
        Metrics {
            recorder,
            patterns: RwLock::default(),
        }
    }

    /// The page `GET /metrics` serves: every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder.register_counter(&key(name, labels), &meta())
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &meta())
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &meta())
    }

    pub(crate) fn pattern(&self, name: &str) -> Arc<Pattern> {
        if let Some(p) = self.patterns.read().expect("patterns").get(name) {
            return p.clone();
        }
        let destination = || vec![Label::new(DESTINATION, name.to_owned())];
        let operation = |op: &'static str| {
            vec![
                Label::new(DESTINATION, name.to_owned()),
                Label::new("messaging_operation_name", op),
            ]
        };
        let pattern = Arc::new(Pattern {
            name: name.to_owned(),
            processed: self.histogram(PROCESS, destination()),
            consumed: self.counter(CONSUMED, destination()),
            in_flight: self.gauge(IN_FLIGHT, destination()),
            sent: self.counter(SENT, destination()),
            sends: self.histogram(OPERATION, operation("send")),
            emits: self.histogram(OPERATION, operation("emit")),
        });
        self.patterns
            .write()
            .expect("patterns")
            .entry(name.to_owned())
            .or_insert(pattern)
            .clone()
    }

    pub(crate) fn consumed(&self, pattern: &str) {
        if crate::telemetry::enabled() {
            self.pattern(pattern).consumed.increment(1);
        }
    }

    pub(crate) fn retried(&self, pattern: &str) {
        if !crate::telemetry::enabled() {
            return;
        }
        self.counter(RETRIES, vec![Label::new(DESTINATION, pattern.to_owned())])
            .increment(1);
    }

    pub(crate) fn dead_lettered(&self, pattern: &str, reason: &'static str) {
        if !crate::telemetry::enabled() {
            return;
        }
        let labels = vec![
            Label::new(DESTINATION, pattern.to_owned()),
            Label::new("reason", reason),
        ];
        self.counter(DEAD_LETTERS, labels).increment(1);
    }

    /// A dead-letter copy of a message of `pattern` was refused for good, reduced copy included.
    pub(crate) fn dead_letter_refused(&self, pattern: &str, reason: &'static str) {
        if !crate::telemetry::enabled() {
            return;
        }
        let labels = vec![
            Label::new(DESTINATION, pattern.to_owned()),
            Label::new("reason", reason),
        ];
        self.counter(DEAD_LETTERS_REFUSED, labels).increment(1);
    }

    /// A handler of `pattern` blocks its thread past the handler timeout.
    pub(crate) fn blocked(&self, pattern: &str) {
        if !crate::telemetry::enabled() {
            return;
        }
        self.counter(BLOCKED, vec![Label::new(DESTINATION, pattern.to_owned())])
            .increment(1);
    }

    /// A handler the server stopped at its timeout after `seconds`: a processing that ended
    /// with `DEADLINE_EXCEEDED` (the dispatcher, whose future was dropped, records nothing).
    pub(crate) fn timed_out(&self, pattern: &str, seconds: f64) {
        if !crate::telemetry::enabled() {
            return;
        }
        let labels = vec![
            Label::new(DESTINATION, pattern.to_owned()),
            Label::new(ERROR_TYPE, codes::DEADLINE_EXCEEDED),
        ];
        self.histogram(PROCESS, labels).record(seconds);
    }

    pub(crate) fn lag(&self, topic: &str, partition: i32, group: &str, waiting: i64) {
        if !crate::telemetry::enabled() {
            return;
        }
        let labels = vec![
            Label::new(DESTINATION, topic.to_owned()),
            Label::new("messaging_destination_partition_id", partition.to_string()),
            Label::new("messaging_consumer_group_name", group.to_owned()),
        ];
        self.gauge(LAG, labels).set(waiting as f64);
    }
}

/// The `error_type` label: the error's code if it is one of [`codes`], `INTERNAL` without a
/// code, `_OTHER` for any other (a peer's codes must not grow the series without bound).
fn error_type(e: &RpcError) -> String {
    const KNOWN: [&str; 10] = [
        codes::INVALID_ARGUMENT,
        codes::NOT_FOUND,
        codes::ALREADY_EXISTS,
        codes::PERMISSION_DENIED,
        codes::FAILED_PRECONDITION,
        codes::INTERNAL,
        codes::UNAVAILABLE,
        codes::DEADLINE_EXCEEDED,
        codes::UNIMPLEMENTED,
        codes::UNAUTHENTICATED,
    ];
    match e.code() {
        None => codes::INTERNAL.to_owned(),
        Some(code) if KNOWN.contains(&code) => code.to_owned(),
        Some(_) => "_OTHER".to_owned(),
    }
}

/// One message being processed: in flight until dropped; [`Processing::done`] records the
/// duration. Records nothing with telemetry off.
pub(crate) struct Processing(Option<Timed>);

struct Timed {
    pattern: Arc<Pattern>,
    started: Instant,
}

impl Processing {
    pub(crate) fn start(pattern: &str) -> Self {
        if !crate::telemetry::enabled() {
            return Processing(None);
        }
        let pattern = global().pattern(pattern);
        pattern.in_flight.increment(1.0);
        Processing(Some(Timed {
            pattern,
            started: Instant::now(),
        }))
    }

    /// Records how long it took and how it ended.
    pub(crate) fn done(mut self, outcome: Result<(), &RpcError>) {
        let Some(timed) = self.0.take() else {
            return;
        };
        timed.pattern.in_flight.decrement(1.0);
        let seconds = timed.started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => timed.pattern.processed.record(seconds),
            Err(e) => {
                let labels = vec![
                    Label::new(DESTINATION, timed.pattern.name.clone()),
                    Label::new(ERROR_TYPE, error_type(e)),
                ];
                global().histogram(PROCESS, labels).record(seconds);
            }
        }
    }
}

impl Drop for Processing {
    /// Dropped unfinished (the handler was cancelled): no longer in flight.
    fn drop(&mut self) {
        if let Some(timed) = &self.0 {
            timed.pattern.in_flight.decrement(1.0);
        }
    }
}

/// A call or emit a client makes (nothing recorded with telemetry off).
pub(crate) struct ClientOperation(Option<Operation>);

struct Operation {
    pattern: Arc<Pattern>,
    emit: bool,
    started: Instant,
}

impl ClientOperation {
    pub(crate) fn start(pattern: &str, emit: bool) -> Self {
        if !crate::telemetry::enabled() {
            return ClientOperation(None);
        }
        let pattern = global().pattern(pattern);
        ClientOperation(Some(Operation {
            pattern,
            emit,
            started: Instant::now(),
        }))
    }

    /// The message goes to the transport now: counted as sent (a call refused before, with
    /// no time left or not encodable, is not).
    pub(crate) fn sending(&self) {
        if let Some(op) = &self.0 {
            op.pattern.sent.increment(1);
        }
    }

    pub(crate) fn done<T>(self, outcome: &Result<T, RpcError>) {
        let Some(op) = self.0 else {
            return;
        };
        let seconds = op.started.elapsed().as_secs_f64();
        match outcome {
            Ok(_) if op.emit => op.pattern.emits.record(seconds),
            Ok(_) => op.pattern.sends.record(seconds),
            Err(e) => {
                let operation = if op.emit { "emit" } else { "send" };
                let labels = vec![
                    Label::new(DESTINATION, op.pattern.name.clone()),
                    Label::new("messaging_operation_name", operation),
                    Label::new(ERROR_TYPE, error_type(e)),
                ];
                global().histogram(OPERATION, labels).record(seconds);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_cached_per_pattern_and_land_on_the_page() {
        let metrics = Metrics::new();
        let pattern = metrics.pattern("p.one");
        pattern.sends.record(0.01);
        pattern.consumed.increment(2);
        assert!(Arc::ptr_eq(&pattern, &metrics.pattern("p.one")));
        metrics.retried("p.one");
        let peer = RpcError::new("PROJECT_EXISTS_7f3a", "x");
        assert_eq!(error_type(&peer), "_OTHER");
        assert_eq!(error_type(&RpcError::not_found("x")), "NOT_FOUND");
        assert_eq!(error_type(&RpcError::message_only("x")), "INTERNAL");
        let page = metrics.render();
        for line in [
            r#"messaging_client_operation_duration_seconds_count{messaging_destination_name="p.one",messaging_operation_name="send"} 1"#,
            r#"messaging_client_consumed_messages_total{messaging_destination_name="p.one"} 2"#,
            r#"axion_retries_total{messaging_destination_name="p.one"} 1"#,
            "# HELP axion_retries_total Handler attempts repeated by the retry policy",
        ] {
            assert!(page.contains(line), "no {line:?} in\n{page}");
        }
    }
}
