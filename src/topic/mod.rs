//! Topic names and filters: validation, matching, and the tries that route publishes.
//!
//! Everything here is pure (no I/O, no clock, no runtime) so it can be tested and
//! benchmarked on its own, and fuzzed:
//!
//! - [`validate`](validate_topic_filter): the codec rejects bad names and filters with the
//!   right reason code;
//! - [`filter_matches`]: one filter against one topic, the reference rule;
//! - [`TopicTrie`]: many filters against one topic, for every PUBLISH;
//! - [`FilterTable`]: what a shard keeps its subscriptions and cross-shard interest in:
//!   filters without wildcards in a hash map, the others in a [`TopicTrie`];
//! - [`RetainedIndex`]: one filter against many retained topics, for every SUBSCRIBE.

mod children;
mod matching;
mod retained;
mod table;
mod trie;
mod validate;

pub use matching::filter_matches;
pub use retained::RetainedIndex;
pub use table::{is_exact_filter, shrink_if_sparse, FilterTable};
pub use trie::TopicTrie;
pub use validate::{
    is_shared_filter, parse_shared_filter, validate_topic_filter, validate_topic_name,
    SharedFilter, TopicError,
};
