//! Unit and property tests of the subscription trie.

use super::super::matching::filter_matches;
use super::*;
use proptest::prelude::*;

/// A remembered match is current while the generation is unchanged: every call that
/// may change a value or the set of filters must move it, and reading must not.
#[test]
fn generation_moves_on_every_mutable_access() {
    let mut t: TopicTrie<u32> = TopicTrie::new();
    let mut last = t.generation();
    let mut moved = |t: &TopicTrie<u32>, what: &str| {
        assert_ne!(t.generation(), last, "{what}");
        last = t.generation();
    };
    t.insert("a/b", 1);
    moved(&t, "insert");
    *t.entry_or_insert_with("a/+", || 2) += 1;
    moved(&t, "entry_or_insert_with");
    *t.get_mut("a/b").unwrap() = 5;
    moved(&t, "get_mut");
    t.for_each_match_mut("a/b", |v| *v += 1);
    moved(&t, "for_each_match_mut");
    t.remove("a/+");
    moved(&t, "remove");
    t.clear();
    moved(&t, "clear");
    let g = t.generation();
    t.insert("x", 1);
    let g2 = t.generation();
    let _ = (t.get("x"), t.has_match("x"), t.len());
    t.for_each_match("x", |_| {});
    t.for_each(|_, _| {});
    assert_eq!(t.generation(), g2, "reads do not move it");
    assert_ne!(g, g2);
}

fn matches_of(trie: &TopicTrie<String>, topic: &str) -> Vec<String> {
    let mut out = Vec::new();
    trie.for_each_match(topic, |v| out.push(v.clone()));
    out.sort();
    out
}

fn trie_of(filters: &[&str]) -> TopicTrie<String> {
    let mut t = TopicTrie::new();
    for f in filters {
        assert!(t.insert(f, f.to_string()).is_none());
    }
    t
}

/// MQTT 5.0 §4.7.1.2 / §4.7.1.3 / §4.7.2 examples, against one trie holding all of them.
#[test]
fn spec_examples() {
    let t = trie_of(&[
        "sport/tennis/player1/#",
        "sport/#",
        "#",
        "sport/tennis/+",
        "sport/+",
        "+",
        "+/+",
        "/+",
        "+/tennis/#",
        "sport/+/player1",
        "$SYS/#",
        "$SYS/monitor/+",
        "+/monitor/Clients",
    ]);
    assert_eq!(
        matches_of(&t, "sport/tennis/player1"),
        [
            "#",
            "+/tennis/#",
            "sport/#",
            "sport/+/player1",
            "sport/tennis/+",
            "sport/tennis/player1/#"
        ]
    );
    assert_eq!(
        matches_of(&t, "sport/tennis/player1/score/wimbledon"),
        ["#", "+/tennis/#", "sport/#", "sport/tennis/player1/#"]
    );
    assert_eq!(matches_of(&t, "sport"), ["#", "+", "sport/#"]);
    assert_eq!(matches_of(&t, "sport/"), ["#", "+/+", "sport/#", "sport/+"]);
    assert_eq!(matches_of(&t, "/finance"), ["#", "+/+", "/+"]);
    assert_eq!(matches_of(&t, "/"), ["#", "+/+", "/+"]);
    assert_eq!(matches_of(&t, "finance"), ["#", "+"]);
    // Wildcard-first filters never see `$` topics; `$SYS/...` filters do.
    assert_eq!(
        matches_of(&t, "$SYS/monitor/Clients"),
        ["$SYS/#", "$SYS/monitor/+"]
    );
    assert_eq!(matches_of(&t, "$SYS"), ["$SYS/#"]);
    assert_eq!(matches_of(&t, "$other"), Vec::<String>::new());
    // `$` below the first level is an ordinary character.
    assert_eq!(
        matches_of(&t, "sport/$x"),
        ["#", "+/+", "sport/#", "sport/+"]
    );
}

#[test]
fn exact_lookup_and_len() {
    let mut t = TopicTrie::new();
    assert!(t.is_empty());
    *t.entry_or_insert_with("a/b", || 0) += 1;
    *t.entry_or_insert_with("a/b", || 0) += 1;
    *t.entry_or_insert_with("a/#", || 10) += 1;
    *t.entry_or_insert_with("a/+", || 20) += 1;
    assert_eq!(t.len(), 3);
    assert_eq!(t.get("a/b"), Some(&2));
    assert_eq!(t.get("a/#"), Some(&11));
    assert_eq!(t.get("a/+"), Some(&21));
    assert_eq!(t.get("a"), None);
    assert_eq!(t.get("a/c"), None);
    assert_eq!(t.get("#"), None);
    *t.get_mut("a/+").unwrap() = 5;
    assert_eq!(t.insert("a/+", 6), Some(5));
    assert_eq!(t.len(), 3);
    assert!(t.has_match("a/zz"));
    assert!(t.has_match("a"));
    assert!(!t.has_match("b"));
    let mut n = 0;
    t.for_each_match_mut("a/b", |v| {
        *v += 100;
        n += 1
    });
    assert_eq!(n, 3);
    assert_eq!(t.get("a/b"), Some(&102));
    assert_eq!(t.remove("a/c"), None);
    assert_eq!(t.remove("a/b"), Some(102));
    assert_eq!(t.remove("a/b"), None);
    assert_eq!(t.len(), 2);
    assert_eq!(format!("{t:?}"), r#"{"a/#": 111, "a/+": 106}"#);
}

#[test]
fn for_each_spells_filters() {
    let filters = [
        "#", "+", "/", "/+", "a", "a/#", "a//b", "$SYS/#", "+/x/+", "",
    ];
    let t = trie_of(&filters);
    let mut seen = Vec::new();
    t.for_each(|f, v| {
        assert_eq!(f, v);
        seen.push(f.to_owned());
    });
    seen.sort();
    let mut want: Vec<_> = filters.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn pruning_returns_to_baseline() {
    let mut t = TopicTrie::new();
    assert_eq!(t.node_count(), 1);
    let filters: Vec<String> = (0..5000)
        .map(|i| match i % 5 {
            0 => format!("devices/{i}/telemetry"),
            1 => format!("devices/+/{i}"),
            2 => format!("site/{}/+/status/#", i % 37),
            3 => format!("a/{}/{}/{}", i % 3, i % 7, i),
            _ => format!("{i}//+"),
        })
        .collect();
    for f in &filters {
        *t.entry_or_insert_with(f, || 0u32) += 1;
    }
    assert_eq!(t.len(), 4037); // 1000 site/... filters, 37 distinct
    assert!(t.node_count() > 5000);
    for f in &filters {
        t.remove(f);
    }
    assert!(t.is_empty());
    assert_eq!(t.node_count(), 1);
}

#[test]
fn invalid_filters_are_literals_and_do_not_panic() {
    let t = trie_of(&["a/#/b", "a+/b", "#/x"]);
    assert_eq!(matches_of(&t, "a/#/b"), ["a/#/b"]);
    assert_eq!(matches_of(&t, "a+/b"), ["a+/b"]);
    assert_eq!(matches_of(&t, "a/x/b"), Vec::<String>::new());
    assert_eq!(t.get("#/x"), Some(&"#/x".to_string()));
}

// --- property tests against the reference matcher ---

pub(crate) fn level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "", "$a", "$"])
}

/// Valid filters over a tiny alphabet, so that collisions and overlaps are common.
pub(crate) fn filter() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop_oneof![3 => level(), 1 => Just("+")], 0..5),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(mut levels, hash)| {
            if hash || levels.is_empty() {
                levels.push("#");
            }
            levels.join("/")
        })
}

pub(crate) fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(level(), 1..6).prop_map(|l| l.join("/"))
}

/// What [`check_against_reference`] needs of a filter store (the trie, the filter table).
pub(crate) trait FilterStore {
    fn insert_new(&mut self, filter: &str) -> bool;
    fn remove_filter(&mut self, filter: &str) -> Option<String>;
    fn get_filter(&self, filter: &str) -> Option<&String>;
    fn filters(&self) -> usize;
    /// The values of the filters that match `topic`, sorted.
    fn matches(&self, topic: &str) -> Vec<String>;
}

/// Implements [`FilterStore`] for a store with the trie's method names.
macro_rules! impl_filter_store {
    ($store:ty) => {
        impl FilterStore for $store {
            fn insert_new(&mut self, filter: &str) -> bool {
                let mut fresh = false;
                self.entry_or_insert_with(filter, || {
                    fresh = true;
                    filter.to_string()
                });
                fresh
            }
            fn remove_filter(&mut self, filter: &str) -> Option<String> {
                self.remove(filter)
            }
            fn get_filter(&self, filter: &str) -> Option<&String> {
                self.get(filter)
            }
            fn filters(&self) -> usize {
                self.len()
            }
            fn matches(&self, topic: &str) -> Vec<String> {
                let mut out = Vec::new();
                self.for_each_match(topic, |v: &String| out.push(v.clone()));
                out.sort();
                out
            }
        }
    };
}
pub(crate) use impl_filter_store;

impl_filter_store!(TopicTrie<String>);

/// Stores `filters` (each value its own filter), checks every topic's matches against the
/// reference rule, removes the filters `remove_mask` picks and checks again. Returns the
/// filters left.
pub(crate) fn check_against_reference<S: FilterStore>(
    store: &mut S,
    filters: &[String],
    topics: &[String],
    remove_mask: &[bool],
) -> Result<Vec<String>, TestCaseError> {
    let mut distinct: Vec<String> = Vec::new();
    for f in filters {
        let fresh = store.insert_new(f);
        prop_assert_eq!(fresh, !distinct.contains(f));
        if fresh {
            distinct.push(f.clone());
        }
        prop_assert_eq!(store.filters(), distinct.len());
    }
    let check = |store: &S, live: &[String]| -> Result<(), TestCaseError> {
        for topic in topics {
            let mut want: Vec<String> = live
                .iter()
                .filter(|f| filter_matches(f, topic))
                .cloned()
                .collect();
            want.sort();
            prop_assert_eq!(store.matches(topic), want, "topic {:?}", topic);
        }
        Ok(())
    };
    check(store, &distinct)?;
    let (gone, kept): (Vec<_>, Vec<_>) = distinct
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| remove_mask[*i % remove_mask.len()]);
    for (_, f) in &gone {
        prop_assert_eq!(store.remove_filter(f), Some(f.clone()));
        prop_assert_eq!(store.remove_filter(f), None);
    }
    let kept: Vec<String> = kept.into_iter().map(|(_, f)| f).collect();
    prop_assert_eq!(store.filters(), kept.len());
    check(store, &kept)?;
    for f in &kept {
        prop_assert_eq!(store.get_filter(f), Some(f));
    }
    Ok(kept)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn agrees_with_reference(
        filters in prop::collection::vec(filter(), 0..40),
        topics in prop::collection::vec(topic(), 1..20),
        remove_mask in prop::collection::vec(any::<bool>(), 40),
    ) {
        let mut t = TopicTrie::new();
        let kept = check_against_reference(&mut t, &filters, &topics, &remove_mask)?;
        for topic in &topics {
            prop_assert_eq!(t.has_match(topic), !matches_of(&t, topic).is_empty());
        }
        // Remove the rest: back to a bare root.
        for f in &kept {
            prop_assert_eq!(t.remove(f), Some(f.clone()));
        }
        prop_assert!(t.is_empty());
        prop_assert_eq!(t.node_count(), 1);
    }
}
