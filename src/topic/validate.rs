//! Topic name and topic filter rules of MQTT 3.1.1 §4.7 and MQTT 5.0 §4.7 / §4.8.2.
//!
//! Kept apart from the trie so the codec can reject bad names and filters while decoding,
//! with the reason code the spec asks for (0x90 for names, 0x8F for filters).

use thiserror::Error;

/// Why a topic name or filter was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TopicError {
    /// Names and filters must be at least one character long [MQTT-4.7.3-1].
    #[error("topic is empty")]
    Empty,
    /// Wildcards are only allowed in filters [MQTT-3.3.2-2].
    #[error("topic name contains a wildcard")]
    WildcardInName,
    /// '#' must be the last level and stand alone [MQTT-4.7.1-1].
    #[error("'#' is not the last level of the filter, or not a whole level")]
    MisplacedMultiLevelWildcard,
    /// '+' must occupy a whole level [MQTT-4.7.1-2].
    #[error("'+' is not a whole level of the filter")]
    MisplacedSingleLevelWildcard,
    /// `$share/{name}/{filter}` needs a non-empty share name without wildcards or '/'
    /// and a non-empty filter [MQTT-4.8.2-1, MQTT-4.8.2-2].
    #[error("malformed shared subscription filter")]
    InvalidSharedFilter,
}

/// Checks a topic name (the topic of a PUBLISH or a Will): non-empty, no wildcards.
/// U+0000 and UTF-8 validity are checked by the codec's string reader.
#[inline]
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a topic filter, including the `$share/{group}/{filter}` form.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    let plain = match parse_shared_filter(filter) {
        Some(shared) => shared?.filter,
        None => filter,
    };
    validate_plain_filter(plain)
}

fn validate_plain_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') {
            if level != "#" || levels.peek().is_some() {
                return Err(TopicError::MisplacedMultiLevelWildcard);
            }
        } else if level.contains('+') && level != "+" {
            return Err(TopicError::MisplacedSingleLevelWildcard);
        }
    }
    Ok(())
}

/// A `$share/{group}/{filter}` subscription split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The share name; members of one group on one filter share its messages.
    pub group: &'a str,
    /// The filter that topics are matched against.
    pub filter: &'a str,
}

/// True when the filter names a shared subscription.
#[inline]
pub fn is_shared_filter(filter: &str) -> bool {
    filter.starts_with("$share/")
}

/// Splits a shared subscription filter. `None` when the filter is not shared;
/// `Some(Err(..))` when it is shared but malformed.
pub fn parse_shared_filter(filter: &str) -> Option<Result<SharedFilter<'_>, TopicError>> {
    let rest = filter.strip_prefix("$share/")?;
    let Some((group, inner)) = rest.split_once('/') else {
        return Some(Err(TopicError::InvalidSharedFilter));
    };
    if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
        return Some(Err(TopicError::InvalidSharedFilter));
    }
    Some(Ok(SharedFilter {
        group,
        filter: inner,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate_topic_name("a/b"), Ok(()));
        assert_eq!(validate_topic_name("/"), Ok(()));
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a/#"), Err(TopicError::WildcardInName));
    }

    #[test]
    fn filters() {
        for ok in [
            "#",
            "+",
            "a/#",
            "+/+",
            "/+",
            "a//b",
            "$SYS/#",
            "sport/+/player1",
        ] {
            assert_eq!(validate_topic_filter(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_topic_filter(""), Err(TopicError::Empty));
        assert_eq!(
            validate_topic_filter("a/#/b"),
            Err(TopicError::MisplacedMultiLevelWildcard)
        );
        assert_eq!(
            validate_topic_filter("a#"),
            Err(TopicError::MisplacedMultiLevelWildcard)
        );
        assert_eq!(
            validate_topic_filter("a/b+"),
            Err(TopicError::MisplacedSingleLevelWildcard)
        );
    }

    #[test]
    fn shared_filters() {
        assert_eq!(
            parse_shared_filter("$share/g/a/+"),
            Some(Ok(SharedFilter {
                group: "g",
                filter: "a/+"
            }))
        );
        assert_eq!(parse_shared_filter("a/b"), None);
        for bad in ["$share/g", "$share//a", "$share/g+/a", "$share/g/"] {
            assert_eq!(
                validate_topic_filter(bad),
                Err(TopicError::InvalidSharedFilter),
                "{bad}"
            );
        }
        assert_eq!(
            validate_topic_filter("$share/g/a#"),
            Err(TopicError::MisplacedMultiLevelWildcard)
        );
    }
}
