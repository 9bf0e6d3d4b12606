//! The errors the fake API server answers with, as real `metav1.Status` objects.
//!
//! Owns [`ApiError`] (code, reason, message, details) and its JSON form. Every module that can
//! refuse a request returns one, so the kube client sees the same `kube::Error::Api` (same code
//! and reason) that a real API server would give it. It does not decide when to refuse.

use serde_json::{Value, json};

use super::resources::FakeResource;

/// A refused request: rendered as a `Status` with `status: Failure`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub(crate) struct ApiError {
    pub code: u16,
    /// The machine-readable `StatusReason` (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    pub message: String,
    /// `details`: which object (name, group, kind) and, for field-manager conflicts, the causes.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn about(mut self, resource: FakeResource, name: &str) -> ApiError {
        self.details = Some(json!({
            "name": name,
            "group": resource.group(),
            "kind": resource.plural(),
        }));
        self
    }

    /// 404 for a missing object, with the real server's wording.
    pub(super) fn not_found(resource: FakeResource, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", group_resource(resource)),
        )
        .about(resource, name)
    }

    /// 404 for a path that names no served resource.
    pub(super) fn no_route(path: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 409 AlreadyExists for a create of a taken name.
    pub(super) fn already_exists(resource: FakeResource, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", group_resource(resource)),
        )
        .about(resource, name)
    }

    /// 409 Conflict for a stale `resourceVersion` (or an injected conflict).
    pub(super) fn conflict(resource: FakeResource, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                group_resource(resource)
            ),
        )
        .about(resource, name)
    }

    /// 409 Conflict from server-side apply: fields another manager owns with other values.
    /// `conflicts` holds `(manager, dotted field path)`.
    pub(super) fn apply_conflict(
        resource: FakeResource,
        name: &str,
        conflicts: &[(String, String)],
    ) -> ApiError {
        let listed: Vec<String> = conflicts
            .iter()
            .map(|(m, f)| format!("conflict with \"{m}\": {f}"))
            .collect();
        let mut err = ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                listed.join("; ")
            ),
        )
        .about(resource, name);
        if let Some(Value::Object(d)) = &mut err.details {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|(m, f)| {
                    json!({
                        "type": "FieldManagerConflict",
                        "message": format!("conflict with \"{m}\""),
                        "field": f,
                    })
                })
                .collect();
            d.insert("causes".into(), Value::Array(causes));
        }
        err
    }

    /// 422 Invalid: the object breaks a validation rule.
    pub(super) fn invalid(resource: FakeResource, name: &str, why: impl Into<String>) -> ApiError {
        ApiError::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {}", resource.kind(), why.into()),
        )
        .about(resource, name)
    }

    /// 400 BadRequest: the request itself is malformed.
    pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 410 Expired: a watch from a resourceVersion older than the kept history. The real
    /// server uses reason `Expired` (not `Gone`) for this; clients look at the code.
    pub(super) fn expired(requested: u64, oldest: u64) -> ApiError {
        ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 405 for a verb the resource does not support.
    pub(super) fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    /// 415 for a patch content type the server does not understand.
    pub(super) fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    /// An injected failure with an arbitrary status code; the reason is the one the real
    /// server uses for that code.
    pub(super) fn injected(code: u16) -> ApiError {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        ApiError::new(code, reason, format!("injected failure ({code})"))
    }

    /// The `metav1.Status` body.
    pub(super) fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let (Some(details), Value::Object(map)) = (&self.details, &mut status) {
            map.insert("details".into(), details.clone());
        }
        status
    }
}

/// `deployments.apps`, `pods`: how the real server names a resource in messages.
fn group_resource(resource: FakeResource) -> String {
    match resource.group() {
        "" => resource.plural().to_string(),
        g => format!("{}.{g}", resource.plural()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_body_parses_as_kube_status() {
        let err = ApiError::conflict(FakeResource::Deployments, "web");
        let status: kube::core::Status = serde_json::from_value(err.to_status()).unwrap();
        assert_eq!(status.code, 409);
        assert_eq!(status.reason, "Conflict");
        assert!(
            status
                .message
                .contains("deployments.apps \"web\": the object has been modified")
        );
        let details = status.details.unwrap();
        assert_eq!(details.name, "web");
        assert_eq!(details.group, "apps");
    }
}
