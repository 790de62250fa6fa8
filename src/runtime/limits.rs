//! Process limits the broker checks (and raises) once at start, before any shard runs.
//!
//! Three things decide whether a host can take the configured load at all, and each fails
//! late and confusingly if nobody checks it up front:
//!
//! - **RLIMIT_NOFILE**: every client connection is one file descriptor. [`raise_nofile_limit`]
//!   lifts the soft limit to the hard limit, and [`check_fd_budget`] refuses to start when
//!   `max_connections` plus a fixed reserve ([`fd_reserve`]) would not fit.
//! - **io_uring**: every shard runs on one. [`probe_io_uring`] sets up a tiny ring and turns the
//!   three usual failures (disabled, kernel too old, memlock too low) into one clear line.
//! - Kernel-wide knobs (`fs.nr_open`, `net.core.somaxconn`, `tcp_mem`, ...) are out of reach of
//!   an unprivileged process; `tuning/check.sh` reports them and `tuning/apply.sh` sets them.
//!
//! Every error's `Display` is one line: what is wrong, and what to do about it.

use std::io;

/// File descriptors reserved per shard on top of the client connections: the shard's
/// `SO_REUSEPORT` listener (plus one for a second address family), its io_uring
/// rings (main, latency, poll), its eventfd and timer fds, the shard's mesh wake-ups (8),
/// and the 16 closed connections it may still be draining (lingering close).
pub const FD_RESERVE_PER_SHARD: u64 = 24;

/// File descriptors reserved once per process: stdio, log files, the config file, the
/// metrics / admin listener, signal handling, `/proc` and `/sys` reads, and some slack for
/// the Rust runtime and libraries.
pub const FD_RESERVE_FIXED: u64 = 64;

/// The process's `RLIMIT_NOFILE`, as returned by [`raise_nofile_limit`].
///
/// `u64::MAX` stands for `RLIM_INFINITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The limit that applies now (what `open`/`accept` are checked against).
    pub soft: u64,
    /// The ceiling the soft limit may be raised to without privileges.
    pub hard: u64,
}

/// A host limit that stops the broker from starting. `Display` is a single line that names
/// the problem and the fix, and points at `tuning/check.sh`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// `max_connections` plus the reserve does not fit in the soft `RLIMIT_NOFILE`.
    #[error(
        "max_connections = {max_connections} needs about {needed} file descriptors but \
         RLIMIT_NOFILE allows {soft}: raise it (ulimit -n / LimitNOFILE=) or lower \
         max_connections; run tuning/check.sh --connections {max_connections}"
    )]
    FdBudget {
        /// The configured connection limit.
        max_connections: u64,
        /// `max_connections + fd_reserve(shards)`.
        needed: u64,
        /// The soft `RLIMIT_NOFILE` it was checked against.
        soft: u64,
    },
    /// `io_uring_setup` returned `EPERM`.
    #[error(
        "io_uring is disabled (EPERM): set kernel.io_uring_disabled=0, or allow the io_uring_* \
         syscalls in the seccomp profile (Docker/Podman: a profile that permits them, or \
         --security-opt seccomp=unconfined); run tuning/check.sh"
    )]
    IoUringDisabled,
    /// `io_uring_setup` returned `ENOSYS`.
    #[error(
        "io_uring is not available (ENOSYS): the kernel is too old (Linux 5.8+ needed, 5.19+ \
         recommended) or built without CONFIG_IO_URING; run tuning/check.sh"
    )]
    IoUringUnsupported,
    /// `io_uring_setup` (or mapping the ring) returned `ENOMEM`.
    #[error(
        "io_uring ring setup failed (ENOMEM): RLIMIT_MEMLOCK ({memlock}) is too low for the \
         rings; raise it (ulimit -l unlimited / LimitMEMLOCK=infinity); run tuning/check.sh"
    )]
    IoUringMemlock {
        /// The current soft `RLIMIT_MEMLOCK`, human readable (e.g. `8192 KiB`).
        memlock: String,
    },
    /// Any other `io_uring_setup` failure.
    #[error("io_uring setup failed: {detail}; run tuning/check.sh")]
    IoUringOther {
        /// The OS error, as text.
        detail: String,
    },
}

/// Descriptors the broker needs besides its client connections, for `shards` shards:
/// `FD_RESERVE_FIXED + FD_RESERVE_PER_SHARD * shards`.
pub fn fd_reserve(shards: u64) -> u64 {
    FD_RESERVE_FIXED.saturating_add(FD_RESERVE_PER_SHARD.saturating_mul(shards.max(1)))
}

/// Descriptors needed for `max_connections` clients on `shards` shards (saturating).
pub fn fds_needed(max_connections: u64, shards: u64) -> u64 {
    max_connections.saturating_add(fd_reserve(shards))
}

// `rlim_t` is `u64` on 64-bit Linux but narrower on some 32-bit targets, hence the cast.
#[allow(clippy::unnecessary_cast)]
fn rlim_to_u64(v: libc::rlim_t) -> u64 {
    if v == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        v as u64
    }
}

/// The integer type `getrlimit`'s resource argument has in this libc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

fn getrlimit(resource: Resource) -> io::Result<libc::rlimit> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(resource, &mut rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rl)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (an unprivileged process may always do
/// that) and returns the limits now in force.
///
/// The hard limit itself comes from the service manager (`LimitNOFILE=` in
/// `tuning/shardmq.service`) or the shell (`ulimit -Hn`), and can never exceed `fs.nr_open`.
/// Call this once at start, before [`check_fd_budget`].
pub fn raise_nofile_limit() -> io::Result<NofileLimit> {
    let mut rl = getrlimit(libc::RLIMIT_NOFILE)?;
    if rl.rlim_cur != rl.rlim_max {
        let wanted = libc::rlimit {
            rlim_cur: rl.rlim_max,
            rlim_max: rl.rlim_max,
        };
        // SAFETY: `wanted` is a valid `rlimit`; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
            return Err(io::Error::last_os_error());
        }
        rl = getrlimit(libc::RLIMIT_NOFILE)?;
    }
    Ok(NofileLimit {
        soft: rlim_to_u64(rl.rlim_cur),
        hard: rlim_to_u64(rl.rlim_max),
    })
}

/// Checks that `max_connections` client sockets plus the broker's own descriptors
/// ([`fd_reserve`]`(shards)`) fit in the soft `RLIMIT_NOFILE`.
///
/// Errors with [`LimitError::FdBudget`], whose message says how many descriptors are needed,
/// what the limit is, and how to fix it. Pure: takes the limit as an argument.
pub fn check_fd_budget(
    max_connections: u64,
    limit: &NofileLimit,
    shards: u64,
) -> Result<(), LimitError> {
    let needed = fds_needed(max_connections, shards);
    if needed > limit.soft {
        return Err(LimitError::FdBudget {
            max_connections,
            needed,
            soft: limit.soft,
        });
    }
    Ok(())
}

/// Maps the errno of a failed `io_uring_setup` to a [`LimitError`]. `memlock_soft` is the
/// current soft `RLIMIT_MEMLOCK` in bytes (`None` if unknown, `u64::MAX` for unlimited), used
/// only to make the `ENOMEM` message concrete. Pure.
pub fn classify_io_uring_error(errno: Option<i32>, memlock_soft: Option<u64>) -> LimitError {
    match errno {
        Some(libc::EPERM) => LimitError::IoUringDisabled,
        Some(libc::ENOSYS) => LimitError::IoUringUnsupported,
        Some(libc::ENOMEM) => LimitError::IoUringMemlock {
            memlock: match memlock_soft {
                None => "unknown".to_owned(),
                Some(u64::MAX) => "unlimited".to_owned(),
                Some(b) => format!("{} KiB", b / 1024),
            },
        },
        Some(e) => LimitError::IoUringOther {
            detail: io::Error::from_raw_os_error(e).to_string(),
        },
        None => LimitError::IoUringOther {
            detail: "unknown error".to_owned(),
        },
    }
}

/// Sets up (and drops) an 8-entry io_uring to prove that this process may use io_uring,
/// before a shard tries and fails with a less helpful message.
///
/// `EPERM` means io_uring is switched off (`kernel.io_uring_disabled`, or a seccomp profile
/// such as Docker's default); `ENOSYS` means the kernel lacks it; `ENOMEM` usually means
/// `RLIMIT_MEMLOCK` is too low (kernels before 5.12 charge ring memory to it). Each maps to
/// one line naming the fix; see [`classify_io_uring_error`].
pub fn probe_io_uring() -> Result<(), LimitError> {
    match io_uring::IoUring::new(8) {
        Ok(ring) => {
            drop(ring);
            Ok(())
        }
        Err(e) => {
            let memlock = getrlimit(libc::RLIMIT_MEMLOCK)
                .ok()
                .map(|rl| rlim_to_u64(rl.rlim_cur));
            Err(classify_io_uring_error(e.raw_os_error(), memlock))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(soft: u64) -> NofileLimit {
        NofileLimit {
            soft,
            hard: soft.max(20_000),
        }
    }

    #[test]
    fn reserve_is_fixed_plus_per_shard() {
        assert_eq!(fd_reserve(1), FD_RESERVE_FIXED + FD_RESERVE_PER_SHARD);
        assert_eq!(fd_reserve(2), FD_RESERVE_FIXED + 2 * FD_RESERVE_PER_SHARD);
        assert_eq!(fd_reserve(64), FD_RESERVE_FIXED + 64 * FD_RESERVE_PER_SHARD);
        // zero shards is treated as one: there is always at least one shard
        assert_eq!(fd_reserve(0), fd_reserve(1));
        assert_eq!(fds_needed(50_000, 2), 50_000 + fd_reserve(2));
    }

    #[test]
    fn budget_fits_exactly_at_the_limit() {
        let need = fds_needed(19_000, 2);
        assert_eq!(check_fd_budget(19_000, &lim(need), 2), Ok(()));
        assert!(check_fd_budget(19_000, &lim(need - 1), 2).is_err());
        assert_eq!(check_fd_budget(0, &lim(fd_reserve(2)), 2), Ok(()));
    }

    #[test]
    fn budget_error_names_numbers_and_fix_on_one_line() {
        let err = check_fd_budget(50_000, &lim(20_000), 2).unwrap_err();
        assert_eq!(
            err,
            LimitError::FdBudget {
                max_connections: 50_000,
                needed: 50_112,
                soft: 20_000
            }
        );
        let msg = err.to_string();
        assert_eq!(
            msg,
            "max_connections = 50000 needs about 50112 file descriptors but RLIMIT_NOFILE \
             allows 20000: raise it (ulimit -n / LimitNOFILE=) or lower max_connections; \
             run tuning/check.sh --connections 50000"
        );
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn budget_arithmetic_saturates() {
        let err = check_fd_budget(u64::MAX, &lim(1 << 20), 4).unwrap_err();
        assert!(matches!(
            err,
            LimitError::FdBudget {
                needed: u64::MAX,
                ..
            }
        ));
        // an unlimited soft limit fits anything
        assert_eq!(check_fd_budget(u64::MAX - 1, &lim(u64::MAX), 4), Ok(()));
    }

    #[test]
    fn io_uring_errors_map_to_one_clear_line_each() {
        let cases = [
            (Some(libc::EPERM), "io_uring_disabled"),
            (Some(libc::ENOSYS), "kernel is too old"),
            (Some(libc::ENOMEM), "LimitMEMLOCK=infinity"),
            (Some(libc::EINVAL), "io_uring setup failed"),
            (None, "unknown error"),
        ];
        for (errno, needle) in cases {
            let msg = classify_io_uring_error(errno, Some(8 << 20)).to_string();
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
            assert!(msg.ends_with("run tuning/check.sh"), "{msg:?}");
            assert!(!msg.contains('\n'), "{msg:?}");
        }
        assert_eq!(
            classify_io_uring_error(Some(libc::EPERM), None),
            LimitError::IoUringDisabled
        );
        assert_eq!(
            classify_io_uring_error(Some(libc::ENOSYS), None),
            LimitError::IoUringUnsupported
        );
    }

    #[test]
    fn memlock_message_shows_the_current_limit() {
        let m = |v| classify_io_uring_error(Some(libc::ENOMEM), v).to_string();
        assert!(m(Some(8 << 20)).contains("RLIMIT_MEMLOCK (8192 KiB)"));
        assert!(m(Some(u64::MAX)).contains("RLIMIT_MEMLOCK (unlimited)"));
        assert!(m(None).contains("RLIMIT_MEMLOCK (unknown)"));
    }

    #[test]
    fn raise_nofile_sets_soft_to_hard() {
        let l = raise_nofile_limit().expect("getrlimit/setrlimit");
        assert_eq!(l.soft, l.hard);
        // idempotent
        assert_eq!(raise_nofile_limit().unwrap(), l);
    }

    #[test]
    fn probe_io_uring_ok_or_clear_error() {
        // The host decides which; either way the answer is one actionable line.
        if let Err(e) = probe_io_uring() {
            let msg = e.to_string();
            assert!(
                msg.contains("tuning/check.sh") && !msg.contains('\n'),
                "{msg}"
            );
        }
    }
}
