//! Property tests of what reads untrusted input: registries (valid YAML,
//! mutated YAML, alias bombs) and JSON arguments for every WIT type. None
//! may panic or use more than a bound of memory (measured by the counting
//! allocator below, which serves this test binary only), and every valid
//! value must round-trip.
//!
//! Cases per property: `PROPTEST_CASES` (64 by default, to keep the test
//! command short; BENCHMARKS.md says how many ran for the hardening issue).

mod alloc;
mod registries;
mod values;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
fn config() -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
