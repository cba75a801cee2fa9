//! A real Kafka-protocol broker (tansu, in-memory storage) on 127.0.0.1, one per test, killed
//! on drop. The tansu is the patched build of `vendor/tansu` that `scripts/setup.sh` installs. `TANSU_BIN` overrides where the binary is; else `PATH`, else `~/.cargo/bin`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Child,
    pub port: u16,
}

/// How a broker starts.
#[derive(Default)]
pub struct Options<'a> {
    /// `name:password` users: with any, the broker requires SASL (`--authentication`) and
    /// knows them for SCRAM-SHA-256 and -512 (the patched tansu's `TANSU_SCRAM_USERS`).
    pub users: &'a [&'a str],
    /// Certificate chain and private key (PEM): the listener speaks TLS (`--cert`, `--key`).
    pub tls: Option<(&'a Path, &'a Path)>,
}

impl Broker {
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts a broker on a free port and waits (bounded) until it accepts connections.
    pub fn start() -> Broker {
        Self::start_with_users(&[])
    }

    /// Like [`Broker::start`]; with `users` (`name:password`) the broker requires SASL
    /// (`--authentication`) and knows them for SCRAM-SHA-256 and -512 (the patched tansu's
    /// `TANSU_SCRAM_USERS`).
    pub fn start_with_users(users: &[&str]) -> Broker {
        Self::start_with(&Options {
            users,
            ..Options::default()
        })
    }

    /// A broker started with `options` (SASL users, TLS).
    pub fn start_with(options: &Options<'_>) -> Broker {
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if let Some(child) = spawn_on(port, Duration::from_secs(10), options) {
                return Broker { child, port };
            }
        }
        panic!("tansu did not start");
    }

    /// Kills the broker (SIGKILL, like a crash). In-memory storage: topics, offsets and
    /// groups are gone with it.
    #[allow(dead_code)] // used by the broker-fault tests only
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a fresh broker on the same port (bounded wait for the port to be free).
    #[allow(dead_code)] // used by the broker-fault tests only
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = spawn_on(self.port, Duration::from_secs(5), &Options::default()) {
                self.child = child;
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("tansu did not restart on port {}", self.port);
    }
}

/// The broker's log: `$TANSU_LOG_DIR/tansu-<port>.log` when that is set (with `RUST_LOG`, e.g.
/// `tansu_broker=debug`, to see the group coordinator), else nowhere.
fn log_to(port: u16) -> Stdio {
    let Some(dir) = std::env::var_os("TANSU_LOG_DIR") else {
        return Stdio::null();
    };
    let path = PathBuf::from(dir).join(format!("tansu-{port}.log"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    match file {
        Ok(file) => Stdio::from(file),
        Err(e) => panic!("cannot write {}: {e}", path.display()),
    }
}

/// Spawns tansu on `port`; `None` if it exits (port taken) or does not listen in `wait`.
fn spawn_on(port: u16, wait: Duration, options: &Options<'_>) -> Option<Child> {
    let bin = tansu_bin();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut command = Command::new(&bin);
    command
        .args([
            "broker",
            "--storage-engine",
            "memory://tansu/",
            "--listener-url",
        ])
        .arg(&url)
        .arg("--advertised-listener-url")
        .arg(&url);
    if !options.users.is_empty() {
        command
            .arg("--authentication")
            .env("TANSU_SCRAM_USERS", options.users.join(","));
    }
    if let Some((cert, key)) = options.tls {
        command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let mut child = command
        .stdout(log_to(port))
        .stderr(log_to(port))
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (install the patched build: bash scripts/setup.sh)",
                bin.display()
            )
        });
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None; // port taken
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("tansu");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cargo/bin/tansu")
}

/// A config for `broker` with fast fetches and a fresh client id.
pub fn config(broker: &Broker, client_id: &str) -> axion_runtime::kafka::KafkaConfig {
    axion_runtime::kafka::KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id(client_id)
        .fetch_wait_ms(5)
        .request_timeout_ms(10_000)
        .session_timeout_ms(6_000)
        .build()
        .unwrap()
}
