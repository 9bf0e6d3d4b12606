use std::sync::Mutex;

use axum::http::StatusCode;

use super::*;

fn notice(kind: NoticeKind, reason: EventReason) -> Notice {
    Notice {
        kind,
        reason,
        namespace: "shop".into(),
        deployment: "billing".into(),
        revision: Some(3),
        at: Timestamp::from_second(1_800_000_000).unwrap(),
        message: "rolled back to revision 2: class-loading-errors failed (new 1.2% vs old 0%)"
            .into(),
    }
}

#[test]
fn only_the_events_people_act_on_make_notices() {
    assert_eq!(
        NoticeKind::of(EventReason::RolledBack),
        Some(NoticeKind::RolledBack)
    );
    assert_eq!(
        NoticeKind::of(EventReason::GateInconclusive),
        Some(NoticeKind::Inconclusive)
    );
    assert_eq!(NoticeKind::of(EventReason::AnalysisStarted), None);
    assert_eq!(NoticeKind::of(EventReason::GateResumed), None);
    // Every kind is made by some reason.
    for kind in NoticeKind::ALL {
        assert!(
            EventReason::ALL
                .iter()
                .any(|r| NoticeKind::of(*r) == Some(kind)),
            "{kind:?}"
        );
    }
}

#[test]
fn bodies_say_what_happened_where_and_how_to_read_the_report() {
    let n = notice(NoticeKind::RolledBack, EventReason::RolledBack);
    let records = Path::new("/var/lib/rollout-guard/records.jsonl");
    let json = n.body(Format::Json, Some(records));
    assert_eq!(json["kind"], "rolled_back");
    assert_eq!(json["reason"], "RolledBack");
    assert_eq!(json["namespace"], "shop");
    assert_eq!(json["deployment"], "billing");
    assert_eq!(json["revision"], 3);
    assert_eq!(json["at"], "2027-01-15T08:00:00Z");
    assert_eq!(
        json["report"],
        "rollout-guard report --records /var/lib/rollout-guard/records.jsonl --namespace shop --deployment billing --revision 3"
    );
    assert!(
        json["summary"]
            .as_str()
            .unwrap()
            .starts_with("shop/billing revision 3 rolled back: rolled back to revision 2")
    );
    let slack = n.body(Format::Slack, None);
    assert_eq!(slack.as_object().unwrap().len(), 1);
    assert_eq!(slack["text"], n.summary());
}

#[test]
fn settings_out_of_range_are_named() {
    let c = NotifyConfig {
        attempts: 0,
        queue: 0,
        webhooks: vec![
            Webhook {
                name: "ops".into(),
                url_file: "/x".into(),
                format: Format::Slack,
                on: Vec::new(),
            },
            Webhook {
                name: "ops".into(),
                url_file: "/y".into(),
                format: Format::Json,
                on: all_kinds(),
            },
        ],
        ..NotifyConfig::default()
    };
    let p = c.problems().join("\n");
    for needle in [
        "notify.attempts",
        "notify.queue",
        "webhooks[0].on",
        "webhooks[1].name: \"ops\" is used twice",
    ] {
        assert!(p.contains(needle), "{needle} in {p}");
    }
    assert!(NotifyConfig::default().problems().is_empty());
}

#[tokio::test]
async fn a_missing_or_wrong_url_file_stops_the_start_and_names_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let hook = |file: &Path| NotifyConfig {
        webhooks: vec![Webhook {
            name: "ops".into(),
            url_file: file.to_path_buf(),
            format: Format::Json,
            on: all_kinds(),
        }],
        ..NotifyConfig::default()
    };
    let missing = dir.path().join("missing");
    let e = Notifier::start(&hook(&missing)).err().unwrap().to_string();
    assert!(e.contains("ops") && e.contains("cannot read"), "{e}");
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "file:///etc/passwd\n").unwrap();
    let e = Notifier::start(&hook(&wrong)).err().unwrap().to_string();
    assert!(e.contains("does not hold an http(s) URL"), "{e}");
    assert!(!e.contains("passwd"), "the URL is never said: {e}");
}

/// A receiver on a free loopback port that answers with `statuses` in turn (200 after them)
/// and keeps every body it was posted.
async fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let answers = Arc::new(Mutex::new(statuses.into_iter()));
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            let answers = answers.clone();
            async move {
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                let status = answers.lock().unwrap().next().unwrap_or(200);
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got)
}

/// A notifier posting to `url` as `format`, for `on`.
fn notifier(dir: &Path, url: &str, format: Format, on: Vec<NoticeKind>) -> Notifier {
    let file = dir.join("url");
    std::fs::write(&file, format!("{url}\n")).unwrap();
    Notifier::start(&NotifyConfig {
        webhooks: vec![Webhook {
            name: "ops".into(),
            url_file: file,
            format,
            on,
        }],
        records: Some("/records.jsonl".into()),
        ..NotifyConfig::default()
    })
    .unwrap()
}

/// Waits (a bound against hanging, not a measurement) until `got` holds `n` bodies.
async fn until_received(got: &Arc<Mutex<Vec<Value>>>, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got.lock().unwrap().clone()
}

#[tokio::test]
async fn a_notice_is_posted_again_after_a_server_error_and_not_after_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let (url, got) = receiver(vec![503]).await;
    let n = notifier(dir.path(), &url, Format::Json, all_kinds());
    n.notify(&notice(NoticeKind::RolledBack, EventReason::RolledBack));
    let bodies = until_received(&got, 2).await;
    assert_eq!(bodies.len(), 2, "posted once more after the 503");
    assert_eq!(bodies[1]["kind"], "rolled_back");
    assert_eq!(
        bodies[1]["report"],
        "rollout-guard report --records /records.jsonl --namespace shop --deployment billing --revision 3"
    );

    let (url, got) = receiver(vec![400]).await;
    let n = notifier(dir.path(), &url, Format::Slack, all_kinds());
    n.notify(&notice(NoticeKind::Held, EventReason::KnownBadRevision));
    n.notify(&notice(NoticeKind::Passed, EventReason::AnalysisPassed));
    // The refused notice is not posted again: the next body is the next notice.
    let bodies = until_received(&got, 2).await;
    assert_eq!(bodies.len(), 2);
    assert!(bodies[0]["text"].as_str().unwrap().contains("held paused"));
    assert!(
        bodies[1]["text"]
            .as_str()
            .unwrap()
            .contains("passed its analysis")
    );
}

#[tokio::test]
async fn a_webhook_gets_only_the_kinds_it_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let (url, got) = receiver(Vec::new()).await;
    let n = notifier(dir.path(), &url, Format::Json, vec![NoticeKind::RolledBack]);
    n.notify(&notice(NoticeKind::Passed, EventReason::AnalysisPassed));
    n.notify(&notice(NoticeKind::RolledBack, EventReason::RolledBack));
    let bodies = until_received(&got, 1).await;
    // Delivery is in order: had the pass been posted, it would have come first.
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["kind"], "rolled_back");
}
