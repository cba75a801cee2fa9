//! The typed caller that generated `*Client` types wrap.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::transport::{Call, RawReplies, ResponseStream, Transport};
use crate::{json, MethodContract, RpcError};

/// Calls patterns over a [`Transport`] with JSON payloads and a per-call timeout.
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

    async fn replies<Req: Serialize + 'static>(
        &self,
        method: &'static MethodContract,
        request: &Req,
    ) -> Result<RawReplies, RpcError> {
        let call = Call {
            pattern: method.pattern,
            reply_topic: method.reply_topic,
            payload: json::encode(request)?,
            timeout: self.timeout,
        };
        match tokio::time::timeout(self.timeout, self.transport.send(call)).await {
            Ok(sent) => sent,
            Err(_) => Err(deadline(method.pattern, self.timeout)),
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
        let mut replies = self.replies(method, request).await?;
        let mut last: Option<Vec<u8>> = None;
        loop {
            match tokio::time::timeout(self.timeout, replies.next()).await {
                Err(_) => return Err(deadline(method.pattern, self.timeout)),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(e),
                Ok(Some(Ok(payload))) => last = Some(payload),
            }
        }
        json::decode(last.as_deref().unwrap_or_default())
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
        let replies = self.replies(method, request).await?;
        let timeout = self.timeout;
        let pattern = method.pattern;
        let stream = futures_util::stream::unfold(Some(replies), move |state| async move {
            let mut replies = state?;
            match tokio::time::timeout(timeout, replies.next()).await {
                Err(_) => Some((Err(deadline(pattern, timeout)), None)),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some((Err(e), None)),
                Ok(Some(Ok(payload))) => Some((json::decode::<Resp>(&payload), Some(replies))),
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
        let payload = json::encode(event)?;
        match tokio::time::timeout(self.timeout, self.transport.emit(method.pattern, payload)).await
        {
            Ok(result) => result,
            Err(_) => Err(deadline(method.pattern, self.timeout)),
        }
    }
}

fn deadline(pattern: &str, timeout: Duration) -> RpcError {
    RpcError::deadline_exceeded(format!(
        "no reply on {pattern} within {} ms",
        timeout.as_millis()
    ))
}
