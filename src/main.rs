//! The `shardmq` broker binary: command line and config file → [`shardmq::runtime::run`].

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use shardmq::config::Config;

/// mimalloc: shards free each other's buffers (a forwarded publish is freed by the
/// receiving shard), which glibc malloc handles with arena locks; mimalloc frees them
/// through a per-page lock-free list and keeps small objects without headers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Thread-per-core MQTT 3.1.1 / 5.0 broker. With no flags it runs with embedded defaults
/// on 127.0.0.1:1883, one shard per core.
#[derive(Debug, Parser)]
#[command(name = "shardmq", version)]
struct Cli {
    /// Address to listen on (key `bind`; default 127.0.0.1).
    #[arg(long)]
    bind: Option<IpAddr>,
    /// TCP port, 0 picks a free one (key `port`; default 1883).
    #[arg(long)]
    port: Option<u16>,
    /// Number of shards, 0 = one per core (key `shards`; default 0).
    #[arg(long)]
    shards: Option<usize>,
    /// Log filter, e.g. info or shardmq=debug (key `log`; default info).
    #[arg(long)]
    log: Option<String>,
    /// TOML configuration file; flags override its keys.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn load(cli: &Cli) -> Result<Config, shardmq::config::ConfigError> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(v) = cli.bind {
        config.bind = v;
    }
    if let Some(v) = cli.port {
        config.port = v;
    }
    if let Some(v) = cli.shards {
        config.shards = v;
    }
    if let Some(v) = &cli.log {
        config.log = v.clone();
    }
    config.validate()?;
    config.load_auth_files()?;
    config.load_tls_files()?;
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardmq: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = match tracing_subscriber::EnvFilter::try_new(&config.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("shardmq: config key `log`: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match shardmq::runtime::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardmq: {e}");
            ExitCode::from(1)
        }
    }
}
