//! The alert pipeline end to end: `squall up` driven as an operator and real agents would
//! (`up`), killed at random as the chaos benchmark does (`chaos`), the intake over HTTP (`intake`), the admin API (`admin`), `enrich` in a
//! topology (`enrich`), and the storage half from HTTP to the query API (`pipeline`),
//! against the real Kafka-protocol broker and real SQLite files.

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod chaos;
mod cluster;
mod enrich;
mod hostile;
mod intake;
mod pipeline;
mod policy;
mod rules;
mod ui;
mod up;
