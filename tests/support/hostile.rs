//! A hostile Prometheus: an HTTP proxy in front of a real one that damages some of its answers
//! the way broken exporters, partial Thanos/Mimir responses and misconfigured proxies do.
//!
//! Every query goes to the real Prometheus; the answer to each query that `hits` selects is
//! then passed through a [`Damage`] before it is returned. The rest of the answers are as real
//! as the data behind them, so a test sees exactly what a guard would see in a cluster with
//! one sick component.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// What is done to a selected answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Damage {
    /// Every point of every series replaced by this value ("NaN", "+Inf", "-3").
    Values(&'static str),
    /// Every point but the first dropped from every series (an answer that lost data, with no
    /// warning to say so).
    Gaps,
    /// Every timestamp moved by this many seconds (a proxy that re-aligns, a clock skew).
    Shift(f64),
    /// Each series loses two points in three, every series at other moments (a store that
    /// lost blocks, one series here and another there), with no warning.
    StaggeredGaps,
    /// Every other series dropped whole, with no warning.
    LostSeries,
    /// Two series in three dropped, and a warning saying the answer is partial (Thanos'
    /// `partial_response`, Mimir's store-gateway failures).
    PartialWithWarning,
    /// Every series dropped, and the same warning.
    EmptyWithWarning,
    /// A range query answered with an instant vector of each series' last point.
    Vector,
    /// A range query answered with a scalar.
    Scalar,
}

/// Which queries' answers are damaged: the PromQL text decides.
pub type Hits = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The proxy; it stops when dropped.
pub struct Hostile {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Hostile {
    /// Starts a proxy to `upstream` (a Prometheus base URL) that damages the answers to the
    /// queries `hits` selects.
    pub async fn start(upstream: String, damage: Damage, hits: Hits) -> Hostile {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let client = reqwest::Client::new();
        let app = Router::new().fallback(move |uri: Uri| {
            let (upstream, client, hits) = (upstream.clone(), client.clone(), hits.clone());
            async move { forward(&client, &upstream, &uri, damage, &*hits).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hostile { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    uri: &Uri,
    damage: Damage,
    hits: &(dyn Fn(&str) -> bool + Send + Sync),
) -> Response {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{upstream}{path_and_query}");
    let answer = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status().as_u16();
    let Ok(mut body) = answer.json::<Value>().await else {
        return (StatusCode::BAD_GATEWAY, "upstream answer not JSON").into_response();
    };
    let query = reqwest::Url::parse(&url)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "query")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    if status == 200 && hits(&query) {
        apply(damage, &mut body);
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

const PARTIAL: &str = "partial response: 1 of 3 store gateways did not answer";

/// Damages one answer in place.
pub fn apply(damage: Damage, body: &mut Value) {
    let Some(result) = body["data"]["result"].as_array_mut() else {
        return;
    };
    match damage {
        Damage::Values(v) => each_point(result, |_, p| p[1] = json!(v)),
        Damage::Gaps => {
            for s in result.iter_mut() {
                if let Some(values) = s["values"].as_array_mut() {
                    values.truncate(1);
                }
            }
        }
        Damage::StaggeredGaps => {
            for (k, s) in result.iter_mut().enumerate() {
                if let Some(values) = s["values"].as_array_mut() {
                    let mut i = 0;
                    values.retain(|_| {
                        i += 1;
                        (i - 1 + k) % 3 == 0
                    });
                }
            }
        }
        Damage::LostSeries => keep_one_in(result, 2),
        Damage::Shift(seconds) => each_point(result, |_, p| {
            p[0] = json!(p[0].as_f64().unwrap_or_default() + seconds);
        }),
        Damage::PartialWithWarning => {
            keep_one_in(result, 3);
            body["warnings"] = json!([PARTIAL]);
        }
        Damage::EmptyWithWarning => {
            result.clear();
            body["warnings"] = json!([PARTIAL]);
        }
        Damage::Vector => {
            let vector: Vec<Value> = result
                .iter()
                .map(|s| json!({"metric": s["metric"], "value": s["values"].as_array().and_then(|v| v.last()).cloned().unwrap_or(json!([0, "0"]))}))
                .collect();
            body["data"] = json!({"resultType": "vector", "result": vector});
        }
        Damage::Scalar => {
            body["data"] = json!({"resultType": "scalar", "result": [0, "0"]});
        }
    }
}

/// Keeps the first series of every `n`, drops the rest.
fn keep_one_in(result: &mut Vec<Value>, n: usize) {
    let mut i = 0;
    result.retain(|_| {
        i += 1;
        i % n == 1 % n
    });
}

fn each_point(result: &mut [Value], mut f: impl FnMut(usize, &mut Value)) {
    for s in result {
        if let Some(values) = s["values"].as_array_mut() {
            for (i, p) in values.iter_mut().enumerate() {
                f(i, p);
            }
        }
    }
}
