//! Loom models of the lifecycle core (`src/lifecycle.rs`): every interleaving, up to the
//! preemption bound, of the accept loop, connection tasks, signals, the grace timer and the
//! release. Invariants LIFE-1, LIFE-2 and LIFE-3 of `spec/invariants.md`.
//!
//! Built only with `--cfg gateway_loom` (then `crate::sync` is loom's): run `just loom`, i.e.
//! `RUSTFLAGS="--cfg gateway_loom" cargo test --lib --release lifecycle::loom_tests`, with
//! `LOOM_MAX_PREEMPTIONS` bounding the search. Inside the crate, so that the models reach its
//! `pub(crate)` items.
//!
//! The models mirror `src/server.rs`: the `on_drained` waker is a [`loom::sync::Notify`] (as the
//! server's is a `tokio::sync::Notify` with a stored permit); the releaser loops on
//! `try_release` and waits on that waker. A lost wake-up shows as a loom deadlock.
use super::{Lifecycle, Phase, Release, ShutdownStart};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Notify};
use loom::thread;

/// A lifecycle whose `on_drained` wakes `Notify` and counts its calls.
fn lifecycle() -> (Arc<Lifecycle>, Arc<Notify>, Arc<AtomicUsize>) {
    let drained = Arc::new(Notify::new());
    let wakes = Arc::new(AtomicUsize::new(0));
    let (d, w) = (Arc::clone(&drained), Arc::clone(&wakes));
    let life = Lifecycle::new(move || {
        w.fetch_add(1, SeqCst);
        d.notify();
    });
    (life, drained, wakes)
}

/// The server's release loop without a deadline: waits on the drained waker until released.
/// Returns the number of connections abandoned (must be 0 without a deadline).
fn release_when_drained(life: &Lifecycle, drained: &Notify) -> usize {
    loop {
        match life.try_release(false) {
            Release::Now { abandoned } => return abandoned,
            Release::NotYet => drained.wait(),
            Release::AlreadyReleased => panic!("released by someone else"),
        }
    }
}

/// LIFE-1, LIFE-3: with a connection open and a signal racing the server's own shutdown, the
/// listener is released exactly once, only after the connection task has finished, and the
/// shutdown begins exactly once.
#[test]
fn life1_release_waits_for_every_connection() {
    loom::model(|| {
        let (life, drained, _) = lifecycle();
        // `live` counts connection tasks still working; each decrements it before its guard drops,
        // so `live > 0` means the task is provably not finished.
        let live = Arc::new(AtomicUsize::new(0));
        let guard = Lifecycle::admit(&life).expect("serving admits");
        live.fetch_add(1, SeqCst);
        let conn = {
            let live = Arc::clone(&live);
            thread::spawn(move || {
                live.fetch_sub(1, SeqCst);
                drop(guard);
            })
        };
        let signal = {
            let life = Arc::clone(&life);
            thread::spawn(move || life.begin_shutdown())
        };
        let ours = life.begin_shutdown();
        let abandoned = release_when_drained(&life, &drained);
        assert_eq!(abandoned, 0);
        assert_eq!(live.load(SeqCst), 0, "released while a connection task was still working");
        assert_eq!(life.open_connections(), 0);
        assert!(Lifecycle::admit(&life).is_none(), "admitted after the release");
        assert_eq!(life.try_release(true), Release::AlreadyReleased);
        let theirs = signal.join().unwrap();
        assert_eq!([ours, theirs].iter().filter(|s| **s == ShutdownStart::Began).count(), 1, "shutdown began {ours:?} / {theirs:?}");
        conn.join().unwrap();
        assert_eq!(life.phase(), Phase::Released);
    });
}

/// LIFE-1: a connection that may never finish does not hold the listener past the deadline;
/// the release still happens exactly once, and connections are abandoned only when the
/// deadline has passed.
#[test]
fn life1_deadline_releases_once_abandoning_only_at_the_deadline() {
    loom::model(|| {
        let (life, drained, _) = lifecycle();
        let live = Arc::new(AtomicUsize::new(0));
        let deadline = Arc::new(AtomicBool::new(false));
        let guard = Lifecycle::admit(&life).expect("serving admits");
        live.fetch_add(1, SeqCst);
        let conn = {
            let live = Arc::clone(&live);
            thread::spawn(move || {
                live.fetch_sub(1, SeqCst);
                drop(guard);
            })
        };
        life.begin_shutdown();
        // The grace timer: fires once and wakes the releaser, like `sleep_until(deadline)`.
        let timer = {
            let (deadline, drained) = (Arc::clone(&deadline), Arc::clone(&drained));
            thread::spawn(move || {
                deadline.store(true, SeqCst);
                drained.notify();
            })
        };
        let (passed, abandoned) = loop {
            let passed = deadline.load(SeqCst);
            match life.try_release(passed) {
                Release::Now { abandoned } => break (passed, abandoned),
                Release::NotYet => drained.wait(),
                Release::AlreadyReleased => panic!("released twice"),
            }
        };
        if !passed {
            assert_eq!(abandoned, 0, "abandoned connections before the deadline");
            assert_eq!(live.load(SeqCst), 0, "released early while a connection task was working");
        }
        assert!(live.load(SeqCst) <= abandoned, "a working connection was not counted as abandoned");
        assert_eq!(life.try_release(true), Release::AlreadyReleased);
        conn.join().unwrap();
        timer.join().unwrap();
        // A guard dropped after the release neither underflows nor revives the lifecycle.
        assert_eq!(life.open_connections(), 0);
        assert_eq!(life.phase(), Phase::Released);
    });
}

/// LIFE-1: two callers racing to release (the drained path and the deadline path) get exactly
/// one `Release::Now` between them.
#[test]
fn life1_racing_releasers_release_exactly_once() {
    loom::model(|| {
        let (life, _, _) = lifecycle();
        let guard = Lifecycle::admit(&life).expect("serving admits");
        let conn = thread::spawn(move || drop(guard));
        life.begin_shutdown();
        let other = {
            let life = Arc::clone(&life);
            thread::spawn(move || life.try_release(true))
        };
        let ours = life.try_release(true);
        let theirs = other.join().unwrap();
        conn.join().unwrap();
        let nows = [ours, theirs].iter().filter(|r| matches!(r, Release::Now { .. })).count();
        assert_eq!(nows, 1, "released {ours:?} / {theirs:?}");
        assert_eq!(life.try_release(true), Release::AlreadyReleased);
    });
}

/// LIFE-2: a connection accepted while shutdown begins is either refused admission (and so
/// closed at once by the accept loop) or admitted *before* the shutdown began, and then it gets
/// the stop broadcast and finishes before the listener is released. Never left open.
#[test]
fn life2_connection_accepted_during_shutdown_is_never_left_open() {
    loom::model(|| {
        let (life, drained, _) = lifecycle();
        let begun = Arc::new(AtomicBool::new(false));
        // The stop broadcast of the server (a `watch` channel there): a flag plus a wake-up.
        let stop = Arc::new(AtomicBool::new(false));
        let stop_wake = Arc::new(Notify::new());
        let live = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let (life, begun, stop, stop_wake, live) =
                (Arc::clone(&life), Arc::clone(&begun), Arc::clone(&stop), Arc::clone(&stop_wake), Arc::clone(&live));
            thread::spawn(move || {
                let shutdown_seen = begun.load(SeqCst);
                let Some(guard) = Lifecycle::admit(&life) else { return false };
                assert!(!shutdown_seen, "admitted a connection after shutdown had begun");
                live.fetch_add(1, SeqCst);
                // Serve until the stop broadcast, then close.
                while !stop.load(SeqCst) {
                    stop_wake.wait();
                }
                live.fetch_sub(1, SeqCst);
                drop(guard);
                true
            })
        };
        // The server: shutdown begins, the stop broadcast goes out, then the release loop.
        life.begin_shutdown();
        begun.store(true, SeqCst);
        stop.store(true, SeqCst);
        stop_wake.notify();
        assert_eq!(release_when_drained(&life, &drained), 0);
        assert_eq!(live.load(SeqCst), 0, "released with an admitted connection still open");
        let _admitted = acceptor.join().unwrap();
        assert_eq!(life.open_connections(), 0);
    });
}

/// LIFE-3: two shutdown requests at once (two signals, or a signal racing an error) begin the
/// shutdown exactly once, the release loop is woken (no lost wake-up), and it releases once.
#[test]
fn life3_concurrent_shutdown_requests_begin_once() {
    loom::model(|| {
        let (life, drained, wakes) = lifecycle();
        let requests: Vec<_> = (0..2)
            .map(|_| {
                let life = Arc::clone(&life);
                thread::spawn(move || life.begin_shutdown())
            })
            .collect();
        // The release loop runs while the requests race; it waits until one of them drains.
        assert_eq!(release_when_drained(&life, &drained), 0);
        let began: Vec<ShutdownStart> = requests.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(began.iter().filter(|s| **s == ShutdownStart::Began).count(), 1, "{began:?}");
        assert_eq!(life.phase(), Phase::Released);
        assert_eq!(wakes.load(SeqCst), 1, "on_drained called {} times", wakes.load(SeqCst));
        assert_eq!(life.begin_shutdown(), ShutdownStart::AlreadyBegun);
    });
}

/// LIFE-3: a shutdown request racing the release loop of an already draining gateway (a second
/// signal arriving while the last connection finishes) changes nothing.
#[test]
fn life3_second_signal_during_drain_changes_nothing() {
    loom::model(|| {
        let (life, drained, _) = lifecycle();
        let guard = Lifecycle::admit(&life).expect("serving admits");
        assert_eq!(life.begin_shutdown(), ShutdownStart::Began);
        let conn = thread::spawn(move || drop(guard));
        let signal = {
            let life = Arc::clone(&life);
            thread::spawn(move || life.begin_shutdown())
        };
        assert_eq!(release_when_drained(&life, &drained), 0);
        assert_eq!(signal.join().unwrap(), ShutdownStart::AlreadyBegun);
        conn.join().unwrap();
        assert_eq!(life.phase(), Phase::Released);
    });
}
