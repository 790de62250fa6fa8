//! Timers and reports: the per-second interval, keep-alive pings, the final report.

use super::*;

impl Worker {
    pub(super) fn timers(&mut self, now: u64) {
        if !self.ready_reported {
            let settled = self.conns.iter().all(|c| c.st == St::Ready || c.failed);
            if settled {
                self.ready_reported = true;
                let ok = self.conns.iter().filter(|c| c.st == St::Ready).count();
                let _ = self.tx.send(Report::Ready {
                    ok,
                    failed: self.conns.len() - ok,
                });
                self.send_interval(now);
            }
        }
        if now >= self.next_report {
            self.send_interval(now);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + 1_000_000_000;
            let ka = self.cfg.keepalive as u64 * 1_000_000_000 / 2;
            for ci in 0..self.conns.len() {
                let c = &self.conns[ci];
                match c.st {
                    St::Connecting | St::WaitConnack
                        if now.saturating_sub(c.t_connect) > CONNECT_TIMEOUT_NS =>
                    {
                        self.connect_failed(ci, "timeout waiting for CONNACK".into());
                    }
                    St::Ready if ka > 0 && now.saturating_sub(c.last_tx) > ka => {
                        let proto = self.cfg.protocol;
                        let _ = Packet::PingReq.encode(proto, &mut self.conns[ci].wbuf);
                        self.mark_dirty(ci);
                    }
                    _ => {}
                }
            }
        }
    }

    pub(super) fn send_interval(&mut self, now: u64) {
        // Every 100 ms after the window, and one report at its end: the drain waits for
        // each thread's word that it has stopped sending (`settled`).
        self.next_report = if self.running && now >= self.end {
            now + 100_000_000
        } else {
            (now + 1_000_000_000).min(self.end.max(now + 1))
        };
        let mut iv = std::mem::replace(&mut self.iv, Interval::new(self.thread));
        iv.open_conns = self.open;
        iv.settled = self.publishers_settled(now);
        let _ = self.tx.send(Report::Interval(Box::new(iv)));
    }

    /// Past the window's end, this thread's publishers will send nothing more, so the
    /// `sent` and `expected` it has counted are final: a paced publisher has sent every
    /// message due before the end (one its window held back sends them late); one at
    /// --rate 0 stops at the end; one not connected sends nothing.
    fn publishers_settled(&self, now: u64) -> bool {
        if !self.running || now < self.end {
            return false;
        }
        self.conns.iter().all(|c| match (c.publ.as_ref(), c.st) {
            (Some(ps), St::Ready) => ps.pacer.is_none_or(|p| ps.seq >= p.due_before(self.end)),
            _ => true,
        })
    }

    pub(super) fn finish(&mut self) {
        self.running = false;
        // Messages a paced publisher had due in the window and never sent (held back by its
        // window until the drain ended): not lost, not in the histogram, so counted apart.
        for c in &self.conns {
            if let Some(ps) = c.publ.as_ref() {
                if let Some(pacer) = ps.pacer {
                    let due = pacer.due_before(self.end);
                    self.iv.c.unsent += due.saturating_sub(ps.seq);
                }
            }
        }
        let proto = self.cfg.protocol;
        // Clear the retained messages this run left behind, then say goodbye.
        for ci in 0..self.conns.len() {
            let c = &mut self.conns[ci];
            if c.st != St::Ready {
                continue;
            }
            if let Some(ps) = c.publ.as_ref() {
                for k in 0..ps.retained_topics.min(ps.seq as u32) {
                    let mut m = Publish::new(format!("{}/{k}", ps.topic), Bytes::new());
                    m.retain = true;
                    let _ = m.encode(proto, &mut c.wbuf);
                }
            }
            self.disconnect(ci);
        }
        for ci in 0..self.conns.len() {
            match self.conns[ci].st {
                St::Queued => self.conns[ci].st = St::Closed,
                St::Connecting | St::WaitConnack | St::Subscribing => self.begin_close(ci),
                _ => {}
            }
        }
        let deadline = now_ns() + 3_000_000_000;
        loop {
            self.flush(now_ns());
            let busy = self.conns.iter().any(|c| c.st != St::Closed);
            if !busy {
                break;
            }
            if now_ns() > deadline {
                for ci in 0..self.conns.len() {
                    if self.conns[ci].st != St::Closed && self.conns[ci].fd >= 0 {
                        self.shutdown(ci);
                    }
                }
                if now_ns() > deadline + 2_000_000_000 {
                    break;
                }
            }
            self.enter(Duration::from_millis(10));
            self.reap();
        }
        if std::env::var_os("SB_DEBUG").is_some() {
            eprintln!(
                "thread {}: {} loop turns, {} completions, {} sends, {} recvs",
                self.thread,
                self.loop_counts.turns,
                self.loop_counts.completions,
                self.loop_counts.sends,
                self.loop_counts.recvs
            );
        }
        let mut streams = StreamTotals::default();
        for group in &self.tracks {
            for t in group {
                streams.add(t);
            }
        }
        let mut iv = std::mem::replace(&mut self.iv, Interval::new(self.thread));
        iv.open_conns = 0;
        let _ = self.tx.send(Report::Final {
            interval: Box::new(iv),
            streams,
        });
        if self
            .conns
            .iter()
            .any(|c| c.recv_out || c.send_out || c.connect_out)
        {
            // The kernel may still write into these buffers: never free them.
            std::mem::forget(std::mem::take(&mut self.conns));
        }
    }
}
