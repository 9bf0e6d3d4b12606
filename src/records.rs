//! Decision records: one JSON line per evaluation and per action, appended to a file, for the
//! post-incident analysis (and `report`).
//!
//! Owns the record schema (versioned by [`SCHEMA`]; documented in the README), the append-only
//! writer and the rotation of its file. Records are written before the action they announce is
//! attempted, and the action's result is written after it, so a crash in between leaves the
//! intent on disk: each record is flushed to the disk (`fdatasync`) before the writer returns. A
//! record that cannot be written is logged, never allowed to stop the controller; a write cut
//! short (a full disk) leaves a fragment, and the next record starts on a line of its own, so
//! only the fragment is lost. Before a record would take the file past [`Rotation::max_bytes`],
//! the file becomes `<file>.1` (the older ones move up to `.2`, …; those beyond
//! [`Rotation::keep`] are deleted) and a new file starts, so a record is never split across
//! files; a rotation that fails is logged and the record goes to the current file. The reader
//! reads a file with its rotated files, oldest first, bytes line by line: a line that is not
//! UTF-8 JSON of this schema is skipped and counted, never allowed to hide the others.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::analysis::decision::Decision;
use crate::analysis::judge::Verdict;
use crate::policy::guard::{Act, Mode, Note, StageName};
use crate::policy::rollout::Phase;

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
    /// The schema version of the line, [`SCHEMA`] when written.
    pub schema: u32,
    /// An evaluation or an action.
    pub kind: Kind,
    /// The controller's time of the evaluation (simulated in the demo).
    pub at: Timestamp,
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// The Deployment's mode at this step (`observe`, `guard` or `gate`), after its
    /// annotations.
    pub mode: Mode,
    /// The rollout's phase as read at this step.
    pub phase: Phase,
    /// The new ReplicaSet's revision (`deployment.kubernetes.io/revision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The new ReplicaSet's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_replicaset: Option<String>,
    /// The old ReplicaSets with pods, which the new one is compared with.
    #[serde(default)]
    pub old_replicasets: Vec<String>,
    /// The analysis stage after this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageName>,
    /// Every rule's verdict with its evidence and queries as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<Verdict>,
    /// Set when no evaluation ran: a write met a conflict, and the controller read the
    /// Deployment again and decided again on the verdicts the evaluation at this time recorded
    /// (they are there, not repeated here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdicts_of: Option<Timestamp>,
    /// What the step's verdicts call for: the streaks, the action and its reason (only when
    /// there were verdicts to decide on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The writes asked for, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acts: Vec<Act>,
    /// Actions decided but only recorded (observe mode, the kill switch, the rate limit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<Act>,
    /// For actions: the Events published, only when the write went through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
    /// For actions: `ok`, or what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<WriteResult>,
    /// How far the rollout was: the new ReplicaSet's available pods of the replicas asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The container images of the new ReplicaSet and the old ones it is compared with
    /// (ReplicaSet → container → image): what the release changed. Empty in records of
    /// versions before it was kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, BTreeMap<String, String>>,
}

/// A rollout's progress at a record: the new ReplicaSet's available pods, and the replicas the
/// Deployment asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The new ReplicaSet's available pods.
    pub new_available: i32,
    /// The replicas the Deployment asks for (`spec.replicas`).
    pub desired: i32,
}

impl Progress {
    /// The new pods as a percentage of the replicas asked for (0 when none are asked for).
    pub fn percent(&self) -> f64 {
        if self.desired > 0 {
            100.0 * f64::from(self.new_available) / f64::from(self.desired)
        } else {
            0.0
        }
    }
}

/// What became of an action record's writes: in the record, `"ok"` or the error's text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum WriteResult {
    /// The write was made.
    Ok,
    /// The write failed, with the error's text.
    Failed(String),
}

impl WriteResult {
    /// Whether the write was made.
    pub fn is_ok(&self) -> bool {
        matches!(self, WriteResult::Ok)
    }

    /// As the record says it.
    pub fn as_str(&self) -> &str {
        match self {
            WriteResult::Ok => "ok",
            WriteResult::Failed(why) => why,
        }
    }
}

impl From<String> for WriteResult {
    fn from(s: String) -> Self {
        if s == "ok" {
            WriteResult::Ok
        } else {
            WriteResult::Failed(s)
        }
    }
}

impl From<&str> for WriteResult {
    fn from(s: &str) -> Self {
        WriteResult::from(s.to_string())
    }
}

impl From<WriteResult> for String {
    fn from(r: WriteResult) -> Self {
        match r {
            WriteResult::Ok => "ok".into(),
            WriteResult::Failed(why) => why,
        }
    }
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
    file: Option<Mutex<Sink>>,
}

/// When the record file is rotated, and how many rotated files are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// The file is rotated before a record would take it past this many bytes (a record longer
    /// than this gets a file of its own).
    pub max_bytes: u64,
    /// Rotated files kept, `<file>.1` (the newest) to `<file>.<keep>`; older ones are deleted.
    pub keep: u32,
}

impl Default for Rotation {
    /// 64 MiB, 4 kept: at most about 320 MiB of records.
    fn default() -> Self {
        Rotation {
            max_bytes: 64 << 20,
            keep: 4,
        }
    }
}

/// The record file and whether its end is the start of a line (false after a write was cut
/// short, or when the file was found ending in a fragment).
struct Sink {
    path: PathBuf,
    file: File,
    at_line_start: bool,
    /// The file's length, as far as this writer knows.
    len: u64,
    rotation: Rotation,
}

/// A step of a rotation that failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {path}: {source}")]
struct RotateError {
    step: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

/// `f`'s error as the failed `step` on `path`.
fn step<T>(
    step: &'static str,
    path: &Path,
    f: impl FnOnce() -> std::io::Result<T>,
) -> Result<T, RotateError> {
    f().map_err(|source| RotateError {
        step,
        path: path.to_path_buf(),
        source,
    })
}

impl Sink {
    /// Opens `path` for appending (created if missing).
    fn open(path: &Path, rotation: Rotation) -> std::io::Result<Sink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Sink {
            path: path.to_path_buf(),
            len: file.metadata()?.len(),
            at_line_start: ends_at_line_start(path)?,
            file,
            rotation,
        })
    }

    /// Appends one line and flushes it to the disk, rotating the file first if the line would
    /// take it past the limit (a rotation that fails is logged; the line goes to this file).
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        let needed = line.len() as u64 + 1 + u64::from(!self.at_line_start);
        if self.len > 0
            && self.len.saturating_add(needed) > self.rotation.max_bytes
            && let Err(e) = self.rotate()
        {
            tracing::error!(error = %e, "cannot rotate the decision records; appending to the current file");
        }
        match append_line(&mut self.file, &mut self.at_line_start, line) {
            Ok(written) => self.len += written as u64,
            Err(e) => {
                self.len = self.file.metadata().map_or(self.len, |m| m.len());
                return Err(e);
            }
        }
        self.file.sync_data()
    }

    /// Moves the file to `.1` (and each rotated file one up, deleting those that would pass
    /// `keep`), starts a new file, and syncs the folder so that the new name is on the disk
    /// before a record is.
    fn rotate(&mut self) -> Result<(), RotateError> {
        let path = self.path.clone();
        let dir = folder(&path);
        for (n, old) in step("list", dir, || rotated(&path))? {
            if n >= self.rotation.keep {
                step("delete", &old, || std::fs::remove_file(&old))?;
            } else {
                step("rename", &old, || {
                    std::fs::rename(&old, numbered(&path, n + 1))
                })?;
            }
        }
        // Missing when a rotation failed after this rename: the records are in `.1` already.
        step("rename", &path, || {
            match std::fs::rename(&path, numbered(&path, 1)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                renamed => renamed,
            }
        })?;
        let rotation = self.rotation;
        *self = step("create", &path, || Sink::open(&path, rotation))?;
        step("sync", dir, || File::open(dir)?.sync_all())
    }
}

/// The folder holding `path`.
fn folder(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `path` rotated `n` times: `<path>.<n>`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The rotated files of `path` that exist (`<path>.<n>`, n from 1, as the writer names them),
/// oldest (highest n) first.
fn rotated(path: &Path) -> std::io::Result<Vec<(u32, PathBuf)>> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder(path))? {
        let entry = entry?;
        let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|f| rotation_of(name, f))
        else {
            continue;
        };
        found.push((n, numbered(path, n)));
    }
    found.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    Ok(found)
}

/// `n` when `file` is `<name>.<n>`, written as the writer writes it (no sign, no leading zero).
fn rotation_of(name: &str, file: &str) -> Option<u32> {
    let digits = file.strip_prefix(name)?.strip_prefix('.')?;
    let n: u32 = digits.parse().ok()?;
    (n >= 1 && n.to_string() == digits).then_some(n)
}

/// Writes `line` and a newline in one write (lines from one process never interleave in
/// append mode), first ending the fragment a cut-short write left, if any; the bytes written.
fn append_line(
    w: &mut impl Write,
    at_line_start: &mut bool,
    line: &[u8],
) -> std::io::Result<usize> {
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
    Ok(buf.len())
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

/// The decision-record file (or its folder) cannot be created or opened for appending.
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

    /// Records to the log and appends to `path` (created with its folder if missing), rotated
    /// as `rotation` says.
    pub fn open(path: &Path, rotation: Rotation) -> Result<Recorder, OpenError> {
        let err = |source| OpenError {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(folder(path)).map_err(err)?;
        let sink = Sink::open(path, rotation).map_err(err)?;
        Ok(Recorder {
            file: Some(Mutex::new(sink)),
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
        tracing::info!(target: "rollout_guard::records", record = %line);
        if let Some(file) = &self.file {
            let mut sink = file.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = sink.append(line.as_bytes()) {
                tracing::error!(path = %sink.path.display(), error = %e, "cannot append a decision record");
            }
        }
    }
}

/// A line of a record file that is not a record of this schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The file's name (see [`file_name`]).
    pub file: String,
    /// The line's number in that file, from 1.
    pub line: usize,
}

/// A file's name without its folder, for messages (the whole path when it has no name).
pub fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    )
}

/// Reads a record file with its rotated files (`<path>.<n>` … `<path>.1`, then `path`: the
/// oldest first, so the records come in the order they were written): the records and the
/// lines that are not records of this schema (see [`parse`]). A rotated file named as `path`
/// is read alone (it has no rotated files of its own). A rotation while this reads may leave a
/// file out or read one twice: read again.
pub fn load(path: &Path) -> std::io::Result<(Vec<Record>, Vec<Unreadable>)> {
    let rotated = match rotated(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        found => found.unwrap_or_default(),
    };
    let mut reading = Reading::default();
    let mut unreadable = Vec::new();
    for (_, file) in &rotated {
        unreadable.extend(reading.file(file)?);
    }
    match reading.file(path) {
        // Between a rotation's rename and the new file: the records are all in the rotated ones.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !rotated.is_empty() => {}
        lines => unreadable.extend(lines?),
    }
    Ok((reading.records, unreadable))
}

/// Reads records from `reader` (stdin, an HTTP body), named `name` in the unreadable lines.
pub fn load_from(
    reader: impl BufRead,
    name: &str,
) -> std::io::Result<(Vec<Record>, Vec<Unreadable>)> {
    let mut reading = Reading::default();
    let unreadable = reading
        .lines(reader)?
        .into_iter()
        .map(|line| Unreadable {
            file: name.to_string(),
            line,
        })
        .collect();
    Ok((reading.records, unreadable))
}

/// Which records a reader wants: every field it sets must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only records of Deployments in this namespace.
    pub namespace: Option<String>,
    /// Only records of Deployments of this name.
    pub deployment: Option<String>,
    /// The new ReplicaSet's revision.
    pub revision: Option<u64>,
}

impl Filter {
    /// Whether `r` matches every field set.
    pub fn matches(&self, r: &Record) -> bool {
        self.namespace.as_ref().is_none_or(|n| *n == r.namespace)
            && self.deployment.as_ref().is_none_or(|d| *d == r.deployment)
            && self.revision.is_none_or(|v| r.revision == Some(v))
    }
}

/// The records of the file at `path` (with its rotated files) that `filter` wants, as JSON
/// lines, oldest first.
pub fn json_lines(path: &Path, filter: &Filter) -> std::io::Result<String> {
    let (records, _) = load(path)?;
    let mut out = String::new();
    for r in records.iter().filter(|r| filter.matches(r)) {
        out.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
        out.push('\n');
    }
    Ok(out)
}

/// Reads a record file with its rotated files, skipping (and counting) lines that are not
/// records of this schema.
pub fn read(path: &Path) -> std::io::Result<(Vec<Record>, usize)> {
    load(path).map(|(records, unreadable)| (records, unreadable.len()))
}

/// The records in a record file's bytes, and the numbers (from 1) of the non-blank lines that
/// are not records of this schema (a line cut short by a crash, even inside a character; bytes
/// that are not UTF-8; another schema version).
pub fn parse(bytes: impl AsRef<[u8]>) -> (Vec<Record>, Vec<usize>) {
    let mut reading = Reading::default();
    let unreadable = reading
        .lines(bytes.as_ref())
        .expect("reading from memory cannot fail");
    (reading.records, unreadable)
}

/// The records read so far, from one or more files. The query texts, the same at every
/// evaluation of a revision and most of a record's bytes, are kept once.
#[derive(Default)]
struct Reading {
    records: Vec<Record>,
    texts: HashSet<Arc<str>>,
}

impl Reading {
    /// Reads the file at `path`; its unreadable lines.
    fn file(&mut self, path: &Path) -> std::io::Result<Vec<Unreadable>> {
        let lines = self.lines(BufReader::new(File::open(path)?))?;
        let file = file_name(path);
        Ok(lines
            .into_iter()
            .map(|line| Unreadable {
                file: file.clone(),
                line,
            })
            .collect())
    }

    /// [`parse`] over a reader, one line at a time: adds its records, returns the numbers of
    /// its unreadable lines.
    fn lines(&mut self, mut reader: impl BufRead) -> std::io::Result<Vec<usize>> {
        let mut unreadable = Vec::new();
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
                    share_queries(&mut r, &mut self.texts);
                    self.records.push(r);
                }
                _ => unreadable.push(number),
            }
        }
        Ok(unreadable)
    }
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
mod tests;
