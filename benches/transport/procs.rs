//! Servers in their own processes, so their peak RSS and CPU time can be read from /proc.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A server process; killed on drop.
pub struct ServerProcess {
    child: Child,
    allocs: mpsc::Receiver<u64>,
    /// A bench-binary server: it exits when asked on stdin.
    exits_on_request: bool,
}

impl ServerProcess {
    /// Spawns `cmd` and waits (bounded) for a stdout line containing `ready`.
    pub fn spawn(mut cmd: Command, what: &str) -> ServerProcess {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let (alloc_tx, allocs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("allocs ") {
                    let _ = alloc_tx.send(n.trim().parse().unwrap_or(0));
                } else if line.contains("ready") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(90)).is_err() {
            let _ = child.kill();
            panic!("{what} did not become ready");
        }
        ServerProcess {
            child,
            allocs,
            exits_on_request: false,
        }
    }

    /// Rust allocations of a bench-binary server so far (`None` for other servers).
    pub fn allocations(&mut self) -> Option<u64> {
        use std::io::Write as _;
        let stdin = self.child.stdin.as_mut()?;
        writeln!(stdin, "allocs").ok()?;
        stdin.flush().ok()?;
        self.allocs.recv_timeout(Duration::from_secs(5)).ok()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU seconds so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at state (field 3).
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime is field 14, stime 15: indexes 11 and 12 after the state field.
        (ticks(11) + ticks(12)) / clock_ticks()
    }

    /// Peak resident set size in MB (VmHWM).
    pub fn peak_rss_mb(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A bench-binary server first asked to exit (a normal exit, so a profiler wrapping it
        // — BENCH_SERVER_WRAPPER — writes its data), then SIGINT, then SIGKILL.
        if let Some(stdin) = self.child.stdin.as_mut().filter(|_| self.exits_on_request) {
            use std::io::Write as _;
            let _ = writeln!(stdin, "exit").and_then(|()| stdin.flush());
            if self.exited_within(Duration::from_secs(10)) {
                return;
            }
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        if self.exited_within(Duration::from_secs(5)) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.exited_within(Duration::from_secs(10));
    }
}

impl ServerProcess {
    /// Waits (bounded) for the process to end; whether it did.
    fn exited_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

fn clock_ticks() -> f64 {
    // USER_HZ, 100 on Linux.
    100.0
}

/// CPU seconds of a process (utime + stime from /proc/PID/stat).
fn cpu_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime is field 14, stime 15: indexes 11 and 12 after the state field.
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// CPU seconds of this process (the clients) so far.
pub fn self_cpu_seconds() -> f64 {
    cpu_of("self")
}

/// This bench binary again, as a server (`serve-generated` / `serve-raw`).
///
/// `BENCH_SERVER_WRAPPER` (e.g. `heaptrack -o /tmp/{mode}`, `{mode}` replaced by the mode) runs
/// it under a profiler; its CPU figures are then the wrapper's.
pub fn self_server(mode: &str, broker: &str, fetch_wait: usize, group: &str) -> ServerProcess {
    self_server_with(mode, broker, fetch_wait, group, &[])
}

/// [`self_server`] with more environment (the secure server's credentials).
pub fn self_server_with(
    mode: &str,
    broker: &str,
    fetch_wait: usize,
    group: &str,
    env: &[(&str, &str)],
) -> ServerProcess {
    let exe = std::env::current_exe().expect("current exe");
    let wrapper = std::env::var("BENCH_SERVER_WRAPPER")
        .unwrap_or_default()
        .replace("{mode}", mode);
    let mut words = wrapper.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(words).arg(exe);
            cmd
        }
        None => Command::new(exe),
    };
    cmd.args([mode, broker, &fetch_wait.to_string(), group]);
    cmd.envs(env.iter().copied());
    let mut server = ServerProcess::spawn(cmd, mode);
    server.exits_on_request = true;
    server
}

pub fn nest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/nest")
}

/// The NestJS GraphService server (tests/nest/dist/server.js).
pub fn nest_server(broker: &str, fetch_wait: usize, group: &str) -> ServerProcess {
    let script = nest_dir().join("dist/server.js");
    assert!(
        script.is_file(),
        "{} is missing: run bash scripts/setup.sh",
        script.display()
    );
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .current_dir(nest_dir())
        .env("KAFKA_BROKERS", broker)
        .env("FETCH_WAIT_MS", fetch_wait.to_string())
        .env("NEST_GROUP", group)
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1");
    ServerProcess::spawn(cmd, "NestJS server")
}
