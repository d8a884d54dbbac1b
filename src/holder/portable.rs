//! Who holds a port where this crate knows no way to ask the kernel (every system but Linux):
//! the listening process is reported as unknown ([`Owner::Unknown`]); the health question still
//! tells a gateway from anything else.

use std::net::SocketAddr;
use std::time::Instant;

use super::Owner;

/// A listening socket found in the kernel's table: never, here.
#[derive(Debug)]
pub enum Listener {}

/// The listening socket holding `addr`: unknown on this system.
pub fn find_listener(_addr: SocketAddr) -> Result<Listener, Owner> {
    Err(Owner::Unknown)
}

/// The process holding `listener` (there is none to ask about).
pub fn owner_of(listener: &Listener, _hint: Option<u32>, _deadline: Instant) -> Owner {
    match *listener {}
}

/// The ephemeral port range: unknown on this system.
pub fn ephemeral_range() -> Option<(u16, u16)> {
    None
}

/// The uid owning `pid`: unknown on this system.
pub fn process_uid(_pid: u32) -> Option<u32> {
    None
}
