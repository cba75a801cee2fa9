//! The example service as a process (`examples/graph_service.rs`, built by `cargo test`):
//! SIGTERM stops it within its drain budget (`KAFKA_DRAIN_TIMEOUT_MS`), from signal to exit,
//! even with a client that holds an edge connection open mid-request (a slow client during a
//! deploy), and it exits 0.

mod support {
    #[path = "../../runtime/tests/support/broker.rs"]
    #[allow(dead_code)]
    pub mod broker;
}

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DRAIN_MS: u64 = 2_000;

/// `target/<profile>/examples/graph_service`, next to this test's own binary.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join("graph_service");
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples (or `cargo build --examples`)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn health(edge: &str) -> Option<String> {
    let mut s = TcpStream::connect(edge).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigterm_stops_the_example_within_its_drain_budget_despite_a_slow_client() {
    let broker = support::broker::Broker::start();
    let edge = format!("127.0.0.1:{}", free_port());
    let mut child = Killed(
        Command::new(example())
            .env("KAFKA_BROKERS", broker.address())
            .env("KAFKA_FETCH_WAIT_MS", "5")
            .env("KAFKA_DRAIN_TIMEOUT_MS", DRAIN_MS.to_string())
            .env("EDGE_ADDR", &edge)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if health(&edge).is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            break;
        }
        assert!(Instant::now() < deadline, "the example never got healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A client that sent half a request and waits: the edge's graceful stop would wait for it.
    let mut slow = TcpStream::connect(&edge).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no exit within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    eprintln!("example: exited {exited} {took:?} after SIGTERM (budget {DRAIN_MS} ms)");
    assert!(exited.success(), "{exited}");
    assert!(
        took <= Duration::from_millis(DRAIN_MS) + Duration::from_secs(1),
        "took {took:?}"
    );
    drop(slow);
}
