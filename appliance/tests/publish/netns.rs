//! What the publish tests that build network namespaces share: `ip` run to
//! success, and child processes killed when their test ends.

use std::process::{Child, Command};

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `ip ARGS`; panics if it fails.
pub fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("running ip");
    assert!(
        status.success(),
        "ip {args:?} failed (the test needs root and iproute2)"
    );
}
