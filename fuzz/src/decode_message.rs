//! Fuzz body `decode_message`: Kafka headers and a payload through the real decoding path of a
//! generated service (tests/fixtures/edge_generated, every field kind): header reading and the
//! Kafka server's poison checks, JSON and protobuf decoding of the request type, and the
//! generated dispatcher over the in-memory transport. Shared by the fuzz
//! target and tests/fuzz_regressions.rs; the including crate provides `crate::edge_generated`.
//!
//! Input layout (raw bytes, so any input is valid): byte 0 picks the pattern (one of the
//! service's, or the rest of a garbage one), byte 1 the number of headers (mod 8); each header
//! is a key (length byte; a first byte below 0x10 picks a NestJS header name instead), a
//! value (tag byte: even = absent; then length byte and bytes); the rest is the payload.

use std::sync::Arc;
use std::time::Duration;

use axion_runtime::futures::StreamExt as _;
use axion_runtime::kafka::{dlq, headers};
use axion_runtime::prost::Message;
use axion_runtime::serde::de::DeserializeOwned;
use axion_runtime::serde::Serialize;
use axion_runtime::{
    json, Call, Handler as _, Incoming, Request, Response, ResponseStream, RpcError, Transport as _,
};
use rdkafka::message::{Header, OwnedHeaders};
use serde_json::Value;

use crate::edge_generated::edge::everything::v1 as e;
use crate::edge_generated::edge::legacy as l;
use crate::edge_generated::edge::r#type::v1 as k;

const NEST_HEADERS: [&str; 7] = [
    headers::CORRELATION_ID,
    headers::REPLY_TOPIC,
    headers::REPLY_PARTITION,
    headers::NEST_ERR,
    headers::NEST_IS_DISPOSED,
    axion_runtime::deadline::HEADER,
    "traceparent",
];

/// Runs one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let mut input = Reader(data);
    let pick = input.byte();
    let pairs = read_headers(&mut input);
    let methods = e::EVERYTHING_SERVICE_CONTRACT.methods;
    let pattern: Option<&'static str> = methods
        .get(usize::from(pick) % (methods.len() + 1))
        .map(|m| m.pattern);
    let garbage_pattern = String::from_utf8_lossy(input.take(usize::from(pick % 16))).into_owned();
    let payload = input.rest();

    let owned = check_headers(&pairs);
    if let Some(pattern) = pattern {
        check_codecs_for(pattern, payload);
    }
    // What the Kafka server does before dispatching: a poison message never reaches it.
    let Some(correlation_id) = check_poison(&owned, payload) else {
        return;
    };
    let metadata = headers::metadata(Some(&owned));
    let expected: Vec<(&str, &[u8])> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        metadata.iter().collect::<Vec<_>>(),
        expected,
        "every header, in order"
    );
    let incoming = Incoming {
        pattern: pattern.map_or(garbage_pattern, str::to_owned).into(),
        payload: payload.into(),
        correlation_id,
        headers: metadata,
        ..Incoming::default()
    };
    runtime().block_on(dispatch(pattern, incoming));
}

/// The service every input is dispatched to: answers from the request, and fails when the
/// request asks for it, with fuzzed text in the error.
#[derive(Default)]
struct Echo;

fn fail_if(text: &str) -> Result<(), RpcError> {
    match text.strip_prefix('!') {
        Some(rest) => Err(RpcError::invalid_argument(rest).with_detail("field", rest)),
        None => Ok(()),
    }
}

impl e::EverythingService for Echo {
    async fn nested(
        &self,
        request: Request<e::outer::middle::Inner>,
    ) -> Result<Response<e::outer::Middle>, RpcError> {
        let request = request.into_inner();
        let reply = e::outer::Middle {
            inner: Some(Box::new(request.clone())),
            inners: vec![request],
        };
        Ok(reply.into())
    }
    async fn grow(
        &self,
        request: Request<e::Tree>,
    ) -> Result<Response<ResponseStream<e::Tree>>, RpcError> {
        let request = request.into_inner();
        fail_if(&request.name)?;
        let items = vec![Ok(request.clone()), Ok(e::Tree::default()), Ok(request)];
        let stream = axion_runtime::response_stream(axion_runtime::futures::stream::iter(items));
        Ok(stream.into())
    }
    async fn shape(&self, _request: Request<e::Shapes>) -> Result<Response<e::Maps>, RpcError> {
        Ok(e::Maps::default().into())
    }
    async fn known(
        &self,
        request: Request<e::WellKnown>,
    ) -> Result<Response<e::WellKnown>, RpcError> {
        Ok(request.into_inner().into())
    }
    async fn arrange(&self, request: Request<e::Layout>) -> Result<Response<e::Layout>, RpcError> {
        // Fuzzed headers come back on the reply (the transport drops its own names).
        let headers = request.headers().clone();
        Ok(Response::from_parts(headers, request.into_inner()))
    }
    async fn legacy(
        &self,
        request: Request<l::Legacy>,
    ) -> Result<Response<l::legacy::Extra>, RpcError> {
        let request = request.into_inner();
        fail_if(&request.name)?;
        Ok(request.extra.unwrap_or_default().into())
    }
    async fn keywords(&self, request: Request<k::Self_>) -> Result<Response<k::Result>, RpcError> {
        let request = request.into_inner();
        fail_if(&request.r#type)?;
        let reply = k::Result {
            r#type: Some(k::result::Type::String(request.self_)),
        };
        Ok(reply.into())
    }
    async fn deprecated(&self, _request: Request<e::Old>) -> Result<Response<()>, RpcError> {
        Err(RpcError::failed_precondition("deprecated"))
    }
}

async fn dispatch(pattern: Option<&'static str>, incoming: Incoming) {
    let server = e::everything_service_server::EverythingServiceServer::new(Echo);
    match pattern {
        // A served pattern with a correlation id: a request through the in-memory transport.
        Some(pattern) if incoming.is_request() => {
            let transport = axion_runtime::MemoryTransport::new();
            transport.serve(server).expect("serve once");
            let call = Call {
                pattern,
                reply_topic: "unused.reply",
                payload: incoming.payload.to_vec(),
                key: None,
                headers: incoming.headers,
                timeout: Duration::from_secs(5),
            };
            let replies = transport.send(call).await.expect("a served pattern");
            check_replies(pattern, replies).await;
        }
        // An event, or a pattern nobody serves: the dispatcher itself.
        _ => {
            let shown = incoming.pattern.clone();
            let outcome: Vec<_> = server.handle(incoming).take(8).collect().await;
            for item in &outcome {
                match item {
                    // The dispatcher does not know requests from events: an event of a
                    // request-reply pattern yields a reply, which the Kafka server drops.
                    Ok(reply) => {
                        serde_json::from_slice::<Value>(&reply.payload)
                            .unwrap_or_else(|e| panic!("a reply on {shown} is not JSON: {e}"));
                    }
                    Err(e) => check_error(e),
                }
            }
            if pattern.is_none() {
                assert!(
                    matches!(outcome.as_slice(), [Err(e)] if e.message == axion_runtime::NO_HANDLER_MESSAGE),
                    "an unknown pattern gets NestJS's no-handler error: {outcome:?}"
                );
            }
        }
    }
}

/// Every reply decodes into the rpc's response type; an error ends the stream.
async fn check_replies(pattern: &str, mut replies: axion_runtime::RawReplies) {
    let mut count = 0usize;
    while let Some(item) = replies.next().await {
        count += 1;
        assert!(count <= 8, "too many replies on {pattern}");
        match item {
            Ok(reply) => check_reply(pattern, &reply.payload),
            Err(e) => {
                check_error(&e);
                assert!(replies.next().await.is_none(), "a reply after an error");
                return;
            }
        }
    }
    assert!(count > 0, "a request on {pattern} got no reply at all");
}

fn check_reply(pattern: &str, bytes: &[u8]) {
    use e::EVERYTHING_SERVICE_PATTERNS as P;
    fn reply<T: DeserializeOwned + Serialize + Default + 'static>(bytes: &[u8]) {
        json::decode::<T>(bytes).expect("a reply decodes into the response type");
    }
    match pattern {
        P::NESTED => reply::<e::outer::Middle>(bytes),
        P::GROW => reply::<e::Tree>(bytes),
        P::SHAPE => reply::<e::Maps>(bytes),
        P::KNOWN => reply::<e::WellKnown>(bytes),
        P::ARRANGE => reply::<e::Layout>(bytes),
        P::LEGACY => reply::<l::legacy::Extra>(bytes),
        P::KEYWORDS => reply::<k::Result>(bytes),
        _ => {
            serde_json::from_slice::<Value>(bytes).expect("a reply is JSON");
        }
    }
}

/// The `kafka_nest-err` value of an error is NestJS's shape, and reads back as the same error.
fn check_error(e: &RpcError) {
    let value = headers::error_value(e);
    if value == axion_runtime::NO_HANDLER_MESSAGE.as_bytes() {
        return;
    }
    let parsed: Value = serde_json::from_slice(&value).expect("the error header is JSON");
    let object = parsed.as_object().expect("the error header is an object");
    assert_eq!(
        object.get("status"),
        Some(&Value::from("error")),
        "{parsed}"
    );
    assert!(
        object.get("message").is_some_and(Value::is_string),
        "{parsed}"
    );
    assert_eq!(
        &RpcError::from_json(&value),
        e,
        "the error header reads back"
    );
}

fn check_codecs_for(pattern: &str, payload: &[u8]) {
    use e::EVERYTHING_SERVICE_PATTERNS as P;
    match pattern {
        P::NESTED => check_codecs::<e::outer::middle::Inner>(payload),
        P::GROW => check_codecs::<e::Tree>(payload),
        P::SHAPE => check_codecs::<e::Shapes>(payload),
        P::KNOWN => check_codecs::<e::WellKnown>(payload),
        P::ARRANGE => check_codecs::<e::Layout>(payload),
        P::LEGACY => check_codecs::<l::Legacy>(payload),
        P::KEYWORDS => check_codecs::<k::Self_>(payload),
        P::DEPRECATED => check_codecs::<e::Old>(payload),
        _ => {}
    }
}

/// JSON: what decodes re-encodes, and decodes again to the same JSON. Protobuf: what decodes
/// re-encodes and decodes again to an equal message (compared as JSON, so NaN and map order do
/// not matter); a decode error is an `INVALID_ARGUMENT` in NestJS's shape.
fn check_codecs<T>(payload: &[u8])
where
    T: Message + Default + Serialize + DeserializeOwned + 'static,
{
    match json::decode::<T>(payload) {
        Ok(value) => {
            let first = json::encode(&value).expect("a decoded message encodes");
            let again: T = json::decode(&first).expect("an encoded message decodes");
            let second = json::encode(&again).expect("a decoded message encodes");
            assert_eq!(as_json(&first), as_json(&second), "JSON round trip");
        }
        Err(e) => {
            assert_eq!(
                e.code(),
                Some(axion_runtime::codes::INVALID_ARGUMENT),
                "{e}"
            );
            check_error(&e);
        }
    }
    if let Ok(value) = T::decode(payload) {
        let bytes = value.encode_to_vec();
        let again = T::decode(bytes.as_slice()).expect("a re-encoded message decodes");
        assert_eq!(again.encoded_len(), bytes.len(), "protobuf round trip");
        let (a, b) = (json::encode(&value).ok(), json::encode(&again).ok());
        assert_eq!(
            a.as_deref().map(as_json),
            b.as_deref().map(as_json),
            "protobuf round trip"
        );
    }
}

fn as_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("encode writes JSON")
}

/// The server's poison checks: a verdict, or the correlation id (`None` inside: an event).
fn check_poison(owned: &OwnedHeaders, payload: &[u8]) -> Option<Option<String>> {
    const MAX_BYTES: usize = 512;
    // What the server reads a record's headers into.
    let read = headers::metadata(Some(owned));
    match dlq::check_payload(&read, payload, MAX_BYTES) {
        Err((reason, why)) => {
            assert!(!why.is_empty(), "{reason:?} without a reason");
            return None;
        }
        Ok(()) => assert!(payload.len() <= MAX_BYTES, "an oversized payload passed"),
    }
    match dlq::reply_to(&read) {
        Err((reason, why)) => {
            assert!(!why.is_empty(), "{reason:?} without a reason");
            None
        }
        Ok(None) => {
            let present = |key| headers::get(Some(owned), key).is_some_and(|v| !v.is_empty());
            assert!(!present(headers::CORRELATION_ID) && !present(headers::REPLY_TOPIC));
            Some(None)
        }
        Ok(Some(to)) => {
            assert!(
                (1..=249).contains(&to.topic.len())
                    && to
                        .topic
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "reply topic {:?} accepted",
                to.topic
            );
            assert!(!to.correlation_id.chars().any(char::is_control));
            assert!(to.partition.is_none_or(|p| p >= 0));
            assert_eq!(
                headers::text(Some(owned), headers::CORRELATION_ID).as_deref(),
                Some(to.correlation_id)
            );
            Some(Some(to.correlation_id.to_owned()))
        }
    }
}

/// Builds the headers and checks the runtime reads them like kafkajs: the last one wins, an
/// absent value reads as empty, text is lossy UTF-8.
fn check_headers(pairs: &[(String, Option<Vec<u8>>)]) -> OwnedHeaders {
    let mut owned = OwnedHeaders::new_with_capacity(pairs.len());
    for (key, value) in pairs {
        owned = owned.insert(Header {
            key: key.as_str(),
            value: value.as_deref(),
        });
    }
    let keys = NEST_HEADERS
        .iter()
        .copied()
        .chain(pairs.iter().map(|(k, _)| k.as_str()));
    for key in keys {
        let expected: Option<Vec<u8>> = pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone().unwrap_or_default());
        let got = headers::get(Some(&owned), key);
        assert_eq!(got, expected.as_deref(), "header {key:?}");
        assert_eq!(
            headers::text(Some(&owned), key),
            expected.map(|v| String::from_utf8_lossy(&v).into_owned()),
        );
    }
    owned
}

fn read_headers(input: &mut Reader<'_>) -> Vec<(String, Option<Vec<u8>>)> {
    let count = input.byte() % 8;
    (0..count)
        .map(|_| {
            let len = usize::from(input.byte());
            let raw = input.take(len);
            let key = match raw.first() {
                Some(&b) if b < 0x10 => {
                    NEST_HEADERS[usize::from(b) % NEST_HEADERS.len()].to_owned()
                }
                // rdkafka hands keys back as C strings: a NUL would end them early.
                _ => String::from_utf8_lossy(raw).replace('\0', "?"),
            };
            let value = (input.byte() % 2 == 1).then(|| {
                let len = usize::from(input.byte());
                input.take(len).to_vec()
            });
            (key, value)
        })
        .collect()
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }
    fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }
}

fn runtime() -> Arc<tokio::runtime::Runtime> {
    thread_local! {
        static RUNTIME: Arc<tokio::runtime::Runtime> = Arc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a tokio runtime"),
        );
    }
    RUNTIME.with(Arc::clone)
}
