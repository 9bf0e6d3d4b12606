//! Pod logs through `Api::<Pod>::logs` and `log_stream`: selection, shaping, previous
//! instances and following.

use futures::{AsyncBufReadExt, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};
use rollout_guard::sim::fakeapi::FakeApiServer;
use serde_json::json;

use crate::common::{PATIENCE, eventually, pod, sim_server};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A running pod with containers `php` and `nginx`, and three lines in php's log.
async fn running_pod(server: &FakeApiServer) -> Api<Pod> {
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    pods.create(
        &PostParams::default(),
        &pod("web-1", json!({"app": "web"}), &["php", "nginx"]),
    )
    .await
    .unwrap();
    eventually("the pod to run", || async {
        let p = pods.get("web-1").await.unwrap();
        (p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| c.len() == 2))
        .then_some(())
    })
    .await;
    for (t, line) in [
        (
            "2025-03-01T10:00:00Z",
            "[01-Mar-2025 10:00:00] NOTICE: fpm is running, pid 1",
        ),
        (
            "2025-03-01T10:00:01.5Z",
            "[01-Mar-2025 10:00:01] NOTICE: ready to handle connections",
        ),
        (
            "2025-03-01T10:00:03.25Z",
            "PHP Fatal error:  Uncaught Error: Class \"App\\Foo\" not found",
        ),
    ] {
        server
            .append_log("default", "web-1", "php", at(t), line)
            .unwrap();
    }
    pods
}

fn params(container: &str) -> LogParams {
    LogParams {
        container: Some(container.into()),
        ..LogParams::default()
    }
}

fn api_status(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn logs_select_by_time_and_shape_the_output() {
    let server = sim_server().await;
    let pods = running_pod(&server).await;

    let all = pods.logs("web-1", &params("php")).await.unwrap();
    assert_eq!(all.lines().count(), 3);
    assert!(all.ends_with("not found\n"));

    // kube sends sinceTime in whole seconds.
    let since = LogParams {
        since_time: Some(at("2025-03-01T10:00:01Z")),
        ..params("php")
    };
    let text = pods.logs("web-1", &since).await.unwrap();
    assert!(
        text.starts_with("[01-Mar-2025 10:00:01] NOTICE: ready"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2);

    let stamped = LogParams {
        timestamps: true,
        tail_lines: Some(2),
        ..params("php")
    };
    let text = pods.logs("web-1", &stamped).await.unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "2025-03-01T10:00:01.5Z [01-Mar-2025 10:00:01] NOTICE: ready to handle connections"
    );

    let limited = LogParams {
        limit_bytes: Some(10),
        ..params("php")
    };
    assert_eq!(pods.logs("web-1", &limited).await.unwrap(), "[01-Mar-20");

    // A recent sinceSeconds excludes lines written in 2025.
    let recent = LogParams {
        since_seconds: Some(60),
        ..params("php")
    };
    assert_eq!(pods.logs("web-1", &recent).await.unwrap(), "");

    assert_eq!(pods.logs("web-1", &params("nginx")).await.unwrap(), "");
    let (code, msg) = api_status(pods.logs("web-1", &LogParams::default()).await.unwrap_err());
    assert_eq!(code, 400);
    assert!(msg.contains("a container name must be specified"), "{msg}");
    let (code, _) = api_status(pods.logs("web-1", &params("redis")).await.unwrap_err());
    assert_eq!(code, 400);
    let (code, _) = api_status(pods.logs("nope", &params("php")).await.unwrap_err());
    assert_eq!(code, 404);
}

#[tokio::test]
async fn previous_logs_after_a_restart() {
    let server = sim_server().await;
    let pods = running_pod(&server).await;
    let previous = LogParams {
        previous: true,
        ..params("php")
    };
    let (code, msg) = api_status(pods.logs("web-1", &previous).await.unwrap_err());
    assert_eq!(code, 400);
    assert!(
        msg.contains("previous terminated container \"php\" in pod \"web-1\" not found"),
        "{msg}"
    );

    server.restart_container("default", "web-1", "php").unwrap();
    server
        .append_log("default", "web-1", "php", Timestamp::now(), "fresh start")
        .unwrap();
    assert_eq!(
        pods.logs("web-1", &previous).await.unwrap().lines().count(),
        3
    );
    assert_eq!(
        pods.logs("web-1", &params("php")).await.unwrap(),
        "fresh start\n"
    );
    let p = pods.get("web-1").await.unwrap();
    let php = p
        .status
        .unwrap()
        .container_statuses
        .unwrap()
        .into_iter()
        .find(|c| c.name == "php")
        .unwrap();
    assert_eq!(php.restart_count, 1);
    let terminated = php.last_state.unwrap().terminated.unwrap();
    assert_eq!(terminated.exit_code, 1);
    assert!(
        server
            .append_log("default", "web-1", "redis", Timestamp::now(), "x")
            .is_err()
    );
    assert!(server.restart_container("default", "nope", "php").is_err());
}

#[tokio::test]
async fn follow_streams_new_lines_until_the_container_restarts() {
    let server = sim_server().await;
    let pods = running_pod(&server).await;
    let follow = LogParams {
        follow: true,
        tail_lines: Some(1),
        ..params("php")
    };
    let mut lines = pods.log_stream("web-1", &follow).await.unwrap().lines();
    let mut next = async || {
        tokio::time::timeout(PATIENCE, lines.next())
            .await
            .expect("a log line in time")
    };
    assert!(
        next()
            .await
            .unwrap()
            .unwrap()
            .starts_with("PHP Fatal error")
    );
    server
        .append_log(
            "default",
            "web-1",
            "php",
            Timestamp::now(),
            "GET /health 200",
        )
        .unwrap();
    assert_eq!(next().await.unwrap().unwrap(), "GET /health 200");
    server.restart_container("default", "web-1", "php").unwrap();
    assert!(
        next().await.is_none(),
        "the stream ends with the container instance"
    );
}
