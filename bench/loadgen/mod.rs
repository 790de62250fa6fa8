//! The load generator: command line, scenario orchestration, progress and the summary.
//!
//! The main thread plans the clients, starts one pinned worker thread per `--threads`
//! (each its own io_uring, see [`engine`]), and steers them through the phases over
//! crossbeam channels: connect (and subscribe) → start → publish for `--secs` → drain →
//! finish. Workers send interval statistics every second; the main thread merges them,
//! prints a progress line and, at the end, the summary.

pub mod cli;
pub mod engine;
pub mod pacing;
pub mod payload;
pub mod plan;
pub mod report;
pub mod stats;
pub mod sys;
pub mod track;
pub mod ws;

use std::time::{Duration, Instant};

use clap::Parser;
use crossbeam_channel::{unbounded, RecvTimeoutError};

use shardmq::codec::{Protocol, QoS};

pub use cli::{resolve_target, Cli, Scenario};
use engine::{Cmd, EngineCfg, Report, Worker};
use plan::Mode;
use report::Summary;
use stats::{quantile_us, Totals};
use sys::now_ns;

/// Entry point; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(s) => {
            print!("{}", report::render_table(&s));
            if cli.json {
                println!("{}", report::render_json(&s));
            }
            0
        }
        Err(e) => {
            eprintln!("shardmq-bench: {e}");
            // A script reading the last line gets a summary still, one that says why.
            if cli.json {
                println!("{}", report::render_json(&failed(&cli, e)));
            }
            2
        }
    }
}

/// The summary of a run that failed before measuring (setup, target, TLS files): what was
/// asked for, `error` naming what failed, and zeros and nulls for every figure.
fn failed(cli: &Cli, error: String) -> Summary {
    Summary {
        scenario: cli.cmd.name().into(),
        label: cli.label.clone(),
        mqtt: if cli.mqtt == 5 { 5 } else { 3 },
        qos: cli.qos,
        size: cli.size.max(payload::HEADER_LEN),
        secs: cli.secs.max(0.0),
        threads: cli.threads.max(1),
        error: Some(error),
        ..Summary::default()
    }
}

/// How often a progress line is printed; a line waits up to as long again for a late thread.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The TLS client settings of `--tls-ca` (and `--tls-cert`/`--tls-key`), with *ring* as the
/// crypto provider, like the broker.
fn tls_config(cli: &Cli) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(ca) = &cli.tls_ca else {
        return Ok(None);
    };
    let certs = |path: &std::path::Path| {
        CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => {
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs(cert)?, key)
                .map_err(|e| format!("--tls-cert: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(std::sync::Arc::new(config)))
}

/// Runs one scenario and returns its summary.
pub fn run(cli: &Cli) -> Result<Summary, String> {
    let addr = resolve_target(&cli.host, cli.port, cli.allow_remote)?;
    sys::ignore_sigpipe();
    let nofile = sys::raise_nofile();
    let threads = cli.threads.max(1);
    let run_id = format!("{:x}", std::process::id());
    let plan = plan::build(&cli.cmd.shape(), threads, &run_id);
    let idle_like = matches!(plan.mode, Mode::Idle | Mode::Storm);
    if plan.clients.len() as u64 + 64 > nofile {
        return Err(format!(
            "{} connections need more than the {nofile} open files this process may have; \
             run several generator processes",
            plan.clients.len()
        ));
    }
    let size = cli.size.max(payload::HEADER_LEN);
    let rate = if idle_like {
        0.0
    } else {
        cli.rate.unwrap_or(1000.0)
    };
    let connect_rate = if idle_like {
        cli.rate.unwrap_or(0.0)
    } else {
        0.0
    };
    // Extra source addresses are 127.0.0.x: only for an IPv4 loopback target (a remote
    // one is unreachable from them; IPv6 has no such range).
    let loopback_v4 = matches!(addr.ip(), std::net::IpAddr::V4(ip) if ip.is_loopback());
    let src_addrs = match (cli.src_addrs, loopback_v4) {
        (_, false) => 1,
        (0, true) => plan.clients.len().div_ceil(25_000).max(1),
        (n, true) => n,
    };
    let protocol = if cli.mqtt == 5 {
        Protocol::V5
    } else {
        Protocol::V311
    };
    let qos = match cli.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    let hold_ms = match cli.cmd {
        Scenario::ReconnectStorm { hold_ms, .. } => hold_ms,
        _ => 0,
    };
    let cfg = EngineCfg {
        addr,
        src_addrs,
        protocol,
        qos,
        size,
        rate,
        window: cli.publish_window(),
        connect_inflight: cli.connects_in_flight_per_thread(threads),
        connect_rate: connect_rate / threads as f64,
        max_unsent: cli.max_unsent.max(size + 64),
        keepalive: cli.keepalive,
        username: cli.username.clone(),
        password: cli.password.clone(),
        rbuf: cli.rbuf.unwrap_or(if idle_like { 1024 } else { 64 * 1024 }),
        mode: plan.mode,
        hold_ms,
        batch_us: cli
            .batch_us
            .unwrap_or(if rate == 0.0 && !idle_like { 100 } else { 0 }),
        tls: tls_config(cli)?,
        ws: cli.ws,
        tick_ns: cli.tick_us * 1_000,
    };

    let pid = cli.broker_pid;
    let rss_before = pid.and_then(sys::rss_kb);
    let broker_cpu_connect0 = pid.and_then(sys::proc_cpu_us);

    let (rep_tx, rep_rx) = unbounded::<Report>();
    let mut cmd_txs = Vec::new();
    let mut handles = Vec::new();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    for t in 0..threads {
        let clients: Vec<_> = plan
            .clients
            .iter()
            .enumerate()
            .filter(|(_, c)| c.thread == t)
            .map(|(i, c)| (i, c.clone()))
            .collect();
        let (ctx, crx) = unbounded::<Cmd>();
        cmd_txs.push(ctx);
        let tx = rep_tx.clone();
        let cfg = cfg.clone();
        let core =
            (!cli.no_pin && !cores.is_empty()).then(|| cores[(cli.first_core + t) % cores.len()]);
        let target = plan.retained_topics;
        handles.push(
            std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    match Worker::new(t, cfg, clients, crx, tx.clone(), target) {
                        Ok(w) => w.run(),
                        Err(e) => {
                            eprintln!("shardmq-bench: thread {t}: io_uring setup failed: {e}");
                            let mut iv = stats::Interval::new(t);
                            iv.errors.insert(format!("io_uring: {e}"), 1);
                            let _ = tx.send(Report::Ready { ok: 0, failed: 0 });
                            let _ = tx.send(Report::Final {
                                interval: Box::new(iv),
                                streams: Default::default(),
                            });
                        }
                    }
                })
                .map_err(|e| format!("spawn: {e}"))?,
        );
    }
    drop(rep_tx);
    let broadcast = |c: Cmd| {
        for tx in &cmd_txs {
            let _ = tx.send(c);
        }
    };

    let started = Instant::now();
    let mut totals = Totals::new(threads);
    let mut finals = 0usize;
    let mut last = totals.c;
    let mut last_print = Instant::now();
    let mut reported = vec![false; threads];
    let mut pub_done = 0usize;
    // Retained scenario: when the last publisher finished publishing (CLOCK_MONOTONIC ns).
    let mut pub_done_ns = 0u64;
    // One step of the report pump: merge what arrived within `wait`, print progress once
    // every thread's interval since the last line is in. Printing on the main thread's own
    // clock instead aliased with the workers' (each on its own 1 s timer): a line fell
    // between two intervals and showed 0/s, which reads like a stall.
    let mut pump = |totals: &mut Totals,
                    wait: Duration,
                    ready: &mut Vec<(usize, usize)>,
                    pub_done: &mut usize,
                    finals: &mut usize|
     -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rep_rx.recv_timeout(left) {
                Ok(Report::Interval(iv)) => {
                    if let Some(seen) = reported.get_mut(iv.thread) {
                        *seen = true;
                    }
                    totals.merge(&iv)
                }
                Ok(Report::Ready { ok, failed, .. }) => ready.push((ok, failed)),
                Ok(Report::PubDone { at_ns }) => {
                    *pub_done += 1;
                    pub_done_ns = pub_done_ns.max(at_ns);
                }
                Ok(Report::Final { interval, streams }) => {
                    totals.merge(&interval);
                    totals.streams.merge(&streams);
                    *finals += 1;
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
        let elapsed = last_print.elapsed();
        let all_in = reported.iter().all(|&seen| seen);
        if (all_in && elapsed >= PROGRESS_EVERY) || elapsed >= PROGRESS_EVERY * 2 {
            if !cli.quiet {
                let since = started.elapsed().as_secs_f64();
                eprintln!(
                    "{}",
                    totals.progress_line(&last, elapsed.as_secs_f64(), since)
                );
            }
            last = totals.c;
            totals.reset_window();
            last_print = Instant::now();
            reported.fill(false);
        }
        true
    };

    // Phase 1: connect and subscribe.
    let mut ready = Vec::new();
    let setup_deadline = Instant::now() + Duration::from_secs_f64(cli.setup_secs);
    while ready.len() < threads && Instant::now() < setup_deadline {
        if !pump(
            &mut totals,
            Duration::from_millis(50),
            &mut ready,
            &mut pub_done,
            &mut finals,
        ) {
            break;
        }
    }
    let ok: usize = ready.iter().map(|r| r.0).sum();
    let setup_failed = ready.len() < threads || (!idle_like && ok < plan.clients.len());
    let broker_cpu_connect1 = pid.and_then(sys::proc_cpu_us);
    let rss_connected = pid.and_then(sys::rss_kb);
    let connect_phase = (
        totals.c.connects_ok,
        totals.first_connect_ns,
        totals.last_connack_ns,
    );

    // Phase 2: the window.
    let secs = cli.secs.max(0.0);
    let t0 = now_ns() + 20_000_000;
    let end = t0 + (secs * 1e9) as u64;
    let gen_cpu0 = sys::self_cpu_us();
    let broker_cpu0 = pid.and_then(sys::proc_cpu_us);
    let mut window_start = totals.c;
    let mut subscribe_sent = false;
    let mut retained_deadline = None;
    // Retained publishers are not paced: they start on the Start command, not at t0.
    let mut publish_start_ns = 0u64;
    if !setup_failed {
        // Counters before t0 (setup) are excluded from the window's rates.
        while pump(
            &mut totals,
            Duration::ZERO,
            &mut ready,
            &mut pub_done,
            &mut finals,
        ) && !rep_rx.is_empty()
        {}
        window_start = totals.c;
        publish_start_ns = now_ns();
        broadcast(Cmd::Start { t0, end });
        let publishers = plan.publishers();
        loop {
            let now = now_ns();
            if plan.mode == Mode::Retained {
                if !subscribe_sent && pub_done >= publishers {
                    subscribe_sent = true;
                    broadcast(Cmd::SubscribeNow);
                    retained_deadline =
                        Some(Instant::now() + Duration::from_secs_f64(secs.max(1.0) + 10.0));
                }
                let all = totals.retained_done_ns.len() >= plan.subscribers();
                if all || retained_deadline.is_some_and(|d| Instant::now() > d) {
                    break;
                }
                if !subscribe_sent && now > end + 30_000_000_000 {
                    break;
                }
            } else if now >= end {
                break;
            }
            if !pump(
                &mut totals,
                Duration::from_millis(50),
                &mut ready,
                &mut pub_done,
                &mut finals,
            ) {
                break;
            }
        }
    }
    let rss_after = pid.and_then(sys::rss_kb);

    // Phase 3: drain late deliveries, until every expected one is in or --drain-secs have
    // passed; what arrives by then is delivered, not lost. (It also gave up after 1.5 s
    // without a delivery: a broker that paused longer lost what it still delivered.)
    if !setup_failed && matches!(plan.mode, Mode::Traffic) {
        let drain_deadline = Instant::now() + Duration::from_secs_f64(cli.drain_secs);
        let need_acks = cfg.qos != QoS::AtMostOnce;
        while Instant::now() < drain_deadline && !totals.all_delivered(need_acks) {
            if !pump(
                &mut totals,
                Duration::from_millis(50),
                &mut ready,
                &mut pub_done,
                &mut finals,
            ) {
                break;
            }
        }
    }
    let measured_end = now_ns();
    let gen_cpu1 = sys::self_cpu_us();
    let broker_cpu1 = pid.and_then(sys::proc_cpu_us);
    let open_at_end = totals.open();

    // Phase 4: finish.
    broadcast(Cmd::Finish);
    while finals < threads {
        if !pump(
            &mut totals,
            Duration::from_millis(100),
            &mut ready,
            &mut pub_done,
            &mut finals,
        ) {
            break;
        }
    }
    for h in handles {
        let _ = h.join();
    }
    if setup_failed {
        let mut why: Vec<String> = totals
            .connect_failures
            .iter()
            .chain(totals.errors.iter())
            .map(|(k, v)| format!("{v} × {k}"))
            .collect();
        if why.is_empty() {
            why.push("timeout".into());
        }
        return Err(format!(
            "setup failed: {ok} of {} clients ready ({})",
            plan.clients.len(),
            why.join(", ")
        ));
    }

    // Summary.
    let window_s = secs.max(1e-3);
    let measured_s = (measured_end.saturating_sub(t0)) as f64 / 1e9;
    // Every report is in by now (Finish): a thread's last interval before `end` reaches
    // the main thread only after it, so the window's counters are read from the totals,
    // each counted by the threads only for events up to `end`.
    let w = |f: fn(&stats::Counters) -> u64| f(&totals.c) - f(&window_start);
    let delivered_total = totals.c.delivered;
    let lost = track::lost(totals.c.expected, totals.streams.unique);
    let mut s = Summary {
        scenario: cli.cmd.name().into(),
        label: cli.label.clone(),
        mqtt: if cli.mqtt == 5 { 5 } else { 3 },
        qos: cli.qos,
        size,
        rate: if idle_like { connect_rate } else { rate },
        secs,
        threads,
        clients: plan.clients.len(),
        publishers: plan.publishers(),
        subscribers: plan.subscribers(),
        sent: totals.c.sent,
        expected: totals.c.expected,
        delivered: delivered_total,
        msgs_per_s: w(|c| c.delivered_in_window) as f64 / window_s,
        sent_per_s: w(|c| c.sent_in_window) as f64 / window_s,
        p50_us: quantile_us(&totals.lat, 0.5),
        p90_us: quantile_us(&totals.lat, 0.9),
        p99_us: quantile_us(&totals.lat, 0.99),
        p999_us: quantile_us(&totals.lat, 0.999),
        max_us: totals.lat.max() as f64 / 1000.0,
        mean_us: if totals.lat.is_empty() {
            0.0
        } else {
            totals.lat.mean() / 1000.0
        },
        lost,
        unsent: totals.c.unsent,
        dup: totals.streams.dup,
        late: totals.streams.late,
        shared_group: match cli.cmd {
            Scenario::Fanin { share, .. } => share,
            _ => 0,
        },
        connects: totals.c.connects_ok,
        connect_p50_us: quantile_us(&totals.conn_lat, 0.5),
        connect_p99_us: quantile_us(&totals.conn_lat, 0.99),
        connect_failures: totals.connect_failures.clone(),
        errors: totals.errors.clone(),
        broker_rss_before_kb: rss_before,
        broker_rss_after_kb: rss_after,
        retained_rx: totals.c.retained_rx,
        open_conns: open_at_end,
        measured_s,
        ..Summary::default()
    };
    // A shared group's members interleave: order is checked per member.
    s.reordered = if s.shared_group > 0 {
        totals.c.member_reordered
    } else {
        totals.streams.reordered
    };
    s.connects_per_s = if plan.mode == Mode::Storm {
        w(|c| c.connects_in_window) as f64 / window_s
    } else {
        match connect_phase {
            (n, Some(a), Some(b)) if b > a => n as f64 / ((b - a) as f64 / 1e9),
            _ => 0.0,
        }
    };
    if plan.mode == Mode::Retained {
        s.retained_ms = totals
            .retained_done_ns
            .iter()
            .max()
            .map(|&ns| ns as f64 / 1e6);
        if let Some(ms) = s.retained_ms {
            s.msgs_per_s = totals.c.retained_rx as f64 / (ms / 1e3).max(1e-6);
        }
        s.lost = (plan.retained_topics as u64 * plan.subscribers() as u64)
            .saturating_sub(totals.c.retained_rx);
        // Not paced (--rate does not apply): the rate is the one measured while publishing.
        let publish_ns =
            (pub_done >= plan.publishers()).then(|| pub_done_ns.saturating_sub(publish_start_ns));
        (s.rate, s.sent_per_s) =
            report::retained_publish_rates(totals.c.sent, plan.publishers(), publish_ns);
    }
    let msgs = if plan.mode == Mode::Retained {
        totals.c.retained_rx
    } else {
        delivered_total
    };
    let gen_cpu = gen_cpu1.saturating_sub(gen_cpu0) as f64;
    s.gen_cpu_pct = gen_cpu / 1e4 / measured_s.max(1e-3);
    if msgs > 0 {
        s.gen_cpu_us_per_msg = Some(gen_cpu / msgs as f64);
    }
    if let (Some(a), Some(b)) = (broker_cpu0, broker_cpu1) {
        let cpu = b.saturating_sub(a) as f64;
        s.broker_cpu_pct = Some(cpu / 1e4 / measured_s.max(1e-3));
        if msgs > 0 {
            s.broker_cpu_us_per_msg = Some(cpu / msgs as f64);
        }
        if plan.mode == Mode::Storm && s.connects > 0 {
            s.broker_cpu_us_per_conn = Some(cpu / w(|c| c.connects_in_window).max(1) as f64);
        }
    }
    if plan.mode != Mode::Storm {
        if let (Some(a), Some(b)) = (broker_cpu_connect0, broker_cpu_connect1) {
            if connect_phase.0 > 0 {
                s.broker_cpu_us_per_conn =
                    Some(b.saturating_sub(a) as f64 / connect_phase.0 as f64);
            }
        }
    }
    if let (Some(a), Some(b)) = (rss_before, rss_after.or(rss_connected)) {
        if ok > 0 {
            s.bytes_per_conn = Some((b as f64 - a as f64) * 1024.0 / ok as f64);
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_still_prints_one_json_summary_naming_the_failure() {
        let cli = Cli::try_parse_from(["shardmq-bench", "--qos", "1", "--json", "p2p"]).unwrap();
        let why = "setup failed: 0 of 20 clients ready (20 × connect: Connection refused)";
        let line = report::render_json(&failed(&cli, why.into()));
        assert!(!line.contains('\n'), "one line");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["error"], why);
        assert_eq!(
            (v["scenario"].as_str(), v["qos"].as_u64()),
            (Some("p2p"), Some(1))
        );
        for k in ["delivered", "msgs_per_s", "lost", "p99_us", "connects"] {
            assert_eq!(v[k].as_f64(), Some(0.0), "{k}");
        }
        assert!(v["broker_cpu_us_per_msg"].is_null());
    }
}
