//! Everything a run started, found and ended: the runner becomes a child subreaper, so that a
//! process that left its group or session (or whose parent died) is re-parented to it and stays
//! findable as a descendant; at the end, or on an interruption, every descendant is killed.

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

/// Makes this process a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`): orphans among its
/// descendants become its children rather than init's.
pub fn become_subreaper() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)?;
    Ok(())
}

/// The parent pid in a `/proc/<pid>/stat` line.
fn parent_of(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Every descendant of `root` (children, their children, ...), from `/proc`.
pub fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?)))
        .collect();
    let mut found = vec![root];
    let mut at = 0;
    while at < found.len() {
        let parent = found[at];
        found.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(pid, _)| *pid));
        at += 1;
    }
    found.remove(0);
    found
}

/// Continues and kills every descendant of this process, and reaps those re-parented to it, until
/// none is left or `deadline` has passed. Returns the pids signalled.
pub fn kill_descendants(deadline: std::time::Duration) -> Vec<u32> {
    let me = std::process::id();
    let end = std::time::Instant::now() + deadline;
    let mut signalled = Vec::new();
    loop {
        let pids = descendants(me);
        if pids.is_empty() || std::time::Instant::now() >= end {
            return signalled;
        }
        for &pid in &pids {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            if !signalled.contains(&pid) {
                signalled.push(pid);
            }
        }
        for &pid in &pids {
            let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL));
        }
        // Polling /proc until the killed processes are gone; the deadline bounds it.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_comes_after_the_command_name() {
        assert_eq!(parent_of("42 (a) b) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("garbage"), None);
    }
}
