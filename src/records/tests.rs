use super::*;
use crate::policy::guard::EventReason;

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
        stage: Some(StageName::Analysing),
        verdicts: Vec::new(),
        verdicts_of: None,
        decision: None,
        acts: vec![Act::Pause],
        suppressed: Vec::new(),
        notes: Vec::new(),
        result: (kind == Kind::Action).then_some(WriteResult::Ok),
        progress: None,
        images: BTreeMap::new(),
    }
}

#[test]
fn event_reasons_are_written_as_kubernetes_events_name_them() {
    for reason in EventReason::ALL {
        let json = serde_json::to_string(&reason).unwrap();
        assert_eq!(json, format!("\"{}\"", reason.as_str()));
        assert_eq!(serde_json::from_str::<EventReason>(&json).unwrap(), reason);
    }
    let newer: EventReason = serde_json::from_str("\"CanaryWeighed\"").unwrap();
    assert_eq!(newer, EventReason::Unknown);
}

#[test]
fn stages_and_write_results_read_and_write_as_the_schema_says() {
    let mut r = record(Kind::Action);
    r.stage = Some(StageName::RolledBack);
    let line = serde_json::to_string(&r).unwrap();
    assert!(line.contains(r#""stage":"rolled_back""#), "{line}");
    assert!(line.contains(r#""result":"ok""#), "{line}");
    // A newer version's stage is read, not refused; a write's error is its text.
    let newer = line
        .replace(r#""stage":"rolled_back""#, r#""stage":"canary_weighing""#)
        .replace(
            r#""result":"ok""#,
            r#""result":"conflict: the Deployment changed""#,
        );
    let back: Record = serde_json::from_str(&newer).unwrap();
    assert_eq!(back.stage, Some(StageName::Unknown));
    assert_eq!(
        back.result,
        Some(WriteResult::Failed(
            "conflict: the Deployment changed".into()
        ))
    );
    assert!(!back.result.unwrap().is_ok());
}

#[test]
fn records_append_as_lines_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/records.jsonl");
    let r = Recorder::open(&path, Rotation::default()).unwrap();
    r.write(&record(Kind::Evaluation));
    r.write(&record(Kind::Action));
    drop(r);
    // Reopening appends, never truncates.
    let r = Recorder::open(&path, Rotation::default()).unwrap();
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

/// The line numbers of `unreadable`, all of which must be in `file`.
fn lines_of(unreadable: &[Unreadable], file: &str) -> Vec<usize> {
    assert!(unreadable.iter().all(|u| u.file == file), "{unreadable:?}");
    unreadable.iter().map(|u| u.line).collect()
}

#[test]
fn a_query_text_repeated_at_every_evaluation_is_kept_once() {
    use crate::analysis::judge::{Outcome, QueryName, QuerySide, SentQuery, Verdict};
    let mut r = record(Kind::Evaluation);
    r.verdicts = vec![Verdict {
        rule: "x".into(),
        outcome: Outcome::Pass,
        action: crate::analysis::rules::Action::Warn,
        reason: "r".into(),
        evidence: None,
        queries: vec![SentQuery {
            side: QuerySide::New,
            name: QueryName::Query,
            promql: "sum by (pod) (rate(x[1m]))".into(),
        }],
        error: None,
        error_kind: None,
        building: false,
        settles_in: None,
        warn_only: false,
        consecutive: 1,
        valid_over_looks: false,
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
    r.result = Some(WriteResult::Failed("ratio ≥ ×2 → rollback".into()));
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
    assert_eq!(lines_of(&unreadable, "records.jsonl"), vec![2, 3]);
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
    Recorder::open(&path, Rotation::default())
        .unwrap()
        .write(&record(Kind::Action));
    let (records, unreadable) = load(&path).unwrap();
    assert_eq!(
        records,
        vec![record(Kind::Evaluation), record(Kind::Action)]
    );
    assert_eq!(lines_of(&unreadable, "records.jsonl"), vec![2]);
}

#[test]
fn an_unwritable_path_is_a_clear_error() {
    let e = Recorder::open(
        Path::new("/proc/no/such/records.jsonl"),
        Rotation::default(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("/proc/no/such/records.jsonl"), "{e}");
}

/// The `n`th record of a sequence, told apart by its revision.
fn nth(n: u64) -> Record {
    Record {
        revision: Some(n),
        ..record(Kind::Evaluation)
    }
}

/// The revisions of the records in `path` alone, and whether it ends at a line's end.
fn revisions_in(path: &Path) -> (Vec<u64>, bool) {
    let bytes = std::fs::read(path).unwrap();
    let (records, unreadable) = parse(&bytes);
    assert!(unreadable.is_empty(), "{}: {unreadable:?}", path.display());
    let revisions = records.iter().filter_map(|r| r.revision).collect();
    (revisions, bytes.last() == Some(&b'\n'))
}

/// The records of the rotated set, oldest first.
fn revisions(path: &Path) -> Vec<u64> {
    let (records, unreadable) = load(path).unwrap();
    assert!(unreadable.is_empty(), "{unreadable:?}");
    records.iter().filter_map(|r| r.revision).collect()
}

/// Issue 14: a record that fits exactly is appended; one byte more and the file is rotated
/// first; a writer opened again on a full file rotates at its first record.
#[test]
fn the_file_is_rotated_before_a_record_would_pass_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let size = line_of(&nth(1)).len() as u64;
    let exact = Rotation {
        max_bytes: 2 * size,
        keep: 4,
    };
    let r = Recorder::open(&path, exact).unwrap();
    r.write(&nth(1));
    r.write(&nth(2));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * size);
    assert!(!numbered(&path, 1).exists(), "two records fit exactly");
    r.write(&nth(3));
    assert_eq!(revisions_in(&numbered(&path, 1)), (vec![1, 2], true));
    assert_eq!(revisions_in(&path), (vec![3], true));
    drop(r);

    let one_byte_short = Rotation {
        max_bytes: 2 * size - 1,
        ..exact
    };
    let r = Recorder::open(&path, one_byte_short).unwrap();
    r.write(&nth(4));
    assert_eq!(revisions_in(&path), (vec![4], true));
    assert_eq!(revisions_in(&numbered(&path, 1)), (vec![3], true));
    assert_eq!(revisions_in(&numbered(&path, 2)), (vec![1, 2], true));
    assert_eq!(revisions(&path), [1, 2, 3, 4]);
}

/// Issue 14: `keep` rotated files are kept; the oldest beyond them are deleted, those left
/// by a larger `keep` before too.
#[test]
fn rotation_keeps_keep_files_and_drops_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    std::fs::write(numbered(&path, 7), line_of(&nth(0))).unwrap();
    let one_each = Rotation {
        max_bytes: line_of(&nth(1)).len() as u64,
        keep: 2,
    };
    let r = Recorder::open(&path, one_each).unwrap();
    for n in 1..=5 {
        r.write(&nth(n));
    }
    assert_eq!(revisions_in(&path).0, [5]);
    assert_eq!(revisions_in(&numbered(&path, 1)).0, [4]);
    assert_eq!(revisions_in(&numbered(&path, 2)).0, [3]);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["records.jsonl", "records.jsonl.1", "records.jsonl.2"]
    );
    assert_eq!(revisions(&path), [3, 4, 5]);
}

/// Issue 14: across many rotations of records of different lengths, every record is in
/// exactly one file, whole, in order; a record longer than `max_bytes` gets a file alone.
#[test]
fn no_record_is_split_or_lost_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let rotation = Rotation {
        max_bytes: 3_000,
        keep: 100,
    };
    let r = Recorder::open(&path, rotation).unwrap();
    let long = |n: u64| Record {
        result: Some(WriteResult::Failed("x".repeat((n as usize * 97) % 4_000))),
        ..nth(n)
    };
    for n in 1..=90 {
        r.write(&long(n));
    }
    assert_eq!(revisions(&path), (1..=90).collect::<Vec<_>>());
    let mut files: Vec<PathBuf> = rotated(&path)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    files.push(path.clone());
    assert!((30..=91).contains(&files.len()), "{} files", files.len());
    for f in &files {
        let (revisions, whole) = revisions_in(f);
        let len = std::fs::metadata(f).unwrap().len();
        assert!(whole, "{}", f.display());
        assert!(
            len <= rotation.max_bytes || revisions.len() == 1,
            "{}: {len} bytes, {revisions:?}",
            f.display()
        );
    }
}

/// Issue 14: the reader reads the rotated files oldest first; a rotated file named alone is
/// read alone; names the writer does not write are not rotated files.
#[test]
fn the_reader_reads_a_rotated_set_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    for (n, name) in [
        (1, "records.jsonl.10"),
        (2, "records.jsonl.2"),
        (3, "records.jsonl.1"),
        (4, "records.jsonl"),
        (90, "records.jsonl.01"),
        (91, "records.jsonl.x"),
        (92, "records.jsonl.0"),
        (93, "records.jsonl.1.bak"),
        (94, "other.jsonl.3"),
    ] {
        std::fs::write(dir.path().join(name), line_of(&nth(n))).unwrap();
    }
    assert_eq!(revisions(&path), [1, 2, 3, 4]);
    assert_eq!(revisions(&numbered(&path, 2)), [2]);
    // The file itself gone (a rotation's rename, before the new file): the rotated ones.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(revisions(&path), [1, 2, 3]);
    let missing = dir.path().join("none.jsonl");
    assert_eq!(
        load(&missing).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
}

/// Issue 14: a damaged line in a rotated file is skipped and counted, with the file named.
#[test]
fn a_damaged_line_in_a_rotated_file_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let whole = line_of(&nth(1));
    std::fs::write(
        numbered(&path, 1),
        [&whole[..], &whole[..30], b"\n", &line_of(&nth(2))[..]].concat(),
    )
    .unwrap();
    std::fs::write(
        &path,
        [&line_of(&nth(3))[..], b"{\"schema\":99}\n"].concat(),
    )
    .unwrap();
    let (records, unreadable) = load(&path).unwrap();
    let revisions: Vec<u64> = records.iter().filter_map(|r| r.revision).collect();
    assert_eq!(revisions, [1, 2, 3]);
    let at = |file: &str, line| Unreadable {
        file: file.into(),
        line,
    };
    assert_eq!(
        unreadable,
        [at("records.jsonl.1", 2), at("records.jsonl", 2)]
    );
    assert_eq!(read(&path).unwrap().1, 2);
}

/// Issue 14: a rotation that fails (here a folder in the way of the oldest file) is logged,
/// and the record goes to the current file.
#[test]
fn a_failed_rotation_keeps_the_record_in_the_current_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    std::fs::create_dir(numbered(&path, 1)).unwrap();
    let rotation = Rotation {
        max_bytes: 1,
        keep: 1,
    };
    let r = Recorder::open(&path, rotation).unwrap();
    r.write(&nth(1));
    r.write(&nth(2));
    assert_eq!(revisions_in(&path), (vec![1, 2], true));
    std::fs::remove_dir(numbered(&path, 1)).unwrap();
    r.write(&nth(3));
    assert_eq!(revisions_in(&numbered(&path, 1)).0, [1, 2]);
    assert_eq!(revisions(&path), [1, 2, 3]);
}
