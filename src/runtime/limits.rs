//! Process limits (placeholder; see issue 5).
