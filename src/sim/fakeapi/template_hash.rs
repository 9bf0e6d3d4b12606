//! Pod templates as the Deployment controller compares and names them: equality ignoring
//! `pod-template-hash` and empty fields, and the hash itself.
//!
//! Owns the normal form of a template and the hash function. Pure.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use super::deployments::POD_TEMPLATE_HASH;
use super::store::NAME_ALPHABET;

/// A template as compared and hashed: the `pod-template-hash` label dropped, and nulls, empty
/// objects and empty lists removed (Kubernetes' semantic equality treats empty and unset
/// alike).
pub(super) fn template_value(t: Option<&PodTemplateSpec>) -> Value {
    let mut v = t
        .map(|t| serde_json::to_value(t).unwrap_or_default())
        .unwrap_or_default();
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    normalize(&mut v);
    v
}

fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for child in m.values_mut() {
                normalize(child);
            }
            m.retain(|_, c| {
                !(c.is_null()
                    || c.as_object().is_some_and(|o| o.is_empty())
                    || c.as_array().is_some_and(|a| a.is_empty()))
            });
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// The pod-template hash the real controller computes: FNV-1a (32 bit) of the template (here
/// its canonical JSON, where Kubernetes hashes a printout of the Go struct, so the values
/// differ from a real cluster's), then the collision count, printed in decimal and each
/// digit mapped into [`NAME_ALPHABET`] (`SafeEncodeString`). Usually 10 characters, fewer
/// when the hash is below 10⁹, exactly as in Kubernetes.
pub(super) fn pod_template_hash(template: &Value, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    // serde_json's map keeps keys sorted, so this text is canonical.
    feed(template.to_string().as_bytes());
    if let Some(c) = collision_count {
        feed(&(c as u32).to_le_bytes());
    }
    h.to_string()
        .bytes()
        .map(|b| NAME_ALPHABET[usize::from(b) % NAME_ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_is_deterministic_and_ignores_its_own_label() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "php", "image": "php:1"}]}
        }))
        .unwrap();
        let mut labelled = t.clone();
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH.into(), "x".into());
        let a = pod_template_hash(&template_value(Some(&t)), None);
        assert_eq!(a, pod_template_hash(&template_value(Some(&labelled)), None));
        assert!(a.len() <= 10 && !a.is_empty());
        assert!(a.bytes().all(|b| NAME_ALPHABET.contains(&b)));
        assert_ne!(a, pod_template_hash(&template_value(Some(&t)), Some(1)));
        let mut other = t.clone();
        other.spec.as_mut().unwrap().containers[0].image = Some("php:2".into());
        assert_ne!(a, pod_template_hash(&template_value(Some(&other)), None));
    }
}
