//! Notifications: what the controller says in Events (rolled back, paused, held, passed,
//! inconclusive, a rollback not taking), also posted to webhooks, generic JSON or
//! Slack-compatible, chosen per kind.
//!
//! Owns the `notify` configuration, the payloads (pure: [`Notice::body`]) and their delivery:
//! a bounded queue and one task that posts, retries with backoff and gives up, so that a slow
//! or absent receiver never slows the controller (a full queue drops the notice and says so in
//! the log). A webhook's URL is read from a file (a mounted Secret) and never logged. Must not
//! decide what happened: the controller hands it the notes its plan made.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::analysis::duration::PromDuration;
use crate::policy::guard::EventReason;

/// The kinds of notice a webhook can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The controller rolled a release back.
    RolledBack,
    /// The controller paused a rollout on a failing rule.
    Paused,
    /// A revision rolled back before was deployed again and is held paused.
    Held,
    /// An analysis ended with no action and every rule judged.
    Passed,
    /// An analysis (or a gate step) could not judge some rules: they never had the data; or,
    /// at its start, some rules cannot be evaluated (`RulesCannotEvaluate`).
    Inconclusive,
    /// The revision rolled back to did not come back in time.
    RollbackNotTaking,
}

impl NoticeKind {
    /// Every kind, the default of a webhook's `on`.
    pub const ALL: [NoticeKind; 6] = [
        NoticeKind::RolledBack,
        NoticeKind::Paused,
        NoticeKind::Held,
        NoticeKind::Passed,
        NoticeKind::Inconclusive,
        NoticeKind::RollbackNotTaking,
    ];

    /// The kind of notice an Event's reason makes, if any (most Events are only Events).
    pub fn of(reason: EventReason) -> Option<NoticeKind> {
        Some(match reason {
            EventReason::RolledBack => NoticeKind::RolledBack,
            EventReason::RolloutPaused => NoticeKind::Paused,
            EventReason::KnownBadRevision => NoticeKind::Held,
            EventReason::AnalysisPassed => NoticeKind::Passed,
            EventReason::AnalysisInconclusive
            | EventReason::GateInconclusive
            | EventReason::RulesCannotEvaluate => NoticeKind::Inconclusive,
            EventReason::RollbackNotTaking | EventReason::RollbackImpossible => {
                NoticeKind::RollbackNotTaking
            }
            _ => return None,
        })
    }

    /// Its name in the configuration and in payloads, in snake_case (`rolled_back`).
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::RolledBack => "rolled_back",
            NoticeKind::Paused => "paused",
            NoticeKind::Held => "held",
            NoticeKind::Passed => "passed",
            NoticeKind::Inconclusive => "inconclusive",
            NoticeKind::RollbackNotTaking => "rollback_not_taking",
        }
    }
}

/// How a webhook wants its body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The notice's fields as one JSON object.
    #[default]
    Json,
    /// `{"text": ...}`, as Slack's (and Mattermost's, Rocket.Chat's) incoming webhooks take it.
    Slack,
}

/// One receiver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Names the webhook in the log (its URL never appears there).
    pub name: String,
    /// A file holding the URL (a mounted Secret): read at start-up.
    pub url_file: PathBuf,
    /// How it wants its body.
    #[serde(default)]
    pub format: Format,
    /// The kinds it is sent; all when left out.
    #[serde(default = "all_kinds")]
    pub on: Vec<NoticeKind>,
}

fn all_kinds() -> Vec<NoticeKind> {
    NoticeKind::ALL.to_vec()
}

/// The `notify` section of the configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// The receivers, each with the kinds it is sent.
    pub webhooks: Vec<Webhook>,
    /// How long one post may take.
    pub timeout: PromDuration,
    /// Posts per notice before it is given up (the first included); waits of 1 s, 2 s, 4 s, …
    /// between them.
    pub attempts: u32,
    /// Notices waiting to be posted, at most; a notice beyond is dropped (and logged).
    pub queue: usize,
    /// The decision-record file, named in each notice's `report` command (the daemon fills it
    /// from `records.path`).
    #[serde(skip)]
    pub records: Option<PathBuf>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            webhooks: Vec::new(),
            timeout: PromDuration::from_secs(5),
            attempts: 4,
            queue: 256,
            records: None,
        }
    }
}

impl NotifyConfig {
    /// What is wrong with it, each problem named by its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(1..=10).contains(&self.attempts) {
            out.push(format!("notify.attempts: 1 to 10, got {}", self.attempts));
        }
        if !(1..=10_000).contains(&self.queue) {
            out.push(format!("notify.queue: 1 to 10000, got {}", self.queue));
        }
        let timeout = self.timeout.as_secs();
        if !(1..=60).contains(&timeout) {
            out.push(format!("notify.timeout: 1s to 60s, got {}", self.timeout));
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if w.name.trim().is_empty() {
                out.push(format!("notify.webhooks[{i}].name: must not be empty"));
            }
            if self.webhooks[..i].iter().any(|o| o.name == w.name) {
                out.push(format!(
                    "notify.webhooks[{i}].name: {:?} is used twice",
                    w.name
                ));
            }
            if w.on.is_empty() {
                out.push(format!(
                    "notify.webhooks[{i}].on: empty; leave it out for every kind"
                ));
            }
        }
        out
    }
}

/// Why the notifier cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A webhook's `url_file` cannot be read.
    #[error("notify.webhooks {name}: cannot read url_file {path}: {source}")]
    UrlFile {
        /// The webhook's name.
        name: String,
        /// Its `url_file`.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// A webhook's `url_file` does not hold an http(s) URL.
    #[error("notify.webhooks {name}: url_file {path} does not hold an http(s) URL")]
    NotAUrl {
        /// The webhook's name.
        name: String,
        /// Its `url_file`.
        path: PathBuf,
    },
    /// The HTTP client cannot be built.
    #[error("notify: cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Something worth telling people: an Event of the controller's, with where it happened.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// What kind of notice it is, from the Event's reason.
    pub kind: NoticeKind,
    /// The Event's reason.
    pub reason: EventReason,
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// The new ReplicaSet's revision, when there is one.
    pub revision: Option<u64>,
    /// When the controller made the Event.
    pub at: Timestamp,
    /// The Event's message.
    pub message: String,
}

impl Notice {
    /// One line for a chat: what happened to which Deployment, and why.
    pub fn summary(&self) -> String {
        let what = match self.kind {
            NoticeKind::RolledBack => "rolled back",
            NoticeKind::Paused => "paused",
            NoticeKind::Held => "held paused (a revision rolled back before)",
            NoticeKind::Passed => "passed its analysis",
            NoticeKind::Inconclusive => "could not be judged by every rule",
            NoticeKind::RollbackNotTaking => "rollback not taking",
        };
        let revision = self
            .revision
            .map_or(String::new(), |r| format!(" revision {r}"));
        format!(
            "{}/{}{revision} {what}: {}",
            self.namespace, self.deployment, self.message
        )
    }

    /// The command that writes the post-incident report of this revision.
    pub fn report_command(&self, records: &Path) -> String {
        let mut cmd = format!(
            "rollout-guard report --records {} --namespace {} --deployment {}",
            records.display(),
            self.namespace,
            self.deployment
        );
        if let Some(r) = self.revision {
            cmd.push_str(&format!(" --revision {r}"));
        }
        cmd
    }

    /// The body posted to a webhook of `format`.
    pub fn body(&self, format: Format, records: Option<&Path>) -> Value {
        let report = records.map(|p| self.report_command(p));
        match format {
            Format::Json => json!({
                "kind": self.kind.as_str(),
                "reason": self.reason.as_str(),
                "namespace": self.namespace,
                "deployment": self.deployment,
                "revision": self.revision,
                "at": self.at.to_string(),
                "summary": self.summary(),
                "message": self.message,
                "report": report,
            }),
            Format::Slack => {
                let mut text = self.summary();
                if let Some(r) = report {
                    text.push_str(&format!("\nReport: `{r}`"));
                }
                json!({ "text": text })
            }
        }
    }
}

/// A webhook ready to post to.
struct Target {
    name: String,
    url: reqwest::Url,
    format: Format,
    on: Vec<NoticeKind>,
}

/// Hands notices to the delivery task; cheap to clone, never waits.
#[derive(Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    targets: Vec<Arc<Target>>,
    tx: mpsc::Sender<(Arc<Target>, Notice)>,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn none() -> Notifier {
        Notifier::default()
    }

    /// Reads every webhook's URL and starts the delivery task (on the current Tokio runtime);
    /// nothing to start without webhooks.
    pub fn start(config: &NotifyConfig) -> Result<Notifier, NotifyError> {
        if config.webhooks.is_empty() {
            return Ok(Notifier::none());
        }
        let targets = config
            .webhooks
            .iter()
            .map(|w| target(w).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout.as_secs().max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        tokio::spawn(deliver(
            client,
            rx,
            config.attempts.max(1),
            config.records.clone(),
        ));
        Ok(Notifier {
            inner: Some(Arc::new(Inner { targets, tx })),
        })
    }

    /// Queues `notice` for every webhook that asked for its kind; drops it (and says so) for
    /// one whose queue is full.
    pub fn notify(&self, notice: &Notice) {
        let Some(inner) = &self.inner else { return };
        for t in inner.targets.iter().filter(|t| t.on.contains(&notice.kind)) {
            if let Err(e) = inner.tx.try_send((t.clone(), notice.clone())) {
                tracing::warn!(webhook = %t.name, kind = notice.kind.as_str(), error = %e, "notification dropped");
            }
        }
    }
}

fn target(w: &Webhook) -> Result<Target, NotifyError> {
    let text = std::fs::read_to_string(&w.url_file).map_err(|source| NotifyError::UrlFile {
        name: w.name.clone(),
        path: w.url_file.clone(),
        source,
    })?;
    let url = reqwest::Url::parse(text.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| NotifyError::NotAUrl {
            name: w.name.clone(),
            path: w.url_file.clone(),
        })?;
    Ok(Target {
        name: w.name.clone(),
        url,
        format: w.format,
        on: w.on.clone(),
    })
}

/// Posts each queued notice, in order, until the notifier is dropped.
async fn deliver(
    client: reqwest::Client,
    mut rx: mpsc::Receiver<(Arc<Target>, Notice)>,
    attempts: u32,
    records: Option<PathBuf>,
) {
    while let Some((target, notice)) = rx.recv().await {
        let body = notice.body(target.format, records.as_deref());
        post(&client, &target, &body, attempts, notice.kind).await;
    }
}

/// What one post came to.
enum Posted {
    Sent,
    /// Worth another try: no answer, a timeout, 429 or 5xx.
    Retry(String),
    /// Another try would fare no better: a 4xx other than 429.
    Refused(String),
}

async fn post_once(client: &reqwest::Client, target: &Target, body: &Value) -> Posted {
    match client.post(target.url.clone()).json(body).send().await {
        Ok(r) if r.status().is_success() => Posted::Sent,
        Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
            Posted::Retry(format!("HTTP {}", r.status()))
        }
        Ok(r) => Posted::Refused(format!("HTTP {}", r.status())),
        // The error's text may hold the URL: say only what kind of failure it was.
        Err(e) if e.is_timeout() => Posted::Retry("timed out".into()),
        Err(e) if e.is_connect() => Posted::Retry("cannot connect".into()),
        Err(_) => Posted::Retry("the request failed".into()),
    }
}

/// Posts with up to `attempts` tries, waiting 1 s, 2 s, 4 s, … (at most 30 s) between them.
async fn post(
    client: &reqwest::Client,
    target: &Target,
    body: &Value,
    attempts: u32,
    kind: NoticeKind,
) {
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=attempts {
        match post_once(client, target, body).await {
            Posted::Sent => {
                tracing::info!(webhook = %target.name, kind = kind.as_str(), attempt, "notification sent");
                return;
            }
            Posted::Refused(why) => {
                tracing::warn!(webhook = %target.name, kind = kind.as_str(), %why, "notification refused by the receiver; not retried");
                return;
            }
            Posted::Retry(why) if attempt == attempts => {
                tracing::warn!(webhook = %target.name, kind = kind.as_str(), %why, attempts, "notification given up");
            }
            Posted::Retry(why) => {
                tracing::debug!(webhook = %target.name, kind = kind.as_str(), %why, attempt, "notification failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests;
