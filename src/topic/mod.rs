//! Topic names and filters: validation, matching, and the tries that route publishes.

mod validate;

pub use validate::{
    is_shared_filter, parse_shared_filter, validate_topic_filter, validate_topic_name,
    SharedFilter, TopicError,
};
