use super::*;
use crate::adapters::podlogs::LogLimits;

fn key(pod: &str) -> PodKey {
    ("shop".into(), pod.into(), "php".into())
}

fn at(minute: i64) -> Timestamp {
    Timestamp::from_second(minute * 60).unwrap()
}

/// A gone pod read to minute 200, with an error of signature 1 in each of `minutes` minutes
/// before (signatures 0 and 2 unused), its example `example`, and minute 195 lost.
fn pod(minutes: i64, example: &str) -> PodState {
    let mut s = PodState {
        gone: true,
        restarts: 2,
        cursor: Some(at(199)),
        started: Some(at(0)),
        read_to: Some(at(200)),
        signatures: vec![
            (ErrorKind::Warning, "unused".into(), "w".into()),
            (
                ErrorKind::ClassNotFound,
                "Class \"App\\Foo\" not found".into(),
                example.into(),
            ),
            (ErrorKind::Notice, "unused too".into(), "n".into()),
        ],
        ..PodState::default()
    };
    for m in 200 - minutes..200 {
        s.minutes.entry(m).or_default().insert(1, 2);
    }
    s.lost.insert(195);
    s
}

fn logs() -> KubeLogs {
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    KubeLogs::new(
        kube::Client::try_from(config).unwrap(),
        LogLimits::default(),
    )
}

fn rs(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn a_pod_is_kept_whole_without_its_example_lines() {
    let kept = KeptPod::of(&key("web-abc-1"), &pod(150, "x"), at(200));
    assert_eq!(kept.minutes.len(), 150);
    assert_eq!(kept.lost, vec![195]);
    // Only the signature counted, indexed anew, without its example line.
    assert_eq!(
        kept.signatures,
        vec![(
            ErrorKind::ClassNotFound,
            "Class \"App\\Foo\" not found".into()
        )]
    );
    assert_eq!(kept.minutes[0].1, vec![(0, 2)]);

    let back = kept.state(at(200));
    assert!(back.gone);
    assert_eq!(
        (back.read_to, back.cursor, back.restarts, back.started),
        (Some(at(200)), Some(at(199)), 2, Some(at(0)))
    );
    let counts = back.counts_in(0, 200);
    assert_eq!(counts.errors.len(), 1);
    assert_eq!(counts.errors[0].count, 2 * 150);
    assert_eq!(counts.errors[0].example, "");
    assert!(
        counts.truncated,
        "a window over the lost minute is incomplete"
    );
    assert!(!back.counts_in(100, 149).truncated);
}

#[test]
fn no_log_line_is_kept() {
    let secret = "PHP Fatal error: Uncaught Exception: token=hunter2 in /app/src/Foo.php:12";
    let text =
        serde_json::to_string(&KeptPod::of(&key("web-abc-1"), &pod(3, secret), at(200))).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn minutes_no_window_can_reach_are_not_taken_back() {
    // Taken back a day after the last read: only what the longest window reaches is left.
    let kept = KeptPod::of(&key("web-abc-1"), &pod(100, "x"), at(200));
    let now = at(200 + 24 * 60 - 20);
    let back = kept.state(now);
    let oldest = minute(horizon(now));
    assert_eq!(back.minutes.len(), 20);
    assert!(back.minutes.keys().all(|m| *m >= oldest), "{oldest}");
    assert!(back.lost.iter().all(|m| *m >= oldest));
}

#[test]
fn a_count_out_of_range_or_of_no_signature_is_refused() {
    let prefixes = prefixes(&rs(&["web-abc"]));
    let fits = KeptPod::of(&key("web-abc-1"), &pod(3, "x"), at(200));
    assert_eq!(fits.refused("shop", &prefixes, at(200), 100), None);
    let mut no_signature = KeptPod::of(&key("web-abc-1"), &pod(3, "x"), at(200));
    no_signature.minutes[1].1.push((7, 1));
    assert!(
        no_signature
            .refused("shop", &prefixes, at(200), 100)
            .is_some()
    );
    let mut huge = KeptPod::of(&key("web-abc-1"), &pod(3, "x"), at(200));
    huge.minutes[1].1[0].1 = u64::MAX;
    assert!(huge.refused("shop", &prefixes, at(200), 100).is_some());
}

#[tokio::test]
async fn many_pods_are_kept_within_the_limit_the_latest_read_first() {
    let logs = logs();
    {
        let mut pods = logs.pods.lock().unwrap();
        for i in 0..2000 {
            let mut s = pod(120, "x");
            s.read_to = Some(at(i));
            pods.insert(key(&format!("web-abc-{i}")), s);
        }
        // Another ReplicaSet's pod (the release's own), and one of this one still serving.
        pods.insert(key("web-def-1"), pod(1, "x"));
        let mut serving = pod(1, "x");
        serving.gone = false;
        serving.read_to = Some(at(5000));
        pods.insert(key("web-abc-serving"), serving);
    }
    let text = logs.keep("shop", &rs(&["web-abc"])).unwrap();
    assert!(text.len() <= KEPT_LIMIT, "{}", text.len());
    let kept: Kept = serde_json::from_str(&text).unwrap();
    assert!(
        kept.pods.len() > 1 && kept.pods.len() < 2000,
        "{}",
        kept.pods.len()
    );
    // The gone pods first, which nothing can read again, the latest read first; the one still
    // serving (read last of all) after them, where room is left (a new process can read it
    // again).
    assert_eq!(kept.pods[0].pod, "web-abc-1999");
    let serving = kept.pods.iter().position(|p| !p.gone);
    assert!(
        serving.is_none_or(|i| i == kept.pods.len() - 1),
        "{serving:?}"
    );
    let gone = &kept.pods[..serving.unwrap_or(kept.pods.len())];
    assert!(gone.windows(2).all(|w| w[0].read_to >= w[1].read_to));
    assert!(kept.pods.iter().all(|p| p.pod.starts_with("web-abc-")));
    assert_eq!(logs.keep("shop", &rs(&["web-xyz"])), None);
    assert_eq!(logs.keep("other", &rs(&["web-abc"])), None);
}

#[tokio::test]
async fn what_is_taken_back_is_checked() {
    let source = logs();
    source
        .pods
        .lock()
        .unwrap()
        .insert(key("web-abc-1"), pod(10, "x"));
    let text = source.keep("shop", &rs(&["web-abc"])).unwrap();

    let fresh = logs();
    // Another namespace, a ReplicaSet that is not an old one of this Deployment, a text read
    // in the future, a text that is not one.
    for (ns, of, now) in [
        ("other", "web-abc", at(200)),
        ("shop", "web-def", at(200)),
        ("shop", "web-abc", at(150)),
    ] {
        let refused = fresh.take_back(ns, &rs(&[of]), &text, now);
        assert!(refused.is_err(), "{ns} {of}: {refused:?}");
    }
    assert!(
        fresh
            .take_back("shop", &rs(&["web-abc"]), "{", at(200))
            .is_err()
    );
    let other_version = text.replace(r#""version":1"#, r#""version":2"#);
    assert!(
        fresh
            .take_back("shop", &rs(&["web-abc"]), &other_version, at(200))
            .is_err()
    );
    let unknown = text.replace(r#""version":1"#, r#""version":1,"extra":true"#);
    assert!(
        fresh
            .take_back("shop", &rs(&["web-abc"]), &unknown, at(200))
            .is_err()
    );
    assert_eq!(fresh.pods_tracked(), 0);

    assert_eq!(
        fresh.take_back("shop", &rs(&["web-abc"]), &text, at(201)),
        Ok(1)
    );
    // Known now: taken back once.
    assert_eq!(
        fresh.take_back("shop", &rs(&["web-abc"]), &text, at(201)),
        Ok(0)
    );
    let back = fresh.pods.lock().unwrap()[&key("web-abc-1")].counts_in(0, 300);
    assert_eq!(back.errors[0].count, 20);
}

#[tokio::test]
async fn more_signatures_than_are_counted_are_refused() {
    let source = logs();
    let mut many = pod(1, "x");
    for i in 0..200 {
        many.signatures
            .push((ErrorKind::Warning, format!("w{i}"), String::new()));
        many.minutes.entry(199).or_default().insert(3 + i, 1);
    }
    source.pods.lock().unwrap().insert(key("web-abc-1"), many);
    let text = source.keep("shop", &rs(&["web-abc"])).unwrap();
    let fresh = logs();
    let refused = fresh.take_back("shop", &rs(&["web-abc"]), &text, at(200));
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(fresh.pods_tracked(), 0);
}

#[tokio::test]
async fn one_pod_that_does_not_fit_refuses_the_whole_text() {
    // A pod of the release's own ReplicaSet slipped in beside a true old pod: nothing is
    // taken, the true one neither.
    let source = logs();
    {
        let mut pods = source.pods.lock().unwrap();
        pods.insert(key("web-abc-1"), pod(10, "x"));
        pods.insert(key("web-new-1"), pod(10, "x"));
    }
    let text = source.keep("shop", &rs(&["web-abc", "web-new"])).unwrap();
    let fresh = logs();
    let refused = fresh.take_back("shop", &rs(&["web-abc"]), &text, at(200));
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("web-new-1")),
        "{refused:?}"
    );
    assert_eq!(fresh.pods_tracked(), 0);
}

#[tokio::test]
async fn which_pods_are_left_out_does_not_depend_on_what_they_printed() {
    // The pod read second to last printed more than the text may hold: it, and every pod read
    // before it, are left out, however little those printed.
    let logs = logs();
    {
        let mut pods = logs.pods.lock().unwrap();
        let mut noisy = pod(1, "x");
        for i in 0..100 {
            noisy.signatures.push((
                ErrorKind::Warning,
                format!("{i:04}{}", "w".repeat(MAX_SIGNATURE - 8)),
                String::new(),
            ));
            for m in 0..120 {
                noisy.minutes.entry(m).or_default().insert(3 + i, 1);
            }
        }
        noisy.read_to = Some(at(300));
        let mut latest = pod(1, "x");
        latest.read_to = Some(at(400));
        pods.insert(key("web-abc-latest"), latest);
        pods.insert(key("web-abc-noisy"), noisy);
        pods.insert(key("web-abc-quiet"), pod(1, "x"));
    }
    let text = logs.keep("shop", &rs(&["web-abc"])).unwrap();
    let kept: Kept = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = kept.pods.iter().map(|p| p.pod.as_str()).collect();
    assert_eq!(names, ["web-abc-latest"]);
}
