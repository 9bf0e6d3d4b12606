//! Leader election with `kube-lease-manager` against the fake server. Two managers take
//! turns end to end; and because a manager locks a free Lease with a server-side apply, the
//! interleaving where a contender's view is stale is replayed request by request: only the
//! apply conflict keeps it from taking a Lease another manager already holds.

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use rollout_guard::sim::fakeapi::FakeApiServer;
use tokio::sync::watch;

use crate::common::{PATIENCE, api_server, eventually};

const LEASE: &str = "rollout-guard-leader";

async fn contender(server: &FakeApiServer, id: &str) -> LeaseManager {
    LeaseManagerBuilder::new(server.new_client().unwrap(), LEASE)
        .with_namespace("default")
        .with_identity(id)
        .with_duration(2)
        .with_grace(1)
        .build()
        .await
        .unwrap()
}

/// Who believes they lead, failing the test if more than one does.
fn sole_leader(contenders: &[(&str, &watch::Receiver<bool>)]) -> Option<String> {
    let leaders: Vec<&str> = contenders
        .iter()
        .filter(|(_, rx)| *rx.borrow())
        .map(|(id, _)| *id)
        .collect();
    assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
    leaders.first().map(|s| s.to_string())
}

async fn holder(leases: &Api<Lease>) -> (Option<String>, Option<i32>, Option<String>) {
    let spec = leases.get(LEASE).await.unwrap().spec.unwrap_or_default();
    let renew = spec.renew_time.map(|t| t.0.to_string());
    (spec.holder_identity, spec.lease_transitions, renew)
}

#[tokio::test]
async fn two_lease_managers_take_turns() {
    let server = api_server().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    let (a, b) = (contender(&server, "a").await, contender(&server, "b").await);
    let ((a_rx, a_task), (b_rx, b_task)) = tokio::join!(a.watch(), b.watch());

    let first = eventually("one contender to lead", || {
        let leader = sole_leader(&[("a", &a_rx), ("b", &b_rx)]);
        async move { leader }
    })
    .await;
    let (held_by, _, renewed) = holder(&leases).await;
    assert_eq!(held_by.as_deref(), Some(first.as_str()));

    // Through a renewal, still exactly one leader, and the same one.
    eventually("the leader to renew", || {
        let leader = sole_leader(&[("a", &a_rx), ("b", &b_rx)]);
        assert_eq!(leader.as_deref(), Some(first.as_str()));
        let leases = leases.clone();
        let renewed = renewed.clone();
        async move { (holder(&leases).await.2 != renewed).then_some(()) }
    })
    .await;

    // The leader steps down (its receiver goes away, so its manager releases the lease)...
    let mut contenders = vec![("a", a_rx, a_task), ("b", b_rx, b_task)];
    let at = contenders
        .iter()
        .position(|(id, _, _)| *id == first)
        .unwrap();
    let (_, leader_rx, leader_task) = contenders.remove(at);
    drop(leader_rx);
    tokio::time::timeout(PATIENCE, leader_task)
        .await
        .expect("the leader releases in time")
        .unwrap()
        .unwrap();
    // ...and the other takes over.
    let (follower, follower_rx, follower_task) = contenders.remove(0);
    eventually("the follower to lead", || {
        let leads = *follower_rx.borrow();
        async move { leads.then_some(()) }
    })
    .await;
    let (held_by, transitions, _) = holder(&leases).await;
    assert_eq!(held_by.as_deref(), Some(follower));
    assert_eq!(transitions, Some(2));

    // The new leader crashes without releasing; a third contender waits for the lease to
    // expire, then takes it.
    follower_task.abort();
    let c = contender(&server, "c").await;
    let (c_rx, c_task) = c.watch().await;
    eventually("c to take the expired lease", || {
        let leads = *c_rx.borrow();
        async move { leads.then_some(()) }
    })
    .await;
    let (held_by, transitions, _) = holder(&leases).await;
    assert_eq!(held_by.as_deref(), Some("c"));
    assert_eq!(transitions, Some(3));
    c_task.abort();
}

/// The interleaving the apply conflict exists for, replayed request by request as
/// `kube-lease-manager` 0.13 sends them: `b` read the Lease while it was free, `a` locked it
/// first, then `b`'s lock arrives. It must fail with 409 and leave `a` holding the Lease.
#[tokio::test]
async fn a_stale_contender_cannot_take_a_held_lease() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use kube::api::{Patch, PatchParams, PostParams};
    use serde_json::json;

    let server = api_server().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    let empty: Lease =
        serde_json::from_value(json!({"metadata": {"name": LEASE}, "spec": {}})).unwrap();
    leases.create(&PostParams::default(), &empty).await.unwrap();
    let lock = |id: &str| {
        let now = MicroTime(jiff::Timestamp::now());
        Patch::Apply(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "spec": {"acquireTime": now, "renewTime": now, "holderIdentity": id, "leaseDurationSeconds": 2},
        }))
    };
    let manager = |id: &str| PatchParams {
        field_manager: Some(format!("kube-lease-manager-{id}")),
        ..PatchParams::default()
    };
    leases
        .patch(LEASE, &manager("a"), &lock("a"))
        .await
        .unwrap();
    let transitions = Patch::Strategic(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"leaseTransitions": 1}
    }));
    leases
        .patch(LEASE, &manager("a"), &transitions)
        .await
        .unwrap();

    match leases.patch(LEASE, &manager("b"), &lock("b")).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("b's stale lock must conflict, got {other:?}"),
    }
    assert_eq!(holder(&leases).await.0.as_deref(), Some("a"));

    // Once a releases (a strategic patch to nulls), b's lock goes through.
    let release = Patch::Strategic(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "spec": {"acquireTime": null, "renewTime": null, "holderIdentity": null, "leaseDurationSeconds": null},
    }));
    leases.patch(LEASE, &manager("a"), &release).await.unwrap();
    leases
        .patch(LEASE, &manager("b"), &lock("b"))
        .await
        .unwrap();
    assert_eq!(holder(&leases).await.0.as_deref(), Some("b"));
}
