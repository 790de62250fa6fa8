//! The listening sockets: one per shard on the same address, SO_REUSEPORT so the kernel
//! spreads connections over shards, SO_REUSEADDR so a restart does not fail on TIME_WAIT,
//! and a configurable backlog.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// Binds `count` listening sockets to `addr`. Port 0 is resolved by the first socket and
/// reused by the others. Returns the sockets and the address actually bound.
pub fn bind_listeners(
    addr: SocketAddr,
    count: usize,
    backlog: u32,
) -> io::Result<(Vec<Socket>, SocketAddr)> {
    let mut sockets = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let domain = if bound.is_ipv6() {
            Domain::IPV6
        } else {
            Domain::IPV4
        };
        let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&SockAddr::from(bound))?;
        socket.listen(backlog.min(i32::MAX as u32) as i32)?;
        if bound.port() == 0 {
            bound = socket
                .local_addr()?
                .as_socket()
                .ok_or_else(|| io::Error::other("listener has no inet address"))?;
        }
        sockets.push(socket);
    }
    Ok((sockets, bound))
}
