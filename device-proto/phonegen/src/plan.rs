//! The plan: every asset, resource row and file of an image, decided up front from the seed.
//!
//! Nothing here touches the disk. The planner first walks a *coverage list* (one asset per
//! scenario, so even a 40-asset fixture has every trap), then draws the rest from weighted
//! scenarios. Each scenario decides the *intent* first — is the original local, iCloud-only or
//! gone; is it uploaded; is the file on disk — and the database columns are derived from that
//! intent in [`crate::db`]. `expected.json` is built from the same intent ([`crate::expected`]),
//! never from the reader.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::media::{MediaKind, PFile};
use crate::{IcloudPhotos, IosSchema, MakePhoneArgs, MediaSize};

/// Seconds between the Unix and Core Data epochs.
pub(crate) const CORE_DATA_EPOCH: i64 = 978_307_200;

/// DB availability the generator chose for a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Avail {
    Local,
    IcloudOnly,
    /// Not local, not in iCloud.
    Unavailable,
    /// Syndication encoding (`-32768`), class 3 only.
    Syndication,
}

/// Upload state the generator chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upload {
    InIcloud,
    Pending,
    Off,
    /// Neither here nor in iCloud.
    Unknown,
}

/// Original resource roles (names shared with the reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Primary,
    LiveVideo,
    RawAlternate,
    EditRender,
    EditLiveVideo,
    AdjustmentData,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::LiveVideo => "live_video",
            Role::RawAlternate => "raw_alternate",
            Role::EditRender => "edit_render",
            Role::EditLiveVideo => "edit_live_video",
            Role::AdjustmentData => "adjustment_data",
        }
    }
}

/// One `ZINTERNALRESOURCE` row (an original, an edit, or a derivative).
#[derive(Debug, Clone)]
pub(crate) struct PResource {
    /// `None` for derivatives/thumbnails.
    pub role: Option<Role>,
    pub class: i64,
    pub subtype: i64,
    pub rtype: i64,
    pub version: i64,
    pub recipe: i64,
    pub avail: Avail,
    pub upload: Upload,
    pub len: u64,
    /// AFC path of the file this row describes.
    pub path: String,
    /// Index into `Plan::files` if the file exists on disk.
    pub file: Option<usize>,
    pub uti: &'static str,
}

/// One asset.
#[derive(Debug, Clone)]
pub(crate) struct PAsset {
    pub pk: i64,
    pub uuid: String,
    pub scenario: &'static str,
    pub kind: i64,
    pub subtype: i64,
    pub playback: i64,
    pub dir: Option<String>,
    pub filename: Option<String>,
    pub original_filename: Option<String>,
    pub original_size: u64,
    pub uti: &'static str,
    pub created: Option<f64>,
    pub tz_offset: i64,
    pub tz_name: String,
    pub saved_type: i64,
    pub bundle_scope: i64,
    pub trashed: bool,
    pub hidden: bool,
    pub visibility: i64,
    pub burst: Option<(String, i64)>,
    pub media_group: Option<String>,
    pub edited: bool,
    pub cloud_guid: Option<String>,
    pub cloud_local_state: i64,
    pub moment_share: bool,
    /// Shared Library: `Some(true)` contributed by me, `Some(false)` by another participant.
    pub spl: Option<bool>,
    pub syndication: Option<(String, i64)>,
    pub shared_album: bool,
    pub screenshot: bool,
    pub raw_choice: i64,
    pub width: i64,
    pub height: i64,
    pub duration: f64,
    pub resources: Vec<PResource>,
    pub excluded: Option<&'static str>,
    /// Written in the un-checkpointed WAL part (inserted there, or changed there).
    pub in_wal: bool,
    /// Part-1 asset whose primary is purged by an UPDATE in the WAL.
    pub late_purge: bool,
    /// Part-1 asset trashed by an UPDATE in the WAL.
    pub late_trash: bool,
}

/// The whole image.
#[derive(Debug)]
pub(crate) struct Plan {
    pub assets: Vec<PAsset>,
    pub files: Vec<PFile>,
    pub icloud_on: bool,
    pub version: u8,
    /// Index of the first asset written after the checkpoint (only in the WAL).
    pub wal_start: usize,
}

/// Every scenario, in coverage order. Each is generated once before random draws begin.
const COVERAGE: &[&str] = &[
    "heic_still",
    "jpeg_still",
    "screenshot",
    "video_mov",
    "screen_recording",
    "live_photo",
    "live_photo_video_icloud",
    "live_photo_still_icloud",
    "optimized_heic",
    "optimized_jpeg",
    "cpl_downloaded",
    "cpl_live",
    "upload_pending",
    "burst",
    "raw_jpeg_pair",
    "proraw",
    "edited_photo",
    "edited_video",
    "edited_live",
    "edited_optimized",
    "hidden",
    "trashed",
    "shared_album",
    "icloud_link",
    "shared_with_you",
    "swy_saved",
    "spl_other",
    "spl_mine",
    "db_local_file_missing",
    "db_local_missing_not_uploaded",
    "db_icloud_file_present",
    "unavailable",
    "non_ascii_name",
    "nfd_name",
    "duplicate_name",
    "null_date",
    "negative_date",
    "placeholder",
    "slomo",
    "panorama",
];

/// Weights for the random phase.
const WEIGHTS: &[(&str, u32)] = &[
    ("heic_still", 300),
    ("jpeg_still", 40),
    ("screenshot", 80),
    ("video_mov", 60),
    ("screen_recording", 8),
    ("slomo", 6),
    ("panorama", 6),
    ("live_photo", 150),
    ("burst", 8),
    ("raw_jpeg_pair", 6),
    ("proraw", 8),
    ("edited_photo", 25),
    ("edited_video", 6),
    ("edited_live", 10),
    ("cpl_downloaded", 70),
    ("cpl_live", 25),
    ("upload_pending", 20),
    ("hidden", 10),
    ("trashed", 20),
    ("shared_album", 20),
    ("icloud_link", 8),
    ("shared_with_you", 8),
    ("swy_saved", 4),
    ("spl_other", 10),
    ("spl_mine", 10),
    ("db_local_file_missing", 3),
    ("db_local_missing_not_uploaded", 2),
    ("db_icloud_file_present", 3),
    ("unavailable", 2),
    ("non_ascii_name", 8),
    ("nfd_name", 4),
    ("null_date", 3),
    ("negative_date", 3),
    ("placeholder", 2),
];

/// Names for non-ASCII originals. "Café" etc. are written in NFD (decomposed) form where noted.
const NON_ASCII_NAMES: &[&str] = &[
    "写真 2023-05-01.JPG",
    "Größe.heic",
    "😀 party.png",
    "Ωmega.jpeg",
    "Ünïcödé.JPG",
];
/// NFD: "Café au lait.jpg" with e + U+0301, "Mötley.JPG" with o + U+0308.
const NFD_NAMES: &[&str] = &[
    "Cafe\u{301} au lait.jpg",
    "Mo\u{308}tley.JPG",
    "Jose\u{301}.HEIC",
];

pub(crate) struct Planner {
    rng: ChaCha8Rng,
    version: u8,
    icloud_on: bool,
    icloud_only: f64,
    media: MediaSize,
    sparse_video: Option<u64>,
    assets: Vec<PAsset>,
    files: Vec<PFile>,
    img_number: u32,
    dcim_folder: u32,
    dcim_count: u32,
    import_number: u32,
    random_phase: bool,
}

impl Planner {
    pub fn new(args: &MakePhoneArgs) -> Planner {
        Planner {
            rng: ChaCha8Rng::seed_from_u64(args.seed),
            version: args.schema.major(),
            icloud_on: args.icloud_photos == IcloudPhotos::On,
            icloud_only: args.icloud_only.clamp(0.0, 1.0),
            media: args.media_size,
            sparse_video: args.sparse_video_bytes,
            assets: Vec::new(),
            files: Vec::new(),
            img_number: 0,
            dcim_folder: 100,
            dcim_count: 0,
            import_number: 0,
            random_phase: false,
        }
    }

    /// Plans `n` assets; `wal_fraction` of them (the newest) go only into the WAL.
    pub fn plan(mut self, n: usize, wal_fraction: f64) -> Plan {
        let coverage: Vec<&'static str> = COVERAGE
            .iter()
            .copied()
            .filter(|s| self.supported(s))
            .collect();
        let weights: Vec<(&'static str, u32)> = WEIGHTS
            .iter()
            .copied()
            .filter(|(s, _)| self.supported(s))
            .collect();
        let total: u32 = weights.iter().map(|w| w.1).sum();
        let mut i = 0;
        while self.assets.len() < n {
            let scenario = if i < coverage.len() {
                coverage[i]
            } else {
                self.random_phase = true;
                let mut pick = self.rng.gen_range(0..total);
                let mut chosen = weights[0].0;
                for (s, w) in &weights {
                    if pick < *w {
                        chosen = s;
                        break;
                    }
                    pick -= w;
                }
                chosen
            };
            i += 1;
            let remaining = n - self.assets.len();
            self.scenario(scenario, remaining);
        }
        let wal_count = ((n as f64) * wal_fraction.clamp(0.0, 1.0)).round() as usize;
        let wal_start = if n > 0 {
            n.saturating_sub(wal_count.max(1))
        } else {
            0
        };
        // Some part-1 assets change state inside the WAL: a purge, a trash.
        for a in self.assets.iter_mut().take(wal_start) {
            if a.resources
                .first()
                .is_some_and(|r| r.role == Some(Role::Primary) && r.avail == Avail::IcloudOnly)
                && self.rng.gen_bool(0.5)
            {
                a.late_purge = true;
                a.in_wal = true;
            }
            if a.trashed && self.rng.gen_bool(0.5) {
                a.late_trash = true;
                a.in_wal = true;
            }
        }
        for a in self.assets.iter_mut().skip(wal_start) {
            a.in_wal = true;
        }
        Plan {
            assets: self.assets,
            files: self.files,
            icloud_on: self.icloud_on,
            version: self.version,
            wal_start,
        }
    }

    fn supported(&self, s: &str) -> bool {
        let needs_icloud = matches!(
            s,
            "live_photo_video_icloud"
                | "live_photo_still_icloud"
                | "optimized_heic"
                | "optimized_jpeg"
                | "cpl_downloaded"
                | "cpl_live"
                | "upload_pending"
                | "raw_jpeg_pair"
                | "edited_optimized"
                | "spl_other"
                | "spl_mine"
                | "db_local_file_missing"
                | "db_icloud_file_present"
                | "unavailable"
                | "duplicate_name"
        );
        if needs_icloud && !self.icloud_on {
            return false;
        }
        match s {
            "shared_with_you" | "swy_saved" => self.version >= 15,
            "spl_other" | "spl_mine" => self.version >= 16,
            _ => true,
        }
    }

    // ----- building blocks -------------------------------------------------------------

    fn uuid(&mut self) -> String {
        let b: [u8; 16] = self.rng.gen();
        let h: String = b.iter().map(|x| format!("{x:02X}")).collect();
        format!(
            "{}-{}-4{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[16..20],
            &h[20..32]
        )
    }

    fn size(&mut self, kind: &str) -> u64 {
        let (lo, hi): (u64, u64) = match (self.media, kind) {
            (MediaSize::Small, "video") => (1_000, 8_000),
            (MediaSize::Small, "raw") => (2_000, 6_000),
            (MediaSize::Small, "deriv") => (100, 600),
            (MediaSize::Small, _) => (300, 3_000),
            (MediaSize::Realistic, "still") => (1_500_000, 6_000_000),
            (MediaSize::Realistic, "png") => (200_000, 3_000_000),
            (MediaSize::Realistic, "live") => (1_500_000, 4_000_000),
            (MediaSize::Realistic, "raw") => (20_000_000, 80_000_000),
            (MediaSize::Realistic, "deriv") => (100_000, 500_000),
            (MediaSize::Realistic, "render") => (1_000_000, 4_000_000),
            (MediaSize::Realistic, "video") => {
                // Log-uniform 5 MB … 300 MB: most clips short, a few long.
                let x: f64 = self.rng.gen_range(0.0..1.0);
                return (5.0e6 * (60.0f64).powf(x)) as u64;
            }
            (MediaSize::Realistic, _) => (1_500_000, 6_000_000),
        };
        self.rng.gen_range(lo..=hi)
    }

    fn add_file(&mut self, path: &str, size: u64, kind: MediaKind, mtime: i64) -> usize {
        let size = size.max(PFile::min_size(&kind));
        let seed = self.rng.gen();
        self.files.push(PFile {
            path: path.to_string(),
            size,
            kind,
            seed,
            sparse: false,
            mtime,
        });
        self.files.len() - 1
    }

    /// Next DCIM slot for an asset with `nfiles` files: folders roll over at 999 files,
    /// IMG numbers run 0001…9999 and wrap (so names repeat across folders, as on real phones).
    fn dcim(&mut self, nfiles: u32, ext: &str) -> (String, String) {
        if self.dcim_count + nfiles > 999 {
            self.dcim_folder += 1;
            self.dcim_count = 0;
        }
        self.dcim_count += nfiles;
        self.img_number = self.img_number % 9999 + 1;
        (
            format!("DCIM/{}APPLE", self.dcim_folder),
            format!("IMG_{:04}.{ext}", self.img_number),
        )
    }

    fn base(&mut self, scenario: &'static str) -> PAsset {
        let pk = self.assets.len() as i64 + 1;
        let uuid = self.uuid();
        // 2019-01-01 … 2024-12-31, millisecond precision.
        let ms: i64 = self.rng.gen_range(568_080_000_000..757_382_400_000);
        let (tz_offset, tz_name) = *[
            (3600, "GMT+0100"),
            (7200, "GMT+0200"),
            (0, "GMT"),
            (-18000, "GMT-0500"),
            (-25200, "GMT-0700"),
            (32400, "GMT+0900"),
            (19800, "GMT+0530"),
        ]
        .choose(&mut self.rng)
        .unwrap_or(&(0, "GMT"));
        PAsset {
            pk,
            uuid,
            scenario,
            kind: 0,
            subtype: 0,
            playback: 1,
            dir: None,
            filename: None,
            original_filename: None,
            original_size: 0,
            uti: "public.heic",
            created: Some(ms as f64 / 1000.0),
            tz_offset,
            tz_name: tz_name.to_string(),
            saved_type: 3,
            bundle_scope: 0,
            trashed: false,
            hidden: false,
            visibility: 0,
            burst: None,
            media_group: None,
            edited: false,
            cloud_guid: None,
            cloud_local_state: if self.icloud_on { 1 } else { 0 },
            moment_share: false,
            spl: None,
            syndication: None,
            shared_album: false,
            screenshot: false,
            raw_choice: 0,
            width: 4032,
            height: 3024,
            duration: 0.0,
            resources: Vec::new(),
            excluded: None,
            in_wal: false,
            late_purge: false,
            late_trash: false,
        }
    }

    fn mtime(a: &PAsset) -> i64 {
        a.created
            .map(|c| c.floor() as i64 + CORE_DATA_EPOCH)
            .unwrap_or(1_577_836_800)
            .max(0)
    }

    fn default_upload(&self) -> Upload {
        if self.icloud_on {
            Upload::InIcloud
        } else {
            Upload::Off
        }
    }

    /// Adds an original resource row (and its file when `present`).
    #[allow(clippy::too_many_arguments)]
    fn original(
        &mut self,
        a: &mut PAsset,
        role: Role,
        path: String,
        kind: MediaKind,
        size: u64,
        avail: Avail,
        upload: Upload,
        present: bool,
    ) {
        let size = size.max(PFile::min_size(&kind));
        let (subtype, rtype, version, recipe) = match role {
            Role::Primary => (1, if a.kind == 1 { 1 } else { 0 }, 0, 0),
            Role::LiveVideo => (18, 3, 0, 0),
            Role::RawAlternate => (17, 0, 0, 0),
            Role::EditRender if kind == MediaKind::Mov => (16, 1, 2, 131_072),
            Role::EditRender => (2, 0, 2, 65_938),
            Role::EditLiveVideo => (19, 3, 2, 131_272),
            Role::AdjustmentData => (13, 6, 2, 0),
        };
        // iCloud Photos never on: no CPL types, the subtype-0 fallback (⚠ UNCONFIRMED, spec §4.1).
        let subtype = if self.icloud_on { subtype } else { 0 };
        let uti = uti_of(&kind);
        let mtime = Self::mtime(a);
        let file = present.then(|| self.add_file(&path, size, kind, mtime));
        if role == Role::Primary {
            a.original_size = size;
            a.uti = uti;
        }
        a.resources.push(PResource {
            role: Some(role),
            class: 0,
            subtype,
            rtype,
            version,
            recipe,
            avail,
            upload,
            len: size,
            path,
            file,
            uti,
        });
    }

    /// Adds a derivative (odd recipe, always local) with its file.
    fn derivative(
        &mut self,
        a: &mut PAsset,
        path: String,
        subtype: i64,
        rtype: i64,
        recipe: i64,
        kind: MediaKind,
    ) {
        let size = self.size("deriv");
        let mtime = Self::mtime(a);
        let file = self.add_file(&path, size, kind.clone(), mtime);
        let len = self.files[file].size;
        a.resources.push(PResource {
            role: None,
            class: 0,
            subtype: if self.icloud_on { subtype } else { 0 },
            rtype,
            version: 0,
            recipe,
            avail: Avail::Local,
            upload: self.default_upload(),
            len,
            path,
            file: Some(file),
            uti: uti_of(&kind),
        });
    }

    /// What "Optimize iPhone Storage" leaves behind: `Metadata/<dir>/<stem>.JPG` (the same
    /// name as a JPEG original — the trap) and a `Thumbnails/V2` master thumbnail.
    fn optimized_leftovers(&mut self, a: &mut PAsset) {
        let (Some(dir), Some(file)) = (a.dir.clone(), a.filename.clone()) else {
            return;
        };
        let stem = file
            .rsplit_once('.')
            .map_or(file.as_str(), |(s, _)| s)
            .to_string();
        if a.kind == 1 {
            self.derivative(
                a,
                format!("PhotoData/Metadata/{dir}/{stem}.medium.MP4"),
                6,
                1,
                131_079,
                MediaKind::Mp4,
            );
        } else {
            self.derivative(
                a,
                format!("PhotoData/Metadata/{dir}/{stem}.JPG"),
                4,
                0,
                65_741,
                MediaKind::Jpeg,
            );
        }
        self.thumbnail(a);
    }

    fn thumbnail(&mut self, a: &mut PAsset) {
        let (Some(dir), Some(file)) = (a.dir.clone(), a.filename.clone()) else {
            return;
        };
        self.derivative(
            a,
            format!("PhotoData/Thumbnails/V2/{dir}/{file}/5005.JPG"),
            5,
            0,
            262_147,
            MediaKind::Jpeg,
        );
    }

    fn push(&mut self, mut a: PAsset) {
        // Every tenth asset also gets a master thumbnail on disk.
        if a.pk % 10 == 0 && a.dir.is_some() && !a.resources.iter().any(|r| r.recipe == 262_147) {
            self.thumbnail(&mut a);
        }
        // Table thumbnails (kept in shared .ithmb tables, not one file per asset) still have
        // resource rows: real libraries carry several derivative rows per asset.
        if a.dir.is_some() {
            for recipe in [262_145, 262_149] {
                a.resources.push(PResource {
                    role: None,
                    class: 0,
                    subtype: if self.icloud_on { 5 } else { 0 },
                    rtype: 0,
                    version: 0,
                    recipe,
                    avail: Avail::Local,
                    upload: self.default_upload(),
                    len: 4096 + (recipe as u64 % 7) * 1024,
                    path: String::new(),
                    file: None,
                    uti: "public.jpeg",
                });
            }
        }
        self.assets.push(a);
    }

    /// Draws "optimized" for an eligible asset in the random phase.
    fn draw_optimized(&mut self) -> bool {
        self.random_phase && self.icloud_on && self.rng.gen_bool(self.icloud_only)
    }

    // ----- scenarios --------------------------------------------------------------------

    fn scenario(&mut self, s: &'static str, remaining: usize) {
        match s {
            "heic_still"
            | "jpeg_still"
            | "hidden"
            | "trashed"
            | "optimized_heic"
            | "optimized_jpeg"
            | "upload_pending"
            | "db_local_file_missing"
            | "db_local_missing_not_uploaded"
            | "db_icloud_file_present"
            | "unavailable"
            | "non_ascii_name"
            | "nfd_name"
            | "null_date"
            | "negative_date"
            | "panorama"
            | "swy_saved" => self.still(s),
            "screenshot" => self.screenshot(),
            "video_mov" | "screen_recording" | "slomo" => self.video(s),
            "live_photo" | "live_photo_video_icloud" | "live_photo_still_icloud" => self.live(s),
            "cpl_downloaded" | "cpl_live" | "duplicate_name" | "spl_other" | "spl_mine" => {
                self.cpl(s)
            }
            "burst" => self.burst(remaining),
            "raw_jpeg_pair" => self.raw_pair(),
            "proraw" => self.proraw(),
            "edited_photo" | "edited_video" | "edited_live" | "edited_optimized" => self.edited(s),
            "shared_album" => self.shared_album(),
            "icloud_link" => self.icloud_link(),
            "shared_with_you" => self.shared_with_you(),
            "placeholder" => self.placeholder(),
            _ => self.still("heic_still"),
        }
    }

    fn still(&mut self, s: &'static str) {
        let mut a = self.base(s);
        let jpeg = matches!(
            s,
            "jpeg_still" | "optimized_jpeg" | "non_ascii_name" | "nfd_name"
        );
        let ext = if jpeg { "JPG" } else { "HEIC" };
        let (dir, file) = self.dcim(1, ext);
        a.original_filename = Some(file.clone());
        a.dir = Some(dir.clone());
        a.filename = Some(file.clone());
        let kind = if jpeg {
            MediaKind::Jpeg
        } else {
            MediaKind::Heic
        };
        let size = self.size("still");
        let up = self.default_upload();
        let (mut avail, mut upload, mut present) = (Avail::Local, up, true);
        match s {
            "hidden" => a.hidden = true,
            "trashed" => {
                a.trashed = true;
                a.excluded = Some("trashed");
            }
            "optimized_heic" | "optimized_jpeg" => {
                avail = Avail::IcloudOnly;
                present = false;
            }
            "upload_pending" => {
                upload = Upload::Pending;
                a.cloud_local_state = 0;
            }
            "db_local_file_missing" => present = false,
            "db_local_missing_not_uploaded" => {
                present = false;
                if self.icloud_on {
                    upload = Upload::Pending;
                    a.cloud_local_state = 0;
                }
            }
            "db_icloud_file_present" => avail = Avail::IcloudOnly,
            "unavailable" => {
                avail = Avail::Unavailable;
                upload = Upload::Unknown;
                present = false;
            }
            "non_ascii_name" => {
                let n = *NON_ASCII_NAMES
                    .choose(&mut self.rng)
                    .unwrap_or(&"Größe.heic");
                a.original_filename = Some(n.to_string());
            }
            "nfd_name" => {
                let n = *NFD_NAMES
                    .choose(&mut self.rng)
                    .unwrap_or(&"Cafe\u{301} au lait.jpg");
                a.original_filename = Some(n.to_string());
            }
            "null_date" => a.created = None,
            "negative_date" => {
                // 1985 … 2000: scanned prints saved to the library.
                let ms: i64 = self.rng.gen_range(-504_921_600_000..-31_622_400_000);
                a.created = Some(ms as f64 / 1000.0);
            }
            "panorama" => {
                a.subtype = 1;
                a.width = 16000;
                a.height = 3000;
            }
            "swy_saved" => {
                let id = format!("SYND-{}", self.uuid());
                a.syndication = Some((id, 1));
                a.original_filename =
                    Some(format!("IMG_{:04}.JPG", self.rng.gen_range(1000..9999)));
            }
            _ => {
                if self.draw_optimized() {
                    avail = Avail::IcloudOnly;
                    present = false;
                }
            }
        }
        if avail == Avail::IcloudOnly {
            upload = Upload::InIcloud;
        }
        if self.icloud_on && upload == Upload::InIcloud {
            a.cloud_guid = Some(self.uuid());
        }
        self.original(
            &mut a,
            Role::Primary,
            format!("{dir}/{file}"),
            kind,
            size,
            avail,
            upload,
            present,
        );
        if avail == Avail::IcloudOnly && !present {
            self.optimized_leftovers(&mut a);
        }
        self.push(a);
    }

    fn screenshot(&mut self) {
        let mut a = self.base("screenshot");
        let (dir, file) = self.dcim(1, "PNG");
        a.subtype = 10;
        a.screenshot = true;
        a.width = 1170;
        a.height = 2532;
        a.original_filename = Some(file.clone());
        a.dir = Some(dir.clone());
        a.filename = Some(file.clone());
        let size = self.size("png");
        let up = self.default_upload();
        if up == Upload::InIcloud {
            a.cloud_guid = Some(self.uuid());
        }
        self.original(
            &mut a,
            Role::Primary,
            format!("{dir}/{file}"),
            MediaKind::Png,
            size,
            Avail::Local,
            up,
            true,
        );
        self.push(a);
    }

    fn video(&mut self, s: &'static str) {
        let mut a = self.base(s);
        a.kind = 1;
        a.playback = 4;
        a.duration = self.rng.gen_range(2.0..300.0);
        let (ext, kind) = if s == "screen_recording" {
            ("MP4", MediaKind::Mp4)
        } else {
            ("MOV", MediaKind::Mov)
        };
        let (dir, file) = self.dcim(1, ext);
        a.subtype = match s {
            "screen_recording" => 103,
            "slomo" => 101,
            _ => 0,
        };
        a.uti = if ext == "MP4" {
            "public.mpeg-4"
        } else {
            "com.apple.quicktime-movie"
        };
        a.original_filename = Some(if s == "screen_recording" {
            format!(
                "RPReplay_Final{}.MP4",
                self.rng.gen_range(1_600_000_000u64..1_730_000_000)
            )
        } else {
            file.clone()
        });
        a.dir = Some(dir.clone());
        a.filename = Some(file.clone());
        let mut size = self.size("video");
        let mut sparse = false;
        if s == "video_mov" {
            if let Some(big) = self.sparse_video.take() {
                size = big;
                sparse = true;
            }
        }
        let up = self.default_upload();
        let optimized = !sparse && self.draw_optimized();
        let (avail, present) = if optimized {
            (Avail::IcloudOnly, false)
        } else {
            (Avail::Local, true)
        };
        if up == Upload::InIcloud {
            a.cloud_guid = Some(self.uuid());
        }
        self.original(
            &mut a,
            Role::Primary,
            format!("{dir}/{file}"),
            kind,
            size,
            avail,
            up,
            present,
        );
        if sparse {
            if let Some(f) = a.resources.last().and_then(|r| r.file) {
                self.files[f].sparse = true;
            }
        }
        if optimized {
            self.optimized_leftovers(&mut a);
        }
        self.push(a);
    }

    fn live(&mut self, s: &'static str) {
        let mut a = self.base(s);
        a.subtype = 2;
        a.playback = 3;
        let (dir, file) = self.dcim(2, "HEIC");
        let stem = file.trim_end_matches(".HEIC").to_string();
        a.original_filename = Some(file.clone());
        a.dir = Some(dir.clone());
        a.filename = Some(file.clone());
        a.media_group = Some(self.uuid());
        let up = self.default_upload();
        if up == Upload::InIcloud {
            a.cloud_guid = Some(self.uuid());
        }
        // The still and the video are purged independently.
        let (still_icloud, video_icloud) = match s {
            "live_photo_video_icloud" => (false, true),
            "live_photo_still_icloud" => (true, false),
            _ => {
                let o = self.draw_optimized();
                let v = if self.random_phase && self.icloud_on {
                    self.rng.gen_bool(0.2)
                } else {
                    false
                };
                (o, o || v)
            }
        };
        let size = self.size("still");
        let (av, pr) = if still_icloud {
            (Avail::IcloudOnly, false)
        } else {
            (Avail::Local, true)
        };
        self.original(
            &mut a,
            Role::Primary,
            format!("{dir}/{file}"),
            MediaKind::Heic,
            size,
            av,
            up,
            pr,
        );
        let vsize = self.size("live");
        let (av, pr) = if video_icloud {
            (Avail::IcloudOnly, false)
        } else {
            (Avail::Local, true)
        };
        self.original(
            &mut a,
            Role::LiveVideo,
            format!("{dir}/{stem}.MOV"),
            MediaKind::Mov,
            vsize,
            av,
            up,
            pr,
        );
        if still_icloud {
            self.optimized_leftovers(&mut a);
        }
        if video_icloud {
            self.derivative(
                &mut a,
                format!("PhotoData/Metadata/{dir}/{stem}.medium.MOV"),
                6,
                3,
                131_275,
                MediaKind::Mov,
            );
        }
        self.push(a);
    }

    /// Assets that came down from iCloud Photos: `PhotoData/CPLAssets/groupN/<UUID>.<EXT>`.
    fn cpl(&mut self, s: &'static str) {
        let mut a = self.base(s);
        a.saved_type = 6;
        let group = self.rng.gen_range(1..=999);
        let dir = format!("PhotoData/CPLAssets/group{group}");
        let jpeg = self.rng.gen_bool(0.3);
        let ext = if jpeg { "JPG" } else { "HEIC" };
        // ⚠ UNCONFIRMED (spec §5.1, §10): the CPL file name's <UUID> is ZUUID.
        let file = format!("{}.{ext}", a.uuid);
        // Taken on another device: its own IMG_ counter, so names collide with this phone's.
        let other_number = if s == "duplicate_name" || self.rng.gen_bool(0.5) {
            self.img_number.max(1)
        } else {
            self.rng.gen_range(1..=9999)
        };
        a.original_filename = Some(format!("IMG_{other_number:04}.{ext}"));
        if s == "duplicate_name" {
            // Same user-facing name as the previous DCIM asset.
            if let Some(prev) = self
                .assets
                .iter()
                .rev()
                .find(|p| p.saved_type == 3 && p.original_filename.is_some())
            {
                a.original_filename = prev.original_filename.clone();
            }
        }
        a.dir = Some(dir.clone());
        a.filename = Some(file.clone());
        a.cloud_guid = Some(self.uuid());
        let kind = if jpeg {
            MediaKind::Jpeg
        } else {
            MediaKind::Heic
        };
        let optimized = matches!(s, "spl_other") || self.draw_optimized();
        let (av, pr) = if optimized {
            (Avail::IcloudOnly, false)
        } else {
            (Avail::Local, true)
        };
        if s == "spl_other" || s == "spl_mine" {
            a.spl = Some(s == "spl_mine");
        }
        let size = self.size("still");
        self.original(
            &mut a,
            Role::Primary,
            format!("{dir}/{file}"),
            kind,
            size,
            av,
            Upload::InIcloud,
            pr,
        );
        if s == "cpl_live" {
            a.subtype = 2;
            a.playback = 3;
            a.media_group = Some(self.uuid());
            let vsize = self.size("live");
            let (vav, vpr) = if optimized || self.rng.gen_bool(0.3) {
                (Avail::IcloudOnly, false)
            } else {
                (Avail::Local, true)
            };
            let mov = format!("{dir}/{}.MOV", a.uuid);
            self.original(
                &mut a,
                Role::LiveVideo,
                mov,
                MediaKind::Mov,
                vsize,
                vav,
                Upload::InIcloud,
                vpr,
            );
        }
        if optimized {
            self.optimized_leftovers(&mut a);
        }
        self.push(a);
    }

    fn burst(&mut self, remaining: usize) {
        let frames = self.rng.gen_range(3..=5).min(remaining.max(1));
        let burst_id = self.uuid();
        let created = self.base("burst").created;
        for i in 0..frames {
            let mut a = self.base("burst");
            a.created = created.map(|c| c + i as f64 * 0.1);
            let (dir, file) = self.dcim(1, "HEIC");
            a.original_filename = Some(file.clone());
            a.dir = Some(dir.clone());
            a.filename = Some(file.clone());
            let pick = match i {
                0 => 16 | 4,
                1 => 8,
                _ => 2,
            };
            // Non-picked frames hidden from the grid: ZVISIBILITYSTATE = 2 (⚠ spec §5.4).
            a.visibility = if pick == 2 { 2 } else { 0 };
            a.burst = Some((burst_id.clone(), pick));
            let up = self.default_upload();
            if up == Upload::InIcloud {
                a.cloud_guid = Some(self.uuid());
            }
            let size = self.size("still");
            self.original(
                &mut a,
                Role::Primary,
                format!("{dir}/{file}"),
                MediaKind::Heic,
                size,
                Avail::Local,
                up,
                true,
            );
            self.push(a);
        }
    }

    /// Camera-adapter import of a RAW+JPEG pair: JPEG primary, RAW alternate `<stem>.ARW`
    /// beside it (⚠ UNCONFIRMED on-device path, spec §5.5).
    fn raw_pair(&mut self) {
        let mut a = self.base("raw_jpeg_pair");
        a.saved_type = 5;
        self.import_number = self.import_number % 9999 + 1;
        let dir = "DCIM/100IMPRT".to_string();
        let stem = format!("DSC{:05}", self.import_number);
        let file = format!("{stem}.JPG");
        a.original_filename = Some(file.clone());
        a.dir = Some(dir.clone());
        a.filename = Some(file.clone());
        a.width = 6000;
        a.height = 4000;
        a.raw_choice = i64::from(self.rng.gen_bool(0.3));
        a.cloud_guid = Some(self.uuid());
        let size = self.size("still");
        self.original(
            &mut a,
            Role::Primary,
            format!("{dir}/{file}"),
            MediaKind::Jpeg,
            size,
            Avail::Local,
            Upload::InIcloud,
            true,
        );
        let rsize = self.size("raw");
        let (av, pr) = if self.random_phase && self.rng.gen_bool(self.icloud_only) {
            (Avail::IcloudOnly, false)
        } else {
            (Avail::Local, true)
        };
        self.original(
            &mut a,
            Role::RawAlternate,
            format!("{dir}/{stem}.ARW"),
            MediaKind::Tiff,
            rsize,
            av,
            Upload::InIcloud,
            pr,
        );
        self.push(a);
    }

    /// ProRAW: a single DNG original plus its `<stem>.full.JPG` derivative in Metadata.
    fn proraw(&mut self) {
        let mut a = self.base("proraw");
        let (dir, file) = self.dcim(1, "DNG");
        let stem = file.trim_end_matches(".DNG").to_string();
        a.original_filename = Some(file.clone());
        a.dir = Some(dir.clone());
        a.filename = Some(file.clone());
        let up = self.default_upload();
        if up == Upload::InIcloud {
            a.cloud_guid = Some(self.uuid());
        }
        let size = self.size("raw");
        let optimized = self.draw_optimized();
        let (av, pr) = if optimized {
            (Avail::IcloudOnly, false)
        } else {
            (Avail::Local, true)
        };
        self.original(
            &mut a,
            Role::Primary,
            format!("{dir}/{file}"),
            MediaKind::Tiff,
            size,
            av,
            up,
            pr,
        );
        self.derivative(
            &mut a,
            format!("PhotoData/Metadata/{dir}/{stem}.full.JPG"),
            3,
            0,
            65_737,
            MediaKind::Jpeg,
        );
        self.push(a);
    }

    fn edited(&mut self, s: &'static str) {
        let mut a = self.base(s);
        a.edited = true;
        let video = s == "edited_video";
        let live = s == "edited_live";
        let (ext, kind) = if video {
            ("MOV", MediaKind::Mov)
        } else {
            ("HEIC", MediaKind::Heic)
        };
        let (dir, file) = self.dcim(if live { 2 } else { 1 }, ext);
        let stem = file
            .rsplit_once('.')
            .map_or(file.as_str(), |(s, _)| s)
            .to_string();
        if video {
            a.kind = 1;
            a.playback = 4;
            a.duration = 12.5;
            a.uti = "com.apple.quicktime-movie";
        }
        if live {
            a.subtype = 2;
            a.playback = 3;
            a.media_group = Some(self.uuid());
        }
        a.original_filename = Some(file.clone());
        a.dir = Some(dir.clone());
        a.filename = Some(file.clone());
        let up = self.default_upload();
        if up == Upload::InIcloud {
            a.cloud_guid = Some(self.uuid());
        }
        let optimized = s == "edited_optimized";
        let (av, pr) = if optimized {
            (Avail::IcloudOnly, false)
        } else {
            (Avail::Local, true)
        };
        let size = self.size(if video { "video" } else { "still" });
        self.original(
            &mut a,
            Role::Primary,
            format!("{dir}/{file}"),
            kind,
            size,
            av,
            up,
            pr,
        );
        if live {
            let vsize = self.size("live");
            self.original(
                &mut a,
                Role::LiveVideo,
                format!("{dir}/{stem}.MOV"),
                MediaKind::Mov,
                vsize,
                Avail::Local,
                up,
                true,
            );
        }
        let adj = format!("PhotoData/Mutations/{dir}/{stem}/Adjustments");
        // FullSizeRender.jpg before iOS 17, .HEIC from 17 (⚠ UNCONFIRMED).
        let (render_name, render_kind) = if video {
            ("FullSizeRender.mov", MediaKind::Mov)
        } else if self.version >= 17 {
            ("FullSizeRender.HEIC", MediaKind::Heic)
        } else {
            ("FullSizeRender.jpg", MediaKind::Jpeg)
        };
        let rsize = self.size(if video { "video" } else { "render" });
        // Whether Optimize Storage purges edit renders is ⚠ UNCONFIRMED; this scenario assumes it does.
        let (rav, rpr) = if optimized {
            (Avail::IcloudOnly, false)
        } else {
            (Avail::Local, true)
        };
        self.original(
            &mut a,
            Role::EditRender,
            format!("{adj}/{render_name}"),
            render_kind,
            rsize,
            rav,
            up,
            rpr,
        );
        if live {
            let lsize = self.size("live");
            self.original(
                &mut a,
                Role::EditLiveVideo,
                format!("{adj}/FullSizeRender.mov"),
                MediaKind::Mov,
                lsize,
                Avail::Local,
                up,
                true,
            );
        }
        let plist = adjustments_plist(&a);
        let plen = plist.len() as u64;
        self.original(
            &mut a,
            Role::AdjustmentData,
            format!("{adj}/Adjustments.plist"),
            MediaKind::Literal(plist),
            plen,
            Avail::Local,
            up,
            true,
        );
        if optimized {
            self.optimized_leftovers(&mut a);
        }
        self.push(a);
    }

    fn shared_album(&mut self) {
        let mut a = self.base("shared_album");
        a.saved_type = 4;
        a.bundle_scope = 2;
        a.shared_album = true;
        a.cloud_local_state = 0;
        a.excluded = Some("shared_album");
        // ⚠ UNCONFIRMED sub-layout of PhotoCloudSharingData (spec §1).
        let dir = format!(
            "PhotoData/PhotoCloudSharingData/{}/{}",
            self.rng.gen_range(100_000_000u64..999_999_999),
            self.uuid()
        );
        let file = format!("IMG_{:04}.JPG", self.rng.gen_range(1..=9999));
        a.original_filename = Some(file.clone());
        a.dir = Some(dir.clone());
        a.filename = Some(file.clone());
        let size = self.size("deriv");
        let mtime = Self::mtime(&a);
        let f = self.add_file(&format!("{dir}/{file}"), size, MediaKind::Jpeg, mtime);
        let len = self.files[f].size;
        a.original_size = len;
        a.uti = "public.jpeg";
        a.resources.push(PResource {
            role: None,
            class: 2,
            subtype: 0,
            rtype: 0,
            version: 0,
            recipe: 0,
            avail: Avail::Local,
            upload: Upload::Unknown,
            len,
            path: format!("{dir}/{file}"),
            file: Some(f),
            uti: "public.jpeg",
        });
        self.push(a);
    }

    fn icloud_link(&mut self) {
        let mut a = self.base("icloud_link");
        a.saved_type = 8;
        a.bundle_scope = 1;
        a.moment_share = true;
        a.excluded = Some("icloud_link");
        // ⚠ UNCONFIRMED layout under PhotoData/CMMAssets (spec §10).
        let dir = format!("PhotoData/CMMAssets/{}", self.uuid());
        let file = format!("{}.JPG", a.uuid);
        a.original_filename = Some(format!("IMG_{:04}.JPG", self.rng.gen_range(1..=9999)));
        a.dir = Some(dir.clone());
        a.filename = Some(file.clone());
        let size = self.size("still");
        let up = self.default_upload();
        self.original(
            &mut a,
            Role::Primary,
            format!("{dir}/{file}"),
            MediaKind::Jpeg,
            size,
            Avail::Local,
            up,
            true,
        );
        self.push(a);
    }

    fn shared_with_you(&mut self) {
        let mut a = self.base("shared_with_you");
        a.saved_type = 12;
        a.bundle_scope = 3;
        a.cloud_local_state = 0;
        a.excluded = Some("shared_with_you");
        a.syndication = Some((format!("SYND-{}", self.uuid()), 0));
        a.original_filename = Some(format!("IMG_{:04}.JPG", self.rng.gen_range(1..=9999)));
        a.original_size = self.size("still");
        a.uti = "public.jpeg";
        // Lives in the Syndication library, not reachable over AFC: no directory, no file.
        a.resources.push(PResource {
            role: None,
            class: 3,
            subtype: 1,
            rtype: 0,
            version: 0,
            recipe: 0,
            avail: Avail::Syndication,
            upload: Upload::Unknown,
            len: a.original_size,
            path: String::new(),
            file: None,
            uti: "public.jpeg",
        });
        self.push(a);
    }

    fn placeholder(&mut self) {
        let mut a = self.base("placeholder");
        a.saved_type = 9;
        a.cloud_local_state = 0;
        a.excluded = Some("placeholder");
        self.push(a);
    }
}

pub(crate) fn uti_of(kind: &MediaKind) -> &'static str {
    match kind {
        MediaKind::Heic => "public.heic",
        MediaKind::Jpeg => "public.jpeg",
        MediaKind::Png => "public.png",
        MediaKind::Mov => "com.apple.quicktime-movie",
        MediaKind::Mp4 => "public.mpeg-4",
        MediaKind::Tiff => "com.adobe.raw-image",
        MediaKind::Literal(_) => "com.apple.property-list",
    }
}

/// A deterministic `Adjustments.plist` (keys per spec §5.3).
fn adjustments_plist(a: &PAsset) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
<plist version=\"1.0\">\n<dict>\n\
\t<key>adjustmentBaseVersion</key>\n\t<integer>0</integer>\n\
\t<key>adjustmentData</key>\n\t<data>ZmVycnktcGhvbmVnZW4gc3ludGhldGljIGVkaXQ=</data>\n\
\t<key>adjustmentEditorBundleID</key>\n\t<string>com.apple.mobileslideshow</string>\n\
\t<key>adjustmentFormatIdentifier</key>\n\t<string>com.apple.photo</string>\n\
\t<key>adjustmentFormatVersion</key>\n\t<string>1.5</string>\n\
\t<key>adjustmentRenderTypes</key>\n\t<integer>0</integer>\n\
\t<key>adjustmentTimestamp</key>\n\t<date>2024-01-15T12:00:00Z</date>\n\
\t<key>ferryAsset</key>\n\t<string>{}</string>\n\
</dict>\n</plist>\n",
        a.uuid
    )
    .into_bytes()
}

/// The schema major version as a number.
impl IosSchema {
    pub(crate) fn major(self) -> u8 {
        match self {
            IosSchema::Ios13 => 13,
            IosSchema::Ios14 => 14,
            IosSchema::Ios15 => 15,
            IosSchema::Ios16 => 16,
            IosSchema::Ios17 => 17,
            IosSchema::Ios18 => 18,
        }
    }
}
