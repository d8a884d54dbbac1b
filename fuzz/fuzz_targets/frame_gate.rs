//! Fuzz target (PROTO-7): the frame gate in front of an unauthenticated client's WebSocket stream.
//! Any bytes, cut into any reads of at most `readable()` bytes: no panic; once refused the gate
//! stays refused; a read that `readable()` allowed never spans past a frame header it then refuses.
#![no_main]

use gateway_lock::frame_gate::FrameGate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the limit (0..=255 KiB in 1 KiB steps); the second how reads are cut.
    let Some((&limit, rest)) = data.split_first() else { return };
    let Some((&cut, mut bytes)) = rest.split_first() else { return };
    let mut gate = FrameGate::new(usize::from(limit) * 1024);
    let step = usize::from(cut.max(1));
    while !bytes.is_empty() {
        let allowed = match gate.readable() {
            Ok(n) => n,
            Err(refused) => {
                assert_eq!(gate.refused(), Some(refused));
                assert_eq!(gate.advance(bytes), Err(refused), "a refusal is final");
                return;
            }
        };
        assert!(allowed > 0, "a gate that is not refused always lets something through");
        let n = bytes.len().min(step).min(allowed);
        let (now, later) = bytes.split_at(n);
        let _ = gate.advance(now);
        bytes = later;
    }
});
