//! `rollout-guard check`: reads a Deployment and its ReplicaSets (read only), and asks
//! [`crate::analysis::preflight`] whether each rule it would be analysed with can be evaluated
//! for the pods that serve now; prints one line per rule and exits 0 (all can), 1 (some cannot)
//! or 2 (usage or connection error).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use kube::ResourceExt;

use super::CheckArgs;
use super::status::{block_on, client, deployment};
use crate::adapters::prometheus::PrometheusSource;
use crate::analysis::preflight::{self, Subject};
use crate::analysis::rules::RuleSet;
use crate::policy::annotations;
use crate::policy::guard::Settings;

pub(super) fn run(args: &CheckArgs) -> Result<ExitCode> {
    let rules = RuleSet::load_or_defaults(&args.rules).map_err(|e| anyhow!("{e}"))?;
    let source =
        PrometheusSource::new(&args.prometheus.config()).context("invalid Prometheus settings")?;
    block_on(async {
        let (client, default_ns) =
            client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
        let ns = args.namespace.clone().unwrap_or(default_ns);
        let name = &args.deployment;
        let (d, view) = deployment(&client, &ns, name).await?;
        let serving = view
            .new
            .as_ref()
            .filter(|g| g.pods > 0)
            .or_else(|| view.old_with_pods().next())
            .ok_or_else(|| anyhow!("{ns}/{name} has no pods to check the rules against"))?;
        let resolved =
            annotations::resolve(d.annotations(), &Settings::default(), &Arc::new(rules));
        let subject = Subject {
            namespace: ns.clone(),
            deployment: name.clone(),
            replicaset: serving.name.clone(),
        };
        let checks =
            preflight::check(&resolved.rules, &subject, jiff::Timestamp::now(), &source).await;
        for p in &resolved.problems {
            println!("annotation: {p}");
        }
        for c in &checks {
            println!("{}", c.describe(&subject));
        }
        let blocked = checks.iter().filter(|c| c.readiness.blocks()).count();
        if blocked == 0 {
            println!(
                "{ns}/{name}: all {} rule(s) can be evaluated for {}",
                checks.len(),
                subject.replicaset
            );
            Ok(ExitCode::SUCCESS)
        } else {
            println!(
                "{ns}/{name}: {blocked} of {} rule(s) will stay inconclusive",
                checks.len()
            );
            Ok(ExitCode::from(1))
        }
    })
}
