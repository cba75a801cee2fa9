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
