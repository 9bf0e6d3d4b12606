//! Watches: raw watch streams, and kube's watcher and reflector on top of them.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use rollout_guard::sim::fakeapi::{FakeApiServer, FakeOptions};
use serde_json::json;
use tokio::sync::mpsc;

use crate::common::{PATIENCE, api_server, eventually};

fn lease(name: &str, labels: serde_json::Value) -> Lease {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"holderIdentity": "x"}}),
    )
    .unwrap()
}

async fn create(api: &Api<Lease>, name: &str) -> Lease {
    api.create(&PostParams::default(), &lease(name, json!({"app": "web"})))
        .await
        .unwrap()
}

async fn set_holder(api: &Api<Lease>, name: &str, holder: &str) -> Lease {
    let p = Patch::Merge(json!({"spec": {"holderIdentity": holder}}));
    api.patch(name, &PatchParams::default(), &p).await.unwrap()
}

/// The next event of a raw watch (or item of a watcher stream), failing the test after
/// [`PATIENCE`].
async fn next_event<S, T, E>(stream: &mut S) -> T
where
    S: futures::Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Debug,
{
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("a watch event in time")
        .expect("the stream is open")
        .expect("a well-formed event")
}

#[tokio::test]
async fn watcher_and_reflector_follow_changes_across_bookmarks() {
    let server = api_server().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    create(&leases, "a").await;
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(leases.clone(), watcher::Config::default()))
        .applied_objects()
        .boxed();
    let pump = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    assert_eq!(reader.state().len(), 1);

    create(&leases, "b").await;
    set_holder(&leases, "a", "y").await;
    leases.delete("b", &DeleteParams::default()).await.unwrap();
    eventually("the reflector to see a modified and b deleted", || async {
        let state = reader.state();
        let a_done = state.iter().any(|l| {
            l.name_any() == "a" && l.spec.as_ref().unwrap().holder_identity.as_deref() == Some("y")
        });
        (a_done && state.len() == 1).then_some(())
    })
    .await;

    // Let several bookmarks (every 200 ms) pass; the watch must survive them: no new list,
    // and later changes still arrive on the same watch.
    let bookmarks_seen = server
        .requests()
        .counter("watch", "coordination.k8s.io/leases")
        .bytes_sent;
    eventually("bookmarks to be sent", || async {
        (server
            .requests()
            .counter("watch", "coordination.k8s.io/leases")
            .bytes_sent
            > bookmarks_seen + 300)
            .then_some(())
    })
    .await;
    create(&leases, "c").await;
    eventually("the reflector to see c", || async {
        (reader.state().len() == 2).then_some(())
    })
    .await;
    let stats = server.requests();
    assert_eq!(stats.count("list", "coordination.k8s.io/leases"), 1);
    assert_eq!(stats.count("watch", "coordination.k8s.io/leases"), 1);
    pump.abort();
}

#[tokio::test]
async fn raw_watch_replays_history_sends_bookmarks_and_expires() {
    let server = api_server().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    let a = create(&leases, "a").await;
    let from = a.resource_version().unwrap();
    set_holder(&leases, "a", "y").await;
    create(&leases, "b").await;

    // From a's creation: the modification and b's creation are replayed, in order.
    let mut stream = leases
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Modified(l) => {
            assert_eq!(l.spec.unwrap().holder_identity.as_deref(), Some("y"))
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    assert!(matches!(next_event(&mut stream).await, WatchEvent::Added(l) if l.name_any() == "b"));
    // Then, with nothing changing, a bookmark at the current version.
    match next_event(&mut stream).await {
        WatchEvent::Bookmark(b) => assert_eq!(
            b.metadata.resource_version,
            server.resource_version().to_string()
        ),
        other => panic!("expected BOOKMARK, got {other:?}"),
    }
    drop(stream);

    // Without a resourceVersion: the current state first.
    let mut stream = leases
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let mut initial = vec![];
    for _ in 0..2 {
        if let WatchEvent::Added(l) = next_event(&mut stream).await {
            initial.push(l.name_any());
        }
    }
    initial.sort();
    assert_eq!(initial, ["a", "b"]);
    drop(stream);

    // After a compaction the old version is gone: an ERROR event with 410.
    server.compact_history();
    let mut stream = leases
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected ERROR 410, got {other:?}"),
    }
}

#[tokio::test]
async fn filtered_watch_turns_leaving_the_selector_into_deleted() {
    let server = api_server().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    let a = create(&leases, "a").await;
    let wp = WatchParams::default().labels("app=web");
    let mut stream = leases
        .watch(&wp, &a.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    let relabel = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"app": v}}}));
    leases
        .patch("a", &PatchParams::default(), &relabel("api"))
        .await
        .unwrap();
    leases
        .patch("a", &PatchParams::default(), &relabel("web"))
        .await
        .unwrap();
    assert!(matches!(next_event(&mut stream).await, WatchEvent::Deleted(l) if l.name_any() == "a"));
    assert!(matches!(next_event(&mut stream).await, WatchEvent::Added(l) if l.name_any() == "a"));
}

#[tokio::test]
async fn watch_times_out_when_asked() {
    let server = api_server().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    let started = std::time::Instant::now();
    let stream = leases
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap();
    let events: Vec<_> = tokio::time::timeout(PATIENCE, stream.collect())
        .await
        .expect("the watch ends by itself");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "ended after {:?}",
        started.elapsed()
    );
    // Nothing changed, so the stream held only bookmarks (every 200 ms) before it ended.
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| matches!(e, Ok(WatchEvent::Bookmark(_)))),
        "{events:?}"
    );
}

/// Events from a watcher, gathered by a background task.
fn collect(
    client: Client,
    ns: &str,
    config: watcher::Config,
) -> mpsc::UnboundedReceiver<Result<watcher::Event<Lease>, watcher::Error>> {
    let api: Api<Lease> = Api::namespaced(client, ns);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut s = watcher(api, config).boxed();
        while let Some(e) = s.next().await {
            if tx.send(e).is_err() {
                return;
            }
        }
    });
    rx
}

async fn next_watcher_event(
    rx: &mut mpsc::UnboundedReceiver<Result<watcher::Event<Lease>, watcher::Error>>,
) -> Result<watcher::Event<Lease>, watcher::Error> {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("a watcher event in time")
        .expect("the watcher runs")
}

#[tokio::test]
async fn watcher_recovers_from_an_expired_resource_version() {
    // Bookmarks would move the watcher's version past the compaction; keep them rare here.
    let opts = FakeOptions {
        bookmark_interval: Duration::from_secs(3600),
        ..FakeOptions::api_only()
    };
    let server = FakeApiServer::start(opts).await.unwrap();
    let shop: Api<Lease> = Api::namespaced(server.client(), "shop");
    let elsewhere: Api<Lease> = Api::namespaced(server.client(), "elsewhere");
    create(&shop, "a").await;
    let mut rx = collect(server.client(), "shop", watcher::Config::default());
    loop {
        if let watcher::Event::InitDone = next_watcher_event(&mut rx).await.unwrap() {
            break;
        }
    }
    // A write the shop watcher does not see moves the global version on; the history is then
    // compacted and the watch cut, so the watcher resumes from a version that is gone.
    create(&elsewhere, "x").await;
    server.compact_history();
    server.close_watches();
    match next_watcher_event(&mut rx).await {
        Err(watcher::Error::WatchError(status)) => assert_eq!(status.code, 410),
        other => panic!("expected the 410, got {other:?}"),
    }
    // It starts over with a fresh list...
    let mut relisted = Vec::new();
    loop {
        match next_watcher_event(&mut rx).await.unwrap() {
            watcher::Event::InitApply(l) => relisted.push(l.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(relisted, ["a"]);
    // ...and keeps watching.
    create(&shop, "b").await;
    loop {
        if let watcher::Event::Apply(l) = next_watcher_event(&mut rx).await.unwrap() {
            assert_eq!(l.name_any(), "b");
            break;
        }
    }
    assert_eq!(
        server
            .requests()
            .count("list", "coordination.k8s.io/leases"),
        2
    );
}

#[tokio::test]
async fn streaming_list_watcher_starts_from_initial_events() {
    let server = api_server().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    create(&leases, "a").await;
    create(&leases, "b").await;
    let mut rx = collect(
        server.client(),
        "default",
        watcher::Config::default().streaming_lists(),
    );
    let mut initial = Vec::new();
    loop {
        match next_watcher_event(&mut rx).await.unwrap() {
            watcher::Event::InitApply(l) => initial.push(l.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    initial.sort();
    assert_eq!(initial, ["a", "b"]);
    create(&leases, "c").await;
    loop {
        if let watcher::Event::Apply(l) = next_watcher_event(&mut rx).await.unwrap() {
            assert_eq!(l.name_any(), "c");
            break;
        }
    }
    let stats = server.requests();
    assert_eq!(
        stats.count("list", "coordination.k8s.io/leases"),
        0,
        "no list: the watch sent the state"
    );
    assert!(
        stats
            .log
            .iter()
            .any(|r| r.uri.contains("sendInitialEvents=true"))
    );
}

#[tokio::test]
async fn shutdown_ends_open_watches_promptly() {
    let server = api_server().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    create(&leases, "a").await;
    let stream = leases.watch(&WatchParams::default(), "0").await.unwrap();
    let started = std::time::Instant::now();
    server.shutdown().await;
    // Graceful: the watch ends by itself, well before the five-second abort.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown took {:?}",
        started.elapsed()
    );
    let events: Vec<_> = tokio::time::timeout(PATIENCE, stream.collect())
        .await
        .expect("the watch ends with the server");
    assert!(
        matches!(events.first(), Some(Ok(WatchEvent::Added(l))) if l.name_any() == "a"),
        "{events:?}"
    );
}

#[tokio::test]
async fn metadata_only_reads_carry_no_spec() {
    let server = api_server().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    create(&leases, "a").await;
    let meta: Api<PartialObjectMeta<Lease>> = Api::default_namespaced(server.client());
    let kind = |m: &PartialObjectMeta<Lease>| m.types.as_ref().map(|t| t.kind.clone());
    let got = meta.get("a").await.unwrap();
    assert_eq!(kind(&got).as_deref(), Some("PartialObjectMetadata"));
    let list = meta.list(&Default::default()).await.unwrap();
    assert_eq!(
        list.types.kind, "PartialObjectMetadataList",
        "the list is of metadata"
    );
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        kind(&list.items[0]).as_deref(),
        Some("PartialObjectMetadata")
    );
    // A watch sends metadata too: the labels arrive, the spec does not.
    let mut stream = watcher(meta, watcher::Config::default())
        .applied_objects()
        .boxed();
    let first: PartialObjectMeta<Lease> = next_event(&mut stream).await;
    assert_eq!(kind(&first).as_deref(), Some("PartialObjectMetadata"));
    assert_eq!(first.labels().get("app").map(String::as_str), Some("web"));
    set_holder(&leases, "a", "z").await;
    let second: PartialObjectMeta<Lease> = next_event(&mut stream).await;
    assert_eq!(kind(&second).as_deref(), Some("PartialObjectMetadata"));
    // On the wire: the metadata, not the spec.
    let client = server.client();
    let request =
        axum::http::Request::get("/apis/coordination.k8s.io/v1/namespaces/default/leases/a")
            .header(
                "Accept",
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            )
            .body(Vec::new())
            .unwrap();
    let text = client.request_text(request).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v.get("spec").is_none(), "{text}");
    assert_eq!(v["kind"], "PartialObjectMetadata");
    assert_eq!(v["metadata"]["name"], "a");
}
