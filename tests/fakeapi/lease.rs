//! Leader election with `kube-lease-manager` against the fake server: its orphaned-lease lock
//! is a server-side apply, and only the fake's field-ownership conflicts keep two contenders
//! from both winning it.

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use rollout_guard::fakeapi::FakeApiServer;
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
