use super::*;
use k8s_openapi::api::apps::v1::{
    DeploymentCondition, DeploymentSpec, DeploymentStatus, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use std::collections::BTreeMap;

fn template(image: &str, hash: Option<&str>) -> PodTemplateSpec {
    let mut labels = BTreeMap::from([("app".to_string(), "shop".to_string())]);
    if let Some(h) = hash {
        labels.insert(HASH_LABEL.into(), h.into());
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "php".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn deployment(image: &str, replicas: i32) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("shop".into()),
            namespace: Some("web".into()),
            uid: Some("uid-shop".into()),
            generation: Some(2),
            annotations: Some(BTreeMap::from([
                (REVISION.to_string(), "2".to_string()),
                ("team".to_string(), "payments".to_string()),
            ])),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            template: template(image, None),
            ..Default::default()
        }),
        status: Some(DeploymentStatus {
            observed_generation: Some(2),
            ..Default::default()
        }),
    }
}

/// A ReplicaSet owned by the `shop` Deployment.
fn rs(hash: &str, image: &str, revision: u64, desired: i32, available: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("shop-{hash}")),
            namespace: Some("web".into()),
            labels: Some(BTreeMap::from([(HASH_LABEL.to_string(), hash.to_string())])),
            annotations: Some(BTreeMap::from([
                (REVISION.to_string(), revision.to_string()),
                ("team".to_string(), "billing".to_string()),
                (
                    "deployment.kubernetes.io/desired-replicas".to_string(),
                    "4".to_string(),
                ),
            ])),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "shop".into(),
                uid: "uid-shop".into(),
                controller: Some(true),
                ..Default::default()
            }]),
            creation_timestamp: Some(Time(
                jiff::Timestamp::from_second(1_700_000_000 + revision as i64).unwrap(),
            )),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(desired),
            template: Some(template(image, Some(hash))),
            ..Default::default()
        }),
        status: Some(ReplicaSetStatus {
            replicas: desired,
            ready_replicas: Some(available),
            available_replicas: Some(available),
            ..Default::default()
        }),
    }
}

#[test]
fn new_is_the_template_match_and_old_are_the_rest_by_revision() {
    let d = deployment("shop:v2", 4);
    let rss = vec![
        rs("aaaaa", "shop:v0", 1, 0, 0),
        rs("bbbbb", "shop:v1", 2, 3, 3),
        rs("ccccc", "shop:v2", 3, 2, 1),
    ];
    let v = view(&d, &rss);
    assert_eq!(v.new.as_ref().unwrap().name, "shop-ccccc");
    assert_eq!(v.new.as_ref().unwrap().revision, 3);
    let old: Vec<&str> = v.old.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(old, ["shop-bbbbb", "shop-aaaaa"]);
    let with_pods: Vec<&str> = v.old_with_pods().map(|g| g.name.as_str()).collect();
    assert_eq!(with_pods, ["shop-bbbbb"]);
    assert_eq!(v.phase, Phase::Progressing);
    assert!(v.is_rolling());
    assert_eq!(v.serving_before().unwrap().hash, "bbbbb");
}

#[test]
fn replicasets_of_other_owners_are_ignored() {
    let d = deployment("shop:v2", 4);
    let mut foreign = rs("zzzzz", "shop:v2", 9, 4, 4);
    foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "uid-other".into();
    let mut not_controller = rs("yyyyy", "shop:v1", 8, 4, 4);
    not_controller.metadata.owner_references.as_mut().unwrap()[0].controller = None;
    let mut other_ns = rs("xxxxx", "shop:v1", 7, 4, 4);
    other_ns.metadata.namespace = Some("elsewhere".into());
    let v = view(&d, &[foreign, not_controller, other_ns]);
    assert_eq!(v.new, None);
    assert!(v.old.is_empty());
    assert_eq!(v.phase, Phase::Pending);
    assert!(!v.is_rolling());
}

#[test]
fn several_matching_templates_pick_the_oldest_as_the_deployment_controller_does() {
    let d = deployment("shop:v2", 2);
    // Revision numbers are not creation order here: creation time is what counts.
    let mut younger = rs("bbbbb", "shop:v2", 1, 0, 0);
    younger.metadata.creation_timestamp =
        Some(Time(jiff::Timestamp::from_second(1_800_000_000).unwrap()));
    let older = rs("aaaaa", "shop:v2", 5, 2, 2);
    let v = view(&d, &[younger, older]);
    assert_eq!(v.new.unwrap().hash, "aaaaa");
}

#[test]
fn a_finished_rollout_is_complete_and_not_rolling() {
    let d = deployment("shop:v2", 4);
    let v = view(
        &d,
        &[
            rs("bbbbb", "shop:v1", 2, 0, 0),
            rs("ccccc", "shop:v2", 3, 4, 4),
        ],
    );
    assert_eq!(v.phase, Phase::Complete);
    assert!(!v.is_rolling());
    // Still the rollback target, although it has no pods.
    assert_eq!(v.serving_before().unwrap().hash, "bbbbb");
}

#[test]
fn phases_follow_the_deployment_status() {
    let rss = vec![
        rs("bbbbb", "shop:v1", 2, 3, 3),
        rs("ccccc", "shop:v2", 3, 2, 1),
    ];

    let mut d = deployment("shop:v2", 4);
    d.metadata.generation = Some(3);
    assert_eq!(
        view(&d, &rss).phase,
        Phase::Pending,
        "spec not yet observed"
    );

    let mut d = deployment("shop:v2", 4);
    d.spec.as_mut().unwrap().paused = Some(true);
    let v = view(&d, &rss);
    assert_eq!(v.phase, Phase::Paused);
    assert!(v.paused && v.is_rolling());

    let mut d = deployment("shop:v2", 4);
    d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
        type_: "Progressing".into(),
        status: "False".into(),
        reason: Some("ProgressDeadlineExceeded".into()),
        ..Default::default()
    }]);
    let v = view(&d, &rss);
    assert_eq!(v.phase, Phase::Stalled);
    assert!(v.is_rolling());
}

#[test]
fn the_serving_generation_is_the_most_available_not_the_previous_revision() {
    // v1 served; v2 started rolling out and was superseded by v3 before finishing.
    let d = deployment("shop:v3", 4);
    let rss = vec![
        rs("aaaaa", "shop:v1", 1, 3, 3),
        rs("bbbbb", "shop:v2", 2, 1, 0),
        rs("ccccc", "shop:v3", 3, 1, 0),
    ];
    let v = view(&d, &rss);
    assert_eq!(v.old[0].hash, "bbbbb", "kubectl undo would go here");
    assert_eq!(v.serving_before().unwrap().hash, "aaaaa");
    assert_eq!(v.old_by_hash("bbbbb").unwrap().revision, 2);
    assert!(v.old_by_hash("ccccc").is_none());
}

#[test]
fn rollback_template_drops_the_hash_and_annotations_follow_kubectl() {
    let d = deployment("shop:v2", 4);
    let target = rs("bbbbb", "shop:v1", 2, 0, 0);
    let t = without_hash(target.spec.as_ref().unwrap().template.as_ref().unwrap());
    assert!(equal_ignoring_hash(&t, &template("shop:v1", None)));
    assert_eq!(t, template("shop:v1", None));
    assert!(!equal_ignoring_hash(&t, &template("shop:v2", None)));

    let mut target = target;
    target.metadata.annotations.as_mut().unwrap().insert(
        crate::policy::guard::ALLOW_REVISION_ANNOTATION.into(),
        "bbbbb".into(),
    );
    let ann = annotations_for_rollback(&d, &target);
    assert!(
        !ann.contains_key(crate::policy::guard::ALLOW_REVISION_ANNOTATION),
        "a release granted once is not copied back by a rollback"
    );
    assert_eq!(ann["team"], "billing", "copied from the ReplicaSet");
    assert_eq!(ann[REVISION], "2", "the Deployment's own revision is kept");
    assert!(!ann.contains_key("deployment.kubernetes.io/desired-replicas"));
}

#[test]
fn missing_and_unreadable_fields_have_safe_defaults() {
    let mut r = rs("bbbbb", "shop:v1", 2, 1, 1);
    r.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(REVISION.into(), "two".into());
    r.status = None;
    let g = generation(&r);
    assert_eq!((g.revision, g.pods, g.ready, g.available), (0, 0, 0, 0));
    let d = Deployment::default();
    let v = view(&d, &[r]);
    assert_eq!((v.desired, v.paused, v.phase), (1, false, Phase::Pending));
}

#[test]
fn a_complete_rollout_says_when_it_completed_and_its_replicasets_when_they_were_created() {
    let at = |s| Time(jiff::Timestamp::from_second(s).unwrap());
    let mut d = deployment("shop:v2", 4);
    let progressing = |reason: &str| DeploymentCondition {
        type_: "Progressing".into(),
        status: "True".into(),
        reason: Some(reason.into()),
        last_update_time: Some(at(1_800_000_300)),
        last_transition_time: Some(at(1_800_000_000)),
        ..Default::default()
    };
    d.status.as_mut().unwrap().conditions = Some(vec![progressing("NewReplicaSetAvailable")]);
    let mut new = rs("ccccc", "shop:v2", 3, 4, 4);
    new.metadata.creation_timestamp = Some(at(1_800_000_100));
    let rss = [rs("bbbbb", "shop:v1", 2, 0, 0), new];
    let v = view(&d, &rss);
    assert_eq!(v.completed_at, Some(at(1_800_000_300).0));
    assert_eq!(v.new.as_ref().unwrap().created, Some(at(1_800_000_100).0));
    assert_eq!(v.old[0].created, Some(at(1_700_000_002).0));
    // Not while the condition tells of a rollout under way, nor while old pods serve.
    d.status.as_mut().unwrap().conditions = Some(vec![progressing("ReplicaSetUpdated")]);
    assert_eq!(view(&d, &rss).completed_at, None);
    d.status.as_mut().unwrap().conditions = Some(vec![progressing("NewReplicaSetAvailable")]);
    let rolling = [rs("bbbbb", "shop:v1", 2, 1, 1), rss[1].clone()];
    assert_eq!(view(&d, &rolling).completed_at, None);
}
