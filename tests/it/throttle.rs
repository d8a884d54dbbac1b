//! DOOR-8: failed authentication is throttled for everyone (every client is 127.0.0.1), measured
//! with a real attacker loop against a real gateway: attacker threads guess as fast as the gateway
//! lets them while a client with the right token keeps coming in. Prints the figures
//! (docs/README-protocol.md records them).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use nix::sys::signal::Signal;

/// The token of the attacked gateway: short, as a user might choose.
const SHORT_TOKEN: &str = "s3cret";
/// Attacker threads (each one connection at a time, as fast as it is answered).
const ATTACKERS: usize = 2;
/// Connects with the right token during the attack.
const LEGIT_CONNECTS: usize = 10;
/// How long the attack lasts (at least).
const ATTACK: Duration = Duration::from_secs(3);

/// One guess: open, read the challenge, send `connect` with a wrong token, read the refusal.
/// True if the gateway looked at the guess and refused it (AUTH_TOKEN_MISMATCH, close 1008).
fn guess(addr: SocketAddr, n: u64) -> bool {
    let mut ws = ws_connect(addr);
    ws_json(&mut ws);
    ws_send(&mut ws, &connect_frame(4, 4, Some(&format!("guess-{n}"))));
    let (frames, close) = ws_until_close(&mut ws);
    frames.first().is_some_and(|f| f["error"]["code"] == "AUTH_TOKEN_MISMATCH") && close == (1008, "unauthorized".to_string())
}

/// DOOR-8: under a sustained attack the wrong guesses looked at stay within BURST + 2 + RATE · t,
/// a client with the right token always gets in (its wait is printed), and the throttling is
/// logged once per window, never with a token.
#[test]
fn door8_attacker_loop_is_throttled_and_the_right_token_still_gets_in() {
    let gw = start_gateway_with_token_value(SHORT_TOKEN);
    let addr = gw.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|i| {
            let (stop, refused) = (Arc::clone(&stop), Arc::clone(&refused));
            std::thread::spawn(move || {
                let mut n = i as u64 * 1_000_000;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    if guess(addr, n) {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    // The right token, LEGIT_CONNECTS times one after another once the burst is spent.
    let mut waits = Vec::new();
    while waits.len() < LEGIT_CONNECTS {
        if refused.load(Ordering::SeqCst) < u64::from(BURST) {
            std::thread::yield_now();
            continue;
        }
        let mut ws = ws_connect(addr);
        ws_json(&mut ws);
        let sent = Instant::now();
        ws_send(&mut ws, &connect_frame(4, 4, Some(SHORT_TOKEN)));
        let hello = ws_json(&mut ws);
        waits.push(sent.elapsed());
        assert_eq!(hello["ok"], true, "the right token is never refused under attack: {hello}");
        drop(ws);
    }
    // Then the attack alone until its end: the attacker's rate is measured without the client's turns.
    while started.elapsed() < ATTACK {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::SeqCst);
    for attacker in attackers {
        attacker.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let guesses = refused.load(Ordering::SeqCst);
    waits.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    println!(
        "DOOR-8 figures: {ATTACKERS} attacker threads, {guesses} wrong guesses in {elapsed:.2} s ({:.1}/s after the burst of {BURST}; \
         bound {BURST} + 2 + {RATE}/s); right token: {} connects during the attack, wait median {:.0} ms, max {:.0} ms",
        guesses.saturating_sub(u64::from(BURST)) as f64 / elapsed,
        waits.len(),
        ms(&waits[waits.len() / 2]),
        ms(waits.last().unwrap()),
    );
    assert!(!waits.is_empty(), "the right token was tried under attack");
    let bound = f64::from(BURST) + 2.0 + f64::from(RATE) * elapsed;
    assert!((guesses as f64) <= bound, "{guesses} guesses in {elapsed:.2} s, over the bound {bound:.1}");
    assert!(guesses > u64::from(BURST), "the attack got past the burst ({guesses} guesses)");

    gw.signal(Signal::SIGTERM);
    let mut gw = gw;
    let stderr = gw.take_stderr();
    assert!(gw.wait().success());
    let notices = stderr.lines().filter(|l| l.contains("authentication throttled")).count();
    assert!((1..=1 + (elapsed / 10.0) as usize).contains(&notices), "one notice per 10 s window, got {notices}: {stderr}");
    assert!(!stderr.contains(SHORT_TOKEN) && !stderr.contains("guess-"), "no token in the log: {stderr}");
}

/// The throttle's published constants (spec/protocol.md, DOOR-8).
const BURST: u32 = 20;
const RATE: u32 = 5;

fn start_gateway_with_token_value(token: &str) -> Holder {
    let mut cmd = std::process::Command::new(gateway_bin());
    cmd.args(["run", "--port", "0", "--token", token]);
    start_and_wait_ready(cmd)
}
