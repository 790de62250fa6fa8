//! The only code that touches io_uring, sockets, the clock, signals and process limits.
//!
//! [`run`] checks the host (open files, io_uring), binds one SO_REUSEPORT listener per
//! shard (and one per shard for TLS and for WebSocket), starts one pinned thread per shard — each an io_uring
//! event loop around its [`crate::shard::Shard`] — joined by a mesh of bounded channels,
//! prints `listening ADDR` (and `listening tls ADDR`, `listening ws ADDR`) on stdout once every shard accepts, and on SIGINT/SIGTERM shuts the shards down (MQTT 5
//! clients get DISCONNECT 0x8B) and returns.
//!
//! DESIGN.md named glommio as the runtime. Measured here, a minimal glommio server (one
//! task and one `TcpStream` per connection, a read pending) costs 816 bytes of RSS per idle
//! connection, more than mosquitto's 750 for its whole broker; this loop keeps no task, no
//! stream object and no buffer per idle connection (see `scripts/capacity.sh`).

mod buffers;
mod event_loop;
pub mod limits;
mod listener;
mod mesh;
mod tls;
mod websocket;

pub use listener::bind_listeners;

use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::sync::atomic::Ordering;
use std::time::Instant;
use thiserror::Error;

use crate::config::Config;
use crate::shard::ConnectionGauge;
use event_loop::{run_loop, LoopStart};

/// Why the broker could not start or run.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// A host limit (open files, io_uring) is in the way; the message names the fix.
    #[error("{0}")]
    Limit(#[from] limits::LimitError),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A shard's thread or io_uring could not be started.
    #[error("cannot start shard {shard}: {message}")]
    Executor {
        /// The shard.
        shard: usize,
        /// What went wrong.
        message: String,
    },
    /// `[tls]` is set but [`Config::load_tls_files`] was not called.
    #[error("[tls] is configured but its files were not loaded")]
    TlsNotLoaded,
    /// Reading or raising the open-file limit failed.
    #[error("cannot read RLIMIT_NOFILE: {0}")]
    Rlimit(std::io::Error),
}

/// Number of shards for a configuration: `shards`, or one per available core.
pub fn shard_count(config: &Config) -> usize {
    if config.shards > 0 {
        return config.shards;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(crate::config::MAX_SHARDS)
}

/// Blocks SIGINT and SIGTERM in this thread (threads spawned later inherit the mask) so
/// that [`wait_for_signal`] receives them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain libc calls on a local, initialised sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is initialised and its signals are blocked in every thread.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

/// Runs the broker until SIGINT or SIGTERM.
pub fn run(mut config: Config) -> Result<(), RuntimeError> {
    let shards = shard_count(&config);
    let nofile = limits::raise_nofile_limit().map_err(RuntimeError::Rlimit)?;
    if config.limits.max_connections == 0 {
        config.limits.max_connections = nofile
            .soft
            .saturating_sub(limits::fd_reserve(shards as u64))
            .max(1);
    }
    limits::check_fd_budget(config.limits.max_connections, &nofile, shards as u64)?;
    limits::probe_io_uring()?;

    let bind = |port: u16| {
        let addr = SocketAddr::new(config.bind, port);
        bind_listeners(addr, shards, config.listen_backlog)
            .map_err(|source| RuntimeError::Bind { addr, source })
    };
    let (plain, bound) = match config.listen_plain {
        true => {
            let (sockets, bound) = bind(config.port)?;
            (sockets.into_iter().map(Some).collect(), Some(bound))
        }
        false => ((0..shards).map(|_| None).collect::<Vec<_>>(), None),
    };
    let (secure, tls_bound) = match &config.tls {
        Some(tls) => {
            let server = tls.server.clone().ok_or(RuntimeError::TlsNotLoaded)?;
            let (sockets, bound) = bind(tls.port)?;
            let listeners = sockets.into_iter().map(|s| Some((s, server.clone())));
            (listeners.collect(), Some(bound))
        }
        None => ((0..shards).map(|_| None).collect::<Vec<_>>(), None),
    };
    let (websocket, ws_bound) = match config.websocket.as_ref().and_then(|w| w.plain_port()) {
        Some(port) => {
            let (sockets, bound) = bind(port)?;
            (sockets.into_iter().map(Some).collect(), Some(bound))
        }
        None => ((0..shards).map(|_| None).collect::<Vec<_>>(), None),
    };
    let (websocket_tls, wss_bound) = match config.websocket.as_ref().and_then(|w| w.tls_port) {
        Some(port) => {
            let (sockets, bound) = bind(port)?;
            (sockets.into_iter().map(Some).collect(), Some(bound))
        }
        None => ((0..shards).map(|_| None).collect::<Vec<_>>(), None),
    };
    let parked = tls::Parked::default();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let signals = block_signals();
    let epoch = Instant::now();
    let instance = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let ports = mesh::build_mesh(
        shards,
        config.mesh.channel_batches,
        config.mesh.channel_messages,
    )
    .map_err(|e| RuntimeError::Executor {
        shard: 0,
        message: e.to_string(),
    })?;
    let doorbells = ports[0].doorbells.clone();
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
    let mut handles = Vec::new();
    let gauge = ConnectionGauge::default();
    let listeners = plain
        .into_iter()
        .zip(secure)
        .zip(websocket)
        .zip(websocket_tls);
    for ((id, (((socket, secure), websocket), websocket_tls)), port) in
        listeners.enumerate().zip(ports)
    {
        let core = (cores.len() >= shards).then(|| cores[id]);
        let start = LoopStart {
            id,
            shards,
            config: config.clone(),
            listener_fd: socket.map(|s| s.into_raw_fd()),
            tls_listener: secure.map(|(s, server)| (s.into_raw_fd(), server)),
            ws_listener_fd: websocket.map(|s| s.into_raw_fd()),
            wss_listener_fd: websocket_tls.map(|s| s.into_raw_fd()),
            parked: parked.clone(),
            port,
            ready: ready_tx.clone(),
            epoch,
            instance,
            gauge: gauge.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("shard-{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                run_loop(start)
            })
            .map_err(|e| RuntimeError::Executor {
                shard: id,
                message: e.to_string(),
            })?;
        handles.push((id, core.map(|c| c.id), handle));
    }
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(message)) => {
                for d in &doorbells {
                    d.shutdown.store(true, Ordering::SeqCst);
                    d.ring(true);
                }
                return Err(RuntimeError::Executor { shard: 0, message });
            }
            Err(_) => break,
        }
    }
    let addresses = [
        bound.map(|a| a.to_string()),
        tls_bound.map(|a| format!("{a} (tls)")),
        ws_bound.map(|a| format!("{a} (ws)")),
        wss_bound.map(|a| format!("{a} (wss)")),
    ];
    let addresses = addresses
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    for (id, core, _) in &handles {
        match core {
            Some(core) => tracing::info!("shard {id} on core {core} listening on {addresses}"),
            None => tracing::info!("shard {id} (unpinned) listening on {addresses}"),
        }
    }
    // The plain address first: scripts and tests read the first line.
    if let Some(bound) = bound {
        println!("listening {bound}");
    }
    if let Some(bound) = tls_bound {
        println!("listening tls {bound}");
    }
    if let Some(bound) = ws_bound {
        println!("listening ws {bound}");
    }
    if let Some(bound) = wss_bound {
        println!("listening wss {bound}");
    }
    let sig = wait_for_signal(&signals);
    tracing::info!("signal {sig}: shutting down");
    for d in &doorbells {
        d.shutdown.store(true, Ordering::SeqCst);
        d.ring(true);
    }
    for (id, _, handle) in handles {
        if handle.join().is_err() {
            tracing::warn!("shard {id} ended abnormally");
        }
    }
    tracing::info!("stopped");
    Ok(())
}
