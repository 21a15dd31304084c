//! `run --state FILE`: how far a file input is confirmed, kept across runs so that a run after
//! a crash continues where NATS confirmed, whatever the stream's duplicate window.
//!
//! The file is rewritten atomically (a temporary file in the same directory, synced, then
//! renamed over it): after every confirmed flush, and before every publish (write-ahead: the
//! batch in flight), so a crash at any point leaves one whole state behind.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use sha2::{Digest as _, Sha256};

/// The format this build writes. Format 2 added the record batch position (`record_batches`,
/// `confirmed.batch`); a format 1 file is a JSON Lines state and still loads.
const VERSION: u32 = 2;
/// The oldest format this build reads.
const OLDEST_VERSION: u32 = 1;
/// The largest state file read: one is a few hundred bytes.
const MAX_STATE_BYTES: u64 = 1 << 16;

/// What a state file holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunState {
    pub version: u32,
    /// The input's canonical path.
    pub input: PathBuf,
    /// The message id prefix (`None` with dedupe off), the subject and the batch size the
    /// run used.
    pub sink_id: Option<String>,
    pub subject: String,
    pub batch_size: u32,
    /// The input is read as record batches (Parquet, Arrow IPC): its places count rows, and
    /// its position counts the reader's batches of `batch_size` rows. False: JSON Lines.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_batches: bool,
    pub confirmed: ConfirmedPoint,
    /// The batch being published when the state was written, if any.
    pub in_flight: Option<InFlight>,
}

/// The end of the confirmed part of the input.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmedPoint {
    /// The line of the last confirmed row (0: none yet).
    pub line: u64,
    /// The byte offset just past that line, where a resumed run reads on.
    pub offset: u64,
    /// Rows confirmed, over every run with this state.
    pub rows: u64,
    /// The last confirmed batch's checkpoint id.
    pub checkpoint: Option<u64>,
    /// Where the last confirmed line starts, and the SHA-256 (hex) of its text, to tell that
    /// the input is still the one confirmed.
    pub line_start: u64,
    pub line_digest: String,
    /// Record batch input: where the last confirmed row is (`line` is its row number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchPoint>,
}

/// The last confirmed row of a record batch input, in place of a byte offset: which of the
/// reader's batches holds it (from 0, at the run's batch size), where in that batch, and the
/// SHA-256 (hex) of the row as Arrow IPC, to tell that the input is still the one confirmed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchPoint {
    pub index: u64,
    pub row: u64,
    pub row_digest: String,
}

/// A batch written to NATS but not yet confirmed. It starts just past the confirmed point.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InFlight {
    pub checkpoint: u64,
    /// The line (or row) the batch starts at.
    pub first_line: u64,
    /// The offset where the batch's first line starts (0 for record batches).
    pub start_offset: u64,
    pub rows: u64,
}

impl RunState {
    /// The state of a run that has confirmed nothing yet.
    pub fn fresh(
        input: PathBuf,
        sink_id: Option<String>,
        subject: String,
        batch_size: u32,
        record_batches: bool,
    ) -> RunState {
        RunState {
            version: VERSION,
            input,
            sink_id,
            subject,
            batch_size,
            record_batches,
            confirmed: ConfirmedPoint::default(),
            in_flight: None,
        }
    }
}

/// The hex SHA-256 of a line's text, as the state records it.
pub fn line_digest(text: &str) -> String {
    hex_digest(text.as_bytes())
}

/// The hex SHA-256 of `bytes`.
pub fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A state file and the state last written to it.
pub struct StateFile {
    /// The file itself, resolved once: through a symbolic link, its target, so that the lock
    /// and the rewrite are the target's whatever name a run gives it.
    path: PathBuf,
    pub state: RunState,
    /// Held for the run: a second run on the same state file is refused, not interleaved.
    _lock: std::fs::File,
}

/// Lock `<dir>/.<name>.lock` beside the state file (the state itself is replaced by renames,
/// so it cannot hold a lock), or say which run holds it.
fn lock(path: &Path) -> anyhow::Result<std::fs::File> {
    let name = path.file_name().ok_or_else(|| anyhow!("not a file name"))?;
    let mut lock_name = std::ffi::OsString::from(".");
    lock_name.push(name);
    lock_name.push(".lock");
    let lock_path = path.with_file_name(lock_name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("creating its lock file {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another nats-sink run is using it (it holds {}); one run per state file",
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", lock_path.display()))
        }
    }
}

/// The file `given` names, canonical: a symbolic link's target, in a directory without links.
/// A file not made yet is named in its directory's canonical path; a link to nothing is
/// refused, as the rewrite would replace the link rather than make its target.
fn resolve(given: &Path) -> anyhow::Result<PathBuf> {
    match std::fs::canonicalize(given) {
        Ok(path) => return Ok(path),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        Err(_) => {}
    }
    if std::fs::symlink_metadata(given).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!("it is a symbolic link to a file that does not exist; name the file itself");
    }
    let name = given
        .file_name()
        .ok_or_else(|| anyhow!("not a file name"))?;
    let directory = match given.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let directory = std::fs::canonicalize(directory)
        .with_context(|| format!("its directory {}", directory.display()))?;
    Ok(directory.join(name))
}

impl StateFile {
    /// The state at `given` for a run of `fresh`'s input and sink: the one recorded, checked
    /// against the options and the input; or `fresh` when there is no file yet. A state of
    /// another input or sink, or an input that changed under it, is refused (bad input).
    pub fn open(given: &Path, fresh: RunState) -> anyhow::Result<StateFile> {
        let context = || format!("--state {}", given.display());
        let path = &resolve(given).with_context(context)?;
        let held = lock(path).with_context(context)?;
        let text = match std::fs::File::open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(context),
            Ok(file) => {
                let mut text = String::new();
                file.take(MAX_STATE_BYTES + 1)
                    .read_to_string(&mut text)
                    .with_context(context)?;
                if text.len() as u64 > MAX_STATE_BYTES {
                    bail!(
                        "{}: larger than {MAX_STATE_BYTES} bytes, so not a state file",
                        context()
                    );
                }
                text
            }
        };
        // None yet, or made empty beforehand (`mktemp`): a run replaces the file whole, so an
        // empty one was never written by a run.
        if text.is_empty() {
            return Ok(StateFile {
                path: path.to_path_buf(),
                state: fresh,
                _lock: held,
            });
        }
        let state: RunState = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a nats-sink state file", context()))?;
        let refuse = |why: String| {
            anyhow!(
                "{}: {why}; use another --state file for this run",
                context()
            )
        };
        if !(OLDEST_VERSION..=VERSION).contains(&state.version) {
            return Err(refuse(format!(
                "written in format {}, this build reads {OLDEST_VERSION} to {VERSION}",
                state.version
            )));
        }
        let kind = |batches: bool| match batches {
            true => "record batch (Parquet or Arrow)",
            false => "JSON Lines",
        };
        if state.record_batches != fresh.record_batches {
            return Err(refuse(format!(
                "it records a {} input; this run reads {} {}",
                kind(state.record_batches),
                kind(fresh.record_batches),
                fresh.input.display()
            )));
        }
        // Record batches are counted at the batch size they were read with, and a replayed
        // checkpoint is cut as it was: the same size, or the places mean other rows.
        let placed = state.confirmed.line > 0 || state.in_flight.is_some();
        if state.record_batches && placed && state.batch_size != fresh.batch_size {
            return Err(anyhow!(
                "{}: it counts the input's record batches at --batch-size {}, not {}; rerun with --batch-size {}",
                context(),
                state.batch_size,
                fresh.batch_size,
                state.batch_size
            ));
        }
        if state.input != fresh.input {
            return Err(refuse(format!(
                "it records input {}, not {}",
                state.input.display(),
                fresh.input.display()
            )));
        }
        if state.sink_id != fresh.sink_id || state.subject != fresh.subject {
            return Err(refuse(format!(
                "it records sink id {} on subject `{}`; these options give {} on `{}`",
                state.sink_id.as_deref().unwrap_or("(none: dedupe off)"),
                state.subject,
                fresh.sink_id.as_deref().unwrap_or("(none: dedupe off)"),
                fresh.subject
            )));
        }
        // Record batches are checked as the resumed run reads up to the confirmed row.
        let verified = match state.record_batches {
            true => Ok(()),
            false => verify_input(&state.input, &state.confirmed),
        };
        verified.map_err(|why| {
            anyhow!(
                "{}: the input changed since it was confirmed through line {} (byte {}): {why}; \
                 refusing to resume, as rows could be lost or sent twice",
                context(),
                state.confirmed.line,
                state.confirmed.offset
            )
        })?;
        let state = RunState {
            version: VERSION,
            batch_size: fresh.batch_size,
            ..state
        };
        Ok(StateFile {
            path: path.to_path_buf(),
            state,
            _lock: held,
        })
    }

    /// Record `state`, replacing the file atomically.
    pub fn write(&mut self, state: RunState) -> anyhow::Result<()> {
        let context = || format!("writing --state {}", self.path.display());
        let name = self
            .path
            .file_name()
            .ok_or_else(|| anyhow!("{}: not a file name", context()))?;
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(".tmp");
        let temporary = self.path.with_file_name(temporary_name);
        let text = serde_json::to_vec_pretty(&state).with_context(context)?;
        let mut file = std::fs::File::create(&temporary).with_context(context)?;
        file.write_all(&text)
            .and_then(|()| file.write_all(b"\n"))
            // Synced before the rename, so the name never points at a half-written file.
            .and_then(|()| file.sync_all())
            .with_context(context)?;
        std::fs::rename(&temporary, &self.path).with_context(context)?;
        self.state = state;
        Ok(())
    }
}

/// The input holds at least `confirmed.offset` bytes, and the last confirmed line is where
/// the state says, with the same text.
fn verify_input(input: &Path, confirmed: &ConfirmedPoint) -> Result<(), String> {
    if confirmed.line == 0 {
        return Ok(());
    }
    // Every line takes a byte at least (its line break), so more lines than bytes is a state
    // file written by hand, or damaged.
    if confirmed.line > confirmed.offset || confirmed.line_start > confirmed.offset {
        return Err("the state's line numbers and offsets are inconsistent".into());
    }
    let mut file = std::fs::File::open(input).map_err(|e| format!("opening it: {e}"))?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    if size < confirmed.offset {
        return Err(format!("it is {size} bytes long, shorter than that"));
    }
    let length = confirmed
        .offset
        .checked_sub(confirmed.line_start)
        .filter(|n| *n <= 1 << 30)
        .ok_or("the state's offsets are inconsistent")?;
    let mut line = vec![0u8; length as usize];
    file.seek(std::io::SeekFrom::Start(confirmed.line_start))
        .and_then(|_| file.read_exact(&mut line))
        .map_err(|e| format!("reading line {}: {e}", confirmed.line))?;
    // As the reader gives a line: without its line break, a `\r` before it, or a leading
    // byte order mark.
    let mut text: &[u8] = line.strip_suffix(b"\n").unwrap_or(&line);
    text = text.strip_suffix(b"\r").unwrap_or(text);
    if confirmed.line_start == 0 {
        text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    }
    let text = std::str::from_utf8(text)
        .map_err(|_| format!("line {} is not UTF-8 now", confirmed.line))?;
    if line_digest(text) != confirmed.line_digest {
        return Err(format!("line {} has other bytes now", confirmed.line));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(input: &Path) -> RunState {
        RunState {
            version: VERSION,
            input: input.to_path_buf(),
            sink_id: Some("s".into()),
            subject: "rows".into(),
            batch_size: 2,
            record_batches: false,
            confirmed: ConfirmedPoint::default(),
            in_flight: None,
        }
    }

    /// Issue 26: through `link.json -> real.json`, a second run took its own lock beside the
    /// link and ran at once, and the rewrite replaced the link, leaving the target stale.
    #[cfg(unix)]
    #[test]
    fn a_state_through_a_symlink_is_its_target_for_the_lock_and_the_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{\"a\":1}\n").unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        // Made empty beforehand, as `mktemp` does: a fresh state.
        std::fs::write(&real, "").unwrap();

        let mut file = StateFile::open(&link, fresh(&input)).unwrap();
        let err = StateFile::open(&real, fresh(&input)).err().unwrap();
        assert!(
            format!("{err:#}").contains("another nats-sink run"),
            "{err:#}"
        );
        let mut state = file.state.clone();
        state.confirmed = ConfirmedPoint {
            line: 1,
            offset: 8,
            rows: 1,
            checkpoint: Some(3),
            line_start: 0,
            line_digest: line_digest("{\"a\":1}"),
            batch: None,
        };
        file.write(state.clone()).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        drop(file);
        assert_eq!(StateFile::open(&real, fresh(&input)).unwrap().state, state);

        // Held through the target, a run through the link is refused too.
        let _held = StateFile::open(&real, fresh(&input)).unwrap();
        let err = StateFile::open(&link, fresh(&input)).err().unwrap();
        assert!(
            format!("{err:#}").contains("another nats-sink run"),
            "{err:#}"
        );

        // A link to nothing is refused rather than replaced by a file.
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink("missing.json", &dangling).unwrap();
        let err = StateFile::open(&dangling, fresh(&input)).err().unwrap();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
    }

    #[test]
    fn a_state_is_kept_and_checked_against_its_input() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{\"a\":1}\r\n{\"a\":2}\n{\"a\":3}\n").unwrap();
        let path = dir.path().join("state.json");
        let mut file = StateFile::open(&path, fresh(&input)).unwrap();
        let mut state = file.state.clone();
        state.confirmed = ConfirmedPoint {
            line: 2,
            offset: 17,
            rows: 2,
            checkpoint: Some(9),
            line_start: 9,
            line_digest: line_digest("{\"a\":2}"),
            batch: None,
        };
        file.write(state.clone()).unwrap();
        // One run per state file: a second open while this one holds it is refused.
        let err = StateFile::open(&path, fresh(&input)).err().unwrap();
        assert!(err.to_string().contains("--state"), "{err:#}");
        assert!(
            format!("{err:#}").contains("another nats-sink run"),
            "{err:#}"
        );
        drop(file);
        assert_eq!(StateFile::open(&path, fresh(&input)).unwrap().state, state);

        // Another sink id, another input, a changed line, a shorter file: refused.
        let other_sink = RunState {
            sink_id: None,
            ..fresh(&input)
        };
        assert!(StateFile::open(&path, other_sink).is_err());
        let other_input = dir.path().join("other.jsonl");
        assert!(StateFile::open(&path, fresh(&other_input)).is_err());
        std::fs::write(&input, "{\"a\":1}\r\n{\"a\":7}\n{\"a\":3}\n").unwrap();
        let err = StateFile::open(&path, fresh(&input))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("line 2 has other bytes"), "{err}");
        std::fs::write(&input, "{\"a\":1}\r\n").unwrap();
        let err = StateFile::open(&path, fresh(&input))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("shorter"), "{err}");
    }

    /// Format 1 (before record batch positions) still loads, as a JSON Lines state; a record
    /// batch state is refused for a JSON Lines run of the same file, and the other way round.
    #[test]
    fn a_format_1_state_loads_and_the_input_kind_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{\"a\":1}\n").unwrap();
        let path = dir.path().join("state.json");
        let format_1 = serde_json::json!({
            "version": 1,
            "input": input,
            "sink_id": "s",
            "subject": "rows",
            "batch_size": 2,
            "confirmed": {
                "line": 1, "offset": 8, "rows": 1, "checkpoint": 3,
                "line_start": 0, "line_digest": line_digest("{\"a\":1}"),
            },
            "in_flight": null,
        });
        std::fs::write(&path, format_1.to_string()).unwrap();
        let file = StateFile::open(&path, fresh(&input)).unwrap();
        assert_eq!(file.state.confirmed.line, 1);
        assert_eq!(file.state.confirmed.batch, None);
        assert!(!file.state.record_batches);
        drop(file);

        let batches = RunState {
            record_batches: true,
            ..fresh(&input)
        };
        let err = StateFile::open(&path, batches).err().unwrap();
        assert!(
            format!("{err:#}").contains("it records a JSON Lines input"),
            "{err:#}"
        );
    }
}
