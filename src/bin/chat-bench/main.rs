//! chat-bench: the load tool for Chat Live Room, with the floor beside it.
//!
//! `cargo run --release --bin chat-bench` starts the release server (built
//! next to this program) and the floor (this program, `chat-bench floor`),
//! runs each scenario against both where the floor can do the same work, and
//! prints one table: every figure of ours, the floor's, and ours as a ratio of
//! the floor's. `--quick` runs every scenario tiny, to prove the tool works;
//! `--only NAME` runs one; `--rounds N` takes the median of N rounds. The
//! `multi` scenario also starts a `redis-server` of its own (Debian's, at
//! /usr/bin/redis-server) for two instances to share; the `restart` scenario
//! gives the server a temporary data directory of its own and restarts it;
//! the `replicas` scenario starts a Redis primary and a replica.
//!
//! This file is the command line, the list of scenarios and the report; each
//! scenario is a module of `scenario/`, built from the parts in `parts.rs`
//! over the wire of `wire.rs` (HTTP/1.1) and `https.rs` (HTTP/2 over TLS),
//! against a [`target::Target`] process.

mod floor;
mod https;
mod leftovers;
mod parts;
mod redis_server;
mod scenario;
mod target;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;

use scenario::{Bench, FULL, QUICK, Row};
use wire::Sources;

/// Every scenario, in the order they run (and `--only` names them).
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("floor") {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the floor");
            floor::serve(listener, 4096).await;
        });
        return;
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "chat-bench: the load tool for Chat Live Room, with the floor beside it\n\n\
             usage: chat-bench [--quick] [--only NAME]... [--rounds N] [--server PATH]\n\n\
             --quick        every scenario tiny, to prove the tool works\n\
             --only NAME    run this scenario (again for more); without it, all\n\
             --rounds N     the median of N rounds of each figure (default 1)\n\
             --server PATH  the server to measure (default: chat-live-room beside this program)\n\n\
             scenarios: {}",
            SCENARIOS.join(", ")
        );
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let only: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--only")
        .map(|w| w[1].as_str())
        .collect();
    let rounds: usize = args
        .windows(2)
        .find(|w| w[0] == "--rounds")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(1)
        .max(1);
    let server = args
        .windows(2)
        .find(|w| w[0] == "--server")
        .map(|w| PathBuf::from(&w[1]))
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("the benchmark's own path");
            exe.with_file_name("chat-live-room")
        });
    for name in &only {
        assert!(
            SCENARIOS.contains(name),
            "no scenario {name}; there are {SCENARIOS:?}"
        );
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let mut bench = Bench {
            server,
            sizes: if quick { QUICK } else { FULL },
            sources: Arc::new(Sources::default()),
            rows: Vec::new(),
        };
        for name in SCENARIOS {
            if !only.is_empty() && !only.contains(&name) {
                continue;
            }
            eprintln!("-- {name}");
            let mut runs = Vec::new();
            for _ in 0..rounds {
                let before = bench.rows.len();
                run(&mut bench, name).await;
                runs.push(bench.rows.split_off(before));
            }
            bench.rows.extend(median(runs));
        }
        print_report(&bench.rows, quick, rounds);
    });
}

/// Runs the scenario `name`, which adds its rows to `bench`.
async fn run(bench: &mut Bench, name: &str) {
    match name {
        "fan-out" => scenario::fan_out::run(bench).await,
        "latency" => scenario::latency::run(bench).await,
        "idle" => scenario::idle::run(bench).await,
        "polling" => scenario::polling::run(bench).await,
        "many-rooms" => scenario::many_rooms::run(bench).await,
        "churn" => scenario::churn::run(bench).await,
        "history" => scenario::history::run(bench).await,
        "http2" => scenario::http2::run(bench).await,
        "big-room" => scenario::big_room::run(bench).await,
        "multi" => scenario::multi::run(bench).await,
        "restart" => scenario::restart::run(bench).await,
        "replicas" => scenario::replicas::run(bench).await,
        _ => unreachable!("checked against SCENARIOS"),
    }
}

/// Each figure's median over the rounds.
fn median(runs: Vec<Vec<Row>>) -> Vec<Row> {
    let mut runs = runs.into_iter();
    let Some(mut first) = runs.next() else {
        return Vec::new();
    };
    let rest: Vec<Vec<Row>> = runs.collect();
    for (i, row) in first.iter_mut().enumerate() {
        let mut ours: Vec<f64> = std::iter::once(row.ours)
            .chain(rest.iter().filter_map(|r| r.get(i).map(|r| r.ours)))
            .collect();
        ours.sort_by(f64::total_cmp);
        row.ours = ours[ours.len() / 2];
        if let Some(floor) = row.floor {
            let mut floors: Vec<f64> = std::iter::once(floor)
                .chain(rest.iter().filter_map(|r| r.get(i).and_then(|r| r.floor)))
                .collect();
            floors.sort_by(f64::total_cmp);
            row.floor = Some(floors[floors.len() / 2]);
        }
    }
    first
}

/// The report: one Markdown table, a row per figure.
fn print_report(rows: &[Row], quick: bool, rounds: usize) {
    println!(
        "chat-bench{}: {} round(s), {} cores",
        if quick { " --quick" } else { "" },
        rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| scenario | figure | ours | floor | ours / floor |");
    println!("|---|---|---:|---:|---:|");
    for row in rows {
        let (floor, ratio) = match row.floor {
            Some(floor) => (format!("{floor:.3}"), format!("{:.2}×", row.ours / floor)),
            None => ("—".to_owned(), "—".to_owned()),
        };
        println!(
            "| {} | {} | {:.3} | {floor} | {ratio} |",
            row.scenario, row.figure, row.ours
        );
    }
}
