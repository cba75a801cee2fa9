//! The typed caller that generated `*Client` types wrap.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument as _;

use crate::metadata::user_headers;
use crate::metrics::ClientOperation;
use crate::transport::{Call, Emit, RawReplies, Reply, ResponseStream, Transport};
use crate::{deadline, json, scope, trace, CallOptions, MethodContract, Response, RpcError};

/// Calls patterns over a [`Transport`] with JSON payloads and a per-call timeout.
///
/// Every request carries its deadline (`axion-deadline`: now + the timeout). Inside a
/// handler, calls wait no longer than the handler's own deadline, and one made after it
/// passed fails at once with `DEADLINE_EXCEEDED`.
///
/// Cheap to clone: clones share the transport.
#[derive(Clone)]
pub struct Client {
    transport: Arc<dyn Transport>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A request ready to go: its wait and headers.
struct Prepared {
    timeout: Duration,
    call: Call,
}

impl Client {
    /// The timeout of a call unless [`Client::with_timeout`] says otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A client over `transport`.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Client {
            transport,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Sets how long a call waits for its reply (and, for streams, for each next reply).
    ///
    /// # Panics
    /// If `timeout` is zero: a call that cannot wait can never succeed.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "a call timeout must be greater than zero"
        );
        self.timeout = timeout;
        self
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The transport underneath.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// The call's wait (its own or the client's timeout, capped by an inherited deadline) and
    /// its record.
    fn prepare<Req: Serialize + 'static>(
        &self,
        method: &'static MethodContract,
        request: &Req,
        options: CallOptions,
    ) -> Result<Prepared, RpcError> {
        let Some(reply_topic) = method.reply_topic else {
            return Err(RpcError::invalid_argument(format!(
                "{} is an event: emit it, nothing answers a call",
                method.pattern
            )));
        };
        let mut timeout = options.timeout.unwrap_or(self.timeout);
        let scope = scope::current();
        if let Some(inherited) = scope.as_ref().and_then(|s| s.deadline) {
            let left = deadline::remaining(inherited);
            if left.is_zero() {
                return Err(RpcError::deadline_exceeded(format!(
                    "the handler's deadline passed; {} not called",
                    method.pattern
                )));
            }
            timeout = timeout.min(left);
        }
        if timeout.is_zero() {
            return Err(RpcError::deadline_exceeded(format!(
                "no time left to call {}",
                method.pattern
            )));
        }
        let trace_room = trace::room();
        let mut headers = user_headers(
            &options.headers,
            deadline::HEADER_ROOM.0 + trace_room.0,
            deadline::HEADER_ROOM.1 + trace_room.1,
        );
        // A timeout too large for a date stamps no deadline (the caller waits "forever").
        if let Some(at) = SystemTime::now().checked_add(timeout) {
            headers.append(deadline::HEADER, deadline::format(at));
        }
        if crate::telemetry::enabled() {
            let parent = trace::outgoing(
                &options.headers,
                scope.as_ref().and_then(|s| s.trace.as_ref()),
            );
            trace::inject(&parent, &mut headers);
        }
        let call = Call {
            pattern: method.pattern,
            reply_topic,
            payload: json::encode(request)?,
            key: options.key,
            headers,
            timeout,
        };
        Ok(Prepared { timeout, call })
    }

    async fn replies(
        &self,
        pattern: &'static str,
        prepared: Prepared,
        operation: &ClientOperation,
    ) -> Result<(RawReplies, Duration), RpcError> {
        let timeout = prepared.timeout;
        operation.sending();
        match tokio::time::timeout(timeout, self.transport.send(prepared.call)).await {
            Ok(sent) => Ok((sent?, timeout)),
            Err(_) => Err(deadline_error(pattern, timeout)),
        }
    }

    /// Request/reply: sends `request` and waits for the reply. Like
    /// `lastValueFrom(client.send(...))` on a NestJS peer, a multi-message reply yields its
    /// last value.
    pub async fn unary<Req, Resp>(
        &self,
        method: &'static MethodContract,
        request: &Req,
    ) -> Result<Resp, RpcError>
    where
        Req: Serialize + 'static,
        Resp: DeserializeOwned + Default + 'static,
    {
        self.unary_with(method, request, CallOptions::default())
            .await
            .map(Response::into_inner)
    }

    /// Request/reply with per-call options; the reply comes with its record's headers.
    pub async fn unary_with<Req, Resp>(
        &self,
        method: &'static MethodContract,
        request: &Req,
        options: CallOptions,
    ) -> Result<Response<Resp>, RpcError>
    where
        Req: Serialize + 'static,
        Resp: DeserializeOwned + Default + 'static,
    {
        let operation = ClientOperation::start(method.pattern, false);
        let span = trace::send_span(method.pattern, &options.headers);
        let outcome = self
            .call_unary(method, request, options, &operation)
            .instrument(span)
            .await;
        operation.done(&outcome);
        outcome
    }

    async fn call_unary<Req, Resp>(
        &self,
        method: &'static MethodContract,
        request: &Req,
        options: CallOptions,
        operation: &ClientOperation,
    ) -> Result<Response<Resp>, RpcError>
    where
        Req: Serialize + 'static,
        Resp: DeserializeOwned + Default + 'static,
    {
        let prepared = self.prepare(method, request, options)?;
        // One deadline for the whole call: sending, and every reply of a multi-message answer.
        let now = tokio::time::Instant::now();
        // A timeout too large for a clock (u64::MAX ms) waits about forever instead.
        let deadline = now
            .checked_add(prepared.timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        let (mut replies, timeout) = self.replies(method.pattern, prepared, operation).await?;
        let mut last: Option<Reply> = None;
        loop {
            match tokio::time::timeout_at(deadline, replies.next()).await {
                Err(_) => return Err(deadline_error(method.pattern, timeout)),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(e),
                Ok(Some(Ok(reply))) => last = Some(reply),
            }
        }
        let Reply { payload, headers } = last.unwrap_or_default();
        Ok(Response::from_parts(headers, json::decode(&payload)?))
    }

    /// Server streaming: sends `request` and yields each reply as it arrives. The stream
    /// ends after the last reply, or with an error (the remote one, or
    /// `DEADLINE_EXCEEDED` when a reply takes longer than the timeout).
    pub async fn server_streaming<Req, Resp>(
        &self,
        method: &'static MethodContract,
        request: &Req,
    ) -> Result<ResponseStream<Resp>, RpcError>
    where
        Req: Serialize + 'static,
        Resp: DeserializeOwned + Default + Send + 'static,
    {
        self.server_streaming_with(method, request, CallOptions::default())
            .await
    }

    /// Server streaming with per-call options (the timeout bounds each wait for a reply). Its
    /// `messaging_client_operation_duration_seconds` ends when the request is sent.
    pub async fn server_streaming_with<Req, Resp>(
        &self,
        method: &'static MethodContract,
        request: &Req,
        options: CallOptions,
    ) -> Result<ResponseStream<Resp>, RpcError>
    where
        Req: Serialize + 'static,
        Resp: DeserializeOwned + Default + Send + 'static,
    {
        let operation = ClientOperation::start(method.pattern, false);
        let span = trace::send_span(method.pattern, &options.headers);
        let sent = async {
            let prepared = self.prepare(method, request, options)?;
            self.replies(method.pattern, prepared, &operation).await
        }
        .instrument(span)
        .await;
        operation.done(&sent);
        let (replies, timeout) = sent?;
        let pattern = method.pattern;
        let stream = futures_util::stream::unfold(Some(replies), move |state| async move {
            let mut replies = state?;
            match tokio::time::timeout(timeout, replies.next()).await {
                Err(_) => Some((Err(deadline_error(pattern, timeout)), None)),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some((Err(e), None)),
                Ok(Some(Ok(reply))) => Some((json::decode::<Resp>(&reply.payload), Some(replies))),
            }
        });
        Ok(Box::pin(stream))
    }

    /// Event: publishes `event`; resolves when the bus accepted it.
    pub async fn emit<Ev: Serialize + 'static>(
        &self,
        method: &'static MethodContract,
        event: &Ev,
    ) -> Result<(), RpcError> {
        self.emit_with(method, event, CallOptions::default()).await
    }

    /// Event with per-call options (key, headers; the timeout bounds the wait for the bus).
    pub async fn emit_with<Ev: Serialize + 'static>(
        &self,
        method: &'static MethodContract,
        event: &Ev,
        options: CallOptions,
    ) -> Result<(), RpcError> {
        let operation = ClientOperation::start(method.pattern, true);
        let span = trace::send_span(method.pattern, &options.headers);
        let outcome = self
            .send_event(method, event, options, &operation)
            .instrument(span)
            .await;
        operation.done(&outcome);
        outcome
    }

    async fn send_event<Ev: Serialize + 'static>(
        &self,
        method: &'static MethodContract,
        event: &Ev,
        options: CallOptions,
        operation: &ClientOperation,
    ) -> Result<(), RpcError> {
        let timeout = options.timeout.unwrap_or(self.timeout);
        let (more, more_bytes) = trace::room();
        let mut headers = user_headers(&options.headers, more, more_bytes);
        if crate::telemetry::enabled() {
            let scope = scope::current();
            let parent = trace::outgoing(
                &options.headers,
                scope.as_ref().and_then(|s| s.trace.as_ref()),
            );
            trace::inject(&parent, &mut headers);
        }
        let emit = Emit {
            pattern: method.pattern,
            payload: json::encode(event)?,
            key: options.key,
            headers,
        };
        operation.sending();
        match tokio::time::timeout(timeout, self.transport.emit(emit)).await {
            Ok(result) => result,
            Err(_) => Err(deadline_error(method.pattern, timeout)),
        }
    }
}

fn deadline_error(pattern: &str, timeout: Duration) -> RpcError {
    RpcError::deadline_exceeded(format!(
        "no reply on {pattern} within {} ms",
        timeout.as_millis()
    ))
}
