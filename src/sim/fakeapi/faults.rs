//! Faults tests inject on purpose: conflicts on chosen objects and failures on chosen paths.
//!
//! Owns the pending injections and their countdowns. The HTTP layer asks before serving a
//! request; this module never answers one itself and never touches stored objects.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::store::ObjKey;

#[derive(Debug)]
struct Failure {
    path_prefix: String,
    status: u16,
    remaining: u32,
}

/// Pending injected faults.
#[derive(Default)]
pub(crate) struct Faults {
    conflicts: Mutex<HashMap<ObjKey, u32>>,
    failures: Mutex<Vec<Failure>>,
}

impl Faults {
    /// The next `n` writes to the object answer 409 Conflict.
    pub(super) fn add_conflicts(&self, key: ObjKey, n: u32) {
        let mut c = self
            .conflicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *c.entry(key).or_default() += n;
    }

    /// The next `n` requests whose path starts with `path_prefix` answer `status`.
    pub(super) fn add_failures(&self, path_prefix: &str, status: u16, n: u32) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Failure {
                path_prefix: path_prefix.to_string(),
                status,
                remaining: n,
            });
    }

    /// Consumes one injected conflict for a write to `key`, if any is pending.
    pub(super) fn take_conflict(&self, key: &ObjKey) -> bool {
        let mut c = self
            .conflicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match c.get_mut(key) {
            Some(n) if *n > 0 => {
                *n -= 1;
                if *n == 0 {
                    c.remove(key);
                }
                true
            }
            _ => false,
        }
    }

    /// Consumes one injected failure matching `path`, oldest injection first.
    pub(super) fn take_failure(&self, path: &str) -> Option<u16> {
        let mut f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let i = f
            .iter()
            .position(|x| x.remaining > 0 && path.starts_with(&x.path_prefix))?;
        f[i].remaining -= 1;
        let status = f[i].status;
        if f[i].remaining == 0 {
            f.remove(i);
        }
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::fakeapi::FakeResource;

    #[test]
    fn countdowns() {
        let f = Faults::default();
        let key = ObjKey::new(FakeResource::Deployments, "ns", "web");
        f.add_conflicts(key.clone(), 2);
        assert!(f.take_conflict(&key));
        assert!(f.take_conflict(&key));
        assert!(!f.take_conflict(&key));
        f.add_failures("/apis/apps", 503, 1);
        assert_eq!(f.take_failure("/api/v1/pods"), None);
        assert_eq!(f.take_failure("/apis/apps/v1/deployments"), Some(503));
        assert_eq!(f.take_failure("/apis/apps/v1/deployments"), None);
    }
}
