//! Scenarios turned into a list of clients: who publishes where, who subscribes to what,
//! which thread runs each one, and how many deliveries each message should produce.

/// How the engine drives the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Publishers and subscribers exchange benchmark messages.
    Traffic,
    /// Connections only: open, hold, close.
    Idle,
    /// Connect, disconnect, reconnect, for the whole window.
    Storm,
    /// Publish retained messages once, then late subscribers fetch them with a wildcard.
    Retained,
}

/// A publishing client.
#[derive(Debug, Clone, PartialEq)]
pub struct PubSpec {
    /// Dense publisher id carried in every payload.
    pub pub_id: u32,
    /// Topic (retained mode: the prefix, messages go to `topic/k`).
    pub topic: String,
    /// Deliveries each message should produce.
    pub receivers: u64,
    /// Offset of this publisher's schedule, in intervals (0..1).
    pub phase: f64,
    /// Retained mode: how many retained topics to publish.
    pub retained_topics: u32,
}

/// One client of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSpec {
    /// MQTT client identifier.
    pub client_id: String,
    /// Worker thread that owns it.
    pub thread: usize,
    /// Publishing role.
    pub publish: Option<PubSpec>,
    /// Filters subscribed at setup (or on command, when `late_subscribe`).
    pub filters: Vec<String>,
    /// Loss/dup/reorder is tracked per (group, publisher); members of one shared-subscription
    /// group share a group (and a thread).
    pub track_group: u32,
    /// Subscribe only when the run says so (retained scenario).
    pub late_subscribe: bool,
}

/// What a run needs to know about its clients.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Engine mode.
    pub mode: Mode,
    /// All clients.
    pub clients: Vec<ClientSpec>,
    /// Retained scenario: topics per publisher.
    pub retained_topics: u32,
}

impl Plan {
    /// Number of publishing clients.
    pub fn publishers(&self) -> usize {
        self.clients.iter().filter(|c| c.publish.is_some()).count()
    }

    /// Number of subscribing clients.
    pub fn subscribers(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| !c.filters.is_empty())
            .count()
    }
}

/// The scenario shapes, with their sizes.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// `conns` idle connections, each with a subscription of its own when `subscribe`.
    Conn { conns: usize, subscribe: bool },
    /// `pubs` publishers into one subscriber, or a shared group of `share` subscribers.
    Fanin { pubs: usize, share: usize },
    /// One publisher to `subs` subscribers.
    Fanout { subs: usize },
    /// `pairs` publisher/subscriber pairs, each on its own topic.
    P2p { pairs: usize },
    /// `pubs` publishers on distinct topics, `subs` subscribers with `+` / `#` filters.
    Wildcard { subs: usize, pubs: usize },
    /// One publisher of `topics` retained messages, `subs` late wildcard subscribers.
    Retained { topics: usize, subs: usize },
    /// `clients` clients reconnecting in a loop.
    Storm { clients: usize },
}

struct Builder {
    run: String,
    threads: usize,
    clients: Vec<ClientSpec>,
    next_pub: u32,
}

impl Builder {
    fn client(&mut self, thread: usize) -> &mut ClientSpec {
        let n = self.clients.len();
        self.clients.push(ClientSpec {
            client_id: format!("sb{}-{n}", self.run),
            thread: thread % self.threads,
            publish: None,
            filters: Vec::new(),
            track_group: n as u32,
            late_subscribe: false,
        });
        self.clients.last_mut().unwrap()
    }

    fn publisher(&mut self, thread: usize, topic: String, phase: f64) -> &mut ClientSpec {
        let pub_id = self.next_pub;
        self.next_pub += 1;
        let c = self.client(thread);
        c.publish = Some(PubSpec {
            pub_id,
            topic,
            receivers: 1,
            phase,
            retained_topics: 0,
        });
        c
    }

    fn subscriber(&mut self, thread: usize, filter: String) -> &mut ClientSpec {
        let c = self.client(thread);
        c.filters.push(filter);
        c
    }
}

/// Builds the client list of a scenario. `run` makes client ids and topics unique to this
/// run (several generator processes may share one broker).
pub fn build(shape: &Shape, threads: usize, run: &str) -> Plan {
    let threads = threads.max(1);
    let prefix = format!("sb/{run}");
    let mut b = Builder {
        run: run.to_string(),
        threads,
        clients: Vec::new(),
        next_pub: 0,
    };
    let mut mode = Mode::Traffic;
    let mut retained_topics = 0;
    match *shape {
        Shape::Conn { conns, subscribe } => {
            mode = Mode::Idle;
            for i in 0..conns {
                let c = b.client(i);
                if subscribe {
                    c.filters.push(format!("{prefix}/dev/{i}/cmd"));
                }
            }
        }
        Shape::Storm { clients } => {
            mode = Mode::Storm;
            for i in 0..clients {
                b.client(i);
            }
        }
        Shape::P2p { pairs } => {
            for i in 0..pairs {
                let topic = format!("{prefix}/p2p/{i}");
                b.subscriber(i, topic.clone());
                b.publisher(i, topic, i as f64 / pairs as f64);
            }
        }
        Shape::Fanin { pubs, share } => {
            let filter = format!("{prefix}/in/+");
            if share == 0 {
                b.subscriber(0, filter);
            } else {
                // One tracking group for the whole shared group; all members on thread 0.
                let group = u32::MAX;
                for _ in 0..share {
                    let c = b.subscriber(0, format!("$share/g/{filter}"));
                    c.track_group = group;
                }
            }
            for i in 0..pubs {
                b.publisher(i + 1, format!("{prefix}/in/{i}"), i as f64 / pubs as f64);
            }
        }
        Shape::Fanout { subs } => {
            let topic = format!("{prefix}/out");
            for i in 0..subs {
                b.subscriber(i + 1, topic.clone());
            }
            b.publisher(0, topic, 0.0)
                .publish
                .as_mut()
                .unwrap()
                .receivers = subs as u64;
        }
        Shape::Wildcard { subs, pubs } => {
            let pubs = pubs.max(1);
            let topics: Vec<String> = (0..pubs)
                .map(|i| format!("{prefix}/wc/r{}/d{i}/temp", i % 10))
                .collect();
            let filters: Vec<String> = (0..subs)
                .map(|j| {
                    let (r, d) = (j % 10, j % pubs);
                    match j % 4 {
                        0 => format!("{prefix}/wc/r{r}/+/temp"),
                        1 => format!("{prefix}/wc/r{r}/#"),
                        2 => format!("{prefix}/wc/+/d{d}/temp"),
                        _ => format!("{prefix}/wc/+/d{d}/#"),
                    }
                })
                .collect();
            for (j, f) in filters.iter().enumerate() {
                b.subscriber(j, f.clone());
            }
            for (i, t) in topics.iter().enumerate() {
                let receivers = filters.iter().filter(|f| topic_matches(f, t)).count() as u64;
                let c = b.publisher(i + subs, t.clone(), i as f64 / pubs as f64);
                c.publish.as_mut().unwrap().receivers = receivers;
            }
        }
        Shape::Retained { topics, subs } => {
            mode = Mode::Retained;
            retained_topics = topics as u32;
            let base = format!("{prefix}/ret");
            let c = b.publisher(0, base.clone(), 0.0);
            let p = c.publish.as_mut().unwrap();
            p.retained_topics = topics as u32;
            p.receivers = 0;
            for i in 0..subs {
                b.subscriber(i + 1, format!("{base}/#")).late_subscribe = true;
            }
        }
    }
    Plan {
        mode,
        clients: b.clients,
        retained_topics,
    }
}

/// MQTT topic filter matching (§4.7), `$share/group/` prefix stripped.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((_, f)) => f,
            None => return false,
        },
        None => filter,
    };
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(topic_matches("a/b", "a/b"));
        assert!(topic_matches("a/+", "a/b"));
        assert!(!topic_matches("a/+", "a/b/c"));
        assert!(topic_matches("a/#", "a"));
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(topic_matches("#", "a/b"));
        assert!(!topic_matches("#", "$SYS/x"));
        assert!(topic_matches("+/+", "/b"));
        assert!(topic_matches("$share/g/a/+", "a/b"));
        assert!(!topic_matches("a/b", "a/c"));
    }

    #[test]
    fn p2p_pairs_share_a_thread() {
        let p = build(&Shape::P2p { pairs: 5 }, 2, "x");
        assert_eq!(p.clients.len(), 10);
        assert_eq!(p.publishers(), 5);
        assert_eq!(p.subscribers(), 5);
        for pair in p.clients.chunks(2) {
            assert_eq!(pair[0].thread, pair[1].thread);
            assert_eq!(pair[0].filters[0], pair[1].publish.as_ref().unwrap().topic);
        }
        let ids: std::collections::HashSet<_> = p.clients.iter().map(|c| &c.client_id).collect();
        assert_eq!(ids.len(), 10);
    }

    #[test]
    fn fanout_receivers() {
        let p = build(&Shape::Fanout { subs: 7 }, 3, "x");
        let publ = p.clients.iter().find_map(|c| c.publish.as_ref()).unwrap();
        assert_eq!(publ.receivers, 7);
        assert!(p.clients.iter().all(|c| c.thread < 3));
    }

    #[test]
    fn shared_group_tracks_together() {
        let p = build(&Shape::Fanin { pubs: 4, share: 3 }, 2, "x");
        let subs: Vec<_> = p.clients.iter().filter(|c| !c.filters.is_empty()).collect();
        assert_eq!(subs.len(), 3);
        assert!(subs
            .iter()
            .all(|c| c.track_group == u32::MAX && c.thread == 0));
        assert!(subs[0].filters[0].starts_with("$share/g/"));
        assert!(p
            .clients
            .iter()
            .filter_map(|c| c.publish.as_ref())
            .all(|p| p.receivers == 1));
    }

    #[test]
    fn wildcard_receivers_match_filters() {
        let p = build(&Shape::Wildcard { subs: 40, pubs: 20 }, 1, "x");
        let filters: Vec<&String> = p.clients.iter().flat_map(|c| &c.filters).collect();
        let total: u64 = p
            .clients
            .iter()
            .filter_map(|c| c.publish.as_ref())
            .map(|pb| {
                let n = filters
                    .iter()
                    .filter(|f| topic_matches(f, &pb.topic))
                    .count() as u64;
                assert_eq!(n, pb.receivers);
                n
            })
            .sum();
        assert!(total > 40, "every filter kind matches something: {total}");
    }

    #[test]
    fn retained_plan() {
        let p = build(
            &Shape::Retained {
                topics: 100,
                subs: 2,
            },
            2,
            "x",
        );
        assert_eq!(p.mode, Mode::Retained);
        assert_eq!(p.retained_topics, 100);
        assert!(p.clients[1].late_subscribe && p.clients[1].filters[0].ends_with("/ret/#"));
    }
}
