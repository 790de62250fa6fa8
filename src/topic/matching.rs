//! The MQTT matching rule between one topic filter and one topic name (MQTT 5.0 §4.7),
//! written plainly.
//!
//! [`filter_matches`] is the reference the tries are tested against, and the right tool
//! where only one filter is checked (an ACL rule, a retained message against one new
//! subscription). Routing a PUBLISH against many filters goes through
//! [`TopicTrie`](super::TopicTrie) instead, whose cost does not grow with the filter count.
//!
//! The small helpers here are shared by the tries so that all three agree, to the byte, on
//! what a level is and when a level is a wildcard.

/// Splits off the first level of `s`: `(level, rest)`, where `rest` is `None` when `level`
/// was the last one. `"a/b"` gives `("a", Some("b"))`, `"a/"` gives `("a", Some(""))`
/// (an empty last level), `""` gives `("", None)`.
///
/// `Option` rather than `""` for "no more levels", because an empty level is a real level
/// that `+` matches, and `a/+` matches `a/` but not `a`.
#[inline(always)]
pub(crate) fn split_level(s: &str) -> (&str, Option<&str>) {
    // A byte loop beats memchr here: levels are short, usually under 16 bytes.
    match s.as_bytes().iter().position(|&b| b == b'/') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// What one level of a filter means, once its position is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterLevel<'a> {
    /// `+`: exactly one level, possibly empty.
    Single,
    /// `#` as the last level: the parent level and everything below it.
    Multi,
    /// Anything else, compared byte for byte.
    Literal(&'a str),
}

/// Classifies a filter level. `#` is a wildcard only as the last level; anywhere else
/// (an invalid filter the caller should have rejected with
/// [`validate_topic_filter`](super::validate_topic_filter)) it is treated as a literal, so
/// that insertion, lookup, removal and matching still agree and nothing panics.
#[inline(always)]
pub(crate) fn classify(level: &str, is_last: bool) -> FilterLevel<'_> {
    match level {
        "+" => FilterLevel::Single,
        "#" if is_last => FilterLevel::Multi,
        _ => FilterLevel::Literal(level),
    }
}

/// True when the topic name starts with `$` (`$SYS/...` and the like): such topics are not
/// matched by filters whose first level is a wildcard [MQTT-4.7.2-1].
#[inline(always)]
pub(crate) fn is_dollar_topic(topic: &str) -> bool {
    topic.as_bytes().first() == Some(&b'$')
}

/// True when `topic` (a topic name, no wildcards) matches `filter` (a plain, non-shared
/// topic filter) under the rules of MQTT 5.0 §4.7:
///
/// - `+` matches exactly one level, including an empty one (`+/+` matches `/`);
/// - `#` (last level only) matches its parent level and any number of levels below it, so
///   `sport/#` matches `sport` [MQTT-4.7.1-2];
/// - a filter whose first level is `+` or `#` does not match a topic starting with `$`
///   [MQTT-4.7.2-1];
/// - everything else is compared byte for byte, case-sensitively.
///
/// Cost is O(length of the shorter string); it allocates nothing.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut filter_rest = Some(filter);
    let mut topic_rest = Some(topic);
    let mut first = true;
    loop {
        let Some(f) = filter_rest else {
            // Filter exhausted: a match only if the topic is exhausted too.
            return topic_rest.is_none();
        };
        let (flevel, fnext) = split_level(f);
        match classify(flevel, fnext.is_none()) {
            FilterLevel::Multi => return !(first && is_dollar_topic(topic)),
            FilterLevel::Single => {
                if first && is_dollar_topic(topic) {
                    return false;
                }
                let Some(t) = topic_rest else { return false };
                topic_rest = split_level(t).1;
            }
            FilterLevel::Literal(lit) => {
                let Some(t) = topic_rest else { return false };
                let (tlevel, tnext) = split_level(t);
                if tlevel != lit {
                    return false;
                }
                topic_rest = tnext;
            }
        }
        filter_rest = fnext;
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        assert_eq!(split_level("a/b/c"), ("a", Some("b/c")));
        assert_eq!(split_level("a/"), ("a", Some("")));
        assert_eq!(split_level("/a"), ("", Some("a")));
        assert_eq!(split_level("a"), ("a", None));
        assert_eq!(split_level(""), ("", None));
    }

    /// The non-normative examples of MQTT 5.0 §4.7.1 and §4.7.2.
    #[test]
    fn spec_examples() {
        let yes = [
            ("sport/tennis/player1/#", "sport/tennis/player1"),
            ("sport/tennis/player1/#", "sport/tennis/player1/ranking"),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
            ),
            ("sport/#", "sport"),
            ("sport/#", "sport/"),
            ("#", "sport/tennis"),
            ("#", "/"),
            ("sport/tennis/+", "sport/tennis/player1"),
            ("sport/tennis/+", "sport/tennis/player2"),
            ("sport/+", "sport/"),
            ("+", "sport"),
            ("+/+", "/finance"),
            ("/+", "/finance"),
            ("+/tennis/#", "sport/tennis/player1"),
            ("sport/+/player1", "sport/tennis/player1"),
            ("$SYS/#", "$SYS/monitor/Clients"),
            ("$SYS/monitor/+", "$SYS/monitor/Clients"),
            ("+/+", "/"),
            ("+", ""),
            ("a//b", "a//b"),
            ("a/+/b", "a//b"),
        ];
        for (f, t) in yes {
            assert!(filter_matches(f, t), "{f} should match {t}");
        }
        let no = [
            ("sport/tennis/+", "sport/tennis/player1/ranking"),
            ("sport/+", "sport"),
            ("+", "/finance"),
            ("/+", "finance"),
            ("sport/tennis/player1/#", "sport/tennis/player2"),
            ("#", "$SYS/monitor/Clients"),
            ("#", "$SYS"),
            ("+/monitor/Clients", "$SYS/monitor/Clients"),
            ("+", "$SYS"),
            ("Sport/#", "sport"),
            ("a/b", "a/b/c"),
            ("a/b/c", "a/b"),
            ("a/b", "a//b"),
        ];
        for (f, t) in no {
            assert!(!filter_matches(f, t), "{f} should not match {t}");
        }
    }

    #[test]
    fn dollar_only_matters_at_the_first_level() {
        assert!(filter_matches("a/+", "a/$x"));
        assert!(filter_matches("a/#", "a/$x"));
        assert!(filter_matches("$x/+", "$x/y"));
        assert!(filter_matches("$x", "$x"));
    }
}
