//! Decision records: one JSON line per evaluation and per action, appended to a file, for the
//! post-incident analysis (and `report`).
//!
//! Owns the record schema (versioned by [`SCHEMA`]; documented in the README) and the
//! append-only writer. Records are written before the action they announce is attempted, and
//! the action's result is written after it, so a crash in between leaves the intent on disk.
//! A record that cannot be written is logged, never allowed to stop the controller.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::decision::Decision;
use crate::guard::{Act, Mode, Note};
use crate::judge::Verdict;
use crate::rollout::Phase;

/// The schema version of every record line.
pub const SCHEMA: u32 = 1;

/// What a record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The rules were evaluated (and the plan made from them).
    Evaluation,
    /// A write to the Deployment and its result.
    Action,
}

/// One line of the decision log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema: u32,
    pub kind: Kind,
    /// The controller's time of the evaluation (simulated in the demo).
    pub at: Timestamp,
    pub namespace: String,
    pub deployment: String,
    pub mode: Mode,
    pub phase: Phase,
    /// The new ReplicaSet's revision and name, and the old ones compared with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_replicaset: Option<String>,
    #[serde(default)]
    pub old_replicasets: Vec<String>,
    /// The analysis stage after this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Every rule's verdict with its evidence and queries as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<Verdict>,
    /// Set when no evaluation ran: a write met a conflict, and the controller read the
    /// Deployment again and decided again on the verdicts the evaluation at this time recorded
    /// (they are there, not repeated here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdicts_of: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Writes asked for, and actions decided but only recorded (dry run, rate limit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acts: Vec<Act>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<Act>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
    /// For actions: `ok`, or what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

impl Record {
    /// The record holding the verdicts this one decided on: itself, or, for a decision taken
    /// again after a write conflict, the evaluation it names, if `records` still hold it.
    pub fn verdicts_source<'a>(
        &'a self,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> &'a Record {
        let Some(at) = self.verdicts_of else {
            return self;
        };
        records
            .into_iter()
            .find(|e| {
                e.kind == Kind::Evaluation
                    && e.at == at
                    && e.namespace == self.namespace
                    && e.deployment == self.deployment
                    && e.revision == self.revision
                    && !e.verdicts.is_empty()
            })
            .unwrap_or(self)
    }
}

/// Where records go: always the log; also a file when configured.
pub struct Recorder {
    file: Option<(PathBuf, Mutex<File>)>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open the decision record file {path}: {source}")]
pub struct OpenError {
    path: PathBuf,
    source: std::io::Error,
}

impl Recorder {
    /// Records to the log only.
    pub fn log_only() -> Recorder {
        Recorder { file: None }
    }

    /// Records to the log and appends to `path` (created with its folder if missing).
    pub fn open(path: &Path) -> Result<Recorder, OpenError> {
        let err = |source| OpenError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        Ok(Recorder {
            file: Some((path.to_path_buf(), Mutex::new(f))),
        })
    }

    /// Writes one record.
    pub fn write(&self, r: &Record) {
        let line = match serde_json::to_string(r) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a decision record");
                return;
            }
        };
        tracing::debug!(target: "rollout_guard::records", record = %line);
        if let Some((path, file)) = &self.file {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            // One write per line, in append mode: lines from one process never interleave.
            let mut buf = line.into_bytes();
            buf.push(b'\n');
            if let Err(e) = f.write_all(&buf).and_then(|_| f.flush()) {
                tracing::error!(path = %path.display(), error = %e, "cannot append a decision record");
            }
        }
    }
}

/// Reads a record file: its records and the numbers of the lines that are not records of this
/// schema (see [`parse`]).
pub fn load(path: &Path) -> std::io::Result<(Vec<Record>, Vec<usize>)> {
    Ok(parse(&std::fs::read_to_string(path)?))
}

/// Reads a record file, skipping (and counting) lines that are not records of this schema.
pub fn read(path: &Path) -> std::io::Result<(Vec<Record>, usize)> {
    load(path).map(|(records, unreadable)| (records, unreadable.len()))
}

/// The records in a record file's text, and the numbers (from 1) of the non-blank lines that
/// are not records of this schema (a line cut short by a crash, another schema version).
pub fn parse(text: &str) -> (Vec<Record>, Vec<usize>) {
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) if r.schema == SCHEMA => out.push(r),
            _ => unreadable.push(i + 1),
        }
    }
    (out, unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: Kind) -> Record {
        Record {
            schema: SCHEMA,
            kind,
            at: Timestamp::from_second(1_800_000_000).unwrap(),
            namespace: "web".into(),
            deployment: "shop".into(),
            mode: Mode::Guard,
            phase: Phase::Progressing,
            revision: Some(2),
            new_replicaset: Some("shop-new22".into()),
            old_replicasets: vec!["shop-old11".into()],
            stage: Some("analysing".into()),
            verdicts: Vec::new(),
            verdicts_of: None,
            decision: None,
            acts: vec![Act::Pause],
            suppressed: Vec::new(),
            notes: Vec::new(),
            result: (kind == Kind::Action).then(|| "ok".into()),
        }
    }

    #[test]
    fn records_append_as_lines_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/records.jsonl");
        let r = Recorder::open(&path).unwrap();
        r.write(&record(Kind::Evaluation));
        r.write(&record(Kind::Action));
        drop(r);
        // Reopening appends, never truncates.
        let r = Recorder::open(&path).unwrap();
        r.write(&record(Kind::Action));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"not json\n{\"schema\":99}\n")
            .unwrap();
        let (records, skipped) = read(&path).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(skipped, 2);
        assert_eq!(records[0], record(Kind::Evaluation));
        let text = std::fs::read_to_string(&path).unwrap();
        let (_, unreadable) = parse(&text);
        assert_eq!(unreadable, vec![4, 5], "line numbers from 1");
        assert!(
            text.starts_with(r#"{"schema":1,"kind":"evaluation","#),
            "{text}"
        );
    }

    #[test]
    fn an_unwritable_path_is_a_clear_error() {
        let e = Recorder::open(Path::new("/proc/no/such/records.jsonl"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/proc/no/such/records.jsonl"), "{e}");
    }
}
