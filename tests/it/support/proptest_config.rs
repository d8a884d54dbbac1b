//! The proptest configuration of the suites over real processes (`tests/it/prop_*.rs` and
//! `tests/prop_verify.rs`, which includes this file alone).

use proptest::test_runner::Config;

/// The proptest configuration: `default_cases` unless `PROPTEST_CASES` says otherwise; shrinking
/// bounded in steps (`max_shrink_iters`) and in time, since each step re-runs real processes and a
/// broken gateway must fail CI soon.
pub fn config(default_cases: u32, max_shrink_iters: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    Config { cases, max_shrink_iters, max_shrink_time: 120_000, ..Config::default() }
}
