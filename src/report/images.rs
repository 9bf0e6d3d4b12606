//! What a release changed: the container images of the new ReplicaSet against those of the old
//! one it was compared with, as the records kept them (records of versions before they were
//! kept have none, and then nothing is said). Pure: records in, words out.

use std::collections::BTreeMap;

use crate::records::Record;

/// Container → image of the two sides of a report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Images {
    /// The new ReplicaSet's.
    pub new: BTreeMap<String, String>,
    /// The first old ReplicaSet compared with that has images in the records.
    pub old: BTreeMap<String, String>,
}

/// One container whose image the release changed (`old` `None`: a container it added).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The container's name.
    pub container: String,
    /// Its image in the old ReplicaSet; `None` when the release added it.
    pub old: Option<String>,
    /// Its image in the new ReplicaSet.
    pub new: String,
}

impl Images {
    /// The images of `new_rs` and of the first of `old_rs` found in `records`.
    pub fn of<'a>(
        records: impl IntoIterator<Item = &'a Record>,
        new_rs: Option<&str>,
        old_rs: &[String],
    ) -> Images {
        let mut by_rs: BTreeMap<&str, &BTreeMap<String, String>> = BTreeMap::new();
        for r in records {
            for (rs, images) in &r.images {
                by_rs.entry(rs.as_str()).or_insert(images);
            }
        }
        let get = |rs: &str| by_rs.get(rs).map(|m| (*m).clone());
        Images {
            new: new_rs.and_then(get).unwrap_or_default(),
            old: old_rs.iter().find_map(|rs| get(rs)).unwrap_or_default(),
        }
    }

    /// Whether both sides are known.
    pub fn known(&self) -> bool {
        !self.new.is_empty() && !self.old.is_empty()
    }

    /// The containers whose image differs, in name order.
    pub fn changes(&self) -> Vec<Change> {
        self.new
            .iter()
            .filter(|(c, image)| self.old.get(*c) != Some(*image))
            .map(|(c, image)| Change {
                container: c.clone(),
                old: self.old.get(c).cloned(),
                new: image.clone(),
            })
            .collect()
    }

    /// What changed, in a phrase: `php from registry/shop:1.4 to registry/shop:1.5`, or that no
    /// image did; `None` when the records do not say.
    pub fn phrase(&self) -> Option<String> {
        if !self.known() {
            return None;
        }
        let changes = self.changes();
        if changes.is_empty() {
            return Some(
                "kept every container's image (another change to the pod template: configuration, resources, environment)"
                    .into(),
            );
        }
        let each: Vec<String> = changes
            .iter()
            .map(|c| match &c.old {
                Some(old) => format!("{} from {old} to {}", c.container, c.new),
                None => format!("{} (a new container: {})", c.container, c.new),
            })
            .collect();
        Some(format!("changed {}", each.join(", ")))
    }

    /// A side's images for the facts table: `php: registry/shop:1.5, nginx: nginx:1.27`.
    pub fn listed(images: &BTreeMap<String, String>) -> Option<String> {
        (!images.is_empty()).then(|| {
            images
                .iter()
                .map(|(c, i)| format!("{c}: {i}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(c, i)| (c.to_string(), i.to_string()))
            .collect()
    }

    #[test]
    fn a_changed_image_is_named_with_both_versions_and_the_unchanged_sidecar_is_not() {
        let i = Images {
            new: side(&[("php", "shop:1.5"), ("istio-proxy", "proxyv2:1.22")]),
            old: side(&[("php", "shop:1.4"), ("istio-proxy", "proxyv2:1.22")]),
        };
        assert_eq!(
            i.phrase().as_deref(),
            Some("changed php from shop:1.4 to shop:1.5")
        );
        let added = Images {
            new: side(&[("php", "shop:1.4"), ("worker", "shop-worker:1")]),
            old: side(&[("php", "shop:1.4")]),
        };
        assert_eq!(
            added.phrase().as_deref(),
            Some("changed worker (a new container: shop-worker:1)")
        );
    }

    #[test]
    fn same_images_and_unknown_images_are_said_apart() {
        let same = Images {
            new: side(&[("php", "shop:1.4")]),
            old: side(&[("php", "shop:1.4")]),
        };
        assert!(
            same.phrase()
                .unwrap()
                .starts_with("kept every container's image")
        );
        let unknown = Images {
            new: side(&[("php", "shop:1.4")]),
            old: BTreeMap::new(),
        };
        assert_eq!(unknown.phrase(), None);
        assert_eq!(
            Images::listed(&side(&[("php", "a:1"), ("nginx", "b:2")])).as_deref(),
            Some("nginx: b:2, php: a:1")
        );
    }
}
