//! Decision records: one JSON line per evaluation and per action, appended to a file, for the
//! post-incident analysis (and `report`).
//!
//! Owns the record schema (versioned by [`SCHEMA`]; documented in the README) and the
//! append-only writer. Records are written before the action they announce is attempted, and
//! the action's result is written after it, so a crash in between leaves the intent on disk:
//! each record is flushed to the disk (`fdatasync`) before the writer returns. A record that
//! cannot be written is logged, never allowed to stop the controller; a write cut short (a full
//! disk) leaves a fragment, and the next record starts on a line of its own, so only the
//! fragment is lost. The reader reads bytes line by line: a line that is not UTF-8 JSON of this
//! schema is skipped and counted, never allowed to hide the others.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    file: Option<(PathBuf, Mutex<Sink>)>,
}

/// The record file and whether its end is the start of a line (false after a write was cut
/// short, or when the file was found ending in a fragment).
struct Sink {
    file: File,
    at_line_start: bool,
}

impl Sink {
    /// Appends one line and flushes it to the disk.
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        append_line(&mut self.file, &mut self.at_line_start, line)?;
        self.file.sync_data()
    }
}

/// Writes `line` and a newline in one write (lines from one process never interleave in
/// append mode), first ending the fragment a cut-short write left, if any.
fn append_line(w: &mut impl Write, at_line_start: &mut bool, line: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(line.len() + 2);
    if !*at_line_start {
        buf.push(b'\n');
    }
    buf.extend_from_slice(line);
    buf.push(b'\n');
    // Until the write is known whole, assume it left a fragment (a blank line is harmless).
    *at_line_start = false;
    w.write_all(&buf)?;
    *at_line_start = true;
    Ok(())
}

/// Whether the file at `path` is empty or ends with a newline.
fn ends_at_line_start(path: &Path) -> std::io::Result<bool> {
    let mut f = File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
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
        let sink = Sink {
            file: f,
            at_line_start: ends_at_line_start(path).map_err(err)?,
        };
        Ok(Recorder {
            file: Some((path.to_path_buf(), Mutex::new(sink))),
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
            let mut sink = file.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = sink.append(line.as_bytes()) {
                tracing::error!(path = %path.display(), error = %e, "cannot append a decision record");
            }
        }
    }
}

/// Reads a record file: its records and the numbers of the lines that are not records of this
/// schema (see [`parse`]).
pub fn load(path: &Path) -> std::io::Result<(Vec<Record>, Vec<usize>)> {
    parse_from(BufReader::new(File::open(path)?))
}

/// Reads a record file, skipping (and counting) lines that are not records of this schema.
pub fn read(path: &Path) -> std::io::Result<(Vec<Record>, usize)> {
    load(path).map(|(records, unreadable)| (records, unreadable.len()))
}

/// The records in a record file's bytes, and the numbers (from 1) of the non-blank lines that
/// are not records of this schema (a line cut short by a crash, even inside a character; bytes
/// that are not UTF-8; another schema version).
pub fn parse(bytes: impl AsRef<[u8]>) -> (Vec<Record>, Vec<usize>) {
    parse_from(bytes.as_ref()).expect("reading from memory cannot fail")
}

/// [`parse`] over a reader, one line at a time. The query texts, the same at every evaluation
/// of a revision and most of a record's bytes, are kept once.
fn parse_from(mut reader: impl BufRead) -> std::io::Result<(Vec<Record>, Vec<usize>)> {
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    let mut texts: HashSet<Arc<str>> = HashSet::new();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<Record>(&line) {
            Ok(mut r) if r.schema == SCHEMA => {
                share_queries(&mut r, &mut texts);
                out.push(r);
            }
            _ => unreadable.push(number),
        }
    }
    Ok((out, unreadable))
}

/// Points every query text of `r` at the copy in `texts` (adding those not there yet).
fn share_queries(r: &mut Record, texts: &mut HashSet<Arc<str>>) {
    for q in r.verdicts.iter_mut().flat_map(|v| v.queries.iter_mut()) {
        match texts.get(&q.promql) {
            Some(shared) => q.promql = shared.clone(),
            None => {
                texts.insert(q.promql.clone());
            }
        }
    }
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

    fn line_of(r: &Record) -> Vec<u8> {
        let mut line = serde_json::to_vec(r).unwrap();
        line.push(b'\n');
        line
    }

    #[test]
    fn a_query_text_repeated_at_every_evaluation_is_kept_once() {
        use crate::judge::{Outcome, QueryName, QuerySide, SentQuery, Verdict};
        let mut r = record(Kind::Evaluation);
        r.verdicts = vec![Verdict {
            rule: "x".into(),
            outcome: Outcome::Pass,
            action: crate::rules::Action::Warn,
            reason: "r".into(),
            evidence: None,
            queries: vec![SentQuery {
                side: QuerySide::New,
                name: QueryName::Query,
                promql: "sum by (pod) (rate(x[1m]))".into(),
            }],
            error: None,
            building: false,
        }];
        let line = serde_json::to_string(&r).unwrap();
        let (records, unreadable) = parse(format!("{line}\n{line}\n"));
        assert!(unreadable.is_empty());
        let text = |i: usize| records[i].verdicts[0].queries[0].promql.clone();
        assert!(std::sync::Arc::ptr_eq(&text(0), &text(1)));
        assert_eq!(&*text(1), "sum by (pod) (rate(x[1m]))");
    }

    /// Issue 14, bug 2: a line cut inside a multi-byte character, or bytes that are not UTF-8,
    /// are unreadable lines like any other, not a reason to refuse the file.
    #[test]
    fn lines_that_are_not_utf8_are_skipped_and_counted() {
        let mut r = record(Kind::Evaluation);
        r.result = Some("ratio ≥ ×2 → rollback".into());
        let whole = line_of(&r);
        let cut = whole.iter().position(|&b| b == 0xE2).unwrap() + 1;
        let mut bytes = whole.clone();
        bytes.extend_from_slice(&whole[..cut]);
        bytes.push(b'\n');
        bytes.extend_from_slice(b"\xff\xfe\n");
        bytes.extend_from_slice(&whole);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        std::fs::write(&path, &bytes).unwrap();
        let (records, unreadable) = load(&path).unwrap();
        assert_eq!(records, vec![r.clone(), r]);
        assert_eq!(unreadable, vec![2, 3]);
    }

    /// A writer that takes `room` bytes and then reports a full disk.
    struct FullDisk {
        written: Vec<u8>,
        room: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.room - self.written.len());
            if n == 0 {
                return Err(std::io::ErrorKind::StorageFull.into());
            }
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Issue 14, bug 3: after a write cut short by a full disk, the next record starts on a
    /// line of its own; only the fragment is lost.
    #[test]
    fn a_record_after_a_cut_short_write_is_not_glued_to_the_fragment() {
        let (first, second) = (record(Kind::Evaluation), record(Kind::Action));
        let mut disk = FullDisk {
            written: Vec::new(),
            room: 20,
        };
        let mut at_line_start = true;
        let line = serde_json::to_vec(&first).unwrap();
        assert!(append_line(&mut disk, &mut at_line_start, &line).is_err());
        disk.room = usize::MAX; // space came back
        let line = serde_json::to_vec(&second).unwrap();
        append_line(&mut disk, &mut at_line_start, &line).unwrap();
        let (records, unreadable) = parse(&disk.written);
        assert_eq!(records, vec![second]);
        assert_eq!(unreadable, vec![1]);
    }

    /// The same across a restart: a file that ends in a fragment gets its next record on a
    /// line of its own.
    #[test]
    fn a_record_file_ending_in_a_fragment_is_appended_on_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        let whole = line_of(&record(Kind::Evaluation));
        std::fs::write(&path, [&whole[..], &whole[..30]].concat()).unwrap();
        Recorder::open(&path).unwrap().write(&record(Kind::Action));
        let (records, unreadable) = load(&path).unwrap();
        assert_eq!(
            records,
            vec![record(Kind::Evaluation), record(Kind::Action)]
        );
        assert_eq!(unreadable, vec![2]);
    }

    #[test]
    fn an_unwritable_path_is_a_clear_error() {
        let e = Recorder::open(Path::new("/proc/no/such/records.jsonl"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/proc/no/such/records.jsonl"), "{e}");
    }
}
