//! Codec micro-benchmarks: shardmq against mqttbytes 0.6 on the same packets.
//!
//! `cargo bench --bench codec` (env: `CODEC_BENCH_MS` = length of one timed run, default 200;
//! `CODEC_BENCH_RUNS` = timed runs per library, default 7).
//!
//! No framework: a plain loop with `black_box`, a warm-up that also calibrates the iteration
//! count, then alternating shardmq / mqttbytes runs (so machine noise hits both) and the
//! median of each. Encode benches reuse one output buffer, cleared every iteration, in both
//! libraries. Decode benches decode from a fresh `BytesMut` holding the frame every
//! iteration: the buffers are built the same way for both libraries, in batches, outside the
//! timed region; the decoded packets are dropped outside it too.
//!
//! Time is the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not the wall clock, so that a
//! run is not charged for the time the thread spends descheduled on a shared machine.

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mqttbytes::QoS as MQoS;
use shardmq::codec::{Connect, MqttStr, Packet, Protocol, Publish, QoS, Subscribe};
use shardmq::codec::{SubscribeFilter, SubscriptionOptions, MAX_FRAME_BYTES};

const TOPIC: &str = "sensors/building-7/floor-3/temperature";
const CLIENT_ID: &str = "bench-client-000123";

type Op = Box<dyn FnMut(u64) -> Duration>;

/// A point in this thread's CPU time.
#[derive(Clone, Copy)]
struct Instant(Duration);

impl Instant {
    fn now() -> Instant {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write to.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        Instant(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    fn elapsed(&self) -> Duration {
        Instant::now().0 - self.0
    }
}

fn encode_op(mut f: impl FnMut(&mut BytesMut) + 'static) -> Op {
    let mut out = BytesMut::with_capacity(4096);
    Box::new(move |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            out.clear();
            f(black_box(&mut out));
            black_box(&out);
        }
        start.elapsed()
    })
}

fn decode_op<T: 'static>(frame: &[u8], mut f: impl FnMut(&mut BytesMut) -> T + 'static) -> Op {
    const BATCH: usize = 1024;
    let frame = frame.to_vec();
    let mut bufs: Vec<BytesMut> = Vec::with_capacity(BATCH);
    let mut decoded: Vec<T> = Vec::with_capacity(BATCH);
    Box::new(move |iters| {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(BATCH as u64) as usize;
            bufs.extend((0..n).map(|_| BytesMut::from(&frame[..])));
            let start = Instant::now();
            for buf in bufs.iter_mut() {
                decoded.push(f(black_box(buf)));
            }
            total += start.elapsed();
            black_box(&decoded);
            decoded.clear();
            bufs.clear();
            left -= n as u64;
        }
        total
    })
}

/// Warm-up: doubles the iteration count until a run takes a quarter of the target, then
/// scales it to the target.
fn calibrate(op: &mut Op, target: Duration) -> u64 {
    let mut iters = 256u64;
    loop {
        let d = op(iters);
        if d >= target / 4 {
            return ((iters as f64) * target.as_secs_f64() / d.as_secs_f64()).max(1.0) as u64;
        }
        iters *= 2;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Row {
    name: &'static str,
    shardmq: f64,
    mqttbytes: f64,
    reference: &'static str,
}

fn compare(
    name: &'static str,
    reference: &'static str,
    mut ours: Op,
    mut theirs: Op,
) -> Option<Row> {
    // `CODEC_BENCH_FILTER=decode` runs only the matching rows; `CODEC_BENCH_ONLY=shardmq`
    // (or `mqttbytes`) times one side only, for profiling.
    let filter: String = env_or("CODEC_BENCH_FILTER", String::new());
    if !name.contains(filter.as_str()) {
        return None;
    }
    let only: String = env_or("CODEC_BENCH_ONLY", String::new());
    if only == "shardmq" {
        theirs = Box::new(|_| Duration::from_secs(1));
    } else if only == "mqttbytes" {
        ours = Box::new(|_| Duration::from_secs(1));
    }
    let ms: u64 = env_or("CODEC_BENCH_MS", 200);
    let runs: usize = env_or("CODEC_BENCH_RUNS", 7);
    let target = Duration::from_millis(ms);
    let n_ours = calibrate(&mut ours, target);
    let n_theirs = calibrate(&mut theirs, target);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        a.push(n_ours as f64 / ours(n_ours).as_secs_f64());
        b.push(n_theirs as f64 / theirs(n_theirs).as_secs_f64());
    }
    let row = Row {
        name,
        shardmq: median(a),
        mqttbytes: median(b),
        reference,
    };
    eprintln!(
        "{:<34} shardmq {:>12} ops/s   mqttbytes {:>12} ops/s   {:.1}x",
        row.name,
        fmt_ops(row.shardmq),
        fmt_ops(row.mqttbytes),
        row.shardmq / row.mqttbytes
    );
    Some(row)
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fmt_ops(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else {
        format!("{:.0}k", v / 1e3)
    }
}

// ---------------------------------------------------------------- packets

fn payload() -> Bytes {
    Bytes::from((0..64u8).collect::<Vec<u8>>())
}

fn our_publish(qos: QoS) -> Publish {
    Publish {
        qos,
        packet_id: if qos == QoS::AtMostOnce { 0 } else { 42 },
        ..Publish::new(TOPIC, payload())
    }
}

fn their_qos(qos: QoS) -> MQoS {
    match qos {
        QoS::AtMostOnce => MQoS::AtMostOnce,
        QoS::AtLeastOnce => MQoS::AtLeastOnce,
        QoS::ExactlyOnce => MQoS::ExactlyOnce,
    }
}

fn v4_publish(qos: QoS) -> mqttbytes::v4::Publish {
    let mut p = mqttbytes::v4::Publish::from_bytes(TOPIC, their_qos(qos), payload());
    p.pkid = our_publish(qos).packet_id;
    p
}

fn v5_publish(qos: QoS) -> mqttbytes::v5::Publish {
    let mut p = mqttbytes::v5::Publish::from_bytes(TOPIC, their_qos(qos), payload());
    p.pkid = our_publish(qos).packet_id;
    p
}

fn our_subscribe() -> Subscribe {
    Subscribe {
        packet_id: 7,
        properties: Default::default(),
        filters: vec![SubscribeFilter {
            filter: MqttStr::from("sensors/+/floor-3/#"),
            options: SubscriptionOptions::qos(QoS::AtLeastOnce),
        }],
    }
}

fn our_connect(protocol: Protocol) -> Connect {
    let mut c = Connect::new(protocol, CLIENT_ID);
    c.keep_alive_secs = 30;
    c.username = Some(MqttStr::from("bench-user"));
    c.password = Some(Bytes::from_static(b"bench-password"));
    c
}

fn bytes_of(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut out = BytesMut::new();
    f(&mut out);
    out.to_vec()
}

/// Both libraries must produce the same bytes for the "same" packet, or the comparison
/// would not be fair.
fn assert_same(what: &str, ours: &[u8], theirs: &[u8]) {
    assert_eq!(
        ours, theirs,
        "{what}: the two libraries encode different frames"
    );
}

fn main() {
    let mut rows = Vec::new();
    let protocols = [(Protocol::V311, "3.1.1"), (Protocol::V5, "5.0")];

    // PUBLISH encode, 64-byte payload.
    for (protocol, v) in protocols {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let ours = our_publish(qos);
            let name: &'static str =
                Box::leak(format!("PUBLISH encode QoS {} v{v}", qos as u8).into_boxed_str());
            let (ob, tb): (Vec<u8>, Vec<u8>);
            let theirs: Op = if protocol.is_v5() {
                let t = v5_publish(qos);
                tb = bytes_of(|o| {
                    t.write(o).unwrap();
                });
                encode_op(move |o| {
                    t.write(o).unwrap();
                })
            } else {
                let t = v4_publish(qos);
                tb = bytes_of(|o| {
                    t.write(o).unwrap();
                });
                encode_op(move |o| {
                    t.write(o).unwrap();
                })
            };
            ob = bytes_of(|o| ours.encode(protocol, o).unwrap());
            assert_same(name, &ob, &tb);
            let op = encode_op(move |o| ours.encode(protocol, o).unwrap());
            rows.extend(compare(name, "5.05M", op, theirs));
        }
    }

    // SUBSCRIBE encode, one filter.
    for (protocol, v) in protocols {
        let ours = our_subscribe();
        let name: &'static str = Box::leak(format!("SUBSCRIBE encode v{v}").into_boxed_str());
        let ob = bytes_of(|o| ours.encode(protocol, o).unwrap());
        let (theirs, tb): (Op, Vec<u8>) = if protocol.is_v5() {
            let mut t = mqttbytes::v5::Subscribe::new("sensors/+/floor-3/#", MQoS::AtLeastOnce);
            t.pkid = 7;
            let tb = bytes_of(|o| {
                t.write(o).unwrap();
            });
            (
                encode_op(move |o| {
                    t.write(o).unwrap();
                }),
                tb,
            )
        } else {
            let mut t = mqttbytes::v4::Subscribe::new("sensors/+/floor-3/#", MQoS::AtLeastOnce);
            t.pkid = 7;
            let tb = bytes_of(|o| {
                t.write(o).unwrap();
            });
            (
                encode_op(move |o| {
                    t.write(o).unwrap();
                }),
                tb,
            )
        };
        assert_same(name, &ob, &tb);
        let op = encode_op(move |o| ours.encode(protocol, o).unwrap());
        rows.extend(compare(name, "3.42M", op, theirs));
    }

    // PUBLISH decode, QoS 1, 64-byte payload.
    for (protocol, v) in protocols {
        let frame = bytes_of(|o| our_publish(QoS::AtLeastOnce).encode(protocol, o).unwrap());
        let name: &'static str = Box::leak(format!("PUBLISH decode QoS 1 v{v}").into_boxed_str());
        let ours = decode_op(&frame, move |b| {
            Packet::decode(b, protocol, MAX_FRAME_BYTES)
                .unwrap()
                .unwrap()
        });
        let theirs = if protocol.is_v5() {
            let mut b = BytesMut::from(&frame[..]);
            assert!(matches!(
                mqttbytes::v5::read(&mut b, MAX_FRAME_BYTES),
                Ok(mqttbytes::v5::Packet::Publish(_))
            ));
            decode_op(&frame, |b| mqttbytes::v5::read(b, MAX_FRAME_BYTES).unwrap())
        } else {
            let mut b = BytesMut::from(&frame[..]);
            assert!(matches!(
                mqttbytes::v4::read(&mut b, MAX_FRAME_BYTES),
                Ok(mqttbytes::v4::Packet::Publish(_))
            ));
            decode_op(&frame, |b| mqttbytes::v4::read(b, MAX_FRAME_BYTES).unwrap())
        };
        rows.extend(compare(name, "2.36M", ours, theirs));
    }

    // CONNECT decode: client id, keep alive, user name and password.
    for (protocol, v) in protocols {
        let frame = bytes_of(|o| our_connect(protocol).encode(o).unwrap());
        let name: &'static str = Box::leak(format!("CONNECT decode v{v}").into_boxed_str());
        let ours = decode_op(&frame, move |b| {
            Packet::decode(b, protocol, MAX_FRAME_BYTES)
                .unwrap()
                .unwrap()
        });
        let theirs = if protocol.is_v5() {
            let mut b = BytesMut::from(&frame[..]);
            let Ok(mqttbytes::v5::Packet::Connect(c)) =
                mqttbytes::v5::read(&mut b, MAX_FRAME_BYTES)
            else {
                panic!("mqttbytes v5 does not read the CONNECT")
            };
            assert_eq!(c.client_id, CLIENT_ID);
            decode_op(&frame, |b| mqttbytes::v5::read(b, MAX_FRAME_BYTES).unwrap())
        } else {
            let mut b = BytesMut::from(&frame[..]);
            let Ok(mqttbytes::v4::Packet::Connect(c)) =
                mqttbytes::v4::read(&mut b, MAX_FRAME_BYTES)
            else {
                panic!("mqttbytes v4 does not read the CONNECT")
            };
            assert_eq!(c.client_id, CLIENT_ID);
            decode_op(&frame, |b| mqttbytes::v4::read(b, MAX_FRAME_BYTES).unwrap())
        };
        rows.extend(compare(name, "n/a", ours, theirs));
    }

    println!();
    println!(
        "| operation | shardmq ops/s | mqttbytes 0.6 ops/s | ratio | MqttX (Apple M4 Pro, Elixir) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1}x | {} |",
            r.name,
            fmt_ops(r.shardmq),
            fmt_ops(r.mqttbytes),
            r.shardmq / r.mqttbytes,
            r.reference
        );
    }
    println!();
    println!(
        "64-byte payload, topic {TOPIC:?} ({} bytes); median of {} alternating runs of ~{} ms.",
        TOPIC.len(),
        env_or("CODEC_BENCH_RUNS", 7usize),
        env_or("CODEC_BENCH_MS", 200u64)
    );
}
