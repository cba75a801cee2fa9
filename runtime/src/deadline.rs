//! Deadlines on the wire: header `axion-deadline`, the Unix epoch in milliseconds as ASCII
//! decimal. The caller stamps it; a server that dequeues a request past it does not run the
//! handler; calls a handler makes inherit it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header that carries a request's deadline.
pub const HEADER: &str = "axion-deadline";

/// Room a message's headers need for the deadline: the header and a 13-digit value.
pub(crate) const HEADER_ROOM: (usize, usize) = (1, HEADER.len() + 13);

/// Reads a deadline header; anything but a plain decimal number of milliseconds is no
/// deadline (a hostile or foreign header must not fail a request).
pub fn parse(value: &[u8]) -> Option<SystemTime> {
    if value.is_empty() || value.len() > 16 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ms: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// The header value of `deadline` (rounded up to the next millisecond: never earlier).
pub fn format(deadline: SystemTime) -> String {
    let since = deadline.duration_since(UNIX_EPOCH).unwrap_or_default();
    let ms = since.as_millis() + u128::from(since.subsec_nanos() % 1_000_000 != 0);
    ms.to_string()
}

/// Time left until `deadline` (zero once it passed).
pub fn remaining(deadline: SystemTime) -> Duration {
    deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::{format, parse};

    #[test]
    fn round_trips_and_rejects_anything_but_digits() {
        let at = UNIX_EPOCH + Duration::from_millis(1_764_633_600_123);
        assert_eq!(format(at), "1764633600123");
        assert_eq!(parse(b"1764633600123"), Some(at));
        assert_eq!(
            format(at + Duration::from_micros(1)),
            "1764633600124",
            "rounded up"
        );
        for bad in [
            &b""[..],
            b"-5",
            b"+5",
            b"12.5",
            b" 12",
            b"0x10",
            b"99999999999999999",
            b"\xff",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
