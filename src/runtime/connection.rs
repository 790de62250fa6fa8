//! One task per client connection: moves bytes between the socket and the shard.
//!
//! Each turn it first writes what the shard buffered for this client (writes before reads:
//! a flood turns into backpressure, not into an ever-growing buffer), then reads at most one
//! chunk, which the shard decodes in place. Bytes stay in the connection only while a packet
//! is incomplete; otherwise the shard-wide read buffer is reused.

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::shard_task::ShardContext;
use crate::codec::parse_frame_header;
use crate::shard::Key;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Write buffers larger than this are released when they empty (idle connections are cheap).
const IDLE_WRITE_CAPACITY: usize = 4 * 1024;

enum Event {
    /// New bytes are in the shard's read buffer.
    Read,
    /// Buffered input can be decoded again (the connection was unblocked).
    Resume,
    /// The connection is finished.
    Done,
}

/// Serves one connection until it closes.
pub(super) async fn serve(mut stream: TcpStream, ctx: Rc<ShardContext>, key: Key) {
    let _ = stream.set_nodelay(true);
    loop {
        let event = poll_fn(|cx| poll_connection(&mut stream, &ctx, key, cx)).await;
        match event {
            Event::Done => break,
            Event::Read => ctx.process_read(key),
            Event::Resume => ctx.process_buffered(key),
        }
        glommio::yield_if_needed().await;
    }
    ctx.closed(key);
}

fn poll_connection(
    stream: &mut TcpStream,
    ctx: &ShardContext,
    key: Key,
    cx: &mut Context<'_>,
) -> Poll<Event> {
    let mut shard = ctx.shard.borrow_mut();
    let congested = shard.mesh_congested();
    let max_outgoing = shard.config().limits.max_outgoing_bytes;
    let max_packet = shard.config().limits.max_packet_bytes as usize;
    let Some(conn) = shard.conn_mut(key) else {
        return Poll::Ready(Event::Done);
    };
    while !conn.out.is_empty() {
        match Pin::new(&mut *stream).poll_write(cx, &conn.out) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Event::Done),
            Poll::Ready(Ok(n)) => conn.out.advance(n),
            Poll::Pending => break,
        }
    }
    if conn.out.is_empty() && conn.out.capacity() > IDLE_WRITE_CAPACITY {
        conn.out = BytesMut::new();
    }
    if conn.is_closing() {
        if conn.out.is_empty() {
            return Poll::Ready(Event::Done);
        }
    } else if conn.can_process_input() {
        if matches!(
            parse_frame_header(&conn.input, max_packet),
            Ok(Some(_)) | Err(_)
        ) {
            return Poll::Ready(Event::Resume);
        }
        if conn.out.len() < max_outgoing {
            if congested {
                ctx.pause(key);
            } else {
                let mut rb = ctx.read_buf.borrow_mut();
                let buf = rb.spare(READ_CHUNK);
                match Pin::new(&mut *stream).poll_read(cx, buf) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Event::Done),
                    Poll::Ready(Ok(n)) => {
                        let len = rb.buf.len();
                        // SAFETY: those bytes are initialised (see `ReadBuffer::spare`).
                        unsafe { rb.buf.set_len(len + n) };
                        return Poll::Ready(Event::Read);
                    }
                    Poll::Pending => {}
                }
            }
        }
    }
    if !conn.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        conn.waker = Some(cx.waker().clone());
    }
    Poll::Pending
}

/// The shard's read buffer. Its spare capacity is handed to `read` as a `&mut [u8]`, so every
/// byte of it must be initialised: fresh allocations are zeroed once, and reuse of the same
/// allocation (BytesMut reclaiming its buffer) needs no zeroing.
#[derive(Default)]
pub(super) struct ReadBuffer {
    pub(super) buf: BytesMut,
    zeroed: (usize, usize),
}

impl ReadBuffer {
    /// Spare capacity of at least `len` bytes, initialised.
    fn spare(&mut self, len: usize) -> &mut [u8] {
        if self.buf.capacity() - self.buf.len() < len {
            self.buf.reserve(2 * len);
        }
        let start = self.buf.as_ptr() as usize + self.buf.len();
        let end = self.buf.as_ptr() as usize + self.buf.capacity();
        if start < self.zeroed.0 || end > self.zeroed.1 {
            let len_before = self.buf.len();
            self.buf.resize(self.buf.capacity(), 0);
            self.buf.truncate(len_before);
            self.zeroed = (start, end);
        }
        let spare = self.buf.spare_capacity_mut();
        // SAFETY: the range was zeroed above (or earlier, in the same allocation), so it is
        // initialised; MaybeUninit<u8> and u8 share their layout.
        unsafe { &mut *(spare as *mut [MaybeUninit<u8>] as *mut [u8]) }
    }
}
