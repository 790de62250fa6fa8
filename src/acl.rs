//! What a client may publish and subscribe to: mosquitto's ACL file (`auth.acl_file`).
//!
//! ```text
//! # anonymous clients (no user name): lines before the first `user`
//! topic read public/#
//! user dashboard
//! topic read fleet/#
//! user alice
//! topic readwrite lab/alice/#
//! # every client: %c is its client id, %u its user name
//! pattern write fleet/%c/telemetry
//! pattern read fleet/%c/commands/#
//! ```
//!
//! `topic [read|write|readwrite] FILTER` grants to the user of the `user` line above it
//! (anonymous clients before any), `pattern [read|write|readwrite] FILTER` to every client;
//! no access word means `readwrite`. Whatever is not granted is refused. mosquitto's
//! `deny` lines are refused at startup: without them, checking a subscription once is exact
//! (below), and no message needs a check on its way out.
//!
//! - PUBLISH: the topic must match a `write` filter. Refused: MQTT 5 gets PUBACK / PUBREC
//!   0x87 Not authorized; MQTT 3.1.1 has no such code and gets the usual acknowledgement
//!   while the message is dropped (what mosquitto does); QoS 0 is dropped. A Will whose
//!   topic is not writable refuses the CONNECT (0x87; 3.1.1: 0x05).
//! - SUBSCRIBE: every topic the filter can match must be readable, that is one `read`
//!   filter must cover it (`fleet/#` covers `fleet/+/status`; `fleet/a/#` does not cover
//!   `fleet/#`). Refused: SUBACK 0x87 (3.1.1: 0x80). A `$share/GROUP/` prefix is checked on
//!   the filter behind it. So a subscriber never receives a message it may not read, and
//!   the delivery path has nothing to check.
//! - A `%c` or `%u` replaced by an id or name containing `/`, `+` or `#` grants nothing:
//!   a client id must not widen its own rule. Nor does a pattern that the replacement
//!   turns into a `$` filter (`%c/#` for a client id `$SYS`).
//!
//! Pure: the runtime reads the file once at start. A connection keeps only a shared pointer
//! to its user's rules (and its user name, when a pattern uses `%u`); patterns are expanded
//! into a reused buffer at each check. Nothing is kept, and nothing checked, without an ACL
//! file.

use std::collections::HashMap;
use std::sync::Arc;

use thiserror::Error;

use crate::topic::{filter_matches, validate_topic_filter};

/// A line of the ACL file that cannot be used, with its 1-based number.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: {problem}")]
pub struct AclFileError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// What a rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Subscribe to (and so receive) matching topics.
    pub read: bool,
    /// Publish to matching topics.
    pub write: bool,
}

impl Access {
    fn parse(word: &str) -> Option<Access> {
        let (read, write) = match word {
            "read" => (true, false),
            "write" => (false, true),
            "readwrite" => (true, true),
            _ => return None,
        };
        Some(Access { read, write })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    access: Access,
    filter: String,
}

/// The rules of an ACL file. A user's own rules are shared by all of its connections; the
/// `pattern` rules are shared by everyone and their `%c` / `%u` are replaced at each check,
/// so a connection holds no copy of any rule.
#[derive(Debug, Clone, Default)]
pub struct AclRules {
    anonymous: Arc<[Rule]>,
    users: HashMap<String, Arc<[Rule]>>,
    /// Shared by the users the file does not list (patterns only): no allocation each.
    unlisted: Arc<[Rule]>,
    patterns: Vec<Rule>,
    /// Some pattern uses `%u`: connections keep their user name.
    patterns_use_username: bool,
}

/// Most rules a file may hold.
const MAX_RULES: usize = 1_000_000;

impl AclRules {
    /// Parses an ACL file (see the module docs for the format).
    pub fn parse(text: &str) -> Result<AclRules, AclFileError> {
        let mut anonymous = Vec::new();
        let mut users: HashMap<String, Vec<Rule>> = HashMap::new();
        let mut patterns = Vec::new();
        let mut user: Option<String> = None;
        let mut count = 0usize;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let bad = |problem: String| AclFileError { line, problem };
            let entry = raw.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let (keyword, rest) = entry.split_once([' ', '\t']).unwrap_or((entry, ""));
            let rest = rest.trim_start();
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(bad("`user` needs a user name".into()));
                    }
                    user = Some(rest.to_string());
                    users.entry(rest.to_string()).or_default();
                }
                "topic" | "pattern" => {
                    let (word, filter) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
                    let (access, filter) = match Access::parse(word) {
                        Some(a) => (a, filter.trim_start()),
                        None if word == "deny" => {
                            return Err(bad(
                                "`deny` is not supported: grant only what is allowed".into()
                            ))
                        }
                        // No access word: the whole rest is the filter, readwrite.
                        None => (
                            Access {
                                read: true,
                                write: true,
                            },
                            rest,
                        ),
                    };
                    if filter.is_empty() {
                        return Err(bad(format!("`{keyword}` needs a topic filter")));
                    }
                    // Placeholders stand for one level; check the shape with one in place.
                    let shape = filter.replace("%c", "c").replace("%u", "u");
                    validate_topic_filter(&shape)
                        .map_err(|e| bad(format!("`{filter}` is not a topic filter: {e}")))?;
                    if keyword == "topic" && filter != shape {
                        return Err(bad("%c and %u are replaced in `pattern` lines only".into()));
                    }
                    count += 1;
                    if count > MAX_RULES {
                        return Err(bad(format!("more than {MAX_RULES} rules")));
                    }
                    let rule = Rule {
                        access,
                        filter: filter.to_string(),
                    };
                    match (keyword, &user) {
                        ("pattern", _) => patterns.push(rule),
                        (_, Some(u)) => users.get_mut(u).expect("added above").push(rule),
                        (_, None) => anonymous.push(rule),
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown keyword `{other}` (expected user, topic or pattern)"
                    )))
                }
            }
        }
        Ok(AclRules {
            anonymous: anonymous.into(),
            users: users.into_iter().map(|(u, r)| (u, r.into())).collect(),
            unlisted: Arc::from([]),
            patterns_use_username: patterns.iter().any(|p: &Rule| p.filter.contains("%u")),
            patterns,
        })
    }

    /// What one connection keeps: its user's rules (shared) and, when a pattern needs it,
    /// its user name.
    pub fn for_client(&self, username: Option<&str>) -> ClientRules {
        let own = match username {
            Some(u) => self.users.get(u).unwrap_or(&self.unlisted).clone(),
            None => self.anonymous.clone(),
        };
        let username = username
            .filter(|_| self.patterns_use_username)
            .map(Box::from);
        ClientRules { own, username }
    }

    /// True when the client may publish to `topic`. `scratch` is reused for the patterns'
    /// replacements (no allocation once it has grown).
    pub fn may_publish(
        &self,
        client: &ClientRules,
        client_id: &str,
        topic: &str,
        scratch: &mut String,
    ) -> bool {
        self.any_rule(client, client_id, scratch, |a, f| {
            a.write && filter_matches(f, topic)
        })
    }

    /// True when every topic `filter` can match is readable (a `$share/GROUP/` prefix is
    /// checked on the filter behind it).
    pub fn may_subscribe(
        &self,
        client: &ClientRules,
        client_id: &str,
        filter: &str,
        scratch: &mut String,
    ) -> bool {
        let inner = match crate::topic::parse_shared_filter(filter) {
            Some(Ok(shared)) => shared.filter,
            Some(Err(_)) => return false,
            None => filter,
        };
        self.any_rule(client, client_id, scratch, |a, f| {
            a.read && filter_covers(f, inner)
        })
    }

    /// True when `test` holds for one of the client's own rules or one of the patterns,
    /// with `%c` / `%u` replaced. A replacement value that is empty or contains `/`, `+` or
    /// `#` makes its pattern grant nothing.
    fn any_rule(
        &self,
        client: &ClientRules,
        client_id: &str,
        scratch: &mut String,
        test: impl Fn(Access, &str) -> bool,
    ) -> bool {
        if client.own.iter().any(|r| test(r.access, &r.filter)) {
            return true;
        }
        let safe = |v: &str| !v.is_empty() && !v.contains(['/', '+', '#']);
        let client_id_ok = safe(client_id);
        let username = client.username.as_deref().filter(|u| safe(u));
        self.patterns.iter().any(|p| {
            if !p.filter.contains('%') {
                return test(p.access, &p.filter);
            }
            scratch.clear();
            let mut rest = p.filter.as_str();
            while let Some(at) = rest.find('%') {
                scratch.push_str(&rest[..at]);
                let tail = &rest[at..];
                if let Some(after) = tail.strip_prefix("%c") {
                    if !client_id_ok {
                        return false;
                    }
                    scratch.push_str(client_id);
                    rest = after;
                } else if let Some(after) = tail.strip_prefix("%u") {
                    let Some(u) = username else { return false };
                    scratch.push_str(u);
                    rest = after;
                } else {
                    scratch.push('%');
                    rest = &tail[1..];
                }
            }
            scratch.push_str(rest);
            // An id or name starting with `$` in front of a pattern must not turn it into a
            // rule on the server's `$` topics (`%c/#` for a client id `$SYS`).
            if scratch.starts_with('$') && !p.filter.starts_with('$') {
                return false;
            }
            test(p.access, scratch)
        })
    }
}

/// What one connection keeps for its checks.
#[derive(Debug, Clone)]
pub struct ClientRules {
    own: Arc<[Rule]>,
    username: Option<Box<str>>,
}

/// True when every topic that `inner` matches is also matched by `outer` (both valid
/// filters). Level by level: `#` in `outer` covers the rest; `+` covers one level of
/// anything but `#`; a literal covers only itself. Topics starting with `$` are matched by
/// a leading wildcard in neither, so a leading wildcard of `outer` covers `inner`'s first
/// level only when that level is not a `$` literal.
pub fn filter_covers(outer: &str, inner: &str) -> bool {
    let mut o = outer.split('/');
    let mut i = inner.split('/');
    let mut first = true;
    loop {
        match (o.next(), i.next()) {
            (Some("#"), Some(il)) => return !(first && il.starts_with('$')),
            // `a/#` matches `a` itself, so `a/#` covers `a`.
            (Some("#"), None) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(il)) => {
                if first && il.starts_with('$') {
                    return false;
                }
            }
            (Some(ol), Some(il)) => {
                // A literal covers a literal that equals it, never a wildcard.
                if il == "+" || ol != il {
                    return false;
                }
            }
            (None, None) => return true,
            // One ended before the other (a trailing `#` of `outer` was handled above).
            (None, Some(_)) | (Some(_), None) => return false,
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One client's view of the rules, for the checks below.
    struct View<'a> {
        acl: &'a AclRules,
        client: ClientRules,
        id: &'a str,
    }

    impl View<'_> {
        fn may_publish(&self, topic: &str) -> bool {
            self.acl
                .may_publish(&self.client, self.id, topic, &mut String::new())
        }

        fn may_subscribe(&self, filter: &str) -> bool {
            self.acl
                .may_subscribe(&self.client, self.id, filter, &mut String::new())
        }
    }

    fn view<'a>(acl: &'a AclRules, id: &'a str, user: Option<&str>) -> View<'a> {
        View {
            acl,
            client: acl.for_client(user),
            id,
        }
    }

    const FILE: &str = "\
# anonymous
topic read public/#
user dashboard
topic read fleet/#
user alice
topic readwrite lab/alice/#
topic lab/shared
pattern write fleet/%c/telemetry
pattern read fleet/%c/commands/#
pattern readwrite users/%u/#
";

    #[test]
    fn rules_follow_the_user_and_patterns_apply_to_all() {
        let acl = AclRules::parse(FILE).unwrap();
        let anon = view(&acl, "dev1", None);
        assert!(anon.may_subscribe("public/news"));
        assert!(anon.may_subscribe("public/#"));
        assert!(!anon.may_publish("public/news"), "read only");
        assert!(anon.may_publish("fleet/dev1/telemetry"), "pattern %c");
        assert!(!anon.may_publish("fleet/dev2/telemetry"));
        assert!(anon.may_subscribe("fleet/dev1/commands/#"));
        assert!(!anon.may_subscribe("fleet/+/commands/#"));
        assert!(
            !anon.may_subscribe("users/x"),
            "%u without a user name grants nothing"
        );

        let dash = view(&acl, "d", Some("dashboard"));
        assert!(dash.may_subscribe("fleet/#"));
        assert!(dash.may_subscribe("$share/g/fleet/+/telemetry"));
        assert!(
            !dash.may_subscribe("public/#"),
            "anonymous rules are not every user's"
        );
        assert!(!dash.may_publish("fleet/x"));

        let alice = view(&acl, "a1", Some("alice"));
        assert!(alice.may_publish("lab/alice/x/y"));
        assert!(alice.may_subscribe("lab/alice/#"));
        assert!(alice.may_publish("lab/shared") && alice.may_subscribe("lab/shared"));
        assert!(alice.may_publish("users/alice/inbox"));
        assert!(!alice.may_publish("users/bob/inbox"));
        assert!(!alice.may_subscribe("lab/#"));

        let stranger = view(&acl, "s", Some("nobody"));
        assert!(!stranger.may_subscribe("public/#"));
        assert!(stranger.may_publish("users/nobody/x"));
    }

    #[test]
    fn ids_with_separators_or_wildcards_do_not_widen_patterns() {
        let acl = AclRules::parse(FILE).unwrap();
        for id in ["+", "#", "a/b", ""] {
            let c = view(&acl, id, Some("x/y"));
            assert!(!c.may_publish("fleet/a/b/telemetry"), "{id:?}");
            assert!(!c.may_subscribe("fleet/+/commands/#"), "{id:?}");
            assert!(!c.may_publish("users/x/y/z"), "{id:?}");
        }
        // A pattern that starts with `%c` would become a rule on `$SYS` for the id `$SYS`.
        let acl = AclRules::parse("pattern readwrite %c/#\npattern read $dev/%c\n").unwrap();
        let sys = view(&acl, "$SYS", None);
        assert!(!sys.may_subscribe("$SYS/#"));
        assert!(!sys.may_subscribe("$SYS/broker/version"));
        let plain = view(&acl, "dev1", None);
        assert!(plain.may_subscribe("dev1/#"), "the pattern still works");
        assert!(
            plain.may_subscribe("$dev/dev1"),
            "a `$` pattern keeps its `$`"
        );
    }

    #[test]
    fn coverage_is_exact_level_by_level() {
        let yes = [
            ("#", "a/b/#"),
            ("#", "+/x"),
            ("a/#", "a"),
            ("a/#", "a/#"),
            ("a/#", "a/+/c"),
            ("a/+", "a/b"),
            ("a/+", "a/+"),
            ("+/+", "a/+"),
            ("a/b", "a/b"),
            ("$SYS/#", "$SYS/broker/+"),
            ("+/#", "a/#"),
        ];
        let no = [
            ("a/b", "a/+"),
            ("a/+", "a/#"),
            ("a/+", "a/b/c"),
            ("a/b/#", "a/#"),
            ("a/b/#", "a"),
            ("a", "a/b"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("a/+/c", "a/b"),
            ("a/b", "a/b/c"),
        ];
        for (o, i) in yes {
            assert!(filter_covers(o, i), "{o} should cover {i}");
        }
        for (o, i) in no {
            assert!(!filter_covers(o, i), "{o} should not cover {i}");
        }
    }

    /// Coverage agrees with matching: whenever `outer` covers `inner`, every topic that
    /// `inner` matches (from a sample) is matched by `outer`.
    #[test]
    fn coverage_never_admits_a_topic_the_rule_does_not_match() {
        let levels = ["a", "b", "$x", "+", "#"];
        let topics_levels = ["a", "b", "$x", ""];
        let mut filters = Vec::new();
        for x in levels {
            filters.push(x.to_string());
            for y in levels {
                filters.push(format!("{x}/{y}"));
                for z in levels {
                    filters.push(format!("{x}/{y}/{z}"));
                }
            }
        }
        filters.retain(|f| validate_topic_filter(f).is_ok());
        let mut topics = Vec::new();
        for x in topics_levels {
            topics.push(x.to_string());
            for y in topics_levels {
                topics.push(format!("{x}/{y}"));
                for z in topics_levels {
                    topics.push(format!("{x}/{y}/{z}"));
                }
            }
        }
        for o in &filters {
            for i in &filters {
                let covers = filter_covers(o, i);
                let sampled = topics
                    .iter()
                    .filter(|t| filter_matches(i, t))
                    .all(|t| filter_matches(o, t));
                if covers {
                    assert!(sampled, "{o} covers {i} but misses a topic");
                }
            }
        }
    }

    #[test]
    fn bad_lines_name_their_number_and_problem() {
        let cases = [
            ("topic deny a/#\n", 1, "deny"),
            ("user\n", 1, "user name"),
            ("# x\ntopic read\n", 2, "needs a topic filter"),
            ("topic read a/#/b\n", 1, "not a topic filter"),
            ("topic read fleet/%c\n", 1, "pattern"),
            ("allow a\n", 1, "unknown keyword"),
        ];
        for (text, line, words) in cases {
            let e = AclRules::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(words), "{text:?}: {e}");
        }
    }
}
