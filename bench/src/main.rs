//! `hatchet-bench`: the benchmark driver for the two SQL-path systems, pg_hatchet and the plain
//! `FOR UPDATE SKIP LOCKED` table queue ("baseline").
//!
//! The orchestrator (`bench/orchestrator/bench.py`) starts the cluster, creates one database per system and calls
//! every driver the same way: one JSON spec as the only argument, one JSON result line on stdout. The Node and
//! Python drivers for the peers follow the same contract, so the orchestrator treats all systems alike. Raw
//! samples (latencies in milliseconds) are returned as they are; percentiles are computed in one place, the
//! orchestrator, so every system is summarised by the same code.

mod clock;
mod scenarios;
mod shapes;
mod spec;
mod systems;

use std::process::ExitCode;

fn main() -> ExitCode {
    let raw = match std::env::args().nth(1) {
        Some(arg) => arg,
        None => {
            eprintln!(
                "usage: hatchet-bench '<json spec>'   (see bench/README.md, \"Driver contract\")"
            );
            return ExitCode::from(2);
        }
    };
    let result = spec::Spec::parse(&raw).and_then(|spec| scenarios::run(&spec));
    match result {
        Ok(mut value) => {
            value["ok"] = serde_json::Value::Bool(true);
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!(
                "{}",
                serde_json::json!({ "ok": false, "error": err.to_string() })
            );
            ExitCode::FAILURE
        }
    }
}
