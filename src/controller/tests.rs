use super::*;

fn deployment(annotations: &[(&str, &str)]) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "shop", "namespace": "team", "uid": "u1", "resourceVersion": "7",
            "labels": {"app": "shop"},
            "annotations": annotations.iter().cloned().collect::<BTreeMap<_, _>>(),
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        },
        "spec": {
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {"metadata": {"labels": {"app": "shop"}},
                         "spec": {"containers": [{"name": "php", "image": "shop:1"}]}},
        },
        "status": {"replicas": 3},
    }))
    .unwrap()
}

#[test]
fn conflicts_in_a_row_are_retried_ever_later_up_to_a_bound() {
    let waits: Vec<u64> = (1..=8)
        .map(|n| conflict_backoff(n).as_millis() as u64)
        .collect();
    assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
    assert_eq!(conflict_backoff(u32::MAX), AFTER_CONFLICT_MAX);
    // Twenty conflicts in a row take minutes, not the 1.5 s they took when every retry
    // came 50-90 ms after the last.
    let total: Duration = (1..=20).map(conflict_backoff).sum();
    assert!(total >= Duration::from_secs(200), "{total:?}");
}

#[test]
fn a_deployment_that_did_not_opt_in_keeps_only_its_name_and_opt_in() {
    let mut d = deployment(&[("kubectl.kubernetes.io/last-applied-configuration", "{}")]);
    slim(&mut d, false);
    assert!(d.spec.is_none() && d.status.is_none() && d.metadata.labels.is_none());
    assert!(d.metadata.managed_fields.is_none());
    assert_eq!(d.metadata.annotations, Some(BTreeMap::new()));
    assert_eq!(
        ObjectRef::from_obj(&d),
        ObjectRef::new("shop").within("team")
    );
    assert_eq!(d.metadata.resource_version.as_deref(), Some("7"));
    assert!(!opted_in(&d, false));
}

#[test]
fn a_deployment_that_opted_in_keeps_its_spec_status_and_the_annotations_read() {
    let huge = "x".repeat(240 * 1024);
    let state = format!("{{\"notes\":\"{}\"}}", "y".repeat(4096));
    let mut d = deployment(&[
        (annotations::ENABLED, "true"),
        (annotations::INTERVAL, "30s"),
        (annotations::RULES, &huge),
        (annotations::STATE, &state),
        (kubernetes::REVISION, "4"),
        ("kubectl.kubernetes.io/last-applied-configuration", &huge),
        ("example.com/notes", &huge),
    ]);
    let mut expected = d.clone();
    expected.metadata.managed_fields = None;
    expected.metadata.annotations = Some(BTreeMap::from([
        (annotations::ENABLED.to_string(), "true".to_string()),
        (annotations::INTERVAL.to_string(), "30s".to_string()),
        (
            annotations::RULES.to_string(),
            "(not read: 245760 bytes, longer than the 1024 a setting may have)".to_string(),
        ),
        (annotations::STATE.to_string(), state.clone()),
        (kubernetes::REVISION.to_string(), "4".to_string()),
    ]));
    slim(&mut d, false);
    assert_eq!(d, expected);
    assert!(opted_in(&d, false));
    // A setting too long to keep is refused by name, so the Deployment is only observed.
    let resolved = annotations::resolve(
        d.metadata.annotations.as_ref().unwrap(),
        &Settings::default(),
        &Arc::new(RuleSet::default()),
    );
    assert!(
        resolved
            .problems
            .iter()
            .any(|p| p.contains("not read: 245760 bytes")),
        "{:?}",
        resolved.problems
    );
    // Only foreign annotations: the map stays, empty, so writes patch key by key.
    let mut d = deployment(&[(annotations::ENABLED, "true"), ("example.com/notes", "n")]);
    slim(&mut d, false);
    assert_eq!(
        d.metadata.annotations,
        Some(BTreeMap::from([(
            annotations::ENABLED.to_string(),
            "true".to_string()
        )]))
    );
    // Opted in by the watch's label selector: every Deployment the watch sees...
    let mut d = deployment(&[]);
    slim(&mut d, true);
    assert!(d.spec.is_some() && d.status.is_some());
    assert!(opted_in(&d, true));
    // ... but one that opted out in so many words.
    let mut d = deployment(&[(annotations::ENABLED, "false")]);
    slim(&mut d, true);
    assert!(!opted_in(&d, true) && d.spec.is_none());
}
