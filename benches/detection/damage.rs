//! Damaged answers: a [`MetricSource`] wrapper that breaks answers the way real metric stores
//! do (issue 12), for healthy rollouts that must not be acted on because of it.
//!
//! Owns the kinds of damage and where they fall. Each damaged rollout gets one kind, for an
//! episode of 2 to 10 minutes starting in the first 10 minutes of the rollout (a store or a
//! recording rule misbehaving for a while; a frontend's step alignment is a setting, so it
//! lasts the whole analysis). Every choice is a hash of the rollout's seed, the query and the
//! point, so a point damaged once is damaged at every later look, as stored data is.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use jiff::{SignedDuration, Timestamp};
use rand::RngExt;
use rand::rngs::StdRng;
use rollout_guard::analysis::duration::PromDuration;
use rollout_guard::analysis::source::{MetricSource, Series, SourceError, unix_seconds};
use rollout_guard::sim::simulate::History;

/// What goes wrong with the answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Points that are NaN (an exporter or a recording rule dividing 0 by 0).
    NanPoints,
    /// Points that are +Inf or −Inf (a ratio over a zero denominator).
    InfPoints,
    /// Negative increases (duplicated series of an HA pair deduplicated badly, `delta()` in a
    /// recording rule), on the error and request counts.
    NegativeIncreases,
    /// The old pods' errors answer is empty (a partial response: the store holding them is
    /// down, as Thanos or Mimir answer with a warning).
    OldErrorsEmpty,
    /// The old pods' errors answer lacks some of its series (the same, for part of them).
    OldErrorsPartial,
    /// The error points are not on the request points' times (a query frontend aligning the
    /// step its own way): computed 20 s earlier.
    Misaligned,
    /// Points missing with no warning (a store that lost a block, a remote read that gave up
    /// quietly): every point inside the episode of about half of the series of every answer,
    /// requests, errors and CPU of either side. Drawn only for a category of its own
    /// ([`Damage::lost_points`]).
    LostPoints,
}

const KINDS: [Kind; 6] = [
    Kind::NanPoints,
    Kind::InfPoints,
    Kind::NegativeIncreases,
    Kind::OldErrorsEmpty,
    Kind::OldErrorsPartial,
    Kind::Misaligned,
];

/// Share of points damaged inside an episode (NaN, ±Inf, negative).
const POINT_SHARE: f64 = 0.2;

/// How far the misaligned error points are from the request points, in seconds.
const SHIFT: f64 = 20.0;

/// One rollout's damage: its kind and episode, in seconds after the first new pod.
#[derive(Clone, Copy, Debug)]
pub struct Damage {
    pub kind: Kind,
    pub from: f64,
    pub seconds: f64,
    seed: u64,
}

impl Damage {
    /// The kinds in turn by seed (consecutive seeds give each kind as often), the episode at
    /// random.
    pub fn draw(rng: &mut StdRng, seed: u64) -> Damage {
        Damage {
            kind: KINDS[(seed % KINDS.len() as u64) as usize],
            from: rng.random_range(0.0..600.0),
            seconds: rng.random_range(120.0..600.0),
            seed,
        }
    }

    /// Points lost without a warning, the episode at random.
    pub fn lost_points(rng: &mut StdRng, seed: u64) -> Damage {
        Damage {
            kind: Kind::LostPoints,
            ..Damage::draw(rng, seed)
        }
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::NanPoints => "NaN points",
            Kind::InfPoints => "±Inf points",
            Kind::NegativeIncreases => "negative increases",
            Kind::OldErrorsEmpty => "old errors empty",
            Kind::OldErrorsPartial => "old errors partial",
            Kind::Misaligned => "misaligned error points",
            Kind::LostPoints => "points lost without a warning",
        }
    }
}

/// A source whose answers carry one rollout's damage.
pub struct Damaged<'a, S> {
    inner: &'a S,
    damage: Damage,
    old_replicaset: String,
    /// The episode, in unix seconds.
    episode: (f64, f64),
}

impl<'a, S: MetricSource> Damaged<'a, S> {
    pub fn new(inner: &'a S, damage: Damage, history: &History) -> Self {
        let r0 = history.scenario.rollout_start();
        let episode = match damage.kind {
            Kind::Misaligned => (f64::NEG_INFINITY, f64::INFINITY),
            _ => (r0 + damage.from, r0 + damage.from + damage.seconds),
        };
        Damaged {
            inner,
            damage,
            old_replicaset: history.old_replicaset.clone(),
            episode,
        }
    }

    fn during(&self, t: f64) -> bool {
        t >= self.episode.0 && t <= self.episode.1
    }

    /// A uniform number in [0, 1) from the seed and the parts.
    fn uniform(&self, parts: impl Hash) -> f64 {
        let mut h = DefaultHasher::new();
        (self.damage.seed, parts).hash(&mut h);
        (h.finish() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn is_errors(query: &str) -> bool {
        query.contains("php_errors_total")
    }

    fn is_old_errors(&self, query: &str) -> bool {
        Self::is_errors(query) && query.contains(&self.old_replicaset)
    }

    fn is_count(query: &str) -> bool {
        query.contains("increase(")
    }

    /// The answer as damaged, for a query evaluated up to `at`.
    fn damage(&self, query: &str, mut series: Vec<Series>, at: f64) -> Vec<Series> {
        match self.damage.kind {
            Kind::NanPoints | Kind::InfPoints => self.points(query, &mut series),
            Kind::NegativeIncreases if Self::is_count(query) => self.points(query, &mut series),
            Kind::OldErrorsEmpty if self.is_old_errors(query) && self.during(at) => series.clear(),
            Kind::OldErrorsPartial if self.is_old_errors(query) && self.during(at) => {
                self.partial(query, &mut series)
            }
            Kind::LostPoints => self.lose(query, &mut series),
            _ => {}
        }
        series
    }

    /// Replaces a share of the points inside the episode.
    fn points(&self, query: &str, series: &mut [Series]) {
        for s in series.iter_mut() {
            let name = s.name();
            for p in s.points.iter_mut().filter(|p| self.during(p.t)) {
                let u = self.uniform((query, &name, p.t.to_bits()));
                if u >= POINT_SHARE {
                    continue;
                }
                p.v = match self.damage.kind {
                    Kind::NanPoints => f64::NAN,
                    Kind::InfPoints if u < POINT_SHARE / 2.0 => f64::INFINITY,
                    Kind::InfPoints => f64::NEG_INFINITY,
                    _ => -p.v.max(1.0),
                };
            }
        }
    }

    /// Drops every point inside the episode of about half of the series.
    fn lose(&self, query: &str, series: &mut [Series]) {
        for s in series
            .iter_mut()
            .filter(|s| self.uniform((query, s.name(), "lost")) < 0.5)
        {
            s.points.retain(|p| !self.during(p.t));
        }
    }

    /// Drops about half of the series; a single summed series loses 20% to 70% of its value
    /// (the sum over the series that answered).
    fn partial(&self, query: &str, series: &mut Vec<Series>) {
        if series.len() == 1 && series[0].labels.is_empty() {
            let keep = 0.3 + 0.5 * self.uniform((query, "sum"));
            for p in &mut series[0].points {
                p.v *= keep;
            }
            return;
        }
        series.retain(|s| self.uniform((query, s.name())) >= 0.5);
    }
}

fn shifted(t: Timestamp) -> Timestamp {
    t - SignedDuration::from_secs_f64(SHIFT)
}

impl<S: MetricSource> MetricSource for Damaged<'_, S> {
    async fn instant(&self, query: &str, at: Timestamp) -> Result<Vec<Series>, SourceError> {
        if self.damage.kind == Kind::Misaligned && Self::is_errors(query) {
            return self.inner.instant(query, shifted(at)).await;
        }
        let answer = self.inner.instant(query, at).await?;
        Ok(self.damage(query, answer, unix_seconds(at)))
    }

    async fn range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: PromDuration,
    ) -> Result<Vec<Series>, SourceError> {
        if self.damage.kind == Kind::Misaligned && Self::is_errors(query) {
            return self
                .inner
                .range(query, shifted(start), shifted(end), step)
                .await;
        }
        let answer = self.inner.range(query, start, end, step).await?;
        Ok(self.damage(query, answer, unix_seconds(end)))
    }
}
