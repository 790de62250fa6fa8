//! Publishing: the pacer or the in-flight window decides when, the template writes the bytes.

use super::*;

impl PubState {
    pub(super) fn alloc_pid(&mut self) -> u16 {
        loop {
            self.next_pid = self.next_pid.wrapping_add(1);
            if self.next_pid == 0 {
                continue;
            }
            let (w, b) = (self.next_pid as usize / 64, self.next_pid % 64);
            if self.used[w] & (1 << b) == 0 {
                self.used[w] |= 1 << b;
                return self.next_pid;
            }
        }
    }

    /// Frees an identifier; false when it was not in flight.
    pub(super) fn free_pid(&mut self, pid: u16) -> bool {
        let (w, b) = (pid as usize / 64, pid % 64);
        if self.used[w] & (1 << b) == 0 {
            return false;
        }
        self.used[w] &= !(1 << b);
        self.inflight -= 1;
        true
    }
}

impl Worker {
    pub(super) fn wake_conn(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if !c.in_wake {
            c.in_wake = true;
            self.wake.push(ci as u32);
        }
    }

    pub(super) fn can_send(&self, ci: usize) -> bool {
        let c = &self.conns[ci];
        if c.st != St::Ready {
            return false;
        }
        let ps = c.publ.as_ref().unwrap();
        if self.cfg.qos == QoS::AtMostOnce {
            c.wbuf.len() + (c.sbuf.len() - c.soff) < self.cfg.max_unsent
        } else {
            ps.inflight < ps.window
        }
    }

    pub(super) fn publish_one(&mut self, ci: usize, ts: u64) {
        let qos = self.cfg.qos;
        let size = self.cfg.size.max(payload::HEADER_LEN);
        let c = &mut self.conns[ci];
        let ps = c.publ.as_mut().unwrap();
        let pid = if qos == QoS::AtMostOnce {
            0
        } else {
            ps.inflight += 1;
            ps.alloc_pid()
        };
        ps.tmpl.write(pid, false, &mut c.wbuf);
        let end = c.wbuf.len();
        payload::write(
            &mut c.wbuf[end - size..end],
            Header {
                pub_id: ps.pub_id,
                seq: ps.seq,
                ts_ns: ts,
            },
        );
        ps.seq += 1;
        self.iv.c.sent += 1;
        self.iv.c.expected += ps.receivers;
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(ci as u32);
        }
    }

    pub(super) fn publish_retained(&mut self, ci: usize, now: u64) {
        let (qos, proto, size) = (self.cfg.qos, self.cfg.protocol, self.cfg.size);
        while self.can_send(ci) {
            let c = &mut self.conns[ci];
            let ps = c.publ.as_mut().unwrap();
            if ps.seq >= ps.retained_topics as u64 {
                break;
            }
            let pid = if qos == QoS::AtMostOnce {
                0
            } else {
                ps.inflight += 1;
                ps.alloc_pid()
            };
            let body = payload::build(
                size,
                Header {
                    pub_id: ps.pub_id,
                    seq: ps.seq,
                    ts_ns: now,
                },
            );
            let mut m = Publish::new(format!("{}/{}", ps.topic, ps.seq), body);
            m.qos = qos;
            m.retain = true;
            m.packet_id = pid;
            m.encode(proto, &mut c.wbuf).expect("PUBLISH encodes");
            ps.seq += 1;
            self.iv.c.sent += 1;
            self.mark_dirty(ci);
        }
        let c = &mut self.conns[ci];
        let ps = c.publ.as_mut().unwrap();
        if ps.seq < ps.retained_topics as u64 {
            ps.blocked = true;
        } else if qos == QoS::AtMostOnce && !ps.done_reported && !ps.await_ping {
            // QoS 0: the broker has processed every PUBLISH once it answers a PINGREQ sent
            // after the last one (one connection is processed in order).
            ps.await_ping = true;
            let _ = Packet::PingReq.encode(proto, &mut c.wbuf);
            self.mark_dirty(ci);
        } else if ps.inflight == 0 && !ps.done_reported {
            ps.done_reported = true;
            let _ = self.tx.send(Report::PubDone { at_ns: now });
        }
    }

    /// Sends what publisher `ci` may send at `now`, and counts it in the window's sends
    /// when `now` is within the window (a backlog sent after it is not).
    pub(super) fn run_publisher(&mut self, ci: usize, now: u64) {
        let sent_before = self.iv.c.sent;
        self.publish_due(ci, now);
        if now <= self.end {
            self.iv.c.sent_in_window += self.iv.c.sent - sent_before;
        }
    }

    fn publish_due(&mut self, ci: usize, now: u64) {
        if self.conns[ci].publ.is_none() {
            return;
        }
        if self.conns[ci].publ.as_ref().unwrap().retained_topics > 0 {
            self.publish_retained(ci, now);
            return;
        }
        let end = self.end;
        match self.conns[ci].publ.as_ref().unwrap().pacer {
            None => {
                if now >= end {
                    return;
                }
                while self.can_send(ci) {
                    self.publish_one(ci, now);
                }
                if self.conns[ci].st == St::Ready {
                    self.conns[ci].publ.as_mut().unwrap().blocked = true;
                }
            }
            Some(pacer) => loop {
                let seq = self.conns[ci].publ.as_ref().unwrap().seq;
                let due = pacer.due(seq);
                if due >= end {
                    return;
                }
                if due > now {
                    self.heap.push(Reverse((due, ci as u32)));
                    return;
                }
                if !self.can_send(ci) {
                    if self.conns[ci].st == St::Ready {
                        self.conns[ci].publ.as_mut().unwrap().blocked = true;
                    }
                    return;
                }
                self.publish_one(ci, due);
            },
        }
    }

    pub(super) fn pump(&mut self, now: u64) {
        while let Some(&Reverse((due, ci))) = self.heap.peek() {
            if due > now {
                break;
            }
            self.heap.pop();
            self.run_publisher(ci as usize, now);
        }
        let wake = std::mem::take(&mut self.wake);
        for &ci in &wake {
            self.conns[ci as usize].in_wake = false;
            self.run_publisher(ci as usize, now);
        }
        let mut wake = wake;
        wake.clear();
        if self.wake.is_empty() {
            self.wake = wake;
        }
        while let Some(&Reverse((due, ci))) = self.storm_heap.peek() {
            if due > now {
                break;
            }
            self.storm_heap.pop();
            let ci = ci as usize;
            if self.conns[ci].st == St::Ready {
                self.disconnect(ci);
            }
        }
    }
}
