//! Error messages for people: an error and its causes on one line, each said once.
//!
//! Owns [`chain`], which the binary's edge (`cli`) and the adapters that keep a transport
//! error's causes (`prometheus`) use. Libraries often put their cause's text into their own
//! message as well as returning it as the source (kube's errors do, twice over), so printing
//! every link of the chain repeats the same cause.

/// `e` and its causes, joined with `: `, leaving out a cause whose text is already said.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Refused;

    /// As kube's errors do: the cause in the message and as the source.
    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect): {0}")]
    struct Client(#[source] Refused);

    /// Issue 14 (messages): the Kubernetes error said its cause three times.
    #[test]
    fn a_cause_already_said_is_not_repeated() {
        let e = anyhow::Error::new(Client(Refused)).context("connecting to Kubernetes");
        assert_eq!(
            format!("{e:#}"),
            "connecting to Kubernetes: client error (Connect): connection refused: connection refused"
        );
        assert_eq!(
            chain(e.as_ref()),
            "connecting to Kubernetes: client error (Connect): connection refused"
        );
    }
}
