//! Notification policy: what is *not* sent, and what is sent together.
//!
//! - [`matcher`]: label matchers (`=`, `!=`, `=~`, `!~`; regular expressions anchored and
//!   size-limited).
//! - [`silence`]: silences and maintenance windows (a silence with a weekly recurrence in
//!   a named time zone).
//! - [`group`]: grouping per recipient (`group_by`, `group_wait`, `group_interval`,
//!   `repeat_interval`, as in Alertmanager), with silences applied at each flush.
//! - [`flap`]: flapping detection per alert instance (Nagios' weighted percent state
//!   change over the last 21 evaluations).
//!
//! Everything here is a pure state machine over the caller's clock: the pipeline drives
//! it on event time, the tests on virtual time.

pub mod flap;
pub mod group;
pub mod matcher;
pub mod silence;

#[cfg(test)]
mod tests;
