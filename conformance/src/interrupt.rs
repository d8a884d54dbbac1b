//! An interrupted run (SIGINT, SIGTERM, SIGHUP): everything it started is killed, also processes
//! that left its process groups (the runner is their subreaper), its scratch directory is removed,
//! and the partial table is printed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_harness::reaper;
use nix::sys::signal::Signal;

use crate::claims::Settings;
use crate::report::Report;

/// Who ends the run: nobody yet, the main thread (all scenarios done), or the interrupt handler.
static END: AtomicU8 = AtomicU8::new(RUNNING);
const RUNNING: u8 = 0;
const NORMAL: u8 = 1;
const INTERRUPTED: u8 = 2;

/// Called by the main thread once the scenarios are done, before it kills what is left and prints
/// its table. If a shutdown signal came first, the handler owns the end of the run (it is killing
/// what the run started, which can end a scenario early, e.g. an instance "killed by SIGKILL", and
/// will print the partial table and exit 128 + the signal): this thread then waits for that
/// instead of racing it with a normal end. A signal after this point is ignored: the run is ending.
pub fn claim_end() {
    if END.compare_exchange(RUNNING, NORMAL, Ordering::SeqCst, Ordering::SeqCst).is_err() {
        loop {
            std::thread::park();
        }
    }
}

/// Waits for the shutdown signals in a thread of their own (`signal-hook`: the handlers are reset
/// to the default in every process the run starts, as exec does for caught signals).
pub fn watch(report: Arc<Mutex<Report>>, settings: Arc<Settings>, started: Instant, scratch: PathBuf) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else { return };
    std::thread::spawn(move || {
        let Some(raw) = signals.forever().next() else { return };
        if END.compare_exchange(RUNNING, INTERRUPTED, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            return; // the scenarios are done and the main thread is ending the run
        }
        let name = Signal::try_from(raw).map(|s| s.as_str()).unwrap_or("a signal");
        reaper::kill_descendants(Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&scratch);
        // The scenario thread may hold the lock for a moment; a poisoned lock still has the rows.
        let mut report = report.lock().unwrap_or_else(|e| e.into_inner());
        report.aborted = Some(format!("not run: the run was interrupted by {name}"));
        let rows = crate::rows(&report, &settings);
        let code = crate::finish(&rows, &settings, started.elapsed(), Some(name));
        std::process::exit(if code == 0 { 1 } else { 128 + raw });
    });
}
