//! What the sync engine tells the archive about one resource it is about to copy
//! ([`ResourceSpec`]), and the checks and naming derived from it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_photos::ResourceRole;

use crate::error::{Error, Result};
use crate::names;

pub(crate) fn check_text(what: &'static str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return Err(Error::InvalidInput {
            what,
            detail: format!("{s:?} (empty, longer than {max} bytes, or control characters)"),
        });
    }
    Ok(())
}

/// What the sync engine knows about one original resource it is about to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSpec {
    /// Asset UUID (`ZUUID`).
    pub asset_uuid: String,
    /// Which resource of the asset.
    pub role: ResourceRole,
    /// Size the phone reports (AFC `st_size`); the write must produce exactly this many bytes.
    pub size: u64,
    /// Path on the phone, relative to `/var/mobile/Media` (gives the extension; stored).
    pub afc_path: String,
    /// The asset's original file name (`IMG_1234.HEIC`): the base name of *all* its files.
    pub original_filename: Option<String>,
    /// Capture time, Unix milliseconds UTC.
    pub capture_utc_millis: Option<i64>,
    /// Seconds east of UTC at capture.
    pub tz_offset_seconds: Option<i64>,
}

impl ResourceSpec {
    /// Builds a spec from the reader's record, one of its resources, the resolved phone path
    /// (for `AnyExtension` locations, after listing) and the size from AFC `stat`.
    pub fn from_record(
        record: &ferry_photos::AssetRecord,
        resource: &ferry_photos::OriginalResource,
        afc_path: &str,
        size: u64,
    ) -> ResourceSpec {
        let original = record.original_filename.clone().or_else(|| {
            record
                .primary()
                .and_then(|p| p.location.exact())
                .map(|p| p.as_str().rsplit('/').next().unwrap_or("").to_string())
        });
        ResourceSpec {
            asset_uuid: record.uuid.clone(),
            role: resource.role,
            size,
            afc_path: afc_path.to_string(),
            original_filename: original,
            capture_utc_millis: record.created_unix_millis(),
            tz_offset_seconds: record.tz_offset_seconds,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_text("asset UUID", &self.asset_uuid, 256)?;
        if self.afc_path.len() > 4096 || self.afc_path.contains('\0') {
            return Err(Error::InvalidInput {
                what: "phone path",
                detail: format!("{:?}", self.afc_path),
            });
        }
        if i64::try_from(self.size).is_err() {
            return Err(Error::InvalidInput {
                what: "size",
                detail: self.size.to_string(),
            });
        }
        Ok(())
    }

    /// The asset's base name (before any clash suffix).
    pub fn base_name(&self) -> String {
        let src = self
            .original_filename
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(&self.afc_path);
        names::base_from_original(src)
    }

    /// (role suffix, extension) of this resource's file name.
    pub fn name_parts(&self) -> (&'static str, Option<String>) {
        let afc_ext = names::extension_of(&self.afc_path);
        match self.role {
            ResourceRole::Primary => {
                let orig_ext = self
                    .original_filename
                    .as_deref()
                    .and_then(names::extension_of);
                let ext = match (orig_ext, afc_ext) {
                    (Some(o), Some(a)) if o.eq_ignore_ascii_case(&a) => Some(o),
                    (_, Some(a)) => Some(a),
                    (o, None) => o,
                };
                ("", ext)
            }
            ResourceRole::LiveVideo => ("", afc_ext.or_else(|| Some("MOV".into()))),
            ResourceRole::RawAlternate => ("", afc_ext),
            ResourceRole::EditRender => ("_edited", afc_ext),
            ResourceRole::EditLiveVideo => ("_edited", afc_ext.or_else(|| Some("MOV".into()))),
            ResourceRole::AdjustmentData => ("", Some("AAE".into())),
        }
    }

    pub(crate) fn mtime(&self) -> Option<SystemTime> {
        let ms = self.capture_utc_millis?;
        if ms >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_millis(ms.unsigned_abs()))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_millis(ms.unsigned_abs()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(uuid: &str, role: ResourceRole, name: &str, afc: &str, size: u64) -> ResourceSpec {
        ResourceSpec {
            asset_uuid: uuid.into(),
            role,
            size,
            afc_path: afc.into(),
            original_filename: Some(name.into()),
            capture_utc_millis: Some(1_706_743_800_000),
            tz_offset_seconds: Some(3600),
        }
    }

    #[test]
    fn name_parts_per_role() {
        let s = spec(
            "u",
            ResourceRole::Primary,
            "IMG_1.HEIC",
            "DCIM/100APPLE/IMG_1.HEIC",
            1,
        );
        assert_eq!(s.name_parts(), ("", Some("HEIC".into())));
        let s = spec(
            "u",
            ResourceRole::LiveVideo,
            "IMG_1.HEIC",
            "DCIM/100APPLE/IMG_1.MOV",
            1,
        );
        assert_eq!(s.name_parts(), ("", Some("MOV".into())));
        let s = spec(
            "u",
            ResourceRole::EditRender,
            "IMG_1.HEIC",
            "PhotoData/Mutations/x/FullSizeRender.jpg",
            1,
        );
        assert_eq!(s.name_parts(), ("_edited", Some("jpg".into())));
        let s = spec(
            "u",
            ResourceRole::AdjustmentData,
            "IMG_1.HEIC",
            "x/Adjustments.plist",
            1,
        );
        assert_eq!(s.name_parts(), ("", Some("AAE".into())));
        // Stored under another extension than the original name says: the bytes win.
        let s = spec(
            "u",
            ResourceRole::Primary,
            "IMG_1.JPG",
            "DCIM/IMG_1.HEIC",
            1,
        );
        assert_eq!(s.name_parts(), ("", Some("HEIC".into())));
        let s = spec(
            "u",
            ResourceRole::Primary,
            "IMG_1.jpeg",
            "DCIM/IMG_1.JPEG",
            1,
        );
        assert_eq!(s.name_parts(), ("", Some("jpeg".into())));
    }

    #[test]
    fn mtime_from_capture() {
        let mut s = spec("u", ResourceRole::Primary, "a.jpg", "a.jpg", 1);
        assert_eq!(
            s.mtime(),
            Some(UNIX_EPOCH + Duration::from_millis(1_706_743_800_000))
        );
        s.capture_utc_millis = Some(-1000);
        assert_eq!(s.mtime(), UNIX_EPOCH.checked_sub(Duration::from_secs(1)));
        s.capture_utc_millis = None;
        assert_eq!(s.mtime(), None);
    }
}
