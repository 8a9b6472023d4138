//! The plan: classified assets + the archive's catalog → what to copy, in which order.
//!
//! Pure (the catalog is reached through a lookup function), so it is tested without a phone.
//! Rules:
//!
//! * every resource the phone really has (`Verdict::Archive`) is copied unless the catalog
//!   already holds the same resource with the same size — whatever the asset's class (a Live
//!   Photo whose still is only in iCloud still gets its local video saved);
//! * excluded assets (Recently Deleted, shared albums, …; hidden ones when asked) copy nothing;
//! * files that exist only on this phone come first, then the rest; each group oldest first,
//!   the resources of one asset together.

use std::cmp::Ordering;

use ferry_archive::{CatalogEntry, FileState, ResourceSpec};
use ferry_device::ClassifiedAsset;
use ferry_photos::{ResourceRole, Verdict};
use serde::Serialize;

use crate::event::PlanSummary;

/// Why a file is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyReason {
    /// Not in the archive yet.
    New,
    /// In the archive with another size (edited in place, deferred processing finished): the
    /// new version is added, the old file is kept.
    Changed {
        /// The archived size.
        archived_size: u64,
    },
}

/// One file to copy.
#[derive(Debug, Clone)]
pub struct PlanItem {
    /// What the archive needs to know.
    pub spec: ResourceSpec,
    /// Index of the asset in [`Plan::assets`].
    pub asset: usize,
    /// The file exists only on this phone.
    pub only_here: bool,
    /// Why it is copied.
    pub reason: CopyReason,
}

/// What the plan decided for an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetPlan {
    /// `ZUUID`.
    pub uuid: String,
    /// The name the user knows.
    pub name: Option<String>,
    /// Capture time, UTC (RFC 3339).
    pub created_utc: Option<String>,
    /// `archive`, `icloud_only`, `unavailable`, `retry_later`, `excluded`.
    pub classification: &'static str,
    /// Exclusion reason (`trashed`, `shared_album`, …, `hidden`).
    pub exclusion: Option<String>,
    /// Files of this asset to copy now.
    pub to_copy: u32,
    /// Files of this asset already in the archive.
    pub archived_before: u32,
    /// Files of this asset that are only in iCloud.
    pub icloud_files: u32,
    /// Their bytes per the database.
    pub icloud_bytes: u64,
    /// Some local file of this asset exists only on this phone.
    pub only_here: bool,
}

/// The whole plan.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Every asset of the library, in database order.
    pub assets: Vec<AssetPlan>,
    /// Files to copy, in copy order.
    pub items: Vec<PlanItem>,
    /// Files already archived (unchanged).
    pub already_archived_files: u64,
}

impl Plan {
    /// The plan in numbers.
    pub fn summary(&self) -> PlanSummary {
        PlanSummary {
            assets: self.assets.len() as u64,
            files: self.items.len() as u64,
            bytes: self.items.iter().map(|i| i.spec.size).sum(),
            only_here_files: self.items.iter().filter(|i| i.only_here).count() as u64,
            already_archived_files: self.already_archived_files,
            icloud_only_assets: self
                .assets
                .iter()
                .filter(|a| a.classification == "icloud_only")
                .count() as u64,
        }
    }
}

/// Options of the plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Back up hidden assets (default true: they are the user's photos too).
    pub include_hidden: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            include_hidden: true,
        }
    }
}

/// Builds the plan. `lookup(uuid, role)` returns the archive's current copy of a resource.
pub fn build<E>(
    assets: &[ClassifiedAsset],
    opts: PlanOptions,
    mut lookup: impl FnMut(&str, ResourceRole) -> Result<Option<CatalogEntry>, E>,
) -> Result<Plan, E> {
    let mut plan = Plan::default();
    for a in assets {
        let rec = &a.record;
        let hidden_excluded = !opts.include_hidden && rec.flags.hidden && rec.exclusion.is_none();
        let mut ap = AssetPlan {
            uuid: rec.uuid.clone(),
            name: rec.original_filename.clone(),
            created_utc: rec.created_utc(),
            classification: if hidden_excluded {
                "excluded"
            } else {
                a.classification
            },
            exclusion: match (&rec.exclusion, hidden_excluded) {
                (Some(e), _) => Some(e.as_str().to_string()),
                (None, true) => Some("hidden".to_string()),
                (None, false) => None,
            },
            to_copy: 0,
            archived_before: 0,
            icloud_files: 0,
            icloud_bytes: 0,
            only_here: false,
        };
        let index = plan.assets.len();
        if ap.exclusion.is_none() {
            for (res, verdict) in rec.resources.iter().zip(&a.verdicts) {
                match verdict {
                    Verdict::Archive { path, size, .. } => {
                        let only_here = res.only_on_this_phone();
                        ap.only_here |= only_here;
                        let reason = match lookup(&rec.uuid, res.role)? {
                            Some(e) if e.state == FileState::Archived && e.size == *size => {
                                ap.archived_before += 1;
                                plan.already_archived_files += 1;
                                continue;
                            }
                            Some(e) => CopyReason::Changed {
                                archived_size: e.size,
                            },
                            None => CopyReason::New,
                        };
                        ap.to_copy += 1;
                        plan.items.push(PlanItem {
                            spec: ResourceSpec::from_record(rec, res, path.as_str(), *size),
                            asset: index,
                            only_here,
                            reason,
                        });
                    }
                    Verdict::FetchOnPhone => {
                        ap.icloud_files += 1;
                        ap.icloud_bytes += res.expected_size.unwrap_or(0);
                    }
                    Verdict::Unavailable | Verdict::RetryLater | Verdict::Excluded => {}
                }
            }
        }
        plan.assets.push(ap);
    }
    plan.items.sort_by(copy_order);
    Ok(plan)
}

fn copy_order(x: &PlanItem, y: &PlanItem) -> Ordering {
    // Only-here first (by asset: a Live Photo's still and video stay together).
    y.only_here
        .cmp(&x.only_here)
        .then_with(|| {
            // Unknown dates last.
            match (x.spec.capture_utc_millis, y.spec.capture_utc_millis) {
                (Some(a), Some(b)) => a.cmp(&b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        })
        .then_with(|| x.asset.cmp(&y.asset))
        .then_with(|| x.spec.role.cmp(&y.spec.role))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_archive::Durability;
    use ferry_photos::record::{
        AssetKind, AssetSubtype, Availability, LibraryFlags, OriginalResource, ResourceLocation,
        SharedLibrary, UploadState,
    };
    use ferry_photos::{AfcPath, AssetRecord, Exclusion};
    use std::collections::HashMap;

    fn res(role: ResourceRole, path: &str, upload: UploadState) -> OriginalResource {
        OriginalResource {
            role,
            location: ResourceLocation::Exact(AfcPath::new(path).unwrap()),
            expected_size: Some(10),
            availability: Availability::Local,
            upload,
        }
    }

    fn asset(uuid: &str, created: f64, resources: Vec<OriginalResource>) -> AssetRecord {
        AssetRecord {
            pk: 1,
            uuid: uuid.into(),
            kind: AssetKind::Photo,
            subtype: AssetSubtype::Still,
            created_core_data: Some(created),
            tz_offset_seconds: Some(0),
            tz_name: None,
            original_filename: Some(format!("{uuid}.HEIC")),
            db_state: Availability::Local,
            exclusion: None,
            resources,
            flags: LibraryFlags {
                trashed: false,
                hidden: false,
                edited: false,
                saved_asset_type: Some(3),
                bundle_scope: Some(0),
                shared_library: SharedLibrary::None,
                burst_id: None,
                burst_pick_type: None,
                deferred_processing: false,
                icloud_asset: false,
            },
        }
    }

    fn local(rec: AssetRecord, sizes: &[u64]) -> ClassifiedAsset {
        let verdicts = rec
            .resources
            .iter()
            .zip(sizes)
            .map(|(r, s)| Verdict::Archive {
                path: r.location.exact().unwrap().clone(),
                size: *s,
                provisional: false,
            })
            .collect();
        ClassifiedAsset {
            record: rec,
            verdicts,
            classification: "archive",
        }
    }

    fn entry(uuid: &str, role: &str, size: u64) -> CatalogEntry {
        CatalogEntry {
            uuid: uuid.into(),
            role: role.into(),
            state: FileState::Archived,
            path: format!("p/{uuid}"),
            size,
            hash_alg: "blake3".into(),
            hash: "00".into(),
            afc_path: String::new(),
            original_filename: None,
            capture_utc_ms: None,
            archived_ms: 0,
            durability: Durability::Full,
            deleted_on_phone_ms: None,
            recovered: false,
        }
    }

    type Cat = HashMap<(String, &'static str), CatalogEntry>;

    fn plan_with(assets: &[ClassifiedAsset], cat: &Cat, opts: PlanOptions) -> Plan {
        build::<()>(assets, opts, |u, r| {
            Ok(cat.get(&(u.to_string(), r.as_str())).cloned())
        })
        .unwrap()
    }

    #[test]
    fn only_here_first_then_oldest_and_pairs_together() {
        use ResourceRole::*;
        use UploadState::*;
        let assets = vec![
            local(
                asset(
                    "A",
                    300.0,
                    vec![res(Primary, "DCIM/100APPLE/A.HEIC", InIcloud)],
                ),
                &[10],
            ),
            local(
                asset(
                    "B",
                    200.0,
                    vec![
                        res(Primary, "DCIM/100APPLE/B.HEIC", InIcloud),
                        res(LiveVideo, "DCIM/100APPLE/B.MOV", InIcloud),
                    ],
                ),
                &[10, 20],
            ),
            local(
                asset(
                    "C",
                    900.0,
                    vec![res(Primary, "DCIM/100APPLE/C.HEIC", UploadPending)],
                ),
                &[10],
            ),
        ];
        let plan = plan_with(&assets, &Cat::new(), PlanOptions::default());
        let order: Vec<_> = plan
            .items
            .iter()
            .map(|i| (i.spec.asset_uuid.as_str(), i.spec.role))
            .collect();
        assert_eq!(
            order,
            vec![
                ("C", Primary),
                ("B", Primary),
                ("B", LiveVideo),
                ("A", Primary)
            ]
        );
        let s = plan.summary();
        assert_eq!((s.files, s.bytes, s.only_here_files), (4, 50, 1));
    }

    #[test]
    fn archived_same_size_is_skipped_changed_size_is_copied_again() {
        use ResourceRole::*;
        let assets = vec![
            local(
                asset(
                    "A",
                    1.0,
                    vec![res(Primary, "DCIM/A.HEIC", UploadState::InIcloud)],
                ),
                &[10],
            ),
            local(
                asset(
                    "B",
                    2.0,
                    vec![res(Primary, "DCIM/B.HEIC", UploadState::InIcloud)],
                ),
                &[12],
            ),
        ];
        let mut cat = Cat::new();
        cat.insert(("A".into(), "primary"), entry("A", "primary", 10));
        cat.insert(("B".into(), "primary"), entry("B", "primary", 10));
        let plan = plan_with(&assets, &cat, PlanOptions::default());
        assert_eq!(plan.items.len(), 1);
        assert_eq!(plan.items[0].spec.asset_uuid, "B");
        assert_eq!(
            plan.items[0].reason,
            CopyReason::Changed { archived_size: 10 }
        );
        assert_eq!(plan.already_archived_files, 1);
        assert_eq!(plan.assets[0].archived_before, 1);
        assert_eq!(plan.assets[1].to_copy, 1);
    }

    #[test]
    fn excluded_and_hidden_copy_nothing() {
        let mut trashed = asset(
            "T",
            1.0,
            vec![res(
                ResourceRole::Primary,
                "DCIM/T.HEIC",
                UploadState::InIcloud,
            )],
        );
        trashed.exclusion = Some(Exclusion::Trashed);
        let mut hidden = asset(
            "H",
            1.0,
            vec![res(
                ResourceRole::Primary,
                "DCIM/H.HEIC",
                UploadState::InIcloud,
            )],
        );
        hidden.flags.hidden = true;
        let assets = vec![local(trashed, &[10]), local(hidden, &[10])];
        let plan = plan_with(&assets, &Cat::new(), PlanOptions::default());
        assert_eq!(plan.items.len(), 1, "hidden is included by default");
        assert_eq!(plan.assets[0].exclusion.as_deref(), Some("trashed"));
        let plan = plan_with(
            &assets,
            &Cat::new(),
            PlanOptions {
                include_hidden: false,
            },
        );
        assert!(plan.items.is_empty());
        assert_eq!(plan.assets[1].exclusion.as_deref(), Some("hidden"));
        assert_eq!(plan.assets[1].classification, "excluded");
    }

    #[test]
    fn icloud_only_resources_are_counted_not_copied() {
        let rec = asset(
            "I",
            1.0,
            vec![
                res(ResourceRole::Primary, "DCIM/I.HEIC", UploadState::InIcloud),
                res(ResourceRole::LiveVideo, "DCIM/I.MOV", UploadState::InIcloud),
            ],
        );
        let a = ClassifiedAsset {
            verdicts: vec![
                Verdict::FetchOnPhone,
                Verdict::Archive {
                    path: AfcPath::new("DCIM/I.MOV").unwrap(),
                    size: 7,
                    provisional: false,
                },
            ],
            record: rec,
            classification: "icloud_only",
        };
        let plan = plan_with(&[a], &Cat::new(), PlanOptions::default());
        assert_eq!(plan.items.len(), 1, "the local video is saved");
        assert_eq!(plan.assets[0].icloud_files, 1);
        assert_eq!(plan.assets[0].icloud_bytes, 10);
        assert_eq!(plan.summary().icloud_only_assets, 1);
    }
}
