//! One switch for what the runtime adds to every message beyond its context: W3C trace
//! propagation and Prometheus metrics. On unless `AXION_TELEMETRY` is `off` (or `false`, `0`)
//! or [`set_enabled`] says otherwise; meant for a service that wants neither, and for
//! measuring what they cost (`scripts/bench.sh` runs both ways).

use std::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether trace propagation and metrics are on.
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => {
            let off = std::env::var("AXION_TELEMETRY").is_ok_and(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "off" | "false" | "0"
                )
            });
            let state = if off { OFF } else { ON };
            // A concurrent set_enabled wins.
            let _ = STATE.compare_exchange(UNKNOWN, state, Ordering::Relaxed, Ordering::Relaxed);
            STATE.load(Ordering::Relaxed) == ON
        }
    }
}

/// Turns trace propagation and metrics on or off for the process (messages already being
/// handled keep what they started with).
pub fn set_enabled(on: bool) {
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
}
