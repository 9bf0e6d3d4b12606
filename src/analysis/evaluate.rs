//! One evaluation of a rule set against one rollout at one moment: build each rule's queries
//! for the new and the old ReplicaSets, ask the metric source, judge.
//!
//! Owns the mapping from a rule to the queries it needs and from their answers to an
//! [`Observation`]. Generic over [`MetricSource`], so the controller (Prometheus), `backtest`
//! (Prometheus, at past times) and the tests (fixed data) share it; it never talks HTTP itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::join_all;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::analysis::judge::{
    self, Counts, Observation, QueryName, QuerySide, SentQuery, Verdict, Window,
};
use crate::analysis::rules::{Absolute, Check, Compare, ErrorRate, Logs, Rule, RuleSet};
use crate::analysis::source::{LogCounts, LogQuery, MetricSource, SourceError};
use crate::analysis::template::{Bindings, Template};
use crate::analysis::time::{self, Millis};

/// The rollout being judged: a Deployment, its new ReplicaSet and the old ones that still count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// The ReplicaSet of the revision being rolled out.
    pub new_replicaset: String,
    /// The old ReplicaSets that still have pods. Empty once none remain (after the rollout).
    pub old_replicasets: Vec<String>,
    /// Old ReplicaSets compared with earlier in this analysis whose pods have all gone (the one
    /// that served before the rollout, once it is scaled down). Error-rate checks keep them
    /// (the intervals both served, then the old version's history); compare checks with
    /// `history` read the old version's level before it left and its own drift; logs rules
    /// read what was counted of its pods. Absolute checks do not: they look at the old side as
    /// it is now.
    pub departed: Vec<String>,
}

impl Target {
    /// The old ReplicaSets an error-rate, compare (with history) or logs check compares with:
    /// those with pods and those whose pods left during the analysis.
    pub fn paired_old(&self) -> Vec<String> {
        self.old_replicasets
            .iter()
            .chain(&self.departed)
            .cloned()
            .collect()
    }
}

/// The pod logs one evaluation reads. Rules that ask the same of a ReplicaSet (the bundled
/// `logs` rules read the same container over the same window and differ only in the error
/// kinds they judge) share one read: one pod list and one log request per pod, not one per rule.
#[derive(Default)]
struct LogReads {
    reads: Mutex<HashMap<LogQuery, Arc<LogRead>>>,
}

/// One read, made by whichever rule asks first; the others wait for its answer.
type LogRead = OnceCell<Result<LogCounts, SourceError>>;

impl LogReads {
    async fn logs<S: MetricSource>(
        &self,
        source: &S,
        q: &LogQuery,
    ) -> Result<LogCounts, SourceError> {
        let read = self
            .reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(q.clone())
            .or_default()
            .clone();
        read.get_or_init(|| source.logs(q)).await.clone()
    }
}

/// All verdicts of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The evaluation time: the end of every rule's window.
    pub at: Timestamp,
    /// One verdict per rule, in rule order.
    pub verdicts: Vec<Verdict>,
}

/// Evaluates every rule at `at`, queries of different rules concurrently.
pub async fn evaluate<S: MetricSource>(
    rules: &RuleSet,
    target: &Target,
    at: Timestamp,
    source: &S,
) -> Evaluation {
    let logs = LogReads::default();
    let verdicts = join_all(
        rules
            .rules
            .iter()
            .map(|r| evaluate_rule(r, target, at, source, &logs)),
    )
    .await;
    Evaluation { at, verdicts }
}

/// Evaluates one rule at `at`.
async fn evaluate_rule<S: MetricSource>(
    rule: &Rule,
    target: &Target,
    at: Timestamp,
    source: &S,
    logs: &LogReads,
) -> Verdict {
    let ask = Ask {
        rule,
        target,
        at,
        window: window_of(rule, at),
        source,
    };
    let mut sent = Vec::new();
    let observation = match &rule.check {
        Check::ErrorRate(c) => ask.error_rate(c, &mut sent).await,
        Check::Compare(c) => ask.compare(c, &mut sent).await,
        Check::Absolute(c) => ask.absolute(c, &mut sent).await,
        Check::Logs(c) => ask.logs(c, logs, &mut sent).await,
    };
    let mut verdict = judge::judge(rule, &ask.window, &observation);
    verdict.queries = sent;
    verdict
}

/// What one rule's queries are made of: the rule, the rollout, the moment and the window
/// evaluated, and the source that answers them.
struct Ask<'a, S> {
    rule: &'a Rule,
    target: &'a Target,
    at: Timestamp,
    window: Window,
    source: &'a S,
}

impl<S: MetricSource> Ask<'_, S> {
    /// The template bindings selecting the pods of `replicasets`.
    fn bind<'b>(&'b self, replicasets: &'b [String]) -> Bindings<'b> {
        Bindings {
            namespace: &self.target.namespace,
            deployment: &self.target.deployment,
            replicasets,
            window: self.rule.window,
            interval: self.rule.interval(),
        }
    }

    /// A compare or absolute check's `query` for one side's ReplicaSets, recorded as sent.
    fn query(
        &self,
        sent: &mut Vec<SentQuery>,
        side: QuerySide,
        query: &Template,
        replicasets: &[String],
    ) -> String {
        record(sent, side, QueryName::Query, query, &self.bind(replicasets))
    }

    /// The new ReplicaSet, as the one name a query binds.
    fn new_rs(&self) -> &[String] {
        std::slice::from_ref(&self.target.new_replicaset)
    }

    /// An error-rate check's counts: errors and requests per interval, of the new side and of
    /// the paired old side (if any).
    async fn error_rate(&self, c: &ErrorRate, sent: &mut Vec<SentQuery>) -> Observation {
        let (source, at) = (self.source, self.at);
        // One point per interval: the first covers the window's first interval.
        let start = time::to_timestamp(self.window.start + time::span(c.interval.as_std()));
        let paired = self.target.paired_old();
        let mut sides = Vec::new();
        for (side, rs) in [
            (QuerySide::New, self.new_rs()),
            (QuerySide::Old, &paired[..]),
        ] {
            if side == QuerySide::Old && paired.is_empty() {
                continue;
            }
            let b = self.bind(rs);
            let errors = record(sent, side, QueryName::Errors, &c.errors, &b);
            let requests = record(sent, side, QueryName::Requests, &c.requests, &b);
            sides.push(async move {
                let (e, r) = futures::join!(
                    source.range(&errors, start, at, c.interval),
                    source.range(&requests, start, at, c.interval)
                );
                Ok::<_, SourceError>(Counts {
                    errors: e?,
                    requests: r?,
                })
            });
        }
        let mut results = join_all(sides).await.into_iter();
        match (results.next(), results.next()) {
            (Some(Ok(new)), Some(Ok(old))) => Observation::Counts {
                new,
                old: Some(old),
            },
            (Some(Ok(new)), None) => Observation::Counts { new, old: None },
            (Some(Err(e)), _) | (_, Some(Err(e))) => Observation::Failed(e),
            (None, _) => Observation::Failed(SourceError::Unexpected(
                "internal: no query for the new side".into(),
            )),
        }
    }

    /// A compare check's series, new and old; with history, over the old version's history.
    async fn compare(&self, c: &Compare, sent: &mut Vec<SentQuery>) -> Observation {
        let window = &self.window;
        // With history, the old version is read over its history span, and the
        // generation that served before the analysis counts after its pods left.
        let (old_rs, old_from) = if c.history {
            let history = window.widened_to(c.history_span.as_std());
            (
                self.target.paired_old(),
                window.query_start.min(history.query_start),
            )
        } else {
            (self.target.old_replicasets.clone(), window.query_start)
        };
        // The new side over the same span: the moments both versions served, all of
        // them, tell a regression from a load change after the old pods left.
        let mut both_sides = |name, template| {
            let new_q = record(
                sent,
                QuerySide::New,
                name,
                template,
                &self.bind(self.new_rs()),
            );
            let old_q = (!old_rs.is_empty())
                .then(|| record(sent, QuerySide::Old, name, template, &self.bind(&old_rs)));
            (new_q, old_q)
        };
        let source = self.source;
        let read = |(new, old): (String, Option<String>)| async move {
            series_pair(&new, old.as_deref(), window, old_from, c.step, source).await
        };
        let observed = read(both_sides(QueryName::Query, &c.query));
        let Some(load) = &c.load else {
            return observed.await;
        };
        let loads = read(both_sides(QueryName::Load, load));
        match futures::join!(observed, loads) {
            (
                Observation::Series { new, old },
                Observation::Series {
                    new: new_load,
                    old: old_load,
                },
            ) => Observation::SeriesAtLoad {
                new,
                old,
                new_load,
                old_load,
            },
            (Observation::Failed(e), _) | (_, Observation::Failed(e)) => Observation::Failed(e),
            (other, _) => other,
        }
    }

    /// An absolute check's series: the new side, and the old side when the check forgives
    /// what the old side does too.
    async fn absolute(&self, c: &Absolute, sent: &mut Vec<SentQuery>) -> Observation {
        let window = &self.window;
        let has_old = !self.target.old_replicasets.is_empty();
        let new_q = self.query(sent, QuerySide::New, &c.query, self.new_rs());
        let old_q = (has_old && c.unless_old_too).then(|| {
            let old = &self.target.old_replicasets;
            self.query(sent, QuerySide::Old, &c.query, old)
        });
        let from = window.query_start;
        series_pair(&new_q, old_q.as_deref(), window, from, c.step, self.source).await
    }

    /// A logs check's counts: of the new ReplicaSet's pods, and of the paired old ones
    /// merged, read through `reads` (shared by the evaluation's rules).
    async fn logs(&self, c: &Logs, reads: &LogReads, sent: &mut Vec<SentQuery>) -> Observation {
        let target = self.target;
        let query = |rs: &str, new: bool| LogQuery {
            namespace: target.namespace.clone(),
            replicaset: rs.to_string(),
            container: c.container.clone(),
            new,
            start: time::to_timestamp(self.window.start),
            end: self.at,
        };
        let new_q = query(&target.new_replicaset, true);
        // The generation that served before counts after its pods left too: the log
        // source keeps what it counted of them.
        let old_qs: Vec<LogQuery> = target
            .paired_old()
            .iter()
            .map(|rs| query(rs, false))
            .collect();
        for (side, q) in std::iter::once((QuerySide::New, &new_q))
            .chain(old_qs.iter().map(|q| (QuerySide::Old, q)))
        {
            sent.push(SentQuery {
                side,
                name: QueryName::Logs,
                promql: q.describe().into(),
            });
        }
        let source = self.source;
        let (new, olds) = futures::join!(
            reads.logs(source, &new_q),
            join_all(old_qs.iter().map(|q| reads.logs(source, q)))
        );
        let old = if !old_qs.is_empty() {
            olds.into_iter()
                .try_fold(LogCounts::default(), |mut acc, c| {
                    acc.merge(c?);
                    Ok::<_, SourceError>(acc)
                })
                .map(Some)
        } else {
            Ok(None)
        };
        match (new, old) {
            (Ok(new), Ok(old)) => Observation::Logs { new, old },
            (Err(e), _) | (_, Err(e)) => Observation::Failed(e),
        }
    }
}

/// The window a rule looks at when evaluated at `at`.
pub fn window_of(rule: &Rule, at: Timestamp) -> Window {
    let (warmup, step) = match &rule.check {
        Check::ErrorRate(_) | Check::Logs(_) => (0, 0),
        Check::Compare(c) => (time::span(c.warmup.as_std()), time::span(c.step.as_std())),
        Check::Absolute(c) => (time::span(c.warmup.as_std()), time::span(c.step.as_std())),
    };
    let at = time::from_timestamp(at);
    let start = at - time::span(rule.window.as_std());
    Window::new(at, start, warmup, step)
}

fn record(
    sent: &mut Vec<SentQuery>,
    side: QuerySide,
    name: QueryName,
    t: &Template,
    b: &Bindings<'_>,
) -> String {
    let promql = t.render(b);
    sent.push(SentQuery {
        side,
        name,
        promql: promql.as_str().into(),
    });
    promql
}

/// Runs the new side's range query and the old side's, if there is one, from `from` (the
/// window's query start, or earlier where the old version's history counts) to the window's
/// end.
async fn series_pair<S: MetricSource>(
    new_q: &str,
    old_q: Option<&str>,
    window: &Window,
    from: Millis,
    step: crate::analysis::duration::PromDuration,
    source: &S,
) -> Observation {
    let end = time::to_timestamp(window.at);
    let new_f = source.range(new_q, time::to_timestamp(from), end, step);
    let old_f = async {
        match &old_q {
            Some(q) => source
                .range(q, time::to_timestamp(from), end, step)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    match futures::join!(new_f, old_f) {
        (Ok(new), Ok(old)) => Observation::Series { new, old },
        (Err(e), _) | (_, Err(e)) => Observation::Failed(e),
    }
}

#[cfg(test)]
mod tests;
