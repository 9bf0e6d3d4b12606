//! Which ReplicaSets a past rollout of a Deployment replaced, told by their revision numbers,
//! for `backtest` to replay it without the user naming them.
//!
//! The Deployment controller numbers every template change `max + 1` in the
//! `deployment.kubernetes.io/revision` annotation of the ReplicaSet that runs it; a rollback
//! re-uses the older ReplicaSet, gives it the new number and keeps the numbers it had before in
//! `deployment.kubernetes.io/revision-history`. So revision N was rolled out by the ReplicaSet
//! holding N (now or in its history) and replaced the one holding N - 1; numbers are never
//! skipped, so a missing one means its ReplicaSet was deleted (`revisionHistoryLimit`).
//!
//! Owns reading those numbers ([`Revisioned`], [`history`]) and choosing a rollout from them
//! ([`choose`]): plain functions over plain data, no client, no I/O, no clock. Must not touch
//! the policy's [`crate::policy::rollout::RolloutView`] (that is [`super::view`]'s) nor decide
//! anything about the rollout it names.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::{REVISION, owned, revision_of};

/// The annotation in which a re-used ReplicaSet keeps the revisions it held before.
pub(crate) const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";

/// A ReplicaSet as far as its revisions go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Revisioned {
    /// Its name.
    pub name: String,
    /// The revision it holds now.
    pub revision: u64,
    /// The revisions it held before a rollback re-used it, oldest first.
    pub earlier: Vec<u64>,
    /// Its `creationTimestamp`.
    pub created: Option<Timestamp>,
}

impl Revisioned {
    /// Whether it rolled out revision `n`, now or before.
    pub(crate) fn holds(&self, n: u64) -> bool {
        self.revision == n || self.earlier.contains(&n)
    }

    /// The revision it was created for: its lowest.
    pub(crate) fn first(&self) -> u64 {
        self.earlier
            .iter()
            .copied()
            .chain([self.revision])
            .min()
            .unwrap_or(self.revision)
    }
}

/// Reads a ReplicaSet's revisions and creation time.
pub(crate) fn revisioned(rs: &ReplicaSet) -> Revisioned {
    let earlier = rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_HISTORY))
        .map(|h| h.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_default();
    Revisioned {
        name: rs.metadata.name.clone().unwrap_or_default(),
        revision: revision_of(&rs.metadata),
        earlier,
        created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
    }
}

/// The ReplicaSets the Deployment owns that carry a revision.
pub(crate) fn history(d: &Deployment, replicasets: &[ReplicaSet]) -> Vec<Revisioned> {
    // A ReplicaSet without the revision annotation reads as revision 0.
    owned(d, replicasets)
        .into_iter()
        .map(revisioned)
        .filter(|r| r.revision > 0)
        .collect()
}

/// One rollout: the revision it introduced, the ReplicaSet that ran it and the one it replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rollout {
    /// The revision it introduced.
    pub revision: u64,
    /// The ReplicaSet that ran it: it holds that revision now, or held it before a rollback.
    pub new: Revisioned,
    /// When it began, if its ReplicaSet tells.
    pub start: Start,
    /// What it replaced: the previous revision's ReplicaSet, or why there is none.
    pub before: Before,
}

/// When a rollout began, as far as its ReplicaSet tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// The new ReplicaSet was created for this revision, at this time.
    Created(Timestamp),
    /// A rollback re-used a ReplicaSet created for an earlier revision (`created_for`, when
    /// its history says which), so its creation time does not date this rollout.
    Reused {
        /// The revision the ReplicaSet was created for, when its history says.
        created_for: Option<u64>,
    },
    /// The ReplicaSet has no creation time.
    Unknown,
}

/// What the rollout replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Before {
    /// The ReplicaSet of the previous revision, `revision`.
    Found {
        /// The ReplicaSet that held it.
        replicaset: Revisioned,
        /// The previous revision: the highest below the rollout's that another ReplicaSet held.
        revision: u64,
    },
    /// The ReplicaSet of revision `revision`, the one replaced, is no longer in the API.
    Gone {
        /// The revision whose ReplicaSet was deleted.
        revision: u64,
    },
    /// The rollout introduced the Deployment's first revision: it replaced nothing.
    Nothing,
}

/// Why no rollout can be chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChoiceError {
    /// None of the Deployment's ReplicaSets carries a revision annotation.
    #[error("it has no ReplicaSet with a {REVISION} annotation")]
    NoRevisions,
    /// No ReplicaSet holds the revision asked for, now or in its history.
    #[error("no ReplicaSet of it holds revision {asked} (revisions there: {})", list(.known))]
    NoSuchRevision {
        /// The revision asked for.
        asked: u64,
        /// The revisions the ReplicaSets hold now or held before, ascending.
        known: Vec<u64>,
    },
}

fn list(revisions: &[u64]) -> String {
    let s: Vec<String> = revisions.iter().map(u64::to_string).collect();
    s.join(", ")
}

/// The rollout that introduced `revision`, or the latest one: the new ReplicaSet holds that
/// revision (now, or before a rollback re-used it for a later one); the old one holds the
/// revision before it.
pub(crate) fn choose(
    replicasets: &[Revisioned],
    revision: Option<u64>,
) -> Result<Rollout, ChoiceError> {
    let n = match revision {
        Some(n) => n,
        None => replicasets
            .iter()
            .map(|r| r.revision)
            .max()
            .ok_or(ChoiceError::NoRevisions)?,
    };
    // The one holding it now first, then one that held it before.
    let new = replicasets
        .iter()
        .filter(|r| r.revision == n)
        .chain(replicasets.iter().filter(|r| r.earlier.contains(&n)))
        .next()
        .ok_or_else(|| {
            let mut known: Vec<u64> = replicasets
                .iter()
                .flat_map(|r| r.earlier.iter().copied().chain([r.revision]))
                .collect();
            known.sort_unstable();
            known.dedup();
            ChoiceError::NoSuchRevision { asked: n, known }
        })?;
    let others = || replicasets.iter().filter(|r| r.name != new.name);
    // The highest revision below n that another ReplicaSet held, and which one.
    let previous = others()
        .flat_map(|r| {
            r.earlier
                .iter()
                .copied()
                .chain([r.revision])
                .filter(|&v| v < n)
                .map(move |v| (v, r))
        })
        .max_by(|(a, ra), (b, rb)| a.cmp(b).then(rb.name.cmp(&ra.name)));
    let floor = previous.map_or(0, |(v, _)| v);
    // Numbers between it and n that nobody holds: their ReplicaSets were deleted.
    let missing = (floor + 1..n).rev().find(|v| !new.holds(*v));
    let before = match (missing, previous) {
        (Some(revision), _) => Before::Gone { revision },
        (None, Some((revision, r))) => Before::Found {
            replicaset: r.clone(),
            revision,
        },
        (None, None) => Before::Nothing,
    };
    let start = match new.created {
        _ if new.first() < n => Start::Reused {
            created_for: Some(new.first()),
        },
        None => Start::Unknown,
        Some(created) => match &before {
            // Created before the ReplicaSet it replaced: re-used, though its history is lost.
            Before::Found { replicaset, .. } if replicaset.created.is_some_and(|c| c > created) => {
                Start::Reused { created_for: None }
            }
            _ => Start::Created(created),
        },
    };
    Ok(Rollout {
        revision: n,
        new: new.clone(),
        start,
        before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn rs(name: &str, revision: u64, earlier: &[u64], created: &str) -> Revisioned {
        Revisioned {
            name: name.into(),
            revision,
            earlier: earlier.to_vec(),
            created: Some(at(created)),
        }
    }

    fn found(r: &Rollout) -> (&str, u64) {
        match &r.before {
            Before::Found {
                replicaset,
                revision,
            } => (replicaset.name.as_str(), *revision),
            other => panic!("no old ReplicaSet found: {other:?}"),
        }
    }

    /// v1 (a), v2 (b), v3 (c), then a rollback to v1: `a` holds 4 now and 1 before.
    fn rolled_back() -> Vec<Revisioned> {
        vec![
            rs("shop-a", 4, &[1], "2026-11-20T10:00:00Z"),
            rs("shop-b", 2, &[], "2026-11-20T11:00:00Z"),
            rs("shop-c", 3, &[], "2026-11-20T12:00:00Z"),
        ]
    }

    #[test]
    fn the_latest_rollout_replaced_the_previous_revision() {
        let rss = vec![
            rs("shop-b", 2, &[], "2026-11-20T11:00:00Z"),
            rs("shop-c", 3, &[], "2026-11-20T12:00:00Z"),
            rs("shop-a", 1, &[], "2026-11-20T10:00:00Z"),
        ];
        let r = choose(&rss, None).unwrap();
        assert_eq!((r.revision, r.new.name.as_str()), (3, "shop-c"));
        assert_eq!(found(&r), ("shop-b", 2));
        assert_eq!(r.start, Start::Created(at("2026-11-20T12:00:00Z")));
    }

    #[test]
    fn a_rollback_is_the_latest_rollout_and_its_start_is_unknown() {
        let r = choose(&rolled_back(), None).unwrap();
        assert_eq!((r.revision, r.new.name.as_str()), (4, "shop-a"));
        assert_eq!(found(&r), ("shop-c", 3));
        assert_eq!(
            r.start,
            Start::Reused {
                created_for: Some(1)
            }
        );
    }

    #[test]
    fn a_revision_asked_for_replaced_the_one_before_it_even_in_a_revision_history() {
        let rss = rolled_back();
        let r = choose(&rss, Some(3)).unwrap();
        assert_eq!(r.new.name, "shop-c");
        assert_eq!(found(&r), ("shop-b", 2));
        assert_eq!(r.start, Start::Created(at("2026-11-20T12:00:00Z")));
        // Revision 2 replaced revision 1, which `a` held before the rollback gave it 4.
        let r = choose(&rss, Some(2)).unwrap();
        assert_eq!(r.new.name, "shop-b");
        assert_eq!(found(&r), ("shop-a", 1));
        assert_eq!(r.start, Start::Created(at("2026-11-20T11:00:00Z")));
        // Revision 1, asked by a number `a` no longer holds, was the first.
        let r = choose(&rss, Some(1)).unwrap();
        assert_eq!(
            (r.new.name.as_str(), &r.before),
            ("shop-a", &Before::Nothing)
        );
        assert_eq!(r.start, Start::Created(at("2026-11-20T10:00:00Z")));
    }

    #[test]
    fn an_unknown_revision_lists_those_there_are() {
        let err = choose(&rolled_back(), Some(7)).unwrap_err();
        assert_eq!(
            err,
            ChoiceError::NoSuchRevision {
                asked: 7,
                known: vec![1, 2, 3, 4]
            }
        );
        assert!(err.to_string().ends_with("(revisions there: 1, 2, 3, 4)"));
        assert_eq!(choose(&[], None), Err(ChoiceError::NoRevisions));
    }

    #[test]
    fn a_garbage_collected_old_replicaset_is_gone_not_replaced_by_an_older_one() {
        // revisionHistoryLimit removed revision 4's ReplicaSet; revision 3's is still there.
        let rss = vec![
            rs("shop-c", 3, &[], "2026-11-20T12:00:00Z"),
            rs("shop-e", 5, &[], "2026-11-20T14:00:00Z"),
        ];
        let r = choose(&rss, None).unwrap();
        assert_eq!(r.new.name, "shop-e");
        assert_eq!(r.before, Before::Gone { revision: 4 });
        assert_eq!(r.start, Start::Created(at("2026-11-20T14:00:00Z")));
        // revisionHistoryLimit: 0 leaves only the new one.
        let only = [rs("shop-e", 5, &[], "2026-11-20T14:00:00Z")];
        assert_eq!(
            choose(&only, None).unwrap().before,
            Before::Gone { revision: 4 }
        );
    }

    #[test]
    fn a_single_first_replicaset_replaced_nothing() {
        let only = [rs("shop-a", 1, &[], "2026-11-20T10:00:00Z")];
        let r = choose(&only, None).unwrap();
        assert_eq!(r.new.name, "shop-a");
        assert_eq!(r.before, Before::Nothing);
        assert_eq!(r.start, Start::Created(at("2026-11-20T10:00:00Z")));
    }

    #[test]
    fn a_reused_replicaset_without_its_history_is_told_by_its_age() {
        // The rollback's re-used `a` lost its revision-history annotation.
        let rss = vec![
            rs("shop-a", 3, &[], "2026-11-20T10:00:00Z"),
            rs("shop-b", 2, &[], "2026-11-20T11:00:00Z"),
        ];
        let r = choose(&rss, None).unwrap();
        assert_eq!(found(&r), ("shop-b", 2));
        assert_eq!(r.start, Start::Reused { created_for: None });
        let mut unknown = rss.clone();
        unknown[0].created = None;
        unknown[0].earlier = Vec::new();
        assert_eq!(choose(&unknown, None).unwrap().start, Start::Unknown);
    }

    #[test]
    fn revisions_are_read_from_both_annotations_and_unowned_ones_are_left_out() {
        let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "shop-a", "namespace": "web",
                "creationTimestamp": "2026-11-20T10:00:00Z",
                "annotations": {REVISION: "6", REVISION_HISTORY: "1,4,x"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop",
                                     "uid": "uid-shop", "controller": true}]
            }
        }))
        .unwrap();
        assert_eq!(
            revisioned(&rs),
            Revisioned {
                name: "shop-a".into(),
                revision: 6,
                earlier: vec![1, 4],
                created: Some(at("2026-11-20T10:00:00Z")),
            }
        );
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "shop", "namespace": "web", "uid": "uid-shop"}
        }))
        .unwrap();
        let mut stranger = rs.clone();
        stranger.metadata.owner_references = None;
        stranger.metadata.name = Some("other".into());
        let mut unnumbered = rs.clone();
        unnumbered.metadata.annotations = None;
        let h = history(&d, &[rs, stranger, unnumbered]);
        assert_eq!(
            h.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["shop-a"]
        );
    }
}
