//! End-to-end: a GitOps tool (Argo CD with `selfHeal`, Flux's drift correction) re-applies the
//! bad commit every few seconds after the controller rolled it back. The real `run` loop on the
//! fake API server (or a real cluster with `ROLLOUT_GUARD_TEST_KUBECONFIG`), a clock 60× faster
//! than the wall clock. The "GitOps tool" applies the bad release's template as a strategic
//! merge patch that leaves `spec.paused` alone, as `kubectl apply` does for a field absent
//! from the manifest.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use rollout_guard::policy::annotations;
use rollout_guard::policy::guard::{Act, Stage};
use rollout_guard::records::{self, Kind};
use rollout_guard::sim::simulate::service;
use serde_json::json;
use support::cluster::{Cluster, ann, guarded, memory, rollbacks, rolled_out, stage, version};

/// A guard against hanging, not a measurement (see `tests/controller.rs`).
const LONG: Duration = Duration::from_secs(120);

/// How long a container takes to become ready. The controller holds the re-applied revision
/// on the watch event of its template, within a fraction of a second on an idle machine; the
/// Deployment controller replaces a second pod only once the first surge pod is ready. This
/// margin (thirty times the usual reaction) is what keeps the bad revision at its first surge
/// on a loaded machine too.
const READY_AFTER: Duration = Duration::from_secs(3);

fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

fn held(d: &Deployment) -> bool {
    stage(d).as_deref() == Some("held") && paused(d) && version(d) == "v2"
}

fn verified_back_on_v1(d: &Deployment) -> bool {
    version(d) == "v1"
        && rolled_out(d)
        && memory(d).is_some_and(|m| {
            matches!(
                m.current.map(|s| s.stage),
                Some(Stage::RolledBack {
                    verified: Some(true),
                    ..
                })
            )
        })
}

/// Pods of the ReplicaSets running `v2`, at most, over the test (sampled every 50 ms).
struct Exposure {
    max_pods: Arc<AtomicI32>,
    stop: Arc<AtomicBool>,
}

impl Exposure {
    fn watch(c: &Cluster) -> Exposure {
        let max_pods = Arc::new(AtomicI32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let api: kube::Api<k8s_openapi::api::apps::v1::ReplicaSet> =
            kube::Api::namespaced(c.client.clone(), &c.namespace);
        let (max, halt) = (max_pods.clone(), stop.clone());
        tokio::spawn(async move {
            while !halt.load(Ordering::Relaxed) {
                if let Ok(list) = api.list(&Default::default()).await {
                    let v2: i32 = list
                        .items
                        .iter()
                        .filter(|rs| {
                            rs.spec
                                .as_ref()
                                .and_then(|s| s.template.as_ref())
                                .and_then(|t| t.spec.as_ref())
                                .and_then(|s| s.containers.first())
                                .and_then(|c| c.env.as_ref())
                                .is_some_and(|e| e.iter().any(|v| v.value.as_deref() == Some("v2")))
                        })
                        .filter_map(|rs| rs.status.as_ref().map(|s| s.replicas))
                        .sum();
                    max.fetch_max(v2, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Exposure { max_pods, stop }
    }

    fn reset(&self) {
        self.max_pods.store(0, Ordering::Relaxed);
    }

    fn max(&self) -> i32 {
        self.max_pods.load(Ordering::Relaxed)
    }
}

impl Drop for Exposure {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Re-applies the bad release every 500 ms of wall time (30 s of the controller's), until
/// stopped. Errors (a conflict with the controller's write) are retried on the next round.
fn gitops_reapplying_v2(c: &Cluster) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let halt = stop.clone();
    let api = c.deployments();
    tokio::spawn(async move {
        while !halt.load(Ordering::Relaxed) {
            let _ = service::release(&api, "shop", "v2", Some("class-errors")).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    stop
}

fn reasons(events: &[(String, String, i32)]) -> Vec<&str> {
    events.iter().map(|(r, _, _)| r.as_str()).collect()
}

fn count(events: &[(String, String, i32)], reason: &str) -> i32 {
    events
        .iter()
        .filter(|(r, _, _)| r == reason)
        .map(|(_, _, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_release_re_applied_by_gitops_is_held_at_its_first_surge_until_a_person_releases_it()
{
    let c = Cluster::start("gitops", READY_AFTER).await;
    c.deploy("shop", 3, &ann(&guarded("guard"))).await;
    let daemon = c.daemon(c.config()).await;
    c.release("shop", "v2", Some("class-errors")).await;
    c.wait(
        "shop",
        "the rollback to v1, verified",
        LONG,
        verified_back_on_v1,
    )
    .await;

    // The GitOps tool sees the live template differ from Git and re-applies the bad commit.
    let exposure = Exposure::watch(&c);
    let gitops = gitops_reapplying_v2(&c);
    let d = c.wait("shop", "the re-applied v2 held", LONG, held).await;
    let hash = memory(&d).unwrap().current.unwrap().hash;
    // Held for ten more minutes of the controller's time while the tool keeps re-applying.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let d = c.deployments().get("shop").await.unwrap();
    assert!(held(&d), "still held: {:?}", stage(&d));
    assert_eq!(rollbacks(&d), 1, "holding is a pause, not another rollback");
    assert!(
        exposure.max() <= 1,
        "the bad revision ran {} pods; the first surge is 1",
        exposure.max()
    );
    let events = c.published("shop").await;
    assert_eq!(
        count(&events, "KnownBadRevision"),
        1,
        "said once: {:?}",
        reasons(&events)
    );
    let (_, said, _) = events
        .iter()
        .find(|(r, _, _)| r == "KnownBadRevision")
        .unwrap();
    for want in [
        "class-loading-errors",
        "rolled back at",
        &format!("rollout-guard.io/allow-revision={hash}"),
    ] {
        assert!(said.contains(want), "{want:?} not in {said}");
    }
    // The writes stay bounded: one rollback and one pause went through, nothing else acted.
    let (recs, _) = records::read(&c.records_path()).unwrap();
    let acted: Vec<&str> = recs
        .iter()
        .filter(|r| r.kind == Kind::Action && r.result.as_ref().is_some_and(|w| w.is_ok()))
        .flat_map(|r| r.acts.iter().map(Act::name))
        .collect();
    assert_eq!(acted, ["rollback", "pause"]);

    // A person looks, and lets it be analysed again: it is resumed, analysed from scratch, and
    // rolled back again (it is still bad); the tool re-applies it, and it is held again.
    let allow = json!({"metadata": {"annotations": {annotations::ALLOW_REVISION: hash}}});
    c.deployments()
        .patch("shop", &PatchParams::default(), &Patch::Merge(allow))
        .await
        .unwrap();
    c.wait("shop", "the second rollback", LONG, |d| rollbacks(d) == 2)
        .await;
    let d = c.wait("shop", "v2 held again", LONG, held).await;
    assert!(
        !d.annotations().contains_key(annotations::ALLOW_REVISION),
        "a release is taken once: the annotation is gone"
    );
    let events = c
        .published_when("shop", |e| count(e, "KnownBadRevision") >= 2)
        .await;
    assert_eq!(count(&events, "KnownBadRevisionReleased"), 1);
    assert_eq!(count(&events, "RolledBack"), 2);
    assert_eq!(
        count(&events, "KnownBadRevision"),
        2,
        "{:?}",
        reasons(&events)
    );

    // Git is fixed: the tool applies v3. The controller lifts its pause and analyses v3.
    gitops.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(600)).await;
    exposure.reset();
    c.release("shop", "v3", None).await;
    let d = c
        .wait("shop", "v3 rolled out", LONG, |d| {
            version(d) == "v3" && rolled_out(d) && !paused(d)
        })
        .await;
    assert_eq!(rollbacks(&d), 2);
    let events = c
        .published_when("shop", |e| count(e, "KnownBadRevisionReplaced") >= 1)
        .await;
    assert_eq!(count(&events, "KnownBadRevisionReplaced"), 1);
    let order: Vec<&str> = reasons(&events)
        .into_iter()
        .filter(|r| r.starts_with("KnownBad") || *r == "RolledBack")
        .collect();
    // First occurrences, in order (repeats are folded into them).
    assert_eq!(
        order,
        [
            "RolledBack",
            "KnownBadRevision",
            "KnownBadRevisionReleased",
            "KnownBadRevisionReplaced"
        ]
    );
    assert_eq!(d.name_any(), "shop");
    daemon.stop().await;
}
