//! The real NestJS peer in `tests/nest/` (built by `scripts/setup.sh`: `npm ci && npm run build`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/nest")
}

fn script(name: &str) -> PathBuf {
    let path = dir().join("dist").join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the NestJS peer first (bash scripts/setup.sh, or cd tests/nest && npm ci && npm run build)",
        path.display()
    );
    path
}

/// A NestJS process whose stdout JSON lines are collected.
pub struct NestProcess {
    child: Child,
    pub lines: mpsc::Receiver<serde_json::Value>,
}

impl NestProcess {
    /// Waits (bounded) for a stdout line matching `pred`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return Some(v),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl Drop for NestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &str, args: &[&str], broker: &str, extra_env: &[(&str, &str)]) -> NestProcess {
    let mut cmd = Command::new("node");
    cmd.arg(script(name))
        .args(args)
        .current_dir(dir())
        .env("KAFKA_BROKERS", broker)
        .env(
            "FETCH_WAIT_MS",
            std::env::var("FETCH_WAIT_MS").unwrap_or_else(|_| "5".to_owned()),
        )
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("node must be installed");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    NestProcess { child, lines: rx }
}

/// Starts the NestJS GraphService server and waits until it is consuming.
pub fn server(broker: &str, group: &str) -> NestProcess {
    server_with(broker, group, &[])
}

/// [`server`] with more environment (`NEST_ROLE`, `AXION_OTEL`).
pub fn server_with(broker: &str, group: &str, env: &[(&str, &str)]) -> NestProcess {
    let mut all = vec![("NEST_GROUP", group)];
    all.extend_from_slice(env);
    let p = spawn("server.js", &[], broker, &all);
    p.wait_for(Duration::from_secs(60), |v| v["ready"] == true)
        .expect("NestJS server did not become ready");
    p
}

/// Runs the NestJS client with `args` to completion (bounded); returns its JSON lines and
/// exit status.
pub fn run_client(
    broker: &str,
    args: &[&str],
    group: &str,
    timeout: Duration,
) -> (Vec<serde_json::Value>, Option<i32>) {
    run_client_with(broker, args, group, timeout, &[])
}

/// [`run_client`] with more environment (`AXION_OTEL`).
pub fn run_client_with(
    broker: &str,
    args: &[&str],
    group: &str,
    timeout: Duration,
    env: &[(&str, &str)],
) -> (Vec<serde_json::Value>, Option<i32>) {
    let mut all = vec![("NEST_CLIENT_GROUP", group)];
    all.extend_from_slice(env);
    let mut p = spawn("client.js", args, broker, &all);
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    let status = loop {
        while let Ok(v) = p.lines.try_recv() {
            out.push(v);
        }
        if let Some(status) = p.child.try_wait().unwrap() {
            break status.code();
        }
        if std::time::Instant::now() > deadline {
            panic!("NestJS client {args:?} did not finish in {timeout:?}; output so far: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(50));
    while let Ok(v) = p.lines.try_recv() {
        out.push(v);
    }
    (out, status)
}
