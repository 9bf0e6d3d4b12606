//! The kinds the fake API server serves, and what the server knows about each of them.
//!
//! Owns the table mapping an API path's group, version and plural to a kind, and the per-kind
//! facts the other modules ask about (has a status subresource? tracks `metadata.generation`?
//! which field selectors does it accept?). It does not store objects or route requests.

/// One of the kinds the fake server serves. Every path, watch and stored object is tagged with
/// one of these; anything else answers 404 like a resource that is not installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FakeResource {
    /// core `v1` `pods` (with the `status` and `log` subresources).
    Pods,
    /// core `v1` `events` (the old Event API).
    CoreEvents,
    /// `apps/v1` `deployments` (with the `status` subresource).
    Deployments,
    /// `apps/v1` `replicasets` (with the `status` subresource).
    ReplicaSets,
    /// `events.k8s.io/v1` `events`, which `kube::runtime::events::Recorder` writes.
    Events,
    /// `coordination.k8s.io/v1` `leases`, which leader election uses.
    Leases,
    /// core `v1` `configmaps`, where the controller keeps the old pods' log counts.
    ConfigMaps,
}

impl FakeResource {
    /// Every served kind, in a fixed order (discovery lists them in this order).
    pub const ALL: [FakeResource; 7] = [
        FakeResource::Pods,
        FakeResource::CoreEvents,
        FakeResource::Deployments,
        FakeResource::ReplicaSets,
        FakeResource::Events,
        FakeResource::Leases,
        FakeResource::ConfigMaps,
    ];

    /// The API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            FakeResource::Pods | FakeResource::CoreEvents | FakeResource::ConfigMaps => "",
            FakeResource::Deployments | FakeResource::ReplicaSets => "apps",
            FakeResource::Events => "events.k8s.io",
            FakeResource::Leases => "coordination.k8s.io",
        }
    }

    /// The plural resource name used in paths.
    pub fn plural(self) -> &'static str {
        match self {
            FakeResource::Pods => "pods",
            FakeResource::CoreEvents | FakeResource::Events => "events",
            FakeResource::Deployments => "deployments",
            FakeResource::ReplicaSets => "replicasets",
            FakeResource::Leases => "leases",
            FakeResource::ConfigMaps => "configmaps",
        }
    }

    /// The `kind` of one object.
    pub fn kind(self) -> &'static str {
        match self {
            FakeResource::Pods => "Pod",
            FakeResource::CoreEvents | FakeResource::Events => "Event",
            FakeResource::Deployments => "Deployment",
            FakeResource::ReplicaSets => "ReplicaSet",
            FakeResource::Leases => "Lease",
            FakeResource::ConfigMaps => "ConfigMap",
        }
    }

    /// `apiVersion` as it appears in objects: `v1`, `apps/v1`, ...
    pub fn api_version(self) -> &'static str {
        match self.group() {
            "" => "v1",
            "apps" => "apps/v1",
            "events.k8s.io" => "events.k8s.io/v1",
            _ => "coordination.k8s.io/v1",
        }
    }

    /// The name used in request statistics and in Status details: the plural, prefixed by the
    /// group unless it is the core group (`pods`, `apps/deployments`, `events.k8s.io/events`).
    pub fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_string(),
            g => format!("{g}/{}", self.plural()),
        }
    }

    /// Whether writes to the main resource keep `status` (it is written only through the
    /// `status` subresource), as for every built-in kind with a status subresource.
    pub fn has_status_subresource(self) -> bool {
        matches!(
            self,
            FakeResource::Pods | FakeResource::Deployments | FakeResource::ReplicaSets
        )
    }

    /// Whether the server maintains `metadata.generation` (bumped when the spec changes), which
    /// the workload controllers compare with `status.observedGeneration`.
    pub fn tracks_generation(self) -> bool {
        matches!(self, FakeResource::Deployments | FakeResource::ReplicaSets)
    }

    /// The kind served at `/api/v1/<plural>` or `/apis/<group>/<version>/<plural>`.
    pub fn from_path(group: &str, version: &str, plural: &str) -> Option<FakeResource> {
        FakeResource::ALL
            .into_iter()
            .find(|r| r.group() == group && r.plural() == plural && version == "v1")
    }

    /// The served kind matching a `kube::Resource` type, if any.
    pub fn of<K: kube::Resource<DynamicType = ()>>() -> Option<FakeResource> {
        let (group, version, plural) = (K::group(&()), K::version(&()), K::plural(&()));
        FakeResource::from_path(&group, &version, &plural)
    }

    /// Field selector keys the real API server accepts for this kind, besides
    /// `metadata.name` and `metadata.namespace`, which every kind accepts. Each is a dotted
    /// path into the object.
    pub fn extra_field_labels(self) -> &'static [&'static str] {
        match self {
            FakeResource::Pods => &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            FakeResource::CoreEvents => &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            FakeResource::Events => &[
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "regarding.apiVersion",
                "regarding.resourceVersion",
                "regarding.fieldPath",
                "reason",
                "reportingController",
                "type",
            ],
            FakeResource::ReplicaSets => &["status.replicas"],
            FakeResource::Deployments | FakeResource::Leases | FakeResource::ConfigMaps => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FakeResource;
    use k8s_openapi::api::{apps, coordination, core, events};

    #[test]
    fn table_matches_k8s_openapi() {
        assert_eq!(
            FakeResource::of::<core::v1::Pod>(),
            Some(FakeResource::Pods)
        );
        assert_eq!(
            FakeResource::of::<core::v1::Event>(),
            Some(FakeResource::CoreEvents)
        );
        assert_eq!(
            FakeResource::of::<apps::v1::Deployment>(),
            Some(FakeResource::Deployments)
        );
        assert_eq!(
            FakeResource::of::<apps::v1::ReplicaSet>(),
            Some(FakeResource::ReplicaSets)
        );
        assert_eq!(
            FakeResource::of::<events::v1::Event>(),
            Some(FakeResource::Events)
        );
        assert_eq!(
            FakeResource::of::<coordination::v1::Lease>(),
            Some(FakeResource::Leases)
        );
        assert_eq!(
            FakeResource::of::<core::v1::ConfigMap>(),
            Some(FakeResource::ConfigMaps)
        );
        assert_eq!(FakeResource::of::<core::v1::Secret>(), None);
        for r in FakeResource::ALL {
            assert_eq!(
                r.api_version(),
                if r.group().is_empty() {
                    "v1".to_string()
                } else {
                    format!("{}/v1", r.group())
                }
            );
        }
    }
}
