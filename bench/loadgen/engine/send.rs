//! Sending and closing: one SEND per socket in flight, carrying what the turn wrote.

use super::*;

impl Worker {
    pub(super) fn mark_dirty(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(ci as u32);
        }
    }

    pub(super) fn flush(&mut self, now: u64) {
        let dirty = std::mem::take(&mut self.dirty);
        for &ci in &dirty {
            let ci = ci as usize;
            let c = &mut self.conns[ci];
            c.dirty = false;
            let handshake = c.tls.as_ref().is_some_and(|t| t.wants_write());
            if c.send_out || (c.wbuf.is_empty() && !handshake) || c.fd < 0 || c.connect_out {
                continue;
            }
            match c.tls.as_mut() {
                None if c.ws.is_some() => {
                    let ws = c.ws.as_mut().expect("checked");
                    c.sbuf.clear();
                    if ws.request_due() {
                        let host = self.cfg.addr.to_string();
                        c.sbuf
                            .extend_from_slice(&crate::loadgen::ws::request(&host));
                    }
                    crate::loadgen::ws::encode_binary(&c.wbuf, &mut c.sbuf);
                }
                None => std::mem::swap(&mut c.wbuf, &mut c.sbuf),
                Some(tls) => {
                    use bytes::BufMut;
                    use std::io::Write;
                    c.sbuf.clear();
                    // `wss://`: the opening request and frames travel inside the records.
                    let framed = match c.ws.as_mut() {
                        Some(ws) if !c.wbuf.is_empty() => {
                            let mut f = BytesMut::new();
                            if ws.request_due() {
                                let host = self.cfg.addr.to_string();
                                f.extend_from_slice(&crate::loadgen::ws::request(&host));
                            }
                            crate::loadgen::ws::encode_binary(&c.wbuf, &mut f);
                            Some(f)
                        }
                        _ => None,
                    };
                    // Unlimited buffer (see `on_connect`): never short.
                    tls.writer()
                        .write_all(framed.as_deref().unwrap_or(&c.wbuf))
                        .expect("rustls takes the whole write buffer");
                    let mut out = (&mut c.sbuf).writer();
                    while tls.wants_write() {
                        if !matches!(tls.write_tls(&mut out), Ok(n) if n > 0) {
                            break;
                        }
                    }
                }
            }
            c.wbuf.clear();
            if c.sbuf.is_empty() {
                continue; // TLS: the handshake has nothing to send yet
            }
            c.soff = 0;
            c.last_tx = now;
            self.post_send(ci);
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    pub(super) fn post_send(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        let rest = &c.sbuf[c.soff..];
        c.send_out = true;
        let e = opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(ud(ci, OP_SEND));
        self.push(e);
    }

    pub(super) fn on_send(&mut self, ci: usize, res: i32, _now: u64) {
        let c = &mut self.conns[ci];
        c.send_out = false;
        if res < 0 {
            if c.st == St::Closing {
                self.maybe_closed(ci);
            } else {
                let reason = format!("send: {}", errno_text(-res));
                self.error(ci, reason);
            }
            return;
        }
        self.iv.c.bytes_tx += res as u64;
        c.soff += res as usize;
        if c.soff < c.sbuf.len() {
            self.post_send(ci);
            return;
        }
        c.sbuf.clear();
        c.soff = 0;
        if !c.wbuf.is_empty() || c.tls.as_ref().is_some_and(|t| t.wants_write()) {
            self.mark_dirty(ci);
        } else if c.close_after_send {
            self.shutdown(ci);
            return;
        }
        let c = &mut self.conns[ci];
        if let Some(ps) = c.publ.as_mut() {
            if ps.blocked && self.cfg.qos == QoS::AtMostOnce {
                ps.blocked = false;
                self.wake_conn(ci);
            }
        }
    }

    // ---------------------------------------------------------------- closing

    /// Sends DISCONNECT and closes once it is written.
    pub(super) fn disconnect(&mut self, ci: usize) {
        let proto = self.cfg.protocol;
        let c = &mut self.conns[ci];
        if c.fd < 0 || matches!(c.st, St::Closing | St::Closed) {
            return;
        }
        let _ = Disconnect::new(ReasonCode::SUCCESS).encode(proto, &mut c.wbuf);
        c.close_after_send = true;
        if c.st == St::Ready || c.st == St::Subscribing {
            self.open -= 1;
        }
        c.st = St::Closing;
        self.mark_dirty(ci);
    }

    pub(super) fn shutdown(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        // SAFETY: shutdown(2) on our own socket; outstanding RECV/SEND complete with 0/EPIPE.
        unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        self.maybe_closed(ci);
    }

    pub(super) fn error(&mut self, ci: usize, reason: impl Into<String>) {
        bump(&mut self.iv.errors, reason);
        self.conns[ci].failed = true;
        self.begin_close(ci);
    }

    pub(super) fn begin_close(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if matches!(c.st, St::Closed) {
            return;
        }
        if matches!(c.st, St::Ready | St::Subscribing) {
            self.open -= 1;
        }
        c.st = St::Closing;
        if c.fd >= 0 {
            // SAFETY: see `shutdown`.
            unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        }
        self.maybe_closed(ci);
    }

    pub(super) fn maybe_closed(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if c.recv_out || c.send_out || c.connect_out {
            return;
        }
        if c.fd >= 0 {
            // SAFETY: no operation refers to the fd any more.
            unsafe { libc::close(c.fd) };
            c.fd = -1;
        }
        c.st = St::Closed;
        c.wbuf.clear();
        c.sbuf.clear();
        c.rbuf.clear();
        c.tbuf.clear();
        c.tls = None;
        c.ws = None;
        if let Some(ps) = c.publ.as_mut() {
            ps.used.iter_mut().for_each(|w| *w = 0);
            ps.inflight = 0;
            ps.blocked = false;
        }
        if self.cfg.mode == Mode::Storm && !self.finishing && self.running && now_ns() < self.end {
            c.st = St::Queued;
            c.failed = false;
            self.connect_q.push_back(ci as u32);
        }
    }
}
