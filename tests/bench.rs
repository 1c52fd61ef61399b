//! The load tool works: every scenario, tiny (`--quick`), against the server
//! (over HTTP/1.1, and over HTTP/2 with TLS) and the floor, prints a row of
//! figures each. Its timings mean nothing here (a debug build, sharing the
//! machine with the other tests); the benchmark itself runs with
//! `cargo run --release --bin chat-bench`.

use std::process::Command;
use std::time::{Duration, Instant};

const SCENARIOS: [&str; 8] = [
    "fan-out",
    "latency",
    "idle",
    "polling",
    "many-rooms",
    "churn",
    "history",
    "http2",
];

/// Rows that must have a figure of the floor's beside ours.
const COMPARED: [&str; 3] = [
    "| fan-out | CPU per delivery (µs) |",
    "| latency | p50 latency (ms) |",
    "| latency | p99 latency (ms) |",
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
    for row in COMPARED {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(row) && !l.ends_with("| — |")),
            "{row} beside the floor:\n{report}"
        );
    }
    // Every row with a floor's figure has a ratio to it.
    let ratios = report
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| scenario |"))
        .filter(|l| !l.ends_with("| — |"))
        .map(|l| l.trim_end_matches(" |").rsplit("| ").next().unwrap_or(""));
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
