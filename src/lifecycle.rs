//! The gateway's lifecycle, free of I/O: serving → draining → released.
//!
//! This is the in-process half of the lock's contract. It decides when connections are
//! admitted, when shutdown begins (once, however many signals arrive), and when the
//! listener — the lock — may be released: exactly once, and only after every connection
//! has finished or the grace deadline has passed. The async server ([`crate::server`])
//! drives it; loom models (`src/lifecycle/loom_tests.rs`, `--cfg gateway_loom`) check it
//! exhaustively, because nothing in here touches tokio or the network.

use crate::sync::{Arc, Mutex};

/// Where a gateway is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepting and serving connections.
    Serving,
    /// Shutdown has begun: no new connections are admitted; open ones are being closed.
    Draining,
    /// The listener has been released (or is being released right now). Terminal.
    Released,
}

/// What [`Lifecycle::begin_shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShutdownStart {
    /// This call began the shutdown.
    Began,
    /// Shutdown had already begun; nothing changed.
    AlreadyBegun,
}

/// What [`Lifecycle::try_release`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// The caller must release the listener now; `abandoned` connections were still open.
    Now {
        /// Connections still open, given up at the deadline.
        abandoned: usize,
    },
    /// Not yet: still serving, or connections are open and the deadline has not passed.
    NotYet,
    /// The listener was already released by an earlier call.
    AlreadyReleased,
}

type Waker = Box<dyn Fn() + Send + Sync>;

/// The lifecycle state machine shared by the accept loop and every connection task.
pub(crate) struct Lifecycle {
    state: Mutex<State>,
    on_drained: Waker,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    open: usize,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle").field("state", &*self.state.lock().unwrap()).finish()
    }
}

impl Lifecycle {
    /// A lifecycle in [`Phase::Serving`]. `on_drained` is called (outside the lock) whenever
    /// the gateway becomes drained: draining with no connection open. It may be called more
    /// than once; it must only wake whoever waits to call [`Lifecycle::try_release`].
    pub(crate) fn new(on_drained: impl Fn() + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Lifecycle { state: Mutex::new(State { phase: Phase::Serving, open: 0 }), on_drained: Box::new(on_drained) })
    }

    /// The current phase.
    pub(crate) fn phase(&self) -> Phase {
        self.state.lock().unwrap().phase
    }

    /// Connections admitted and not yet finished.
    pub(crate) fn open_connections(&self) -> usize {
        self.state.lock().unwrap().open
    }

    /// Admits a freshly accepted connection. `None` once shutdown has begun: the caller must
    /// close that connection at once, so that no connection accepted during shutdown is
    /// left open. The connection counts as open until the returned guard is dropped.
    ///
    /// An associated function (`Lifecycle::admit(&lifecycle)`), not a method: loom's `Arc`
    /// cannot be a method receiver on stable Rust, and the loom models build this very code.
    pub(crate) fn admit(this: &Arc<Self>) -> Option<ConnectionGuard> {
        let mut state = this.state.lock().unwrap();
        if state.phase != Phase::Serving {
            return None;
        }
        state.open += 1;
        Some(ConnectionGuard { lifecycle: Arc::clone(this) })
    }

    /// Begins the shutdown. Idempotent: only the first call changes anything, so two signals
    /// at once, or a signal racing an error, begin it once.
    pub(crate) fn begin_shutdown(&self) -> ShutdownStart {
        let drained = {
            let mut state = self.state.lock().unwrap();
            if state.phase != Phase::Serving {
                return ShutdownStart::AlreadyBegun;
            }
            state.phase = Phase::Draining;
            state.open == 0
        };
        if drained {
            (self.on_drained)();
        }
        ShutdownStart::Began
    }

    /// Decides whether the listener may be released. It may once shutdown has begun and either
    /// no connection is open or `deadline_passed`; the first such call gets [`Release::Now`]
    /// and every later call [`Release::AlreadyReleased`], so the listener is released exactly once.
    pub(crate) fn try_release(&self, deadline_passed: bool) -> Release {
        let mut state = self.state.lock().unwrap();
        match state.phase {
            Phase::Serving => Release::NotYet,
            Phase::Released => Release::AlreadyReleased,
            Phase::Draining if state.open == 0 || deadline_passed => {
                state.phase = Phase::Released;
                Release::Now { abandoned: state.open }
            }
            Phase::Draining => Release::NotYet,
        }
    }

    fn finish_connection(&self) {
        let drained = {
            let mut state = self.state.lock().unwrap();
            state.open -= 1;
            state.phase == Phase::Draining && state.open == 0
        };
        if drained {
            (self.on_drained)();
        }
    }
}

/// Marks one admitted connection as open; dropping it marks the connection finished.
#[must_use = "the connection counts as open until the guard is dropped"]
pub(crate) struct ConnectionGuard {
    lifecycle: Arc<Lifecycle>,
}

impl std::fmt::Debug for ConnectionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionGuard")
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.lifecycle.finish_connection();
    }
}

#[cfg(all(test, gateway_loom))]
mod loom_tests;

#[cfg(all(test, not(gateway_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting() -> (Arc<Lifecycle>, Arc<AtomicUsize>) {
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&wakes);
        (
            Lifecycle::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            }),
            wakes,
        )
    }

    #[test]
    fn release_waits_for_connections_then_happens_once() {
        let (life, wakes) = counting();
        let conn = Lifecycle::admit(&life).unwrap();
        assert_eq!(life.try_release(false), Release::NotYet);
        assert_eq!(life.begin_shutdown(), ShutdownStart::Began);
        assert_eq!(life.begin_shutdown(), ShutdownStart::AlreadyBegun);
        assert!(Lifecycle::admit(&life).is_none());
        assert_eq!(life.try_release(false), Release::NotYet);
        assert_eq!(wakes.load(Ordering::SeqCst), 0);
        drop(conn);
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert_eq!(life.try_release(false), Release::Now { abandoned: 0 });
        assert_eq!(life.try_release(true), Release::AlreadyReleased);
    }

    #[test]
    fn deadline_abandons_open_connections() {
        let (life, _) = counting();
        let _conn = Lifecycle::admit(&life).unwrap();
        life.begin_shutdown();
        assert_eq!(life.try_release(true), Release::Now { abandoned: 1 });
        assert_eq!(life.phase(), Phase::Released);
    }
}
