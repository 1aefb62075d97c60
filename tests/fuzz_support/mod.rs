//! What the proptest-based fuzz targets (`fuzz_batch`, `fuzz_recovery`) share.

use proptest::test_runner::Config as ProptestConfig;

/// `cases` unless `PROPTEST_CASES` is set, which then wins (proptest's own
/// `with_cases` would ignore it). Failures are not persisted to
/// `proptest-regressions/` files: the shrunk input is printed instead.
pub fn fuzz_config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}
