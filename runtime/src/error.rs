//! The error a call fails with, shaped like NestJS's `RpcException` payload.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Well-known values of [`RpcError::code`]. Peers may send any other string.
pub mod codes {
    /// The request was malformed or failed validation.
    pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
    /// The addressed entity does not exist.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// The entity a client tried to create already exists.
    pub const ALREADY_EXISTS: &str = "ALREADY_EXISTS";
    /// The caller may not do this.
    pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
    /// The system is not in a state that allows the operation.
    pub const FAILED_PRECONDITION: &str = "FAILED_PRECONDITION";
    /// A bug or an unexpected failure on the serving side.
    pub const INTERNAL: &str = "INTERNAL";
    /// The service or the broker cannot be reached right now; retrying may help.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    /// No reply arrived within the caller's timeout.
    pub const DEADLINE_EXCEEDED: &str = "DEADLINE_EXCEEDED";
    /// The serving side does not handle this pattern.
    pub const UNIMPLEMENTED: &str = "UNIMPLEMENTED";
    /// The request has no valid credentials.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// A limit was reached (e.g. a caller left too many replies unread).
    pub const RESOURCE_EXHAUSTED: &str = "RESOURCE_EXHAUSTED";
    /// The operation was cut off by a concurrency conflict (e.g. a server stream run again by
    /// another server after part of it arrived); retrying the whole call may help.
    pub const ABORTED: &str = "ABORTED";
}

/// NestJS's reply to a pattern its server has no handler for, verbatim.
pub const NO_HANDLER_MESSAGE: &str =
    "There is no matching message handler defined in the remote service.";

/// NestJS's message for an error that was not an `RpcException`.
pub const INTERNAL_SERVER_ERROR_MESSAGE: &str = "Internal server error";

/// An error a remote call failed with.
///
/// On the wire it is the JSON object NestJS puts in the `kafka_nest-err` header:
/// `{"status":"error","code":"NOT_FOUND","message":"..."}`, plus any other fields the thrower
/// added (kept in [`RpcError::details`]). `throw new RpcException('text')` on a NestJS peer
/// arrives as `{"status":"error","message":"text"}` (no code).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// Always `"error"` for errors produced by NestJS or axion.
    #[serde(default = "default_status")]
    pub status: String,
    /// Machine-readable code, e.g. [`codes::NOT_FOUND`]. NestJS errors may have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Every other field of the error object, kept verbatim.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

fn default_status() -> String {
    "error".to_owned()
}

impl RpcError {
    /// An error with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        RpcError {
            status: default_status(),
            code: Some(code.into()),
            message: message.into(),
            details: Map::new(),
        }
    }

    /// An error with only a message, as NestJS's `new RpcException('text')` produces.
    pub fn message_only(message: impl Into<String>) -> Self {
        RpcError {
            status: default_status(),
            code: None,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// [`codes::INVALID_ARGUMENT`].
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_ARGUMENT, message)
    }
    /// [`codes::NOT_FOUND`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(codes::NOT_FOUND, message)
    }
    /// [`codes::ALREADY_EXISTS`].
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(codes::ALREADY_EXISTS, message)
    }
    /// [`codes::UNAUTHENTICATED`].
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(codes::UNAUTHENTICATED, message)
    }
    /// [`codes::PERMISSION_DENIED`].
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(codes::PERMISSION_DENIED, message)
    }
    /// [`codes::FAILED_PRECONDITION`].
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(codes::FAILED_PRECONDITION, message)
    }
    /// [`codes::INTERNAL`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL, message)
    }
    /// [`codes::UNAVAILABLE`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(codes::UNAVAILABLE, message)
    }
    /// [`codes::DEADLINE_EXCEEDED`].
    pub fn deadline_exceeded(message: impl Into<String>) -> Self {
        Self::new(codes::DEADLINE_EXCEEDED, message)
    }
    /// The error NestJS replies with when it has no handler for a pattern.
    pub fn no_handler() -> Self {
        Self::message_only(NO_HANDLER_MESSAGE)
    }

    /// Adds a detail field (kept next to `status`, `code` and `message` on the wire).
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// The code, if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Whether the error carries `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// The JSON text of the `kafka_nest-err` header.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| format!(r#"{{"status":"error","message":{:?}}}"#, self.message))
    }

    /// Parses a `kafka_nest-err` header, leniently: a peer's error is never "unreadable".
    ///
    /// NestJS may put any JSON there. A string, number or other scalar becomes the message of
    /// an error without a code. In an object, a numeric (or other non-string) `code` or
    /// `status` is kept as its JSON text (`5` becomes `"5"`); a `message` that is an array (what
    /// a validation pipe throws) becomes its items joined with `"; "`, the array itself kept in
    /// [`RpcError::details`] under `"messages"`; a top-level array is read the same way.
    pub fn from_json(text: &[u8]) -> Self {
        match serde_json::from_slice::<Value>(text) {
            Ok(Value::Object(map)) => Self::from_object(map),
            Ok(Value::String(s)) => Self::message_only(s),
            Ok(Value::Array(items)) => {
                Self::message_only(joined(&items)).with_detail(MESSAGES, Value::Array(items))
            }
            Ok(other) => Self::message_only(other.to_string()),
            Err(_) => Self::message_only(String::from_utf8_lossy(text).into_owned()),
        }
    }

    fn from_object(mut map: Map<String, Value>) -> Self {
        let status = text_of(map.remove("status")).unwrap_or_else(default_status);
        let code = text_of(map.remove("code"));
        let message = match map.remove("message") {
            Some(Value::Array(items)) => {
                let message = joined(&items);
                map.insert(MESSAGES.to_owned(), Value::Array(items));
                message
            }
            other => text_of(other).unwrap_or_default(),
        };
        RpcError {
            status,
            code,
            message,
            details: map,
        }
    }
}

/// The detail that keeps a peer's message array.
const MESSAGES: &str = "messages";

/// A field as text: a string as it is, `null` or absent as `None`, anything else as its JSON.
fn text_of(value: Option<Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// Items of a message array as one message.
fn joined(items: &[Value]) -> String {
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl fmt::Debug for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RpcError({})", self.to_json())
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for RpcError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nest_shapes_round_trip() {
        let e = RpcError::from_json(
            br#"{"status":"error","code":"PROJECT_EXISTS","message":"project alpha already exists","field":"name"}"#,
        );
        assert_eq!(e.code(), Some("PROJECT_EXISTS"));
        assert_eq!(e.details["field"], "name");
        let back: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(back["field"], "name");
        assert_eq!(back["status"], "error");

        let plain = RpcError::from_json(br#"{"status":"error","message":"text"}"#);
        assert_eq!(plain.code(), None);
        assert_eq!(plain.to_json(), r#"{"status":"error","message":"text"}"#);

        assert_eq!(RpcError::from_json(br#""boom""#).message, "boom");
        assert_eq!(RpcError::from_json(b"not json").message, "not json");
    }

    #[test]
    fn lenient_with_what_nest_peers_throw() {
        // `new RpcException({ code: 5, message: [...] })`, a class-validator pipe's shape.
        let e = RpcError::from_json(
            br#"{"status":"error","code":5,"message":["name must be a string","name should not be empty"],"error":"Bad Request"}"#,
        );
        assert_eq!(e.code(), Some("5"));
        assert_eq!(e.message, "name must be a string; name should not be empty");
        assert_eq!(
            e.details["messages"],
            serde_json::json!(["name must be a string", "name should not be empty"])
        );
        assert_eq!(e.details["error"], "Bad Request");
        let back: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(back["code"], "5");
        assert_eq!(back["messages"][1], "name should not be empty");

        let statused = RpcError::from_json(br#"{"status":400,"code":null,"message":{"a":1}}"#);
        assert_eq!(statused.status, "400");
        assert_eq!(statused.code(), None);
        assert_eq!(statused.message, r#"{"a":1}"#);

        let array = RpcError::from_json(br#"[{"property":"name"},"too short"]"#);
        assert_eq!(array.message, r#"{"property":"name"}; too short"#);
        assert_eq!(array.details["messages"][1], "too short");
        assert_eq!(RpcError::from_json(b"42").message, "42");
        assert_eq!(RpcError::from_json(b"{}").message, "");
    }

    #[test]
    fn constructors_set_codes() {
        assert!(RpcError::not_found("x").is(codes::NOT_FOUND));
        assert_eq!(
            RpcError::already_exists("x").to_string(),
            "ALREADY_EXISTS: x"
        );
    }
}
