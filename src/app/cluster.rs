//! How the commands reach the Kubernetes API: a kubeconfig file and context given on the
//! command line, else `$KUBECONFIG` or `~/.kube/config`, else the pod's service account (in a
//! cluster). Shared by `run`, `status`, `check` and `backtest`, so that `--kubeconfig` and
//! `--context` mean the same everywhere. Owns building the client only.

use std::path::Path;

use anyhow::{Context, Result};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A client from the kubeconfig (a file, a context) or the environment, and its default
/// namespace.
pub(crate) async fn client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<(Client, String)> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options).await?,
        (None, None) => kube::Config::infer().await.context(
            "no kubeconfig found (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a cluster",
        )?,
    };
    let ns = config.default_namespace.clone();
    Ok((Client::try_from(config)?, ns))
}
