//! A metric source that notices an answer that lost series it had before.
//!
//! Stored samples do not vanish: a series that answered a range query with points at some
//! times answers every later query over those times too. When it does not, the store (or a
//! frontend, or a shard) lost part of the answer without saying so — no warning, just fewer
//! series — and counting the lost error series as zero errors would blame a healthy release.
//! [`Consistent`] remembers, per query text, which series answered and over which span; an
//! answer that lacks one whose span it covers by at least two steps is refused as
//! [`SourceError::Partial`], never passed on. It owns nothing else: what the series mean is
//! the judge's. Memory is bounded: the queries asked least recently are forgotten first.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use jiff::Timestamp;

use super::{LogCounts, LogQuery, MetricSource, Series, SourceError, unix_seconds};
use crate::analysis::duration::PromDuration;

/// Query texts remembered at most (each with its series' spans).
const MAX_QUERIES: usize = 2048;

/// Series remembered at most over all queries (about 80 bytes each).
const MAX_SERIES: usize = 100_000;

/// The span of a series' finite points, in unix seconds, and a name for messages.
#[derive(Clone, Debug)]
struct Span {
    first: f64,
    last: f64,
    name: String,
}

#[derive(Default)]
struct Remembered {
    /// Series by a hash of their labels.
    series: HashMap<u64, Span>,
    /// When it was last asked (a counter).
    asked: u64,
}

/// Wraps a source; see the module doc.
pub struct Consistent<S> {
    inner: S,
    memory: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    queries: HashMap<String, Remembered>,
    tick: u64,
}

impl<S> Consistent<S> {
    /// Wraps `inner`, remembering nothing yet.
    pub fn new(inner: S) -> Self {
        Consistent {
            inner,
            memory: Mutex::new(Memory::default()),
        }
    }
}

fn fingerprint(s: &Series) -> u64 {
    let mut h = DefaultHasher::new();
    s.labels.hash(&mut h);
    h.finish()
}

fn span(s: &Series) -> Option<Span> {
    let mut finite = s.points.iter().filter(|p| p.v.is_finite()).map(|p| p.t);
    let first = finite.next()?;
    let last = finite.fold(first, f64::max);
    Some(Span {
        first,
        last,
        name: s.name(),
    })
}

impl Memory {
    /// Checks `answer` against what `query` answered before over `[start, end]`, then
    /// remembers it. Series whose remembered span lies at least two steps inside the range
    /// must be there.
    fn check(
        &mut self,
        query: &str,
        answer: &[Series],
        (start, end, step): (f64, f64, f64),
    ) -> Result<(), SourceError> {
        self.tick += 1;
        let tick = self.tick;
        let present: HashMap<u64, Option<Span>> =
            answer.iter().map(|s| (fingerprint(s), span(s))).collect();
        let remembered = self.queries.entry(query.to_string()).or_default();
        remembered.asked = tick;
        let missing: Vec<&Span> = remembered
            .series
            .iter()
            .filter(|(key, _)| !present.contains_key(*key))
            .map(|(_, span)| span)
            .filter(|span| span.last.min(end) - span.first.max(start) >= 2.0 * step)
            .collect();
        if !missing.is_empty() {
            let mut names: Vec<&str> = missing.iter().map(|s| s.name.as_str()).collect();
            names.sort_unstable();
            return Err(SourceError::Partial(format!(
                "{} series that answered this query before, over the same times, are missing ({}{}); lost data is not zero",
                names.len(),
                names.iter().take(3).copied().collect::<Vec<_>>().join(", "),
                if names.len() > 3 { ", …" } else { "" }
            )));
        }
        for (key, span) in present {
            let Some(span) = span else { continue };
            remembered
                .series
                .entry(key)
                .and_modify(|s| {
                    s.first = s.first.min(span.first);
                    s.last = s.last.max(span.last);
                })
                .or_insert(span);
        }
        self.forget_least_asked();
        Ok(())
    }

    /// Forgets the queries asked least recently while there are more than [`MAX_QUERIES`] of
    /// them or more than [`MAX_SERIES`] series in all (the one just asked is kept).
    fn forget_least_asked(&mut self) {
        let series =
            |q: &HashMap<String, Remembered>| -> usize { q.values().map(|r| r.series.len()).sum() };
        while self.queries.len() > MAX_QUERIES
            || (self.queries.len() > 1 && series(&self.queries) > MAX_SERIES)
        {
            let Some(oldest) = self
                .queries
                .iter()
                .min_by_key(|(_, r)| r.asked)
                .map(|(q, _)| q.clone())
            else {
                return;
            };
            self.queries.remove(&oldest);
        }
    }
}

impl<S: MetricSource + Send> MetricSource for Consistent<S> {
    async fn instant(&self, query: &str, at: Timestamp) -> Result<Vec<Series>, SourceError> {
        self.inner.instant(query, at).await
    }

    async fn range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: PromDuration,
    ) -> Result<Vec<Series>, SourceError> {
        let answer = self.inner.range(query, start, end, step).await?;
        let bounds = (unix_seconds(start), unix_seconds(end), step.as_secs_f64());
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(query, &answer, bounds)?;
        Ok(answer)
    }

    async fn logs(&self, query: &LogQuery) -> Result<LogCounts, SourceError> {
        self.inner.logs(query).await
    }
    fn kept_logs(&self) -> Option<&dyn super::KeptLogs> {
        self.inner.kept_logs()
    }
}

/// The series seen of each query, for tests.
#[cfg(test)]
impl<S> Consistent<S> {
    fn remembered(&self, query: &str) -> usize {
        self.memory
            .lock()
            .unwrap()
            .queries
            .get(query)
            .map_or(0, |r| r.series.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that answers each range query from a script of answers, in turn.
    struct Scripted(Mutex<Vec<Vec<Series>>>);

    impl MetricSource for Scripted {
        async fn instant(&self, _: &str, _: Timestamp) -> Result<Vec<Series>, SourceError> {
            Ok(Vec::new())
        }
        async fn range(
            &self,
            _: &str,
            _: Timestamp,
            _: Timestamp,
            _: PromDuration,
        ) -> Result<Vec<Series>, SourceError> {
            Ok(self.0.lock().unwrap().remove(0))
        }
    }

    fn pod(name: &str, from: f64, to: f64) -> Series {
        let points = (0..)
            .map(|i| from + 60.0 * i as f64)
            .take_while(|t| *t <= to);
        Series::for_pod(name, points.map(|t| (t, 1.0)))
    }

    fn at(s: f64) -> Timestamp {
        Timestamp::from_second(s as i64).unwrap()
    }

    const STEP: PromDuration = PromDuration::from_secs(60);

    #[tokio::test]
    async fn a_series_that_vanishes_from_times_it_answered_for_is_a_partial_answer() {
        let src = Consistent::new(Scripted(Mutex::new(vec![
            vec![pod("a", 0.0, 600.0), pod("b", 0.0, 600.0)],
            vec![pod("a", 0.0, 630.0)],
            vec![pod("a", 0.0, 660.0), pod("b", 0.0, 660.0)],
        ])));
        let q = "increase(php_errors_total[1m])";
        assert_eq!(
            src.range(q, at(0.0), at(600.0), STEP).await.unwrap().len(),
            2
        );
        let err = src.range(q, at(30.0), at(630.0), STEP).await.unwrap_err();
        assert!(matches!(err, SourceError::Partial(_)), "{err}");
        assert!(err.to_string().contains("(b)"), "{err}");
        // Still expected afterwards: an answer with it again is fine.
        assert_eq!(
            src.range(q, at(60.0), at(660.0), STEP).await.unwrap().len(),
            2
        );
        assert_eq!(src.remembered(q), 2);
    }

    #[tokio::test]
    async fn series_outside_the_range_or_new_or_short_are_not_expected() {
        let src = Consistent::new(Scripted(Mutex::new(vec![
            // b served only until 300; c lived one minute.
            vec![
                pod("a", 0.0, 600.0),
                pod("b", 0.0, 300.0),
                pod("c", 500.0, 560.0),
            ],
            // The window moved past b; c's minute is too short to be sure of.
            vec![pod("a", 0.0, 900.0), pod("d", 700.0, 900.0)],
            // Looking back at earlier times (a replay) does not expect d, born later.
            vec![pod("a", 0.0, 600.0), pod("b", 0.0, 300.0)],
        ])));
        let q = "q";
        src.range(q, at(0.0), at(600.0), STEP).await.unwrap();
        src.range(q, at(300.0), at(900.0), STEP).await.unwrap();
        src.range(q, at(0.0), at(600.0), STEP).await.unwrap();
    }

    #[test]
    fn memory_is_bounded_in_queries_and_series() {
        let mut m = Memory::default();
        let answer = vec![pod("a", 0.0, 600.0)];
        for i in 0..MAX_QUERIES + 10 {
            m.check(&format!("q{i}"), &answer, (0.0, 600.0, 60.0))
                .unwrap();
        }
        assert_eq!(m.queries.len(), MAX_QUERIES);
        assert!(m.queries.contains_key(&format!("q{}", MAX_QUERIES + 9)));
        let many: Vec<Series> = (0..MAX_SERIES / 2 + 1)
            .map(|i| pod(&format!("p{i}"), 0.0, 600.0))
            .collect();
        m.check("big-1", &many, (0.0, 600.0, 60.0)).unwrap();
        m.check("big-2", &many, (0.0, 600.0, 60.0)).unwrap();
        let total: usize = m.queries.values().map(|r| r.series.len()).sum();
        assert!(total <= MAX_SERIES, "{total}");
        assert!(m.queries.contains_key("big-2"));
    }
}
