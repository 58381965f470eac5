//! The `squall` binary's commands as a user runs them (`commands`), and `bench fleet`
//! (`fleet`).

#[path = "../support/mod.rs"]
mod support;

mod commands;
mod fleet;
