//! Server processes of the fault tests: killed if a test fails before it stops them, signalled,
//! and waited for through the files they write.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Kills the child if the test fails before it does.
pub struct Killer(pub Option<Child>);

impl Drop for Killer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits (bounded) until `path` exists; whether it does.
pub fn wait_for(path: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline && !path.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    path.exists()
}

/// Sends SIGTERM to a child process.
pub fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Prints the server processes' logs (`<dir>/log-<generation>`) when the test fails.
pub struct LogsOnFailure<'a> {
    /// Where the processes write.
    pub dir: &'a Path,
    /// Their generations, in the order to print.
    pub generations: &'a [u32],
}

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for generation in self.generations {
            let log = std::fs::read_to_string(self.dir.join(format!("log-{generation}")));
            eprintln!("---- server {generation} ----\n{}", log.unwrap_or_default());
        }
    }
}
