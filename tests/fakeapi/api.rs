//! The API verbs and their errors, through the kube client against a plain store.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

use crate::common::{api_server, deployment, pod};

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn names<K: ResourceExt>(items: &[K]) -> Vec<String> {
    let mut n: Vec<String> = items.iter().map(ResourceExt::name_any).collect();
    n.sort();
    n
}

#[tokio::test]
async fn create_get_list_delete_with_selectors() {
    let server = api_server().await;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    pods.create(
        &pp,
        &pod("web-1", json!({"app": "web", "tier": "a"}), &["php"]),
    )
    .await
    .unwrap();
    pods.create(
        &pp,
        &pod(
            "web-2",
            json!({"app": "web", "tier": "b", "canary": "yes"}),
            &["php"],
        ),
    )
    .await
    .unwrap();
    pods.create(&pp, &pod("api-1", json!({"app": "api"}), &["php"]))
        .await
        .unwrap();
    let other: Api<Pod> = Api::namespaced(server.client(), "other");
    other
        .create(&pp, &pod("web-9", json!({"app": "web"}), &["php"]))
        .await
        .unwrap();

    let got = pods.get("web-1").await.unwrap();
    assert_eq!(got.metadata.namespace.as_deref(), Some("default"));
    assert!(got.metadata.uid.is_some() && got.metadata.creation_timestamp.is_some());
    assert_eq!(
        got.status.unwrap().phase.as_deref(),
        Some("Pending"),
        "create resets pod status"
    );

    let list = |sel: &str| ListParams::default().labels(sel);
    assert_eq!(
        names(&pods.list(&list("app=web")).await.unwrap().items),
        ["web-1", "web-2"]
    );
    assert_eq!(
        names(
            &pods
                .list(&list("app==web,tier in (b,c)"))
                .await
                .unwrap()
                .items
        ),
        ["web-2"]
    );
    assert_eq!(
        names(&pods.list(&list("app=web,!canary")).await.unwrap().items),
        ["web-1"]
    );
    assert_eq!(
        names(&pods.list(&list("tier notin (a)")).await.unwrap().items),
        ["api-1", "web-2"]
    );
    assert_eq!(
        names(&pods.list(&list("app!=web")).await.unwrap().items),
        ["api-1"]
    );
    assert_eq!(
        names(&pods.list(&list("canary")).await.unwrap().items),
        ["web-2"]
    );
    let by_name = ListParams::default().fields("metadata.name=api-1");
    assert_eq!(names(&pods.list(&by_name).await.unwrap().items), ["api-1"]);
    let all: Api<Pod> = Api::all(server.client());
    assert_eq!(
        names(&all.list(&list("app=web")).await.unwrap().items),
        ["web-1", "web-2", "web-9"]
    );
    let in_other = ListParams::default().fields("metadata.namespace=other");
    assert_eq!(names(&all.list(&in_other).await.unwrap().items), ["web-9"]);
    let bad = pods
        .list(&ListParams::default().fields("spec.unknown=x"))
        .await
        .unwrap_err();
    assert_eq!(api_error(bad), (400, "BadRequest".into()));

    let dup = pods
        .create(&pp, &pod("web-1", json!({}), &["php"]))
        .await
        .unwrap_err();
    assert_eq!(api_error(dup), (409, "AlreadyExists".into()));

    let mut generated = pod("", json!({}), &["php"]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("web-".into());
    let made = pods.create(&pp, &generated).await.unwrap();
    let suffix = made.name_any().strip_prefix("web-").unwrap().to_string();
    assert_eq!(suffix.len(), 5);
    assert!(
        suffix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );

    pods.delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        api_error(pods.get("web-1").await.unwrap_err()),
        (404, "NotFound".into())
    );
    assert_eq!(
        api_error(
            pods.delete("web-1", &DeleteParams::default())
                .await
                .unwrap_err()
        ),
        (404, "NotFound".into())
    );
    let invalid = pods
        .create(&pp, &pod("Bad_Name", json!({}), &["php"]))
        .await
        .unwrap_err();
    assert_eq!(api_error(invalid), (422, "Invalid".into()));
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict_on_put_and_patch() {
    let server = api_server().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    let created = leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let stale_rv = created.resource_version().unwrap();

    let mut fresh = created.clone();
    fresh.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let replaced = leases
        .replace("l", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(replaced.resource_version().unwrap(), stale_rv);

    // PUT with the old resourceVersion.
    let mut stale = created.clone();
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = leases
        .replace("l", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".into()));

    // A merge patch carrying the old resourceVersion is a precondition, and fails the same way.
    let patch = json!({"metadata": {"resourceVersion": stale_rv}, "spec": {"holderIdentity": "c"}});
    let err = leases
        .patch("l", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".into()));
    // With the current one, or none, it applies.
    let current = replaced.resource_version().unwrap();
    let patch = json!({"metadata": {"resourceVersion": current}, "spec": {"holderIdentity": "c"}});
    let patched = leases
        .patch("l", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(
        patched.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some("c")
    );

    // A write that changes nothing keeps the resourceVersion.
    let same = leases
        .patch(
            "l",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "c"}})),
        )
        .await
        .unwrap();
    assert_eq!(same.resource_version(), patched.resource_version());
}

#[tokio::test]
async fn json_patch_strategic_merge_and_generation() {
    let server = api_server().await;
    let deployments: Api<Deployment> = Api::default_namespaced(server.client());
    let mut d = deployment("web", "php:8.3-fpm", 2);
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers
        .push(serde_json::from_value(json!({"name": "nginx", "image": "nginx:1.27"})).unwrap());
    let created = deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let strategy = created.spec.as_ref().unwrap().strategy.clone().unwrap();
    assert_eq!(
        strategy.type_.as_deref(),
        Some("RollingUpdate"),
        "defaulted like the real server"
    );

    // Strategic merge: containers merge by name, env by name, ports by containerPort.
    let smp = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "php", "image": "php:8.4-fpm", "env": [{"name": "APP_ENV", "value": "prod"}]}
    ]}}}});
    let patched = deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&smp))
        .await
        .unwrap();
    let containers = &patched
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers;
    assert_eq!(containers.len(), 2, "the nginx container is kept");
    assert_eq!(containers[0].image.as_deref(), Some("php:8.4-fpm"));
    assert_eq!(
        containers[0].ports.as_ref().unwrap()[0].container_port,
        9000
    );
    assert_eq!(containers[1].image.as_deref(), Some("nginx:1.27"));
    assert_eq!(patched.metadata.generation, Some(2));

    // `$patch: delete` removes a container.
    let delete = json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "$patch": "delete"}]}}}});
    let patched = deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&delete))
        .await
        .unwrap();
    assert_eq!(
        patched
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers
            .len(),
        1
    );

    // JSON patch.
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/metadata/labels/team", "value": "shop"}
    ]))
    .unwrap();
    let patched = deployments
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(patched.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(
        patched.labels().get("team").map(String::as_str),
        Some("shop")
    );
    assert_eq!(patched.metadata.generation, Some(4));
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 1}]))
            .unwrap();
    let err = deployments
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(failing))
        .await
        .unwrap_err();
    assert_eq!(api_error(err).0, 422);

    // The status subresource writes status only, and does not bump the generation; the main
    // resource ignores status.
    let status =
        json!({"status": {"observedGeneration": 4, "replicas": 5}, "spec": {"replicas": 1}});
    let after = deployments
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(after.status.as_ref().unwrap().replicas, Some(5));
    assert_eq!(after.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(after.metadata.generation, Some(4));
    let ignored = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(ignored.status.as_ref().unwrap().replicas, Some(5));

    // A changed selector is refused.
    let err = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"selector": {"matchLabels": {"app": "web", "x": "y"}},
                                       "template": {"metadata": {"labels": {"x": "y"}}}}}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (422, "Invalid".into()));
}

#[tokio::test]
async fn injected_conflicts_and_failures_and_request_counts() {
    let server = api_server().await;
    let deployments: Api<Deployment> = Api::default_namespaced(server.client());
    deployments
        .create(&PostParams::default(), &deployment("web", "php:1", 1))
        .await
        .unwrap();
    server.reset_requests();

    server
        .inject_conflicts::<Deployment>("default", "web", 1)
        .unwrap();
    let pause = Patch::Merge(json!({"spec": {"paused": true}}));
    let err = deployments
        .patch("web", &PatchParams::default(), &pause)
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".into()));
    deployments
        .patch("web", &PatchParams::default(), &pause)
        .await
        .unwrap();

    server.inject_failures("/apis/apps/v1/namespaces/default/deployments", 500, 1);
    let err = deployments.get("web").await.unwrap_err();
    assert_eq!(api_error(err), (500, "InternalError".into()));
    // kube retries 503 by itself: two injected 503s cost two extra requests, then it works.
    server.inject_failures("/apis/apps/v1/namespaces/default/deployments/web", 503, 2);
    deployments.get("web").await.unwrap();

    let stats = server.requests();
    assert_eq!(stats.count("patch", "apps/deployments"), 2);
    assert_eq!(stats.count("get", "apps/deployments"), 4);
    assert_eq!(stats.total.requests, 6);
    let statuses: Vec<u16> = stats.log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [409, 200, 500, 503, 503, 200]);
    assert!(stats.counter("get", "apps/deployments").bytes_sent > 0);
    assert!(stats.counter("patch", "apps/deployments").bytes_received > 0);
    assert!(
        server
            .inject_conflicts::<k8s_openapi::api::core::v1::Secret>("default", "x", 1)
            .is_err()
    );
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let server = api_server().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    for i in 0..5 {
        let l: Lease =
            serde_json::from_value(json!({"metadata": {"name": format!("l{i}")}})).unwrap();
        leases.create(&PostParams::default(), &l).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    let mut versions = Vec::new();
    loop {
        let mut lp = ListParams::default().limit(2);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = leases.list(&lp).await.unwrap();
        pages += 1;
        versions.push(page.metadata.resource_version.clone());
        seen.extend(page.items.iter().map(ResourceExt::name_any));
        token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["l0", "l1", "l2", "l3", "l4"]);
    assert!(
        versions.windows(2).all(|w| w[0] == w[1]),
        "pages share the first page's version"
    );
}

#[tokio::test]
async fn kubeconfig_and_discovery() {
    let server = api_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path).unwrap();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = Client::try_from(config).unwrap();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
    let groups = client.list_api_groups().await.unwrap();
    assert!(
        groups
            .groups
            .iter()
            .any(|g| g.name == "coordination.k8s.io")
    );
    let apps = client.list_api_group_resources("apps/v1").await.unwrap();
    assert!(apps.resources.iter().any(|r| r.name == "deployments"));
    let pods: Api<Pod> = Api::default_namespaced(client);
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn server_side_apply_conflicts_between_managers() {
    let server = api_server().await;
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    let body = |holder: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "lock"},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": 10}})
    };
    let as_manager = |m: &str| PatchParams::apply(m);
    // Apply creates.
    let a = leases
        .patch("lock", &as_manager("a"), &Patch::Apply(body("a")))
        .await
        .unwrap();
    assert_eq!(
        a.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some("a")
    );
    let managers: Vec<_> = a
        .managed_fields()
        .iter()
        .map(|m| (m.manager.clone(), m.operation.clone()))
        .collect();
    assert_eq!(
        managers,
        [(Some("a".to_string()), Some("Apply".to_string()))]
    );
    // Another manager applying the same values shares them.
    leases
        .patch("lock", &as_manager("b"), &Patch::Apply(body("a")))
        .await
        .unwrap();
    // A different value for a field "a" owns is a conflict...
    let err = leases
        .patch("lock", &as_manager("c"), &Patch::Apply(body("c")))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(s.message.contains("holderIdentity"), "{}", s.message);
        }
        other => panic!("{other:?}"),
    }
    // ...unless forced.
    let forced = leases
        .patch("lock", &as_manager("c").force(), &Patch::Apply(body("c")))
        .await
        .unwrap();
    assert_eq!(
        forced.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some("c")
    );
    // A non-apply write takes the field over without a conflict; then "c" conflicts with it.
    let update = PatchParams {
        field_manager: Some("d".into()),
        ..PatchParams::default()
    };
    leases
        .patch(
            "lock",
            &update,
            &Patch::Merge(json!({"spec": {"holderIdentity": "d"}})),
        )
        .await
        .unwrap();
    let err = leases
        .patch("lock", &as_manager("c"), &Patch::Apply(body("c")))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".into()));
    // Apply without a field manager is refused by the server (kube would refuse it before
    // sending, so the request is built by hand).
    let request =
        axum::http::Request::patch("/apis/coordination.k8s.io/v1/namespaces/default/leases/lock")
            .header("Content-Type", "application/apply-patch+yaml")
            .body(serde_json::to_vec(&body("x")).unwrap())
            .unwrap();
    let err = server.client().request_text(request).await.unwrap_err();
    assert_eq!(api_error(err), (400, "BadRequest".into()));
}

/// ConfigMaps, where the controller keeps the old pods' log counts: their data keys and size
/// are checked as the real server checks them, and applied without force a field another
/// manager owns is refused.
#[tokio::test]
async fn config_maps_are_checked_and_applied_with_field_ownership() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let server = api_server().await;
    let maps: Api<ConfigMap> = Api::default_namespaced(server.client());
    let map = |name: &str, data: serde_json::Value| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap()
    };
    let pp = PostParams::default();
    let bad_key = maps.create(&pp, &map("a", json!({"no/slash": "x"}))).await;
    assert_eq!(api_error(bad_key.unwrap_err()).0, 422);
    let too_big = "x".repeat(1024 * 1024 + 1);
    let bad_size = maps.create(&pp, &map("b", json!({ "k": too_big }))).await;
    assert_eq!(api_error(bad_size.unwrap_err()).0, 422);

    maps.create(&pp, &map("c", json!({"k": "theirs"})))
        .await
        .unwrap();
    let ours = PatchParams::apply("rollout-guard");
    let taken = maps
        .patch("c", &ours, &Patch::Apply(map("c", json!({"k": "ours"}))))
        .await;
    assert_eq!(api_error(taken.unwrap_err()).0, 409);
    let beside = maps
        .patch(
            "c",
            &ours,
            &Patch::Apply(map("c", json!({"counts.json": "{}"}))),
        )
        .await
        .unwrap();
    let data = beside.data.unwrap();
    assert_eq!(
        (data["k"].as_str(), data["counts.json"].as_str()),
        ("theirs", "{}")
    );
}
