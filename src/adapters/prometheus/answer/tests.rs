//! Answers as Prometheus, Thanos and broken proxies write them.

use super::*;

const LIMITS: Limits = Limits {
    max_bytes: 1 << 20,
    max_series: 3,
};

fn read_range(body: &str) -> Result<Vec<Series>, SourceError> {
    read(
        200,
        body.as_bytes(),
        Kind::Range,
        LIMITS,
        PromDuration::from_secs(10),
    )
}

fn read_instant(body: &str) -> Result<Vec<Series>, SourceError> {
    read(
        200,
        body.as_bytes(),
        Kind::Instant,
        LIMITS,
        PromDuration::from_secs(10),
    )
}

#[test]
fn a_matrix_keeps_labels_times_and_special_values() {
    let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{"pod":"web-1"},"values":[[1700000000,"1.5"],[1700000060,"NaN"],[1700000120,"+Inf"],[1700000180,"-Inf"]]}]}}"#;
    let series = read_range(body).unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].labels["pod"], "web-1");
    let v: Vec<f64> = series[0].points.iter().map(|p| p.v).collect();
    assert_eq!(v[0], 1.5);
    assert!(v[1].is_nan());
    assert_eq!(v[2], f64::INFINITY);
    assert_eq!(v[3], f64::NEG_INFINITY);
    assert_eq!(series[0].points[1].t, 1_700_000_060.0);
}

#[test]
fn warnings_make_the_answer_partial_but_infos_do_not() {
    let partial = r#"{"status":"success","warnings":["partial response: store gateway unavailable"],
        "data":{"resultType":"matrix","result":[]}}"#;
    match read_range(partial) {
        Err(SourceError::Partial(w)) => assert!(w.contains("store gateway"), "{w}"),
        other => panic!("{other:?}"),
    }
    let info = r#"{"status":"success","warnings":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"x\""],
        "infos":["PromQL info: something"],
        "data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"2"]]}]}}"#;
    assert_eq!(read_range(info).unwrap().len(), 1);
}

#[test]
fn a_result_type_the_query_cannot_have_is_refused() {
    let vector = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0"]}]}}"#;
    let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"0"]}}"#;
    let string = r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#;
    for body in [vector, scalar, string] {
        match read_range(body) {
            Err(SourceError::Malformed(m)) => assert!(m.contains("asks for a matrix"), "{m}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    assert_eq!(read_instant(vector).unwrap()[0].points[0].v, 0.0);
    assert_eq!(read_instant(scalar).unwrap().len(), 1);
    let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
    assert!(matches!(
        read_instant(matrix),
        Err(SourceError::Malformed(_))
    ));
}

#[test]
fn error_answers_keep_their_kind() {
    let bad = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
    match read(
        400,
        bad.as_bytes(),
        Kind::Range,
        LIMITS,
        PromDuration::from_secs(10),
    ) {
        Err(SourceError::BadQuery(m)) => assert!(m.contains("parse error"), "{m}"),
        other => panic!("{other:?}"),
    }
    let timeout = r#"{"status":"error","errorType":"timeout","error":"query timed out"}"#;
    assert!(matches!(
        read(
            503,
            timeout.as_bytes(),
            Kind::Range,
            LIMITS,
            PromDuration::from_secs(3)
        ),
        Err(SourceError::Timeout(_))
    ));
    let exec = r#"{"status":"error","errorType":"execution","error":"many-to-many matching"}"#;
    match read(
        422,
        exec.as_bytes(),
        Kind::Range,
        LIMITS,
        PromDuration::from_secs(3),
    ) {
        Err(SourceError::Server(m)) => assert!(m.contains("execution: many-to-many"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_body_that_is_not_prometheus_json_says_what_it_was() {
    let html = "<html><body>502 Bad Gateway</body></html>";
    match read(
        502,
        html.as_bytes(),
        Kind::Range,
        LIMITS,
        PromDuration::from_secs(3),
    ) {
        Err(SourceError::Server(m)) => {
            assert!(m.contains("HTTP 502") && m.contains("Bad Gateway"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    match read_range(
        "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":[[1,\"2\"",
    ) {
        Err(SourceError::Malformed(m)) => assert!(m.contains("not Prometheus' JSON"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read_range(r#"{"status":"success"}"#),
        Err(SourceError::Malformed(_))
    ));
}

#[test]
fn too_many_series_are_refused() {
    let one = r#"{"metric":{"pod":"p"},"values":[[1,"1"]]}"#;
    let body = format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[{}]}}}}"#,
        [one; 4].join(",")
    );
    match read_range(&body) {
        Err(SourceError::TooLarge(m)) => assert!(m.contains("4 series"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn native_histograms_are_not_numbers() {
    let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{"pod":"p"},"histograms":[[1,{"count":"3","sum":"1","buckets":[]}]]}]}}"#;
    match read_range(body) {
        Err(SourceError::Malformed(m)) => assert!(m.contains("native histograms"), "{m}"),
        other => panic!("{other:?}"),
    }
}
