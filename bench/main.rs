//! `shardmq-bench`: the load generator. See `loadgen` for the engine and the scenarios.

mod loadgen;

fn main() {
    std::process::exit(loadgen::main());
}
