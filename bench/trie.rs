//! Micro-benchmark of topic routing: `cargo bench --bench trie`.
//!
//! Reproduces MqttX's router table (trie vs linear scan, per publish, at 100 … 100,000
//! subscriptions) with a realistic filter mix, then measures subscribe + unsubscribe cost
//! and retained wildcard lookups over 100,000 retained topics. No criterion: a warm-up run,
//! then the median of 5 timed runs of a plain loop, results through `black_box`. The
//! machine is shared and noisy, so read the ratios, not the absolute times.

use std::hint::black_box;
use std::time::Instant;

use shardmq::topic::{filter_matches, RetainedIndex, TopicTrie};

const RUNS: usize = 5;

/// Small deterministic PRNG (xorshift64*), so every run benchmarks the same topics.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Runs `f` (which performs `ops` operations) once to warm up and `RUNS` times timed;
/// returns the median nanoseconds per operation.
fn median_ns_per_op(ops: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut samples: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / ops as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[RUNS / 2]
}

/// Subscription `i` of `n`: 80% exact per-device filters, 10% per-device `+`, 10% per-site
/// `+` (shared by several subscribers once n > 1,000 sites), a few `#`, and one global
/// `devices/+/status` watcher.
fn subscription(i: usize) -> String {
    if i == 1 {
        return "devices/+/status".to_owned();
    }
    if i % 2500 == 7 {
        return format!("devices/{i}/#");
    }
    match i % 10 {
        0..=7 => format!("devices/{i}/telemetry"),
        8 => format!("devices/{i}/+"),
        _ => format!("sites/{}/+/status", i % 1000),
    }
}

/// Publish topics for n subscriptions: 60% telemetry, 20% status, 20% per-site status.
fn topics(n: usize, rng: &mut Rng) -> Vec<String> {
    (0..4096)
        .map(|_| {
            let d = rng.below(n);
            match rng.below(10) {
                0..=5 => format!("devices/{d}/telemetry"),
                6 | 7 => format!("devices/{d}/status"),
                _ => format!("sites/{}/{d}/status", d % 1000),
            }
        })
        .collect()
}

fn routing() {
    println!("## Publish routing: match time per publish");
    println!();
    println!("ns/match = nanoseconds to find every matching subscription of one publish.");
    println!();
    println!(
        "| subscriptions | filters | trie nodes | matches/publish | trie ns/match | scan ns/match | speedup |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in [100, 1_000, 10_000, 100_000] {
        let subs: Vec<(String, u32)> = (0..n).map(|i| (subscription(i), i as u32)).collect();
        let mut trie: TopicTrie<Vec<u32>> = TopicTrie::new();
        for (f, id) in &subs {
            trie.entry_or_insert_with(f, Vec::new).push(*id);
        }
        let topics = topics(n, &mut Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64));

        // Both must deliver to exactly the same subscribers.
        let (mut trie_hits, mut scan_hits) = (0usize, 0usize);
        for t in &topics {
            trie.for_each_match(t, |ids| trie_hits += ids.len());
            scan_hits += subs.iter().filter(|(f, _)| filter_matches(f, t)).count();
        }
        assert_eq!(trie_hits, scan_hits, "trie and scan disagree at n = {n}");

        let trie_ops = 400_000;
        let trie_ns = median_ns_per_op(trie_ops, || {
            let mut acc = 0u64;
            for t in topics.iter().cycle().take(trie_ops) {
                trie.for_each_match(black_box(t), |ids| {
                    for &id in ids {
                        acc = acc.wrapping_add(id as u64);
                    }
                });
            }
            black_box(acc);
        });
        let scan_ops = (20_000_000 / n).clamp(64, 400_000);
        let scan_ns = median_ns_per_op(scan_ops, || {
            let mut acc = 0u64;
            for t in topics.iter().cycle().take(scan_ops) {
                let t = black_box(t.as_str());
                for (f, id) in &subs {
                    if filter_matches(f, t) {
                        acc = acc.wrapping_add(*id as u64);
                    }
                }
            }
            black_box(acc);
        });
        println!(
            "| {n} | {} | {} | {:.2} | {trie_ns:.0} | {scan_ns:.0} | {:.0}x |",
            trie.len(),
            trie.node_count(),
            trie_hits as f64 / topics.len() as f64,
            scan_ns / trie_ns
        );
    }
    println!();
}

fn churn() {
    println!("## Subscribe + unsubscribe (fresh trie, all n, then all removed)");
    println!();
    println!("| subscriptions | subscribe ns/op | unsubscribe ns/op | nodes after |");
    println!("| ---: | ---: | ---: | ---: |");
    for n in [100, 1_000, 10_000, 100_000] {
        let subs: Vec<(String, u32)> = (0..n).map(|i| (subscription(i), i as u32)).collect();
        let mut sub_samples = Vec::new();
        let mut unsub_samples = Vec::new();
        let mut nodes_after = 0;
        for run in 0..=RUNS {
            let mut trie: TopicTrie<Vec<u32>> = TopicTrie::new();
            let t = Instant::now();
            for (f, id) in &subs {
                trie.entry_or_insert_with(black_box(f), Vec::new).push(*id);
            }
            let sub = t.elapsed().as_nanos() as f64 / n as f64;
            let t = Instant::now();
            for (f, id) in &subs {
                let f = black_box(f.as_str());
                if let Some(ids) = trie.get_mut(f) {
                    ids.retain(|x| x != id);
                    if ids.is_empty() {
                        trie.remove(f);
                    }
                }
            }
            let unsub = t.elapsed().as_nanos() as f64 / n as f64;
            assert!(trie.is_empty());
            nodes_after = trie.node_count();
            if run > 0 {
                sub_samples.push(sub);
                unsub_samples.push(unsub);
            }
        }
        sub_samples.sort_by(|a, b| a.total_cmp(b));
        unsub_samples.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| {n} | {:.0} | {:.0} | {nodes_after} |",
            sub_samples[RUNS / 2],
            unsub_samples[RUNS / 2]
        );
    }
    println!();
}

fn retained() {
    // 10 plants × 100 lines × 100 sensors = 100,000 retained topics.
    let mut index: RetainedIndex<u64> = RetainedIndex::new();
    let mut all: Vec<(String, u64)> = Vec::new();
    for p in 0..10 {
        for l in 0..100 {
            for s in 0..100 {
                let t = format!("plant/{p}/line/{l}/sensor/{s}");
                let v = (p * 10_000 + l * 100 + s) as u64;
                index.insert(&t, v);
                all.push((t, v));
            }
        }
    }
    println!(
        "## Retained lookup over {} retained topics ({} trie nodes)",
        index.len(),
        index.node_count()
    );
    println!();
    println!("| filter | matches | index µs/lookup | index ns/match | scan µs/lookup | speedup |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let filters = [
        "plant/3/line/42/sensor/7",
        "plant/3/line/42/sensor/+",
        "plant/3/line/+/sensor/7",
        "plant/+/line/+/sensor/7",
        "plant/+/line/+/sensor/none",
        "plant/3/line/42/#",
        "plant/3/#",
        "#",
    ];
    for filter in filters {
        let mut matches = 0usize;
        index.for_each_match(filter, |_, _| matches += 1);
        let want = all
            .iter()
            .filter(|(t, _)| filter_matches(filter, t))
            .count();
        assert_eq!(matches, want, "index and scan disagree on {filter}");

        let ops = (2_000_000 / (matches + 100)).max(5);
        let index_ns = median_ns_per_op(ops, || {
            let mut acc = 0u64;
            for _ in 0..ops {
                index.for_each_match(black_box(filter), |t, v| {
                    acc = acc.wrapping_add(*v ^ t.len() as u64)
                });
            }
            black_box(acc);
        });
        let scan_ops = 20;
        let scan_ns = median_ns_per_op(scan_ops, || {
            let mut acc = 0u64;
            for _ in 0..scan_ops {
                let f = black_box(filter);
                for (t, v) in &all {
                    if filter_matches(f, t) {
                        acc = acc.wrapping_add(*v ^ t.len() as u64);
                    }
                }
            }
            black_box(acc);
        });
        let per_match = if matches == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}", index_ns / matches as f64)
        };
        println!(
            "| `{filter}` | {matches} | {:.2} | {per_match} | {:.0} | {:.0}x |",
            index_ns / 1000.0,
            scan_ns / 1000.0,
            scan_ns / index_ns
        );
    }
    println!();
}

fn main() {
    // `cargo bench` passes `--bench`; a name filter argument is accepted and ignored.
    routing();
    churn();
    retained();
}
