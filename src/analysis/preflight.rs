//! Preflight: whether each rule can be evaluated for a Deployment as it runs now, before a
//! rollout depends on it. A rule whose series do not exist (no `php_errors_total`, no CPU
//! limits) stays `inconclusive` through every analysis: a gate holds, a guard never acts, and
//! nothing said why up front.
//!
//! Owns the questions asked (each query of a rule, filled in for the Deployment's current
//! ReplicaSet, as an instant query) and what the answers mean. Must not read Kubernetes or
//! decide anything about a rollout: the caller names the ReplicaSet and prints the result.

use jiff::Timestamp;

use super::judge::QueryName;
use super::rules::{Check, Rule, RuleSet};
use super::source::MetricSource;
use super::template::{Bindings, Template};

/// Where the rules are checked: a Deployment and the ReplicaSet whose pods serve now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Subject {
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// The ReplicaSet whose pods serve now: the one the queries are filled in for.
    pub replicaset: String,
}

/// What one query answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Which of the rule's queries it was.
    pub name: QueryName,
    /// The query as sent, placeholders filled in.
    pub promql: String,
    /// Series returned, or why none could be read.
    pub series: Result<usize, String>,
}

/// Whether a rule can be evaluated, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Every query has series for the pods.
    Ready,
    /// The error query has no series yet, which is read as no errors until the first
    /// (`absent_errors_are_zero`): the rule will judge, but whether the metric exists at all
    /// cannot be told yet.
    ErrorsNotYetSeen,
    /// A query has no series for any pod: the rule will stay inconclusive.
    NoSeries(QueryName),
    /// A query failed (Prometheus down, a query it refuses).
    Failed(QueryName, String),
    /// Not a metric rule (`logs`): read from pod logs when a rollout is analysed.
    NotChecked,
}

impl Readiness {
    /// Whether the rule will stay inconclusive as things are.
    pub(crate) fn blocks(&self) -> bool {
        matches!(self, Readiness::NoSeries(_) | Readiness::Failed(..))
    }
}

/// One rule's check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuleCheck {
    /// The rule's name.
    pub rule: String,
    /// Whether it can be evaluated, and why not.
    pub readiness: Readiness,
    /// Each of its queries and what it answered, in the rule's order (none for a `logs` rule).
    pub answers: Vec<Answer>,
}

impl RuleCheck {
    /// One line for people.
    pub(crate) fn describe(&self, subject: &Subject) -> String {
        let pods = format!("any pod of {}", subject.replicaset);
        match &self.readiness {
            Readiness::Ready => format!("{}: can be evaluated", self.rule),
            Readiness::ErrorsNotYetSeen => format!(
                "{}: can be evaluated; its errors query has no series for {pods} yet, read as no errors until the first (check the metric's name if these pods do make errors)",
                self.rule
            ),
            Readiness::NoSeries(q) => format!(
                "{}: no series for {pods} from its {} query: this rule will stay inconclusive ({})",
                self.rule,
                q.as_str(),
                self.promql(*q)
            ),
            Readiness::Failed(q, why) => format!(
                "{}: its {} query failed: {why}; this rule will stay inconclusive",
                self.rule,
                q.as_str()
            ),
            Readiness::NotChecked => format!(
                "{}: reads pod logs, not metrics; not checked here",
                self.rule
            ),
        }
    }

    fn promql(&self, q: QueryName) -> &str {
        self.answers
            .iter()
            .find(|a| a.name == q)
            .map_or("", |a| a.promql.as_str())
    }
}

/// The queries of `rule`, filled in for `subject`.
fn queries(rule: &Rule, subject: &Subject) -> Vec<(QueryName, String)> {
    let replicasets = [subject.replicaset.clone()];
    let b = Bindings {
        namespace: &subject.namespace,
        deployment: &subject.deployment,
        replicasets: &replicasets,
        window: rule.window,
        interval: rule.interval(),
    };
    let render = |name: QueryName, t: &Template| (name, t.render(&b).as_str().to_string());
    match &rule.check {
        Check::ErrorRate(c) => vec![
            render(QueryName::Errors, &c.errors),
            render(QueryName::Requests, &c.requests),
        ],
        Check::Compare(c) => std::iter::once(render(QueryName::Query, &c.query))
            .chain(c.load.as_ref().map(|l| render(QueryName::Load, l)))
            .collect(),
        Check::Absolute(c) => vec![render(QueryName::Query, &c.query)],
        Check::Logs(_) => Vec::new(),
    }
}

/// What the answers to `rule`'s queries mean.
fn readiness(rule: &Rule, answers: &[Answer]) -> Readiness {
    if matches!(rule.check, Check::Logs(_)) {
        return Readiness::NotChecked;
    }
    let errors_may_be_absent =
        matches!(&rule.check, Check::ErrorRate(c) if c.absent_errors_are_zero);
    let mut errors_unseen = false;
    for a in answers {
        match &a.series {
            Err(why) => return Readiness::Failed(a.name, why.clone()),
            Ok(0) if a.name == QueryName::Errors && errors_may_be_absent => errors_unseen = true,
            Ok(0) => return Readiness::NoSeries(a.name),
            Ok(_) => {}
        }
    }
    if errors_unseen {
        Readiness::ErrorsNotYetSeen
    } else {
        Readiness::Ready
    }
}

/// Checks every rule of `rules` for `subject` at `at`.
pub(crate) async fn check<S: MetricSource>(
    rules: &RuleSet,
    subject: &Subject,
    at: Timestamp,
    source: &S,
) -> Vec<RuleCheck> {
    let mut out = Vec::with_capacity(rules.rules.len());
    for rule in &rules.rules {
        let mut answers = Vec::new();
        for (name, promql) in queries(rule, subject) {
            let series = source
                .instant(&promql, at)
                .await
                .map(|s| s.len())
                .map_err(|e| e.to_string());
            answers.push(Answer {
                name,
                promql,
                series,
            });
        }
        out.push(RuleCheck {
            rule: rule.name.clone(),
            readiness: readiness(rule, &answers),
            answers,
        });
    }
    out
}

#[cfg(test)]
mod tests;
