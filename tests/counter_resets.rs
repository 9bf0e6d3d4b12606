//! A container that restarts inside its pod starts its counters again: what the default
//! error-rate queries make of that in a real Prometheus, and what the judge makes of them.
//!
//! Three old and three new pods serve side by side for an hour, scraped every 15 s, with the
//! PHP client's counters: requests from the first scrape, each error type's counter created at
//! its first error. One pod restarts its container in the middle: its request counter starts
//! again from zero, and its error counter is gone until that pod's next error. The judge must
//! leave out that pod from the restart until its error counter is back, keep every other
//! pod's counts, and still fail a release whose pods make five times the errors and all
//! restart. (Before, a restart left those minutes out for every pod.) The bundled rules
//! difference each error series on its own, so no other type's value from before the restart
//! is read back after that; a rule that sums by pod before differencing leaves the pod out for
//! the query's look back as well (`reset_linger`'s default).

mod support;

use jiff::Timestamp;
use rollout_guard::analysis::evaluate::{Target, evaluate};
use rollout_guard::analysis::judge::{Evidence, Outcome, Verdict};
use rollout_guard::analysis::rules::{Check, RuleSet};
use rollout_guard::analysis::template::Template;
use rollout_guard::sim::simulate::OpenMetrics;
use support::prometheus::Prometheus;
use support::rollout::{source, ts};

/// The history's start, in unix seconds, on a minute's edge.
const START: i64 = 1_790_000_040;
/// Scrapes in the hour.
const SCRAPES: i64 = 240;
const NAMESPACE: &str = "shop";

/// One pod's PHP counters over the hour: 10 requests a second, an error every
/// `every_requests` requests, and the scrapes (indices) at which its container restarted.
/// After a restart it makes no error for 16 scrapes (4 minutes).
struct Pod {
    name: &'static str,
    every_requests: f64,
    restarts: &'static [i64],
    /// A second error type, made at a tenth of the rate until the first restart only: its
    /// value from before the restart is still read an interval back for 5 minutes after it.
    /// The first type then comes back after 4 scrapes without an error, not 16.
    second_type: bool,
}

/// Scrapes without an error after a restart.
const QUIET: i64 = 16;

impl Pod {
    /// Adds the pod's samples, as its PHP client exposes them: each counter from zero after a
    /// restart, the error counter only from its first error since.
    fn write(&self, om: &mut OpenMetrics) {
        let labels = [("namespace", NAMESPACE), ("pod", self.name)];
        let error_labels = [
            ("namespace", NAMESPACE),
            ("pod", self.name),
            ("type", "fatal"),
        ];
        let second = [
            ("namespace", NAMESPACE),
            ("pod", self.name),
            ("type", "deprecated"),
        ];
        let first_restart = self.restarts.first().copied().unwrap_or(SCRAPES);
        let (mut other, mut other_owed) = (0.0, 0.0);
        let (mut requests, mut errors, mut owed) = (0.0, 0.0, 0.0);
        for k in 0..SCRAPES {
            if self.restarts.contains(&k) {
                (requests, errors, owed) = (0.0, 0.0, 0.0);
            }
            // A few seconds into the interval, as Prometheus spreads its targets.
            let t = START + k * 15 + 7;
            requests += 150.0;
            let quiet_for = if self.second_type { 4 } else { QUIET };
            let quiet = self
                .restarts
                .iter()
                .any(|r| (*r..*r + quiet_for).contains(&k));
            if !quiet {
                owed += 150.0 / self.every_requests;
            }
            let made = owed.floor();
            owed -= made;
            errors += made;
            om.sample("php_requests_total", &labels, t, requests);
            if self.second_type && k < first_restart {
                other_owed += 15.0 / self.every_requests;
                other += other_owed.floor();
                other_owed -= other_owed.floor();
                if other > 0.0 {
                    om.sample("php_errors_total", &second, t, other);
                }
            }
            if errors > 0.0 {
                om.sample("php_errors_total", &error_labels, t, errors);
            }
        }
    }
}

fn target() -> Target {
    Target {
        namespace: NAMESPACE.into(),
        deployment: "web".into(),
        new_replicaset: "web-new22".into(),
        old_replicasets: vec!["web-old11".into()],
        departed: Vec::new(),
    }
}

/// php-error-rate's verdict at the end of the hour, with `new` the new pods.
async fn judge(new: &[Pod]) -> Verdict {
    judge_with(new, RuleSet::defaults()).await
}

/// The same with php-error-rate's errors summed by pod before they are differenced, and
/// `reset_linger` at its default: the rule as the bundled one was before stop 26.
async fn judge_summed_by_pod(new: &[Pod]) -> Verdict {
    let mut rules = RuleSet::defaults();
    let rule = rules
        .rules
        .iter_mut()
        .find(|r| r.name == "php-error-rate")
        .expect("bundled php-error-rate");
    let Check::ErrorRate(check) = &mut rule.check else {
        panic!("php-error-rate is an error_rate check");
    };
    let x = r#"php_errors_total{namespace="{{ namespace }}", pod=~"{{ pods }}"}"#;
    check.errors = Template::parse(&format!(
        "sum by (pod) (last_over_time({x}[{{{{ interval }}}}])) - (sum by (pod) (last_over_time({x}[5m] offset {{{{ interval }}}})) or sum by (pod) (last_over_time({x}[{{{{ interval }}}}])) * 0)"
    ))
    .expect("a valid template");
    check.reset_linger = None;
    judge_with(new, rules).await
}

async fn judge_with(new: &[Pod], rules: RuleSet) -> Verdict {
    let old = ["web-old11-aaaaa", "web-old11-bbbbb", "web-old11-ccccc"].map(|name| Pod {
        name,
        every_requests: 600.0,
        restarts: &[],
        second_type: false,
    });
    let mut om = OpenMetrics::new();
    for pod in old.iter().chain(new) {
        pod.write(&mut om);
    }
    let prometheus = Prometheus::start(&om).expect("start Prometheus");
    let at: Timestamp = ts((START + SCRAPES * 15) as f64);
    let eval = evaluate(&rules, &target(), at, &source(&prometheus.url())).await;
    eval.verdicts
        .into_iter()
        .find(|v| v.rule == "php-error-rate")
        .expect("php-error-rate judged")
}

fn counts(v: &Verdict) -> (f64, usize, usize) {
    match &v.evidence {
        Some(Evidence::ErrorRate(e)) => (
            e.new.requests,
            e.intervals_left_out,
            e.pod_intervals_left_out,
        ),
        _ => panic!("no error-rate evidence: {}", v.reason),
    }
}

fn new_errors(v: &Verdict) -> f64 {
    match &v.evidence {
        Some(Evidence::ErrorRate(e)) => e.new.errors,
        _ => panic!("no error-rate evidence: {}", v.reason),
    }
}

#[tokio::test]
async fn a_restart_leaves_out_that_pod_until_its_error_counter_is_back_and_no_other() {
    // The old pods' rate; the first new pod restarts 30 minutes in, and its first error after
    // that comes over 4 minutes later: its error counter is gone for that long.
    let new = [
        Pod {
            name: "web-new22-aaaaa",
            every_requests: 600.0,
            restarts: &[120],
            second_type: false,
        },
        Pod {
            name: "web-new22-bbbbb",
            every_requests: 600.0,
            restarts: &[],
            second_type: false,
        },
        Pod {
            name: "web-new22-ccccc",
            every_requests: 600.0,
            restarts: &[],
            second_type: false,
        },
    ];
    let v = judge(&new).await;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    let (requests, intervals, pod_intervals) = counts(&v);
    // Nothing of the other pods is left out, and of the restarted one five minutes: the one
    // in which its request counter went back and the four without an error counter. The one
    // in which it came back counts its errors since the restart. What is left has the old
    // pods' rate exactly.
    assert_eq!((intervals, pod_intervals), (0, 5), "{}", v.reason);
    assert_eq!(requests, (3.0 * 60.0 - 5.0) * 600.0, "{}", v.reason);
    assert!(v.reason.starts_with("new 0.1667% "), "{}", v.reason);

    // Summed by pod before differencing, the interval the counter came back in is held
    // against its value before the restart: seven minutes left out, up to the query's
    // 5-minute look back and an interval, and what is left has the old pods' rate exactly too.
    let v = judge_summed_by_pod(&new).await;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    let (requests, intervals, pod_intervals) = counts(&v);
    assert_eq!((intervals, pod_intervals), (0, 7), "{}", v.reason);
    assert_eq!(requests, (3.0 * 60.0 - 7.0) * 600.0, "{}", v.reason);
    assert!(v.reason.starts_with("new 0.1667% "), "{}", v.reason);
}

#[tokio::test]
async fn a_second_error_type_from_before_the_restart_is_not_read_back() {
    // As above, but the restarted pod also printed a second kind of error before its restart,
    // and none after, and its first kind comes back a minute after the restart. Differenced
    // series by series, the second counter's value from before is not read back: the pod
    // counts again from the minute its first counter came back, every error counted.
    let pod = |name, restarts, second_type| Pod {
        name,
        every_requests: 600.0,
        restarts,
        second_type,
    };
    let new = [
        pod("web-new22-aaaaa", &[120], true),
        pod("web-new22-bbbbb", &[], false),
        pod("web-new22-ccccc", &[], false),
    ];
    let v = judge(&new).await;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    let (requests, intervals, pod_intervals) = counts(&v);
    // The reset's minute and the one without an error counter.
    assert_eq!((intervals, pod_intervals), (0, 2), "{}", v.reason);
    assert_eq!(requests, (3.0 * 60.0 - 2.0) * 600.0, "{}", v.reason);
    // One error of the first kind in every minute counted, and the second kind's three before
    // the restart (a tenth of the rate for 30 minutes).
    assert_eq!(new_errors(&v), 3.0 * 60.0 - 2.0 + 3.0, "{}", v.reason);

    // Summed by pod before differencing: the reset's minute and the six after it, whatever
    // the sign of the count in them (the second kind's value from before is read back in
    // them, negative or merely too low), that pod's alone, not damage to the whole side.
    let v = judge_summed_by_pod(&new).await;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    let (requests, intervals, pod_intervals) = counts(&v);
    assert_eq!((intervals, pod_intervals), (0, 7), "{}", v.reason);
    assert_eq!(requests, (3.0 * 60.0 - 7.0) * 600.0, "{}", v.reason);
}

#[tokio::test]
async fn a_release_with_five_times_the_errors_whose_pods_restart_still_fails() {
    // Every new pod's container restarts twice (a crashing release), at different moments.
    let new = [
        Pod {
            name: "web-new22-aaaaa",
            every_requests: 120.0,
            restarts: &[60, 150],
            second_type: false,
        },
        Pod {
            name: "web-new22-bbbbb",
            every_requests: 120.0,
            restarts: &[90, 180],
            second_type: false,
        },
        Pod {
            name: "web-new22-ccccc",
            every_requests: 120.0,
            restarts: &[100, 200],
            second_type: false,
        },
    ];
    let v = judge(&new).await;
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    let (_, intervals, pod_intervals) = counts(&v);
    assert_eq!(intervals, 0, "{}", v.reason);
    assert!(pod_intervals >= 6, "{}", v.reason);
}
