//! An interrupted run kills everything it started, also a process that moved to a session of its
//! own, removes its scratch directory, prints the partial table and exits 128 + the signal.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gateway_harness::proc::Proc;
use gateway_harness::reaper::descendants;
use nix::sys::signal::Signal;

#[test]
fn sigint_kills_every_descendant_and_prints_the_partial_table() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-conformance"));
    // The "implementation" starts a child that leaves the runner's process group and session, and
    // never gets ready. `setsid -w` waits for that child: without it, `setsid` (a group leader here)
    // forks and exits at once, and the runner could finish its table before the SIGINT arrives.
    cmd.args(["setsid -w sleep 600 {port}", "--deadline", "60s"]);
    let mut runner = Proc::spawn(cmd, Stdio::null(), false).expect("spawn the runner");
    let end = Instant::now() + Duration::from_secs(10);
    let started = loop {
        let pids = descendants(runner.pid());
        let sleeping =
            pids.iter().copied().find(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.starts_with("sleep")));
        if let Some(pid) = sleeping {
            break pid;
        }
        assert!(Instant::now() < end, "the runner started no instance");
        // Polling the process table for the instance; the deadline bounds it.
        std::thread::sleep(Duration::from_millis(5));
    };
    runner.signal(Signal::SIGINT).expect("SIGINT");
    let status = runner.wait(Duration::from_secs(10)).expect("the runner exits after SIGINT");
    let out = runner.stdout_rest(Duration::from_secs(5));
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(out.contains("interrupted by SIGINT") && out.contains("| CLI-1 |"), "{out}");
    let gone = std::fs::read_to_string(format!("/proc/{started}/stat")).map_or(true, |s| s.contains(") Z "));
    assert!(gone, "the instance in its own session (pid {started}) outlived the interrupted run");
    let scratch = std::env::temp_dir().join(format!("gateway-conformance-{}-0", runner.pid()));
    assert!(!scratch.exists(), "{} was left behind", scratch.display());
}
