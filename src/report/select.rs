//! Which records a report is about: one Deployment (in one namespace) and one revision of it,
//! and, when the selection finds nothing, what the file does hold.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;

use crate::policy::guard::StageName;
use crate::records::{Kind, Record};

/// What to report on; `None` picks the only one there is, or the default revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only this namespace; needed when a Deployment's name is in several.
    pub namespace: Option<String>,
    /// The Deployment's name; may be left out when the records hold only one.
    pub deployment: Option<String>,
    /// The new ReplicaSet's revision; default: the latest revision that had an action (taken
    /// or only recorded), else the latest analysed, else the latest seen.
    pub revision: Option<u64>,
}

/// Why nothing could be selected; every variant lists what the file holds.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// The file holds no records at all.
    #[error("the file holds no decision records")]
    Empty,
    /// No records of the Deployment asked for.
    #[error("no records of Deployment {wanted}; the file holds:\n{inventory}")]
    NoDeployment {
        /// The Deployment asked for, as `namespace/name`, `name` or `in namespace ns`.
        wanted: String,
        /// What the file holds.
        inventory: Inventory,
    },
    /// Several Deployments match and none was chosen.
    #[error(
        "the file holds records of {} Deployments; choose one with --deployment (and --namespace when a name is in several namespaces):\n{inventory}",
        inventory.0.len()
    )]
    Ambiguous {
        /// What the file holds.
        inventory: Inventory,
    },
    /// The Deployment has records, but none of the revision asked for.
    #[error(
        "no records of revision {revision} of {namespace}/{deployment}; the file holds:\n{inventory}"
    )]
    NoRevision {
        /// The Deployment's namespace.
        namespace: String,
        /// The Deployment's name.
        deployment: String,
        /// The revision asked for.
        revision: u64,
        /// What the file holds.
        inventory: Inventory,
    },
    /// The Deployment's records name no revision: no new ReplicaSet was seen.
    #[error(
        "the records of {namespace}/{deployment} name no revision (no new ReplicaSet was seen); the file holds:\n{inventory}"
    )]
    NoRevisions {
        /// The Deployment's namespace.
        namespace: String,
        /// The Deployment's name.
        deployment: String,
        /// What the file holds.
        inventory: Inventory,
    },
}

/// What a record file holds: Deployments and their revisions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory(pub Vec<DeploymentInfo>);

/// One Deployment's records, by revision.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentInfo {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub deployment: String,
    /// Its revisions with records, in ascending order.
    pub revisions: Vec<RevisionInfo>,
}

/// One revision's records, in a line.
#[derive(Clone, Debug, PartialEq)]
pub struct RevisionInfo {
    /// The revision (the new ReplicaSet's `deployment.kubernetes.io/revision`).
    pub revision: u64,
    /// The new ReplicaSet's name, as the first of its records names it.
    pub new_replicaset: Option<String>,
    /// The time of its first record.
    pub first: Timestamp,
    /// The time of its last record.
    pub last: Timestamp,
    /// Records with verdicts.
    pub evaluations: usize,
    /// Actions asked for or only recorded, by name (`rollback`, `pause`, `resume`).
    pub actions: Vec<String>,
    /// When the latest of them was decided.
    pub last_action: Option<Timestamp>,
}

impl Inventory {
    /// Groups the records by Deployment (namespace, name) and revision.
    pub fn of(records: &[Record]) -> Inventory {
        let mut by: BTreeMap<(&str, &str), BTreeMap<u64, RevisionInfo>> = BTreeMap::new();
        for r in records {
            let revisions = by
                .entry((r.namespace.as_str(), r.deployment.as_str()))
                .or_default();
            let Some(revision) = r.revision else { continue };
            let info = revisions.entry(revision).or_insert_with(|| RevisionInfo {
                revision,
                new_replicaset: r.new_replicaset.clone(),
                first: r.at,
                last: r.at,
                evaluations: 0,
                actions: Vec::new(),
                last_action: None,
            });
            info.first = info.first.min(r.at);
            info.last = info.last.max(r.at);
            if r.kind == Kind::Evaluation {
                if !r.verdicts.is_empty() {
                    info.evaluations += 1;
                }
                for a in r.acts.iter().chain(&r.suppressed) {
                    if !info.actions.iter().any(|n| n == a.name()) {
                        info.actions.push(a.name().to_string());
                    }
                    info.last_action = info.last_action.max(Some(r.at));
                }
            }
        }
        Inventory(
            by.into_iter()
                .map(|((namespace, deployment), revisions)| DeploymentInfo {
                    namespace: namespace.to_string(),
                    deployment: deployment.to_string(),
                    revisions: revisions.into_values().collect(),
                })
                .collect(),
        )
    }
}

impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            write!(f, "  {}/{}:", d.namespace, d.deployment)?;
            if d.revisions.is_empty() {
                write!(f, " no revision")?;
            }
            for (i, r) in d.revisions.iter().enumerate() {
                let sep = if i == 0 { " " } else { "; " };
                write!(f, "{sep}revision {}", r.revision)?;
                let mut what = vec![plural(r.evaluations, "evaluation")];
                if !r.actions.is_empty() {
                    what.push(r.actions.join(", "));
                }
                write!(f, " ({}", what.join(", "))?;
                write!(f, ", {} to {})", super::hms(r.first), super::hms(r.last))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

pub(crate) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The records of the selected revision.
#[derive(Clone, Debug)]
pub(super) struct Selected<'a> {
    pub namespace: String,
    pub deployment: String,
    pub revision: u64,
    /// The revision's own records, in time order.
    pub records: Vec<&'a Record>,
    /// What happened after a rollback of it, recorded against the ReplicaSet it went back to
    /// (`RollbackComplete`, `RollbackNotTaking`): the records that carry those Events.
    pub aftermath: Vec<&'a Record>,
    /// The Deployment's other revisions in the file.
    pub others: Vec<RevisionInfo>,
}

/// Picks the Deployment and the revision.
pub(super) fn select<'a>(
    records: &'a [Record],
    sel: &Selection,
) -> Result<Selected<'a>, SelectError> {
    if records.is_empty() {
        return Err(SelectError::Empty);
    }
    let inventory = Inventory::of(records);
    let candidates: Vec<&DeploymentInfo> = inventory
        .0
        .iter()
        .filter(|d| sel.deployment.as_ref().is_none_or(|n| *n == d.deployment))
        .filter(|d| sel.namespace.as_ref().is_none_or(|n| *n == d.namespace))
        .collect();
    let dep = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] => {
            let wanted = match (&sel.namespace, &sel.deployment) {
                (Some(ns), Some(d)) => format!("{ns}/{d}"),
                (None, Some(d)) => d.clone(),
                (Some(ns), None) => format!("in namespace {ns}"),
                (None, None) => String::new(),
            };
            return Err(SelectError::NoDeployment { wanted, inventory });
        }
        _ => return Err(SelectError::Ambiguous { inventory }),
    };
    let revision = match sel.revision {
        Some(n) if dep.revisions.iter().any(|r| r.revision == n) => n,
        Some(n) => {
            return Err(SelectError::NoRevision {
                namespace: dep.namespace,
                deployment: dep.deployment,
                revision: n,
                inventory,
            });
        }
        None => match default_revision(&dep.revisions) {
            Some(n) => n,
            None => {
                return Err(SelectError::NoRevisions {
                    namespace: dep.namespace,
                    deployment: dep.deployment,
                    inventory,
                });
            }
        },
    };
    let of_dep = |r: &&Record| r.namespace == dep.namespace && r.deployment == dep.deployment;
    let mut own: Vec<&Record> = records
        .iter()
        .filter(of_dep)
        .filter(|r| r.revision == Some(revision))
        .collect();
    own.sort_by_key(|r| r.at);
    let aftermath = aftermath(records.iter().filter(of_dep), &own);
    Ok(Selected {
        others: dep
            .revisions
            .iter()
            .filter(|r| r.revision != revision)
            .cloned()
            .collect(),
        namespace: dep.namespace,
        deployment: dep.deployment,
        revision,
        records: own,
        aftermath,
    })
}

/// The latest revision that had an action, else the latest analysed, else the latest seen.
fn default_revision(revisions: &[RevisionInfo]) -> Option<u64> {
    let latest = |it: &mut dyn Iterator<Item = &RevisionInfo>| {
        it.max_by_key(|r| (r.last_action.unwrap_or(r.last), r.revision))
            .map(|r| r.revision)
    };
    latest(&mut revisions.iter().filter(|r| r.last_action.is_some()))
        .or_else(|| latest(&mut revisions.iter().filter(|r| r.evaluations > 0)))
        .or_else(|| latest(&mut revisions.iter()))
}

/// Notes recorded after a rollback of the selected revision against the ReplicaSet it went
/// back to (the rollback renumbers that ReplicaSet, so they carry another revision).
fn aftermath<'a>(deployment: impl Iterator<Item = &'a Record>, own: &[&Record]) -> Vec<&'a Record> {
    let targets: Vec<String> = own
        .iter()
        .flat_map(|r| &r.acts)
        .filter_map(|a| match a {
            crate::policy::guard::Act::Rollback { to_hash, .. } => Some(format!("-{to_hash}")),
            _ => None,
        })
        .collect();
    let Some(since) = own
        .iter()
        .filter(|r| !r.acts.is_empty())
        .map(|r| r.at)
        .min()
    else {
        return Vec::new();
    };
    let mut out: Vec<&Record> = deployment
        .filter(|r| r.at >= since && !r.notes.is_empty())
        .filter(|r| r.stage == Some(StageName::RolledBack))
        .filter(|r| r.revision != own.first().and_then(|o| o.revision))
        .filter(|r| {
            r.new_replicaset
                .as_ref()
                .is_some_and(|rs| targets.iter().any(|t| rs.ends_with(t.as_str())))
        })
        .collect();
    out.sort_by_key(|r| r.at);
    out
}
