//! The load tool works: every scenario, tiny (`--quick`), against the server
//! and the floor, prints a row of figures each. Its timings mean nothing here
//! (a debug build, sharing the machine with the other tests); the benchmark
//! itself runs with `cargo run --release --bin chat-bench`.

use std::process::Command;
use std::time::{Duration, Instant};

const SCENARIOS: [&str; 7] = [
    "fan-out",
    "latency",
    "idle",
    "polling",
    "many-rooms",
    "churn",
    "history",
];

#[test]
fn every_scenario_runs_and_reports_against_the_floor() {
    // Arrange
    let bench = env!("CARGO_BIN_EXE_chat-bench");
    let server = env!("CARGO_BIN_EXE_chat-live-room");
    let started = Instant::now();

    // Act
    let run = Command::new(bench)
        .args(["--quick", "--server", server])
        .output()
        .expect("run chat-bench");

    // Assert
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "chat-bench --quick failed:\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for scenario in SCENARIOS {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(&format!("| {scenario} |"))),
            "a row for {scenario}:\n{report}"
        );
    }
    let ratios: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("| fan-out |") || l.starts_with("| latency |"))
        .map(|l| l.trim_end_matches(" |").rsplit("| ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        ratios.len(),
        4,
        "fan-out and latency beside the floor:\n{report}"
    );
    for ratio in ratios {
        let value: f64 = ratio.trim_end_matches('×').parse().unwrap_or(f64::NAN);
        assert!(
            value.is_finite() && value > 0.0,
            "a ratio to the floor, not {ratio:?}:\n{report}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "the quick run stays quick"
    );
}
