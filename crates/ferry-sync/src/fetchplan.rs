//! The fetch plan: the originals that are only in iCloud, grouped into batches the phone can
//! hold, with what to do on the phone for each.
//!
//! iOS downloads an original when it is viewed (or when "Download and Keep Originals" is
//! switched on, which downloads *everything*). A phone with "Optimize iPhone Storage" is usually
//! nearly full, so the originals have to come in batches: each batch's bytes fit the phone's
//! free space minus a safety margin. Batches are consecutive capture-date ranges — the unit a
//! person can find on the phone (scroll Library → All Photos to a date range).
//!
//! ⚠ INFERRED, not measured on a device: how much headroom iOS needs before it stops
//! downloading (we keep [`margin_for`]: 2 GB or 5 % of the capacity, whichever is larger) and
//! that viewing an item full screen downloads its original (Apple's support text says so for
//! "Optimize iPhone Storage").

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::report::AssetRef;

/// Version of the plan's JSON format.
pub const PLAN_FORMAT: u32 = 1;

/// The headroom kept free on the phone: 2 GB, or 5 % of its capacity if that is more.
pub fn margin_for(capacity_bytes: Option<u64>) -> u64 {
    const FLOOR: u64 = 2_000_000_000;
    capacity_bytes.map(|c| c / 20).unwrap_or(0).max(FLOOR)
}

/// One batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// 1-based.
    pub index: usize,
    /// Oldest capture date in the batch (UTC, RFC 3339); `None` for undated items.
    pub from: Option<String>,
    /// Newest capture date.
    pub to: Option<String>,
    /// Assets.
    pub count: u64,
    /// Original files.
    pub files: u64,
    /// Bytes to download (per the database).
    pub bytes: u64,
    /// The assets, by UUID.
    pub uuids: Vec<String>,
    /// What to do on the phone.
    pub instruction: String,
}

/// The plan for one phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchPlan {
    /// [`PLAN_FORMAT`].
    pub format: u32,
    /// The phone.
    pub udid: String,
    /// Its name.
    pub phone_name: Option<String>,
    /// When the plan was made (UTC).
    pub created_at: String,
    /// The phone's free space then.
    pub free_bytes: u64,
    /// Kept free.
    pub margin_bytes: u64,
    /// What one batch may use: free − margin.
    pub batch_limit_bytes: u64,
    /// Assets with originals only in iCloud.
    pub assets: u64,
    /// Their original files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The batches, oldest first.
    pub batches: Vec<Batch>,
    /// Items too large for any batch (a long video bigger than the free space).
    pub too_large: Vec<AssetRef>,
    /// Set when nothing fits: what to do instead.
    pub no_space: Option<String>,
}

/// Progress of one batch against the current state of the phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchProgress {
    /// 1-based.
    pub index: usize,
    /// Assets in the batch.
    pub count: u64,
    /// Of those, no longer only in iCloud (downloaded, and archived by the run).
    pub fetched: u64,
}

/// Progress of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanProgress {
    /// Per batch.
    pub batches: Vec<BatchProgress>,
    /// Batches completely fetched.
    pub done: usize,
}

impl PlanProgress {
    /// "batch 2 of 5: 140 of 310 fetched" (the first unfinished batch), or "all 5 batches
    /// fetched".
    pub fn line(&self) -> String {
        let n = self.batches.len();
        match self.batches.iter().find(|b| b.fetched < b.count) {
            Some(b) => format!(
                "batch {} of {n}: {} of {} fetched ({} of {n} batches done)",
                b.index, b.fetched, b.count, self.done
            ),
            None if n == 0 => "no batches".into(),
            None => format!("all {n} batches fetched"),
        }
    }
}

/// The iCloud-only items of a plan (assets with at least one original only in iCloud).
pub fn items_from_plan(plan: &Plan) -> Vec<AssetRef> {
    plan.assets
        .iter()
        .filter(|a| a.exclusion.is_none() && a.icloud_files > 0)
        .map(|a| AssetRef {
            uuid: a.uuid.clone(),
            name: a.name.clone(),
            created_utc: a.created_utc.clone(),
            files: a.icloud_files,
            bytes: a.icloud_bytes,
            original_local: a.classification != "icloud_only",
        })
        .collect()
}

fn date(s: &Option<String>) -> String {
    s.as_deref()
        .map(|d| d[..d.len().min(10)].to_string())
        .unwrap_or_else(|| "undated".into())
}

/// Builds the plan: items sorted by capture date, cut into batches of at most
/// `free_bytes − margin_bytes`.
pub fn build(
    udid: &str,
    phone_name: Option<String>,
    created_at: String,
    mut items: Vec<AssetRef>,
    free_bytes: u64,
    margin_bytes: u64,
) -> FetchPlan {
    let h = ferry_archive::human_bytes;
    items.sort_by(|a, b| match (&a.created_utc, &b.created_utc) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.uuid.cmp(&b.uuid)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.uuid.cmp(&b.uuid),
    });
    let limit = free_bytes.saturating_sub(margin_bytes);
    let total_bytes: u64 = items.iter().map(|i| i.bytes).sum();
    let mut plan = FetchPlan {
        format: PLAN_FORMAT,
        udid: udid.to_string(),
        phone_name,
        created_at,
        free_bytes,
        margin_bytes,
        batch_limit_bytes: limit,
        assets: items.len() as u64,
        files: items.iter().map(|i| u64::from(i.files)).sum(),
        bytes: total_bytes,
        batches: Vec::new(),
        too_large: Vec::new(),
        no_space: None,
    };
    let mut cur: Vec<AssetRef> = Vec::new();
    let mut cur_bytes = 0u64;
    let mut raw: Vec<Vec<AssetRef>> = Vec::new();
    for it in items {
        if it.bytes > limit {
            plan.too_large.push(it);
            continue;
        }
        if cur_bytes + it.bytes > limit && !cur.is_empty() {
            raw.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
        cur_bytes += it.bytes;
        cur.push(it);
    }
    if !cur.is_empty() {
        raw.push(cur);
    }
    let single = raw.len() == 1 && plan.too_large.is_empty();
    for (i, b) in raw.into_iter().enumerate() {
        let bytes: u64 = b.iter().map(|x| x.bytes).sum();
        let (from, to) = (
            b.iter().find_map(|x| x.created_utc.clone()),
            b.iter().rev().find_map(|x| x.created_utc.clone()),
        );
        let count = b.len() as u64;
        let instruction = if single {
            format!(
                "Everything fits: on the iPhone open Settings → Photos and choose \"Download and \
                 Keep Originals\". Keep the phone unlocked, charging and on Wi-Fi until Photos has \
                 downloaded about {} (Ferry archives each original as it arrives). Then switch \
                 back to \"Optimize iPhone Storage\" if you want the space back.",
                h(bytes)
            )
        } else {
            format!(
                "In Photos on the iPhone, go to Library → All Photos, scroll to {} – {} and open \
                 each of these {count} items full screen (that downloads its original, about {} \
                 in all; wait for the progress circle to finish). Do not switch on \"Download \
                 and Keep Originals\": it would download all {} and the phone has room for {}. \
                 When Ferry has archived this batch, let \"Optimize iPhone Storage\" free the \
                 space again before the next batch.",
                date(&from),
                date(&to),
                h(bytes),
                h(total_bytes),
                h(limit)
            )
        };
        plan.batches.push(Batch {
            index: i + 1,
            from,
            to,
            count,
            files: b.iter().map(|x| u64::from(x.files)).sum(),
            bytes,
            uuids: b.into_iter().map(|x| x.uuid).collect(),
            instruction,
        });
    }
    if plan.assets > 0 && plan.batches.is_empty() {
        plan.no_space = Some(format!(
            "The iPhone has {} free, and downloading originals needs at least {} of headroom \
             plus the originals themselves (the smallest is {}). Free up space on the iPhone \
             first (Settings → General → iPhone Storage: offload unused apps, delete large \
             videos that are already backed up), then make the plan again.",
            h(free_bytes),
            h(margin_bytes),
            h(plan.too_large.iter().map(|i| i.bytes).min().unwrap_or(0))
        ));
    }
    plan
}

/// Progress of `plan` given the UUIDs that are *still* only in iCloud now.
pub fn progress(plan: &FetchPlan, still_icloud_only: &HashSet<String>) -> PlanProgress {
    let batches: Vec<BatchProgress> = plan
        .batches
        .iter()
        .map(|b| BatchProgress {
            index: b.index,
            count: b.count,
            fetched: b
                .uuids
                .iter()
                .filter(|u| !still_icloud_only.contains(*u))
                .count() as u64,
        })
        .collect();
    let done = batches.iter().filter(|b| b.fetched == b.count).count();
    PlanProgress { batches, done }
}

/// CSV of the plan: one line per asset (`batch,uuid,name,created_utc,files,bytes`; batch 0 =
/// too large for any batch).
pub fn to_csv(plan: &FetchPlan, items: &[AssetRef]) -> String {
    let by_uuid: std::collections::HashMap<&str, &AssetRef> =
        items.iter().map(|i| (i.uuid.as_str(), i)).collect();
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::from("batch,uuid,name,created_utc,files,bytes\n");
    let rows = plan
        .batches
        .iter()
        .flat_map(|b| b.uuids.iter().map(move |u| (b.index, u.as_str())))
        .chain(plan.too_large.iter().map(|i| (0, i.uuid.as_str())));
    for (batch, uuid) in rows {
        if let Some(i) = by_uuid.get(uuid) {
            out.push_str(&format!(
                "{batch},{},{},{},{},{}\n",
                field(&i.uuid),
                field(i.name.as_deref().unwrap_or("")),
                field(i.created_utc.as_deref().unwrap_or("")),
                i.files,
                i.bytes
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(uuid: &str, date: Option<&str>, bytes: u64) -> AssetRef {
        AssetRef {
            uuid: uuid.into(),
            name: Some(format!("{uuid}.HEIC")),
            created_utc: date.map(str::to_string),
            files: 1,
            bytes,
            original_local: false,
        }
    }

    fn items() -> Vec<AssetRef> {
        vec![
            item("C", Some("2021-03-01T00:00:00.000Z"), 40),
            item("A", Some("2019-01-01T00:00:00.000Z"), 30),
            item("U", None, 10),
            item("B", Some("2020-06-01T00:00:00.000Z"), 50),
            item("D", Some("2022-01-01T00:00:00.000Z"), 20),
        ]
    }

    #[test]
    fn batches_are_date_ranges_that_fit_free_minus_margin() {
        let p = build("u", None, "now".into(), items(), 1100, 1000);
        assert_eq!(p.batch_limit_bytes, 100);
        for b in &p.batches {
            assert!(b.bytes <= p.batch_limit_bytes, "{b:?}");
        }
        let order: Vec<Vec<&str>> = p
            .batches
            .iter()
            .map(|b| b.uuids.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(order, vec![vec!["A", "B"], vec!["C", "D", "U"]]);
        assert_eq!(
            p.batches[0].from.as_deref(),
            Some("2019-01-01T00:00:00.000Z")
        );
        assert_eq!(p.batches[0].to.as_deref(), Some("2020-06-01T00:00:00.000Z"));
        assert!(p.batches[0].instruction.contains("2019-01-01 – 2020-06-01"));
        assert!(p.batches[0].instruction.contains("Do not switch on"));
        assert_eq!(p.assets, 5);
        assert_eq!(p.bytes, 150);
        assert!(p.no_space.is_none());
    }

    #[test]
    fn everything_fitting_suggests_download_and_keep_originals() {
        let p = build("u", None, "now".into(), items(), 10_000, 1000);
        assert_eq!(p.batches.len(), 1);
        assert!(p.batches[0]
            .instruction
            .contains("Download and Keep Originals"));
        assert!(!p.batches[0].instruction.contains("Do not switch"));
    }

    #[test]
    fn no_free_space_says_so_instead_of_batches() {
        let p = build("u", None, "now".into(), items(), 900, 1000);
        assert!(p.batches.is_empty());
        assert_eq!(p.too_large.len(), 5);
        assert!(p.no_space.as_deref().unwrap().contains("Free up space"));
        // An item larger than the limit is listed apart; the rest still get batches.
        let p = build("u", None, "now".into(), items(), 1045, 1000);
        assert_eq!(p.too_large.len(), 1);
        assert_eq!(p.too_large[0].uuid, "B");
        assert!(p.no_space.is_none());
        assert!(p.batches.iter().all(|b| b.bytes <= 45));
    }

    #[test]
    fn progress_counts_what_is_no_longer_icloud_only() {
        let p = build("u", None, "now".into(), items(), 1100, 1000);
        let still: HashSet<String> = ["C", "D"].iter().map(|s| s.to_string()).collect();
        let pr = progress(&p, &still);
        assert_eq!(pr.batches[0].fetched, 2);
        assert_eq!(pr.batches[1].fetched, 1);
        assert_eq!(pr.done, 1);
        assert_eq!(
            pr.line(),
            "batch 2 of 2: 1 of 3 fetched (1 of 2 batches done)"
        );
        assert_eq!(
            progress(&p, &HashSet::new()).line(),
            "all 2 batches fetched"
        );
    }

    #[test]
    fn csv_quotes_names() {
        let mut it = items();
        it[0].name = Some("a,\"b\".HEIC".into());
        let p = build("u", None, "now".into(), it.clone(), 1100, 1000);
        let csv = to_csv(&p, &it);
        assert!(csv.starts_with("batch,uuid,name,created_utc,files,bytes\n1,A,"));
        assert!(csv.contains("2,C,\"a,\"\"b\"\".HEIC\",2021-03-01T00:00:00.000Z,1,40\n"));
        assert_eq!(csv.lines().count(), 6);
    }

    #[test]
    fn margin_has_a_floor_and_scales() {
        assert_eq!(margin_for(None), 2_000_000_000);
        assert_eq!(margin_for(Some(16_000_000_000)), 2_000_000_000);
        assert_eq!(margin_for(Some(256_000_000_000)), 12_800_000_000);
    }
}
