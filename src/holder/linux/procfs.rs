//! What `/proc` tells about processes: who has a socket open, command lines, stopped processes,
//! the ephemeral port range. The parsers are free of I/O.
//!
//! Self-contained (only `std`): no other module of the crate is named here.

use std::path::Path;
use std::time::Instant;

/// The inode named by a `/proc/<pid>/fd/<n>` link target `socket:[12345]`.
pub(crate) fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Parses `/proc/sys/net/ipv4/ip_local_port_range` (`32768\t60999`).
pub(crate) fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let (lo, hi) = (it.next()?.ok()?, it.next()?.ok()?);
    (lo <= hi && it.next().is_none()).then_some((lo, hi))
}

/// Whether `pid` has a descriptor on socket `inode` (`/proc/<pid>/fd`).
pub(crate) fn holds_inode(pid: u32, inode: u64) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| std::fs::read_link(fd.path()).ok().as_deref().and_then(Path::to_str).and_then(socket_inode) == Some(inode))
}

/// The pid of a process with a descriptor on socket `inode` (scans `/proc/<pid>/fd`), the
/// lowest such pid, giving up at `deadline`.
pub(crate) fn pid_of_inode(inode: u64, deadline: Instant) -> Option<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    // Lowest pid first: when a socket is shared (a forked child, a child between fork and exec),
    // the parent is the holder.
    pids.sort_unstable();
    for pid in pids {
        if Instant::now() >= deadline {
            return None;
        }
        if holds_inode(pid, inode) {
            return Some(pid);
        }
    }
    None
}

/// The command line of `pid` for display: arguments joined by spaces, control characters
/// escaped, cut after 512 characters (OPS-9).
pub(crate) fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    crate::safe_text::command_line(&raw)
}

/// Whether `pid` is stopped (`T`) according to `/proc/<pid>/stat`.
pub(crate) fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(stat_state) == Some('T')
}

/// The state letter of a `/proc/<pid>/stat` line (after the parenthesised command name).
pub(crate) fn stat_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The uid owning `/proc/<pid>` (the process's real owner).
pub(crate) fn process_uid(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

/// The system's ephemeral port range (`/proc/sys/net/ipv4/ip_local_port_range`).
pub(crate) fn ephemeral_range() -> Option<(u16, u16)> {
    parse_port_range(&std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?)
}
