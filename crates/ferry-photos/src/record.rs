//! The per-asset record the reader produces, and its enums.
//!
//! Every enum has a stable snake_case name ([`as_str`](Availability::as_str) and serde) that
//! reports, logs and the generator's `expected.json` share.

use serde::Serialize;

use crate::path::{AfcPath, PathError};

/// Seconds between the Unix epoch and Core Data's epoch (2001-01-01T00:00:00Z).
pub const CORE_DATA_EPOCH: i64 = 978_307_200;

macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The stable snake_case name.
            pub fn as_str(&self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// `ZKIND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    /// 0.
    Photo,
    /// 1.
    Video,
    /// Anything else (value kept in the record's `raw_kind`).
    Other,
}
names!(AssetKind { Photo => "photo", Video => "video", Other => "other" });

impl AssetKind {
    pub(crate) fn from_db(v: Option<i64>) -> Self {
        match v {
            Some(0) => AssetKind::Photo,
            Some(1) => AssetKind::Video,
            _ => AssetKind::Other,
        }
    }
}

/// `ZKINDSUBTYPE`, interpreted with `ZKIND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetSubtype {
    /// Photo, subtype 0.
    Still,
    /// 1.
    Panorama,
    /// 2: still + paired video.
    LivePhoto,
    /// 10 (iOS 18 also sets `ZISDETECTEDSCREENSHOT`).
    Screenshot,
    /// Video, subtype 0 or 100.
    Video,
    /// 101.
    SloMo,
    /// 102.
    TimeLapse,
    /// 103 (original name `RPReplay_Final…`).
    ScreenRecording,
    /// Any other value.
    Other,
}
names!(AssetSubtype {
    Still => "still", Panorama => "panorama", LivePhoto => "live_photo",
    Screenshot => "screenshot", Video => "video", SloMo => "slomo",
    TimeLapse => "timelapse", ScreenRecording => "screen_recording", Other => "other",
});

impl AssetSubtype {
    pub(crate) fn from_db(kind: AssetKind, sub: Option<i64>) -> Self {
        match (kind, sub.unwrap_or(0)) {
            (_, 1) => AssetSubtype::Panorama,
            (_, 2) => AssetSubtype::LivePhoto,
            (_, 10) => AssetSubtype::Screenshot,
            (AssetKind::Video, 0) | (_, 100) => AssetSubtype::Video,
            (_, 101) => AssetSubtype::SloMo,
            (_, 102) => AssetSubtype::TimeLapse,
            (_, 103) => AssetSubtype::ScreenRecording,
            (AssetKind::Photo, 0) => AssetSubtype::Still,
            _ => AssetSubtype::Other,
        }
    }
}

/// Where a resource is, according to the database (spec §4.2). The file system has the
/// last word; see [`crate::reconcile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// `ZLOCALAVAILABILITY = 1`: the file is on the phone.
    Local,
    /// `ZLOCALAVAILABILITY <= -1`, `ZREMOTEAVAILABILITY >= 1`, fingerprint set: optimized away,
    /// only in iCloud.
    IcloudOnly,
    /// Not on the phone and not in iCloud (`ZREMOTEAVAILABILITY` 0 or another non-positive
    /// value): at risk or lost.
    Unavailable,
    /// No resource row, `-32768`, `0` or another value: decide by the file.
    Unknown,
}
names!(Availability { Local => "local", IcloudOnly => "icloud_only", Unavailable => "unavailable", Unknown => "unknown" });

/// Whether a resource has reached iCloud. An original that is [`Availability::Local`] and not
/// [`UploadState::InIcloud`] exists *only on this phone*: it is the one most at risk.
///
/// ⚠ UNCONFIRMED: the rule combining `ZREMOTEAVAILABILITY`, `ZFINGERPRINT` and
/// `ZINTERNALRESOURCE.ZCLOUDLOCALSTATE` (0 not synced, 1 pending, 3 synced, spec §2.5) with the
/// library-wide "iCloud Photos is off" signal (spec §4.2) is inferred, not seen on a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    /// In iCloud (`ZREMOTEAVAILABILITY >= 1` with a fingerprint, or cloud state 3).
    InIcloud,
    /// iCloud Photos is on but this resource is not uploaded yet.
    UploadPending,
    /// iCloud Photos is off for the whole library: nothing is uploaded.
    IcloudPhotosOff,
    /// Cannot tell.
    Unknown,
}
names!(UploadState { InIcloud => "in_icloud", UploadPending => "upload_pending", IcloudPhotosOff => "icloud_photos_off", Unknown => "unknown" });

/// Which original resource of an asset this is (spec §4.1, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceRole {
    /// The primary original (`ZDIRECTORY/ZFILENAME`).
    Primary,
    /// The Live Photo video complement (`<stem>.MOV` beside the still).
    LiveVideo,
    /// The other half of a RAW+JPEG pair (`<stem>.<raw ext>`, ⚠ UNCONFIRMED path).
    RawAlternate,
    /// The current edit's full-size render (`Mutations/…/Adjustments/FullSizeRender.*`).
    EditRender,
    /// The current edit's Live Photo video render (`FullSizeRender.mov`).
    EditLiveVideo,
    /// The edit's adjustment data (`Adjustments.plist`, exported as `.AAE`).
    AdjustmentData,
}
names!(ResourceRole {
    Primary => "primary", LiveVideo => "live_video", RawAlternate => "raw_alternate",
    EditRender => "edit_render", EditLiveVideo => "edit_live_video", AdjustmentData => "adjustment_data",
});

/// Where to find a resource on the phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceLocation {
    /// An exact path.
    Exact(AfcPath),
    /// `dir/stem.*`: the database does not say the extension (RAW alternates, photo edit
    /// renders whose extension changed across iOS versions). List `dir` and take the entry
    /// named `stem.<ext>` whose extension is not in `exclude_extensions` (case-insensitive).
    AnyExtension {
        /// The directory to list.
        dir: AfcPath,
        /// The file stem.
        stem: String,
        /// Extensions that belong to other resources (the primary, the Live video).
        exclude_extensions: Vec<String>,
    },
}

impl ResourceLocation {
    /// The exact path, if known without listing.
    pub fn exact(&self) -> Option<&AfcPath> {
        match self {
            ResourceLocation::Exact(p) => Some(p),
            ResourceLocation::AnyExtension { .. } => None,
        }
    }
}

/// One original resource of an asset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginalResource {
    /// What it is.
    pub role: ResourceRole,
    /// Where it is.
    pub location: ResourceLocation,
    /// `ZINTERNALRESOURCE.ZDATALENGTH` (for the primary, else `ZORIGINALFILESIZE`).
    pub expected_size: Option<u64>,
    /// Local / iCloud-only / unavailable / unknown, per the database.
    pub availability: Availability,
    /// Whether it has reached iCloud.
    pub upload: UploadState,
}

impl OriginalResource {
    /// True if the database says this file is on the phone and nowhere else: the backup is
    /// its only other copy.
    pub fn only_on_this_phone(&self) -> bool {
        self.availability == Availability::Local
            && matches!(
                self.upload,
                UploadState::UploadPending | UploadState::IcloudPhotosOff
            )
    }
}

/// Why an asset is not backed up by default (spec §0 rule 7, §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum Exclusion {
    /// In Recently Deleted (`ZTRASHEDSTATE <> 0`).
    Trashed,
    /// A Shared Album item (`ZSAVEDASSETTYPE = 4` or `ZBUNDLESCOPE = 2`).
    SharedAlbum,
    /// An iCloud-link item (`ZSAVEDASSETTYPE = 8` or `ZBUNDLESCOPE = 1`).
    IcloudLink,
    /// A Shared-with-You guest item (`ZSAVEDASSETTYPE = 12` or `ZBUNDLESCOPE = 3`).
    SharedWithYou,
    /// A placeholder (`ZSAVEDASSETTYPE = 9`).
    Placeholder,
    /// The database path is missing or unsafe (outside the Media root, `..`, NUL, or inside
    /// the derivative areas).
    InvalidPath(String),
    /// The row cannot be used (e.g. `ZUUID` is NULL).
    BadRow(String),
}

impl Exclusion {
    /// The stable snake_case name of the reason.
    pub fn as_str(&self) -> &'static str {
        match self {
            Exclusion::Trashed => "trashed",
            Exclusion::SharedAlbum => "shared_album",
            Exclusion::IcloudLink => "icloud_link",
            Exclusion::SharedWithYou => "shared_with_you",
            Exclusion::Placeholder => "placeholder",
            Exclusion::InvalidPath(_) => "invalid_path",
            Exclusion::BadRow(_) => "bad_row",
        }
    }

    pub(crate) fn path(e: &PathError) -> Self {
        Exclusion::InvalidPath(e.to_string())
    }
}

/// iCloud Shared Library participation (iOS 16+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedLibrary {
    /// Not in a Shared Library (or the schema has none).
    None,
    /// In the Shared Library, contributed by this phone's user.
    Mine,
    /// In the Shared Library, contributed by another participant.
    Other,
    /// In the Shared Library, contributor unknown.
    Unknown,
}
names!(SharedLibrary { None => "none", Mine => "mine", Other => "other", Unknown => "unknown" });

/// Library flags of an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibraryFlags {
    /// `ZTRASHEDSTATE <> 0`.
    pub trashed: bool,
    /// `ZHIDDEN = 1`.
    pub hidden: bool,
    /// Edited (`ZHASADJUSTMENTS = 1` ≤ iOS 17, `ZADJUSTMENTSSTATE > 0` iOS 18+).
    pub edited: bool,
    /// `ZSAVEDASSETTYPE` (3 camera, 6 from iCloud Photos, …; spec §2.6).
    pub saved_asset_type: Option<i64>,
    /// `ZBUNDLESCOPE` (iOS 15+).
    pub bundle_scope: Option<i64>,
    /// Shared Library contributor.
    pub shared_library: SharedLibrary,
    /// `ZAVALANCHEUUID`: the burst this frame belongs to.
    pub burst_id: Option<String>,
    /// `ZAVALANCHEPICKTYPE` bit flags.
    pub burst_pick_type: Option<i64>,
    /// `ZDEFERREDPROCESSINGNEEDED <> 0`: capture not finalized; back up but re-check later.
    pub deferred_processing: bool,
    /// `ZCLOUDASSETGUID IS NOT NULL`.
    pub icloud_asset: bool,
}

/// Everything the reader knows about one asset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssetRecord {
    /// `Z_PK`.
    pub pk: i64,
    /// `ZUUID` (empty when NULL; such rows are excluded as [`Exclusion::BadRow`]).
    pub uuid: String,
    /// `ZKIND`.
    pub kind: AssetKind,
    /// `ZKINDSUBTYPE`.
    pub subtype: AssetSubtype,
    /// `ZDATECREATED`, Core Data seconds (may be NULL, negative or fractional).
    pub created_core_data: Option<f64>,
    /// `ZTIMEZONEOFFSET`, seconds east of UTC at capture.
    pub tz_offset_seconds: Option<i64>,
    /// `ZTIMEZONENAME`.
    pub tz_name: Option<String>,
    /// The user-facing original name (`ZORIGINALFILENAME`, else the cloud master's).
    pub original_filename: Option<String>,
    /// The database's verdict on the primary original.
    pub db_state: Availability,
    /// Why it is excluded by default, if it is.
    pub exclusion: Option<Exclusion>,
    /// The original resources: the primary first, then Live video, RAW alternate and the
    /// current edit. Empty when the asset has no usable path.
    pub resources: Vec<OriginalResource>,
    /// Library flags.
    pub flags: LibraryFlags,
}

impl AssetRecord {
    /// Capture time as Unix milliseconds (UTC), if the date is set and finite.
    pub fn created_unix_millis(&self) -> Option<i64> {
        let secs = self.created_core_data?;
        let ms = (secs * 1000.0).round();
        if !ms.is_finite() || ms.abs() > 1e17 {
            return None;
        }
        // In range: checked above; `as` on a finite, bounded f64 is exact for integers.
        Some(ms as i64 + CORE_DATA_EPOCH * 1000)
    }

    /// Capture time in UTC as RFC 3339 with milliseconds (`2024-01-15T12:00:00.000Z`).
    pub fn created_utc(&self) -> Option<String> {
        self.created_unix_millis().map(format_utc_millis)
    }

    /// Capture time in the capture's local time, RFC 3339 with its offset
    /// (`2024-01-15T13:00:00.000+01:00`); UTC (`Z`) when `ZTIMEZONEOFFSET` is unknown or
    /// implausible (beyond ±18 h). Use this for date folders: people think in local time.
    pub fn created_local(&self) -> Option<String> {
        let ms = self.created_unix_millis()?;
        // A range check, not `o.abs()`: `i64::MIN.abs()` overflows (the value is from the
        // phone's database).
        let Some(off) = self
            .tz_offset_seconds
            .filter(|o| (-18 * 3600..=18 * 3600).contains(o))
        else {
            return Some(format_utc_millis(ms));
        };
        let local = format_utc_millis(ms + off * 1000);
        let sign = if off < 0 { '-' } else { '+' };
        let (h, m) = (off.abs() / 3600, (off.abs() % 3600) / 60);
        Some(format!(
            "{}{sign}{h:02}:{m:02}",
            local.trim_end_matches('Z')
        ))
    }

    /// The primary original, if the asset has a usable path.
    pub fn primary(&self) -> Option<&OriginalResource> {
        self.resources
            .iter()
            .find(|r| r.role == ResourceRole::Primary)
    }

    /// True if excluded by default.
    pub fn is_excluded(&self) -> bool {
        self.exclusion.is_some()
    }
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, UTC).
pub fn format_utc_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Howard Hinnant's days → civil date.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(format_utc_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_utc_millis((727_012_800 + CORE_DATA_EPOCH) * 1000 + 250),
            "2024-01-15T12:00:00.250Z"
        );
        assert_eq!(format_utc_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_utc_millis(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn local_time_uses_the_offset() {
        let mut r = AssetRecord {
            pk: 1,
            uuid: "U".into(),
            kind: AssetKind::Photo,
            subtype: AssetSubtype::Still,
            created_core_data: Some(727_012_800.0),
            tz_offset_seconds: Some(-18_000),
            tz_name: None,
            original_filename: None,
            db_state: Availability::Local,
            exclusion: None,
            resources: Vec::new(),
            flags: LibraryFlags {
                trashed: false,
                hidden: false,
                edited: false,
                saved_asset_type: Some(3),
                bundle_scope: None,
                shared_library: SharedLibrary::None,
                burst_id: None,
                burst_pick_type: None,
                deferred_processing: false,
                icloud_asset: false,
            },
        };
        assert_eq!(
            r.created_local().as_deref(),
            Some("2024-01-15T07:00:00.000-05:00")
        );
        r.tz_offset_seconds = Some(19_800);
        assert_eq!(
            r.created_local().as_deref(),
            Some("2024-01-15T17:30:00.000+05:30")
        );
        r.tz_offset_seconds = None;
        assert_eq!(
            r.created_local().as_deref(),
            Some("2024-01-15T12:00:00.000Z")
        );
        r.created_core_data = None;
        assert_eq!(r.created_local(), None);
    }
}
