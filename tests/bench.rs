//! The load tool works: every scenario, tiny (`--quick`), against the server
//! (over HTTP/1.1, and over HTTP/2 with TLS) and the floor, prints a row of
//! figures each. Its timings mean nothing here (a debug build, sharing the
//! machine with the other tests); the benchmark itself runs with
//! `cargo run --release --bin chat-bench`. What the rows say is checked only
//! where it proves the tool itself works: the leak checks read the server's
//! metrics (and Redis's key count), the history scenario read a real frame,
//! the restart scenario's streams each got every message once across a
//! restart (with the server's logged write and restore times read), and every
//! figure of the multi scenario (two instances sharing a
//! `redis-server` of its own, which it needs at /usr/bin/redis-server) is a
//! number.

use std::process::Command;
use std::time::{Duration, Instant};

const SCENARIOS: [&str; 12] = [
    "fan-out",
    "latency",
    "idle",
    "polling",
    "many-rooms",
    "churn",
    "history",
    "http2",
    "big-room",
    "multi",
    "restart",
    "replicas",
];

/// Rows that must have a figure of the floor's beside ours.
const COMPARED: [&str; 8] = [
    "| fan-out | CPU per delivery (µs) |",
    "| latency | p50 latency (ms) |",
    "| latency | p99 latency (ms) |",
    "| big-room | p50 latency (ms) |",
    "| big-room | p99 latency (ms) |",
    "| big-room | CPU per delivery (µs) |",
    "| big-room | subscribers reached per message |",
    "| big-room | resident memory (MiB) |",
];

/// Rows whose figure must be 0: the scenarios read the server's metrics, and
/// it closed everything their clients opened; and every stream of the restart
/// scenario got each message once across the restart.
const NOTHING_LEFT: [&str; 8] = [
    "| churn | rooms left open |",
    "| churn | streams left open |",
    "| many-rooms | rooms left open |",
    "| many-rooms | streams left open |",
    "| multi | rooms left open |",
    "| multi | streams left open |",
    "| multi | Redis keys left (DBSIZE after − before) |",
    "| restart | streams that missed or repeated a message |",
];

/// Rows the multi scenario must have (besides every one of its rows being a
/// number): the latency target, and Redis memory.
const MULTI: [&str; 4] = [
    "| multi | p99 on B / one instance's p99 (target ≤ 2) |",
    "| multi | two + Redis: CPU per delivery, paced, A + B + Redis (µs) |",
    "| multi | Redis memory per room of 2 streaming (bytes) |",
    "| multi | Redis memory per kept message of ~100 chars (bytes) |",
];

/// The frame the history scenario read: at least its quick messages' padding
/// (200 characters) and what the JSON says besides, at most a few hundred
/// bytes more.
const FRAME: &str = "| history | its frame, as sent (bytes) |";

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
    for row in NOTHING_LEFT {
        assert_eq!(
            ours(&report, row),
            Some(0.0),
            "{row} should read 0:\n{report}"
        );
    }
    for row in MULTI {
        assert!(ours(&report, row).is_some(), "{row}:\n{report}");
    }
    for line in report.lines().filter(|l| l.starts_with("| multi |")) {
        let figure = line.split('|').nth(3).unwrap_or_default().trim();
        let value: f64 = figure.parse().unwrap_or(f64::NAN);
        assert!(
            value.is_finite(),
            "a number, not {figure:?}: {line}\n{report}"
        );
    }
    let frame = ours(&report, FRAME).unwrap_or(f64::NAN);
    assert!(
        (250.0..1000.0).contains(&frame),
        "{FRAME} a frame's size, not {frame}:\n{report}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "the quick run stays quick"
    );
}

/// The figure of ours in the report's row that starts with `row`.
fn ours(report: &str, row: &str) -> Option<f64> {
    let line = report.lines().find(|l| l.starts_with(row))?;
    line[row.len()..].split('|').next()?.trim().parse().ok()
}
