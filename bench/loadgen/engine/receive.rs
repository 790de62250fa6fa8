//! Receiving: one RECV per socket, packets decoded in place, deliveries checked
//! against each publisher's sequence (loss, duplicates, order) and timed.

use super::*;

/// What the engine needs of a received PUBLISH, copied out of the receive buffer.
pub(super) struct Received {
    pub(super) qos: QoS,
    pub(super) packet_id: u16,
    pub(super) retain: bool,
    pub(super) payload_len: usize,
    pub(super) header: Option<Header>,
}

/// Records message `seq` of publisher `pub_id` at one shared-subscription member; false
/// when the member already had a later message of that publisher (a repeat of the latest
/// is a duplicate, counted elsewhere, not a reorder).
pub(super) fn in_member_order(order: &mut Vec<u64>, pub_id: usize, seq: u64) -> bool {
    if pub_id >= order.len() {
        order.resize(pub_id + 1, 0);
    }
    let next = seq + 1;
    if next < order[pub_id] {
        return false;
    }
    order[pub_id] = next;
    true
}

impl Worker {
    /// Opens the records in `tbuf` into `rbuf`; a handshake message to answer marks the
    /// connection for the next flush.
    fn open_tls(&mut self, ci: usize) -> Result<(), rustls::Error> {
        use std::io::Read;
        let c = &mut self.conns[ci];
        let tls = c.tls.as_mut().expect("a TLS connection");
        let mut records = &c.tbuf[..];
        while !records.is_empty() {
            if tls.read_tls(&mut records).is_err() {
                return Err(rustls::Error::General("TLS receive buffer full".into()));
            }
            tls.process_new_packets()?;
            loop {
                let start = c.rbuf.len();
                c.rbuf.resize(start + 16 * 1024, 0);
                match tls.reader().read(&mut c.rbuf[start..]) {
                    Ok(n) if n > 0 => c.rbuf.truncate(start + n),
                    _ => {
                        c.rbuf.truncate(start);
                        break;
                    }
                }
            }
        }
        c.tbuf.clear();
        if tls.wants_write() {
            self.mark_dirty(ci);
        }
        Ok(())
    }

    pub(super) fn post_recv(&mut self, ci: usize) {
        let rb = self.cfg.rbuf;
        let c = &mut self.conns[ci];
        let want = rb.saturating_sub(c.rbuf.len()).max(rb / 4).max(64);
        // With TLS the records land in `tbuf` and are opened into `rbuf` (`open_tls`);
        // WebSocket frames too, unwrapped into `rbuf`.
        let buf = if c.tls.is_some() || c.ws.is_some() {
            &mut c.tbuf
        } else {
            &mut c.rbuf
        };
        buf.reserve(want);
        let spare = buf.spare_capacity_mut();
        let (ptr, len) = (
            spare.as_mut_ptr() as *mut u8,
            spare.len().min(1 << 30) as u32,
        );
        c.recv_out = true;
        // The socket was just drained: arm the poll first instead of a recv that fails.
        let poll_first = if c.drained {
            IORING_RECVSEND_POLL_FIRST
        } else {
            0
        };
        let e = opcode::Recv::new(types::Fd(c.fd), ptr, len)
            .ioprio(poll_first)
            .build()
            .user_data(ud(ci, OP_RECV));
        self.push(e);
    }

    pub(super) fn on_recv(&mut self, ci: usize, res: i32, now: u64) {
        let c = &mut self.conns[ci];
        c.recv_out = false;
        if res <= 0 {
            if c.st == St::Closing {
                self.maybe_closed(ci);
            } else if matches!(c.st, St::WaitConnack | St::Connecting) {
                let reason = if res == 0 {
                    "closed before CONNACK".to_string()
                } else {
                    format!("recv: {}", errno_text(-res))
                };
                self.connect_failed(ci, reason);
            } else {
                let reason = if res == 0 {
                    "closed by broker".to_string()
                } else {
                    format!("recv: {}", errno_text(-res))
                };
                self.error(ci, reason);
            }
            return;
        }
        let buf = if c.tls.is_some() || c.ws.is_some() {
            &mut c.tbuf
        } else {
            &mut c.rbuf
        };
        c.drained = (res as usize) < buf.capacity() - buf.len();
        self.backlogged |= !c.drained;
        // SAFETY: the kernel wrote `res` bytes into the spare capacity we handed it.
        unsafe { buf.set_len(buf.len() + res as usize) };
        self.iv.c.bytes_rx += res as u64;
        if self.conns[ci].tls.is_some() {
            let before = self.conns[ci].rbuf.len();
            if let Err(e) = self.open_tls(ci) {
                self.error(ci, format!("tls: {e}"));
                return;
            }
            // `wss://`: the plaintext is frames, unwrapped below like a `ws://` receive.
            let c = &mut self.conns[ci];
            if c.ws.is_some() {
                c.tbuf.extend_from_slice(&c.rbuf[before..]);
                c.rbuf.truncate(before);
            }
        }
        let c = &mut self.conns[ci];
        if let Some(ws) = c.ws.as_mut() {
            let fed = ws.feed(&c.tbuf, &mut c.rbuf);
            c.tbuf.clear();
            if let Err(e) = fed {
                if c.st == St::WaitConnack {
                    self.connect_failed(ci, e);
                } else if c.st == St::Closing {
                    // The broker's close frame answering our DISCONNECT: the normal end.
                    self.begin_close(ci);
                } else {
                    self.error(ci, e);
                }
                return;
            }
        }
        let proto = self.cfg.protocol;
        loop {
            // PUBLISH and the acknowledgements are read in place (no allocation); the rest
            // goes through the owned decoder.
            let c = &mut self.conns[ci];
            match PacketView::decode(&c.rbuf, proto, MAX_PACKET) {
                Ok(Some((PacketView::Publish(p), len))) => {
                    let received = Received {
                        qos: p.qos,
                        packet_id: p.packet_id,
                        retain: p.retain,
                        payload_len: p.payload.len(),
                        header: payload::read(p.payload),
                    };
                    c.rbuf.advance(len);
                    self.on_publish(ci, received, now);
                }
                Ok(Some((PacketView::Ack(a), len))) => {
                    let (packet_type, packet_id, reason) =
                        (a.packet_type, a.packet_id, a.reason_code);
                    c.rbuf.advance(len);
                    self.on_ack_packet(ci, packet_type, packet_id, reason);
                }
                Ok(Some((PacketView::Other, _))) => {
                    match Packet::decode(&mut c.rbuf, proto, MAX_PACKET) {
                        Ok(Some(p)) => self.on_packet(ci, p, now),
                        Ok(None) => break,
                        Err(e) => {
                            self.error(ci, format!("decode: {e}"));
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.error(ci, format!("decode: {e}"));
                    return;
                }
            }
            if matches!(self.conns[ci].st, St::Closed) {
                return;
            }
        }
        if self.conns[ci].st != St::Closed && self.conns[ci].fd >= 0 {
            self.post_recv(ci);
        }
    }

    pub(super) fn on_packet(&mut self, ci: usize, p: Packet, now: u64) {
        match p {
            Packet::Publish(p) => {
                let received = Received {
                    qos: p.qos,
                    packet_id: p.packet_id,
                    retain: p.retain,
                    payload_len: p.payload.len(),
                    header: payload::read(&p.payload),
                };
                self.on_publish(ci, received, now)
            }
            Packet::PubAck(a) => self.on_ack_packet(ci, PUBACK, a.packet_id, a.reason_code),
            Packet::PubRec(a) => self.on_ack_packet(ci, PUBREC, a.packet_id, a.reason_code),
            Packet::PubRel(a) => self.on_ack_packet(ci, PUBREL, a.packet_id, a.reason_code),
            Packet::PubComp(a) => self.on_ack_packet(ci, PUBCOMP, a.packet_id, a.reason_code),
            Packet::ConnAck(a) => self.on_connack(ci, a, now),
            Packet::SubAck(s) => {
                if self.conns[ci].st != St::Subscribing {
                    self.error(ci, "unexpected SUBACK");
                    return;
                }
                if let Some(bad) = s.reason_codes.iter().find(|r| r.0 >= 0x80) {
                    let reason = format!("SUBACK {}", bad.name());
                    self.error(ci, reason);
                    return;
                }
                self.became_ready(ci, now);
            }
            Packet::PingResp => {
                if let Some(ps) = self.conns[ci].publ.as_mut() {
                    if ps.await_ping && !ps.done_reported {
                        ps.done_reported = true;
                        let _ = self.tx.send(Report::PubDone { at_ns: now });
                    }
                }
            }
            Packet::UnsubAck(_) => {}
            Packet::Disconnect(d) => {
                let reason = format!("DISCONNECT from broker: {}", d.reason_code.name());
                self.error(ci, reason);
            }
            other => {
                let reason = format!("unexpected packet type {}", other.packet_type());
                self.error(ci, reason);
            }
        }
    }

    /// PUBACK, PUBREC, PUBREL or PUBCOMP from the broker.
    pub(super) fn on_ack_packet(
        &mut self,
        ci: usize,
        packet_type: u8,
        packet_id: u16,
        rc: ReasonCode,
    ) {
        let proto = self.cfg.protocol;
        match packet_type {
            PUBREC if rc.0 < 0x80 => {
                let c = &mut self.conns[ci];
                let _ = PubResponse::new(packet_id).encode(PUBREL, proto, &mut c.wbuf);
                self.mark_dirty(ci);
            }
            PUBREL => {
                let c = &mut self.conns[ci];
                let _ = PubResponse::new(packet_id).encode(PUBCOMP, proto, &mut c.wbuf);
                self.mark_dirty(ci);
            }
            // PUBACK, PUBCOMP, or a PUBREC refusing the message.
            _ => self.on_ack(ci, packet_id, rc),
        }
    }

    pub(super) fn on_publish(&mut self, ci: usize, p: Received, now: u64) {
        let proto = self.cfg.protocol;
        let c = &mut self.conns[ci];
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let _ = PubResponse::new(p.packet_id).encode(PUBACK, proto, &mut c.wbuf);
            }
            QoS::ExactlyOnce => {
                let _ = PubResponse::new(p.packet_id).encode(PUBREC, proto, &mut c.wbuf);
            }
        }
        if p.qos != QoS::AtMostOnce && !c.dirty {
            c.dirty = true;
            self.dirty.push(ci as u32);
        }
        if self.cfg.mode == Mode::Retained {
            if p.retain && p.payload_len != 0 {
                c.ret_rx += 1;
                self.iv.c.retained_rx += 1;
                if c.ret_rx == self.retained_target {
                    self.iv.retained_done_ns.push(now.saturating_sub(c.t_sub));
                }
            }
            return;
        }
        let Some(h) = p.header else {
            if p.payload_len != 0 {
                bump(&mut self.iv.errors, "payload without benchmark header");
            }
            return;
        };
        // Classified first: a duplicate is counted by its stream (`dup`) and nowhere else.
        let seen = if c.track_slot == usize::MAX {
            Seen::New // not a subscriber (cannot happen in the scenarios): nothing to check
        } else {
            let streams = &mut self.tracks[c.track_slot];
            let i = h.pub_id as usize;
            if i >= streams.len() {
                if i > 10_000_000 {
                    bump(&mut self.iv.errors, "payload with absurd publisher id");
                    return;
                }
                streams.resize_with(i + 1, SeqTracker::default);
            }
            let seen = streams[i].observe(h.seq);
            if let Some(order) = c.member_order.as_mut() {
                if seen.is_delivery() && !in_member_order(order, i, h.seq) {
                    self.iv.c.member_reordered += 1;
                }
            }
            seen
        };
        self.iv.record_delivery(seen, now, h.ts_ns, self.end);
    }

    pub(super) fn on_ack(&mut self, ci: usize, pid: u16, rc: ReasonCode) {
        let c = &mut self.conns[ci];
        let Some(ps) = c.publ.as_mut() else {
            self.error(ci, "acknowledgement on a client that does not publish");
            return;
        };
        if !ps.free_pid(pid) {
            bump(
                &mut self.iv.errors,
                "acknowledgement of an unknown packet id",
            );
            return;
        }
        self.iv.c.acked += 1;
        if rc.0 >= 0x80 {
            bump(
                &mut self.iv.errors,
                format!("publish refused: {}", rc.name()),
            );
        }
        let unblock = std::mem::replace(&mut ps.blocked, false);
        if ps.retained_topics > 0
            && ps.inflight == 0
            && ps.seq >= ps.retained_topics as u64
            && !ps.done_reported
        {
            ps.done_reported = true;
            let _ = self.tx.send(Report::PubDone { at_ns: now_ns() });
        }
        if unblock {
            self.wake_conn(ci);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::in_member_order;

    #[test]
    fn member_order_is_per_publisher_and_ignores_repeats() {
        let mut order = Vec::new();
        assert!(in_member_order(&mut order, 2, 0));
        assert!(
            in_member_order(&mut order, 2, 5),
            "gaps are other members' messages"
        );
        assert!(in_member_order(&mut order, 0, 1), "another publisher");
        assert!(in_member_order(&mut order, 2, 5), "a repeat is a duplicate");
        assert!(
            !in_member_order(&mut order, 2, 4),
            "older than one already seen"
        );
        assert!(in_member_order(&mut order, 2, 6));
    }
}
