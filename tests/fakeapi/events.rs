//! `kube::runtime::events::Recorder` against the fake server: a create, then a series patch.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, ListParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::common::api_server;

#[tokio::test]
async fn recorder_creates_then_patches_a_series() {
    let server = api_server().await;
    let reporter = Reporter {
        controller: "rollout-guard".into(),
        instance: Some("rollout-guard-0".into()),
    };
    let recorder = Recorder::new(server.client(), reporter);
    let reference = ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("Deployment".into()),
        name: Some("web".into()),
        namespace: Some("shop".into()),
        uid: Some("0f2e-uid".into()),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "RolloutPaused".into(),
        note: Some("5xx rate of the new pods is 4x the old".into()),
        action: "Pause".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();

    let events: Api<K8sEvent> = Api::namespaced(server.client(), "shop");
    let listed = events.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(
        listed.len(),
        1,
        "the second publish updates the first event"
    );
    let e = &listed[0];
    assert_eq!(e.reason.as_deref(), Some("RolloutPaused"));
    assert_eq!(e.regarding.as_ref().unwrap().name.as_deref(), Some("web"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));
    let by_regarding = ListParams::default().fields("regarding.name=web,reason=RolloutPaused");
    assert_eq!(events.list(&by_regarding).await.unwrap().items.len(), 1);

    let stats = server.requests();
    assert_eq!(stats.count("create", "events.k8s.io/events"), 1);
    assert_eq!(stats.count("patch", "events.k8s.io/events"), 1);
}
