//! The alert pipeline's domain logic (issue 5 onwards): agent payload parsing so far.

pub mod payload;
