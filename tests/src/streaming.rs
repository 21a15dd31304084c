//! Support for the streaming tests: signals to a running CLI, numbered datasets, and what a
//! stream or a subscriber ended up holding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{CliRun, NatsServer};

impl NatsServer {
    /// Freeze the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.send_signal("STOP");
    }

    /// Thaw a paused server (SIGCONT).
    pub fn resume(&self) {
        self.send_signal("CONT");
    }

    fn send_signal(&self, signal: &str) {
        let Some(child) = self.child.as_ref() else {
            return;
        };
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status();
    }
}

impl CliRun {
    /// The CLI's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send the CLI `signal` (`TERM`, `INT`, ...), as `kill -SIGNAL` does.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Wait (at most `limit`) for the CLI to exit, without closing its standard input: true
    /// once it has.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.is_running() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }

    /// Crash the CLI: SIGKILL, no chance to flush or record anything, and reap it.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Line `i` (from 0) of a numbered dataset.
pub fn numbered_row(i: u64) -> String {
    format!("{{\"id\":{i},\"name\":\"row-{i}\"}}\n")
}

/// `rows` numbered JSON lines and their schema (`id bigint, name varchar`), in `dir`.
pub fn numbered_dataset(dir: &Path, rows: u64) -> (PathBuf, PathBuf) {
    let schema = crate::schema_file(dir, &[("id", "bigint"), ("name", "varchar")]);
    let lines: String = (0..rows).map(numbered_row).collect();
    let input = dir.join("rows.jsonl");
    std::fs::write(&input, lines).expect("write the dataset");
    (schema, input)
}

/// How rows came out: messages, the times each row id was seen, and the ids never seen.
#[derive(Debug, Default)]
pub struct RowTally {
    pub messages: usize,
    pub seen: HashMap<u64, usize>,
}

impl RowTally {
    /// Count one message's row.
    pub fn add(&mut self, payload: &[u8]) {
        let row: serde_json::Value = serde_json::from_slice(payload).expect("a JSON row");
        let id = row["id"].as_u64().expect("a row id");
        *self.seen.entry(id).or_default() += 1;
        self.messages += 1;
    }

    /// Messages beyond the first of each row.
    pub fn duplicates(&self) -> usize {
        self.messages - self.seen.len()
    }

    /// Rows in `0..expected` never seen.
    pub fn missing(&self, expected: u64) -> Vec<u64> {
        (0..expected)
            .filter(|i| !self.seen.contains_key(i))
            .collect()
    }
}
