//! Opening connections: socket, connect, CONNECT/CONNACK, SUBSCRIBE/SUBACK.

use super::*;

impl Worker {
    pub(super) fn start_connects(&mut self, now: u64) {
        while self.connecting < self.cfg.connect_inflight && !self.connect_q.is_empty() {
            if self.finishing || !self.limiter.try_take(now) {
                break;
            }
            let ci = self.connect_q.pop_front().unwrap() as usize;
            self.start_connect(ci, now);
        }
    }

    pub(super) fn start_connect(&mut self, ci: usize, now: u64) {
        if self.iv.first_connect_ns.is_none() {
            self.iv.first_connect_ns = Some(now);
        }
        let v6 = self.cfg.addr.is_ipv6();
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                if v6 { libc::AF_INET6 } else { libc::AF_INET },
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            self.connect_failed(ci, format!("socket: {}", errno_text(e)));
            return;
        }
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a valid int option.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                &one as *const _ as *const libc::c_void,
                4,
            );
        }
        if self.cfg.src_addrs > 1 && !v6 {
            let gidx = self.conns[ci].gidx;
            let host = 1 + (gidx % self.cfg.src_addrs) as u32;
            let src = SockAddr::from(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(0x7F00_0000 | host)),
                0,
            ));
            // SAFETY: IP_BIND_ADDRESS_NO_PORT (24) defers port choice to connect, so the
            // 4-tuple, not the source port alone, must be unique; then a plain bind(2).
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    24,
                    &one as *const _ as *const libc::c_void,
                    4,
                );
                libc::bind(fd, src.as_ptr(), src.len())
            };
            if rc != 0 {
                let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                // SAFETY: closing the fd we just opened.
                unsafe { libc::close(fd) };
                self.connect_failed(ci, format!("bind: {}", errno_text(e)));
                return;
            }
        }
        let c = &mut self.conns[ci];
        c.fd = fd;
        c.st = St::Connecting;
        c.connect_out = true;
        c.t_connect = now;
        c.rbuf.clear();
        c.wbuf.clear();
        c.sbuf.clear();
        c.soff = 0;
        c.close_after_send = false;
        self.connecting += 1;
        let e = opcode::Connect::new(types::Fd(fd), self.addr.as_ptr(), self.addr.len())
            .build()
            .user_data(ud(ci, OP_CONNECT));
        self.push(e);
    }

    pub(super) fn on_connect(&mut self, ci: usize, res: i32, now: u64) {
        let c = &mut self.conns[ci];
        c.connect_out = false;
        if res < 0 && c.st == St::Closing {
            // Given up on already (timed out, and counted then), or the run ended.
            self.maybe_closed(ci);
            return;
        }
        if res < 0 {
            let reason = format!("connect: {}", errno_text(-res));
            self.connect_failed(ci, reason);
            return;
        }
        if c.st == St::Closing {
            self.maybe_closed(ci);
            return;
        }
        c.st = St::WaitConnack;
        if let Some(config) = &self.cfg.tls {
            let name = rustls::pki_types::ServerName::IpAddress(self.cfg.addr.ip().into());
            match rustls::ClientConnection::new(config.clone(), name) {
                Ok(mut tls) => {
                    // A flush seals the whole write buffer (up to --max-unsent and more) and
                    // drains it at once: rustls' default 64 KiB limit would cut a packet.
                    tls.set_buffer_limit(None);
                    c.tls = Some(Box::new(tls));
                }
                Err(e) => {
                    self.connect_failed(ci, format!("tls: {e}"));
                    return;
                }
            }
        }
        let c = &mut self.conns[ci];
        if self.cfg.ws {
            c.ws = Some(Box::default());
        }
        let spec = &self.specs[c.spec];
        let mut connect = Connect::new(self.cfg.protocol, spec.client_id.as_str());
        connect.keep_alive_secs = self.cfg.keepalive;
        connect.username = self.cfg.username.as_deref().map(Into::into);
        connect.password = self
            .cfg
            .password
            .as_ref()
            .map(|p| p.clone().into_bytes().into());
        if self.cfg.protocol.is_v5() {
            connect.properties.receive_maximum = Some(u16::MAX);
        }
        connect.encode(&mut c.wbuf).expect("CONNECT encodes");
        self.mark_dirty(ci);
        self.post_recv(ci);
        let _ = now;
    }

    /// A connection attempt failed before CONNACK.
    pub(super) fn connect_failed(&mut self, ci: usize, reason: String) {
        self.iv.c.connect_failed += 1;
        bump(&mut self.iv.connect_failures, reason);
        let c = &mut self.conns[ci];
        if matches!(c.st, St::Connecting | St::WaitConnack) {
            self.connecting -= 1;
        }
        c.failed = true;
        self.begin_close(ci);
    }

    pub(super) fn on_connack(&mut self, ci: usize, ack: ConnAck, now: u64) {
        if self.conns[ci].st == St::Closing {
            // Given up on (the run ended, or it timed out and was counted): a late answer.
            return;
        }
        if self.conns[ci].st != St::WaitConnack {
            self.error(ci, "unexpected CONNACK");
            return;
        }
        if ack.reason_code != ReasonCode::SUCCESS {
            let reason = format!("CONNACK {}", ack.reason_code.name());
            self.connect_failed(ci, reason);
            return;
        }
        self.connecting -= 1;
        self.open += 1;
        self.iv.c.connects_ok += 1;
        if self.running && now <= self.end {
            self.iv.c.connects_in_window += 1;
        }
        self.iv.last_connack_ns = Some(now);
        let c = &mut self.conns[ci];
        let _ = self
            .iv
            .conn_lat
            .record(now.saturating_sub(c.t_connect).max(1));
        c.st = St::Ready;
        c.last_tx = now;
        let spec = &self.specs[c.spec];
        if c.publ.is_none() {
            if let Some(p) = &spec.publish {
                let mut window = self.cfg.window.max(1);
                if let Some(rm) = ack.properties.receive_maximum {
                    window = window.min(rm as u32);
                }
                let qos = self.cfg.qos;
                let mut msg = Publish::new(
                    p.topic.as_str(),
                    Bytes::from(vec![0u8; self.cfg.size.max(payload::HEADER_LEN)]),
                );
                msg.qos = qos;
                c.publ = Some(Box::new(PubState {
                    pub_id: p.pub_id,
                    receivers: p.receivers,
                    seq: 0,
                    pacer: None,
                    phase: p.phase,
                    tmpl: msg
                        .encode_shared(self.cfg.protocol)
                        .expect("PUBLISH encodes"),
                    topic: p.topic.clone(),
                    window,
                    inflight: 0,
                    next_pid: 0,
                    used: vec![0; 1024],
                    blocked: false,
                    retained_topics: p.retained_topics,
                    done_reported: false,
                    await_ping: false,
                }));
            }
        }
        if !spec.filters.is_empty() && !spec.late_subscribe {
            self.send_subscribe(ci);
        } else {
            self.became_ready(ci, now);
        }
    }

    pub(super) fn send_subscribe(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        let spec = &self.specs[c.spec];
        let sub = Subscribe {
            packet_id: 1,
            properties: Default::default(),
            filters: spec
                .filters
                .iter()
                .map(|f| SubscribeFilter {
                    filter: f.as_str().into(),
                    options: SubscriptionOptions::qos(self.cfg.qos),
                })
                .collect(),
        };
        sub.encode(self.cfg.protocol, &mut c.wbuf)
            .expect("SUBSCRIBE encodes");
        c.st = St::Subscribing;
        self.mark_dirty(ci);
    }

    pub(super) fn became_ready(&mut self, ci: usize, now: u64) {
        let c = &mut self.conns[ci];
        c.st = St::Ready;
        c.ever_ready = true;
        if self.running && self.cfg.mode == Mode::Storm {
            let due = now + self.cfg.hold_ms * 1_000_000;
            self.storm_heap.push(Reverse((due, ci as u32)));
        }
    }
}
