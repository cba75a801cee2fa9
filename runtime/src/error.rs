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

    /// Parses a `kafka_nest-err` header. NestJS may put any JSON there (a string, a number);
    /// what is not an error object becomes the message of one.
    pub fn from_json(text: &[u8]) -> Self {
        match serde_json::from_slice::<Value>(text) {
            Ok(Value::Object(map)) => serde_json::from_value(Value::Object(map))
                .unwrap_or_else(|e| Self::internal(format!("unreadable error object: {e}"))),
            Ok(Value::String(s)) => Self::message_only(s),
            Ok(other) => Self::message_only(other.to_string()),
            Err(_) => Self::message_only(String::from_utf8_lossy(text).into_owned()),
        }
    }
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
    fn constructors_set_codes() {
        assert!(RpcError::not_found("x").is(codes::NOT_FOUND));
        assert_eq!(
            RpcError::already_exists("x").to_string(),
            "ALREADY_EXISTS: x"
        );
    }
}
