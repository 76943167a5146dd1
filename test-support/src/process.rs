//! Child processes the tests and benchmarks start: stopping one politely, then for sure.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Sends `child` SIGTERM and waits up to `grace` for it to exit, then kills it; reaps it
/// either way, so no zombie or stray server outlives the caller.
pub fn terminate(child: &mut Child, grace: Duration) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
