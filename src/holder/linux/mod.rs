//! Who holds a port, the Linux way: the kernel's socket table (netlink `sock_diag`, else
//! `/proc/net/tcp{,6}`) and `/proc` (pids, command lines, stopped processes). Everything in the
//! crate that reads `/proc` or speaks netlink is in here.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use super::{Owner, Process};

pub(super) mod procfs;
pub(super) mod table;
#[cfg(test)]
mod tests;

use procfs::{command_line, holds_inode, is_stopped, pid_of_inode};
pub(crate) use procfs::{ephemeral_range, process_uid};
use table::{listener_in_tables, read_table, sock_diag, TcpRow};

/// A listening socket found in the kernel's table.
pub(super) type Listener = TcpRow;

/// The listening socket holding `addr` in `/proc/net/tcp{,6}`, or why there is none
/// ([`Owner::Unknown`] without `/proc`, else [`Owner::NoListener`]).
///
/// The table of `addr`'s own family is read first; the other one only when it could change the
/// answer of [`table::find_listener`] over both tables (an IPv4 address found in `/proc/net/tcp` wins over any
/// wildcard or mapped IPv6 listener; an IPv6 address must be found exactly in `/proc/net/tcp6`).
pub(super) fn find_listener(addr: SocketAddr) -> Result<Listener, Owner> {
    const V4: &str = "/proc/net/tcp";
    const V6: &str = "/proc/net/tcp6";
    if let Some(rows) = sock_diag::listeners(sock_diag::AF_INET, addr.port()) {
        let v6 = || sock_diag::listeners(sock_diag::AF_INET6, addr.port()).or_else(|| read_table(V6)).unwrap_or_default();
        return listener_in_tables(rows, v6, addr).ok_or(Owner::NoListener);
    }
    let v4 = match read_table(V4) {
        Some(rows) => rows,
        None if !Path::new(V4).exists() => return Err(Owner::Unknown),
        None => Vec::new(),
    };
    listener_in_tables(v4, || read_table(V6).unwrap_or_default(), addr).ok_or(Owner::NoListener)
}

/// The process holding the listening socket `row`: `hint` (the pid a gateway reported) is checked
/// first; otherwise, or if it does not hold the socket, every process is scanned.
pub(super) fn owner_of(row: &Listener, hint: Option<u32>, deadline: Instant) -> Owner {
    let pid = hint.filter(|&pid| holds_inode(pid, row.inode)).or_else(|| pid_of_inode(row.inode, deadline));
    match pid {
        Some(pid) => Owner::Found(Process { pid, uid: row.uid, command: command_line(pid), stopped: is_stopped(pid) }),
        None if Instant::now() >= deadline => Owner::OutOfTime { uid: row.uid },
        None => Owner::SocketOnly { uid: row.uid },
    }
}
