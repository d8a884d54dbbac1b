//! Unit tests of the I/O-free parts of `gateway verify`: the schedule and the tally.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::schedule::{CyclePlan, Ending, KillSignal, Limits};
use super::tally::{check_refusal, refusal_line, Invariant, Tally, MAX_REPORTED};

const LIMITS: Limits = Limits { max_burst: 4, max_clients: 4 };

fn plans(seed: u64, n: usize, limits: &Limits) -> Vec<CyclePlan> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| CyclePlan::draw(&mut rng, limits)).collect()
}

/// VER-2: the schedule is a function of the seed.
#[test]
fn ver2_same_seed_same_schedule() {
    assert_eq!(plans(42, 200, &LIMITS), plans(42, 200, &LIMITS));
    assert_ne!(plans(42, 200, &LIMITS), plans(43, 200, &LIMITS));
}

proptest::proptest! {
    /// VER-2: the schedule is a function of the seed and the limits alone: drawn again it is the
    /// same, and how many cycles run (`--cycles`, `--duration`) changes none of the first ones;
    /// every plan stays within the limits.
    #[test]
    fn ver2_schedule_is_a_function_of_the_seed_and_limits(
        seed in proptest::prelude::any::<u64>(),
        max_burst in 1usize..=16,
        max_clients in 0usize..=16,
        cycles in 1usize..40,
        more in 0usize..40,
    ) {
        let limits = Limits { max_burst, max_clients };
        let longer = plans(seed, cycles + more, &limits);
        proptest::prop_assert_eq!(&plans(seed, cycles + more, &limits), &longer);
        proptest::prop_assert_eq!(&plans(seed, cycles, &limits)[..], &longer[..cycles]);
        for plan in &longer {
            proptest::prop_assert!((1..=max_burst).contains(&plan.burst) && plan.held_burst <= max_burst, "{:?}", plan);
            proptest::prop_assert!(plan.clients <= max_clients, "{:?}", plan);
            if let Ending::Race { contenders, .. } = plan.ending {
                proptest::prop_assert!((1..=max_burst).contains(&contenders), "{:?}", plan);
            }
            if let Some(m) = plan.mid_start {
                proptest::prop_assert!(m.jitter_us < 3_000, "{:?}", plan);
            }
        }
    }
}

/// The plans stay within the limits and reach every kind of fault.
#[test]
fn plans_respect_limits_and_cover_every_fault() {
    let limits = Limits { max_burst: 3, max_clients: 2 };
    let all = plans(7, 2_000, &limits);
    for plan in &all {
        assert!((1..=3).contains(&plan.burst) && plan.held_burst <= 3 && plan.clients <= 2, "{plan:?}");
        if let Ending::Race { contenders, .. } = plan.ending {
            assert!((1..=3).contains(&contenders));
        }
        if let Ending::MidShutdown { first, .. } = plan.ending {
            assert!(first.graceful());
        }
    }
    assert!(all.iter().any(|p| p.mid_start.is_some_and(|m| m.jitter_us == 0)));
    assert!(all.iter().any(|p| p.mid_start.is_some_and(|m| m.jitter_us > 0)));
    for signal in KillSignal::ALL {
        assert!(all.iter().any(|p| p.ending == Ending::Serving(signal)), "{signal:?}");
        assert!(all.iter().any(|p| matches!(p.ending, Ending::MidShutdown { second, .. } if second == signal)), "{signal:?}");
        assert!(all.iter().any(|p| matches!(p.ending, Ending::Race { signal: s, .. } if s == signal)), "{signal:?}");
    }
}

/// ERR-1 and LOCK-3 as `verify` checks them (VER-1: what counts as a violation).
#[test]
fn err1_refusal_check_is_exact() {
    let line = refusal_line(18789);
    assert_eq!(line, gateway_harness::spec::held_message("ws://127.0.0.1:18789"));
    assert!(check_refusal(18789, Some(3), "", &format!("{line}\n")).is_empty());
    assert!(check_refusal(18789, Some(5), "", &format!("{line}\nheld by pid 1 (gateway)\n")).is_empty());
    let ids = |found: Vec<(Invariant, String)>| found.into_iter().map(|(i, _)| i).collect::<Vec<_>>();
    assert_eq!(ids(check_refusal(18789, Some(4), "", &line)), [Invariant::Err1]);
    assert_eq!(ids(check_refusal(18789, None, "", &line)), [Invariant::Err1]);
    assert_eq!(ids(check_refusal(18789, Some(3), "", &format!("{line} "))), [Invariant::Err1]);
    assert_eq!(ids(check_refusal(18789, Some(3), "", &format!("warning: slow\n{line}"))), [Invariant::Err1]);
    assert_eq!(ids(check_refusal(18790, Some(3), "", &line)), [Invariant::Err1]);
    assert_eq!(ids(check_refusal(18789, Some(3), "listening on ws://127.0.0.1:18789\n", &line)), [Invariant::Lock3]);
}

/// VER-1: the summary is "ok" iff nothing was violated, and counts every ID.
#[test]
fn ver1_summary_counts_violations_by_id() {
    let mut tally = Tally::default();
    let json = tally.to_json(1, 2, Duration::ZERO);
    assert_eq!(json["ok"], true);
    for invariant in Invariant::ALL {
        assert_eq!(json["violations"][invariant.id()], 0);
    }
    tally.killed(KillSignal::Abrt);
    for n in 0..25 {
        tally.violate(n, Invariant::Rel2, "held".into());
    }
    let json = tally.to_json(1, 2, Duration::ZERO);
    assert_eq!(json["ok"], false);
    assert_eq!(json["violations"]["REL-2"], 25);
    assert_eq!(json["violationCount"], 25);
    assert_eq!(json["kills"]["SIGABRT"], 1);
    assert_eq!(json["firstViolations"].as_array().unwrap().len(), MAX_REPORTED);
    assert!(tally.to_text(1, 2, Duration::ZERO).contains("REL-2 25"));
}
