//! The readers behind the `nats-sink` command line, apart from the library embedders take:
//! JSON Lines rows, lines of bounded length, and `CREATE SINK` statements.

pub mod input;
pub mod lines;
pub mod sql;
