//! The rolling update's timetable: when each new pod starts and each old pod goes.
//!
//! Owns the stepping of a `RollingUpdate` as the Deployment controller does it: at every moment
//! it scales the new ReplicaSet up as far as `maxSurge` allows (never past the replicas) and the
//! old one down as far as `maxUnavailable` allows (counting ready pods only), repeating until
//! nothing changes; a new pod is ready `pod_interval` seconds after it starts. A canary gate
//! holds the rollout once its first pods are ready. With maxSurge 1 and maxUnavailable 0 this
//! is the one-pod-at-a-time rollout the simulation always had: new pod `i` starts at
//! `i × pod_interval` and old pod `i` goes when new pod `i + 1` starts.

use super::Scenario;

/// When each pod of a scenario starts or goes, in unix seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Timetable {
    /// Start of each new pod, in order.
    pub new_starts: Vec<f64>,
    /// When each old pod is deleted, in order (old pod `i` is the `i`-th to go).
    pub old_ends: Vec<f64>,
    /// When the gate's hold ends; the rollout start without a gate.
    pub gate_end: f64,
}

impl Timetable {
    /// When the last old pod is gone.
    pub fn rollout_end(&self) -> f64 {
        self.old_ends
            .iter()
            .chain(&self.new_starts)
            .copied()
            .fold(self.gate_end, f64::max)
    }
}

/// The rollout's state while it is stepped.
struct Stepper {
    replicas: usize,
    surge: usize,
    unavailable: usize,
    ready_after: f64,
    old: usize,
    table: Timetable,
}

impl Stepper {
    fn ready(&self, t: f64) -> usize {
        self.table
            .new_starts
            .iter()
            .filter(|&&s| s + self.ready_after <= t + 1e-9)
            .count()
    }

    /// One round of the Deployment controller at `t`: scale up, then down; true if anything
    /// changed. `cap` bounds the new pods (a gate's canary before its hold).
    fn sync(&mut self, t: f64, cap: usize) -> bool {
        let started = self.table.new_starts.len();
        let total = self.old + started;
        let up = (self.replicas + self.surge)
            .saturating_sub(total)
            .min(self.replicas - started)
            .min(cap.saturating_sub(started));
        self.table.new_starts.extend(std::iter::repeat_n(t, up));
        let available = self.old + self.ready(t);
        let min_available = self.replicas - self.unavailable;
        let down = available.saturating_sub(min_available).min(self.old);
        self.table.old_ends.extend(std::iter::repeat_n(t, down));
        self.old -= down;
        up + down > 0
    }

    /// The next moment something can change after `t`: a new pod becoming ready.
    fn next_ready(&self, t: f64) -> Option<f64> {
        self.table
            .new_starts
            .iter()
            .map(|s| s + self.ready_after)
            .filter(|&r| r > t + 1e-9)
            .min_by(f64::total_cmp)
    }

    fn done(&self) -> bool {
        self.old == 0 && self.table.new_starts.len() == self.replicas
    }
}

/// Steps the scenario's rollout from its start to the last old pod's deletion.
pub(super) fn timetable(s: &Scenario) -> Timetable {
    let start = s.rollout_start();
    let replicas = s.replicas;
    let mut st = Stepper {
        replicas,
        // Kubernetes refuses maxSurge and maxUnavailable both 0.
        surge: s.max_surge.max(usize::from(s.max_unavailable == 0)),
        unavailable: s.max_unavailable.min(replicas),
        ready_after: s.pod_interval,
        old: replicas,
        table: Timetable {
            new_starts: Vec::with_capacity(replicas),
            old_ends: Vec::with_capacity(replicas),
            gate_end: start,
        },
    };
    let gate = s
        .gate
        .map(|g| (g.pods.clamp(1, replicas.max(1)), g.seconds));
    let mut hold: Option<f64> = None;
    let mut t = start;
    while !st.done() {
        if let Some((pods, seconds)) = gate
            && hold.is_none()
            && st.ready(t) >= pods
        {
            hold = Some(t + seconds);
            st.table.gate_end = t + seconds;
        }
        let held = hold.is_some_and(|h| t < h - 1e-9);
        if !held {
            let cap = match (gate, hold) {
                (Some((pods, _)), None) => pods,
                _ => replicas,
            };
            while st.sync(t, cap) {}
        }
        if st.done() {
            break;
        }
        t = match hold.filter(|_| held) {
            Some(h) => h,
            None => match st.next_ready(t) {
                Some(next) => next,
                None => break,
            },
        };
    }
    st.table
}

#[cfg(test)]
mod tests {
    use super::super::Gate;
    use super::*;

    fn scenario(replicas: usize, surge: usize, unavailable: usize) -> Scenario {
        let mut s = Scenario::healthy("t", 1);
        s.replicas = replicas;
        s.max_surge = surge;
        s.max_unavailable = unavailable;
        s.pod_interval = 60.0;
        s
    }

    fn rel(s: &Scenario, v: &[f64]) -> Vec<f64> {
        v.iter().map(|t| t - s.rollout_start()).collect()
    }

    #[test]
    fn one_at_a_time_is_the_simulation_as_it_was() {
        let s = scenario(4, 1, 0);
        let t = timetable(&s);
        assert_eq!(rel(&s, &t.new_starts), [0.0, 60.0, 120.0, 180.0]);
        assert_eq!(rel(&s, &t.old_ends), [60.0, 120.0, 180.0, 240.0]);
        assert_eq!(t.rollout_end() - s.rollout_start(), 240.0);
        assert_eq!(t.gate_end, s.rollout_start());
    }

    #[test]
    fn a_gate_holds_after_its_canaries_are_ready() {
        let mut s = scenario(4, 1, 0);
        s.gate = Some(Gate {
            pods: 2,
            seconds: 600.0,
        });
        let t = timetable(&s);
        assert_eq!(rel(&s, &t.new_starts), [0.0, 60.0, 720.0, 780.0]);
        assert_eq!(rel(&s, &t.old_ends), [60.0, 720.0, 780.0, 840.0]);
        assert_eq!(t.gate_end - s.rollout_start(), 720.0);
    }

    #[test]
    fn quarter_batches_step_as_the_deployment_controller() {
        // 11 replicas, maxSurge 25% = 3, maxUnavailable 25% = 2: three new pods and two old
        // ones gone at once, then as the new pods get ready.
        let s = scenario(11, 3, 2);
        let t = timetable(&s);
        assert_eq!(t.new_starts.len(), 11);
        assert_eq!(t.old_ends.len(), 11);
        let r = rel(&s, &t.new_starts);
        assert_eq!(r.iter().filter(|&&x| x == 0.0).count(), 5);
        let gone: Vec<f64> = rel(&s, &t.old_ends);
        assert_eq!(gone.iter().filter(|&&x| x == 0.0).count(), 2);
        assert!(t.rollout_end() - s.rollout_start() <= 180.0, "{t:?}");
        // Never fewer than 9 ready pods, never more than 14 pods.
        for k in 0..=4 {
            let at = s.rollout_start() + 60.0 * k as f64;
            let old = 11 - t.old_ends.iter().filter(|&&e| e <= at).count();
            let new = t.new_starts.iter().filter(|&&x| x <= at).count();
            let ready = t.new_starts.iter().filter(|&&x| x + 60.0 <= at).count();
            assert!(
                old + ready >= 9 && old + new <= 14,
                "at {k}: {old} {new} {ready}"
            );
        }
    }
}
