//! Generates synthetic iPhone images for Ferry's tests and simulator: `device.toml`, a
//! `Media/` tree (the AFC root, `/var/mobile/Media`) with a realistic `Photos.sqlite` (WAL mode,
//! part of it un-checkpointed) and media files, and `expected.json`, the ground truth for every
//! asset.
//!
//! ```no_run
//! use ferry_phonegen::{IosSchema, MakePhoneArgs};
//!
//! let mut args = MakePhoneArgs::new("/tmp/phone");
//! args.assets = 200;
//! args.schema = IosSchema::Ios17;
//! let summary = ferry_phonegen::run(&args)?;
//! println!("{summary}");
//! # anyhow::Ok(())
//! ```
//!
//! The same arguments always produce a byte-identical image. The user-facing command is
//! `ferry-sim make-phone` (same options); `ferry-phonegen` is a small stand-alone binary of this
//! crate. Formats: `docs/phone-image.md`.
//!
//! Modules:
//! - `plan`: decides every asset, resource row and file from the seed (scenarios);
//! - `media`: writes files with valid headers and deterministic content;
//! - `db`: writes `Photos.sqlite` for iOS 13–18 and leaves part of it in the WAL;
//! - [`expected`], the ground truth;
//! - [`device`], `device.toml`;
//! - [`originals`], the bytes of originals downloaded later (`ferry-sim fetch`).

#![deny(missing_docs)]

mod db;
pub mod device;
pub mod expected;
mod media;
pub mod originals;
mod plan;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

/// Which iOS generation's Photos.sqlite schema to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IosSchema {
    /// iOS 13 (`ZGENERICASSET`).
    Ios13,
    /// iOS 14 (`ZASSET`).
    Ios14,
    /// iOS 15 (bundle scope, syndication, compact UTI).
    Ios15,
    /// iOS 16 (Shared Library).
    Ios16,
    /// iOS 17 (spatial type).
    Ios17,
    /// iOS 18 (adjustments state, stable hashes).
    Ios18,
}

impl IosSchema {
    /// Every schema.
    pub const ALL: [IosSchema; 6] = [
        IosSchema::Ios13,
        IosSchema::Ios14,
        IosSchema::Ios15,
        IosSchema::Ios16,
        IosSchema::Ios17,
        IosSchema::Ios18,
    ];

    /// `ios13` … `ios18`.
    pub fn name(self) -> &'static str {
        match self {
            IosSchema::Ios13 => "ios13",
            IosSchema::Ios14 => "ios14",
            IosSchema::Ios15 => "ios15",
            IosSchema::Ios16 => "ios16",
            IosSchema::Ios17 => "ios17",
            IosSchema::Ios18 => "ios18",
        }
    }
}

/// Media file sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaSize {
    /// Hundreds of bytes to a few KB per file: fast tests.
    Small,
    /// Stills 1.5–6 MB, videos 5–300 MB, RAW 20–80 MB.
    Realistic,
}

/// Whether iCloud Photos is on in the generated library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IcloudPhotos {
    /// On: uploads, iCloud-only originals, CPL downloads, Shared Library.
    On,
    /// Never turned on: every original local, no CPL types (subtype-0 rows).
    Off,
}

/// `ferry-sim make-phone`: write a synthetic phone image.
#[derive(Debug, Clone, clap::Args)]
pub struct MakePhoneArgs {
    /// Directory to write (device.toml, Media/, expected.json). Created if missing.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of assets.
    #[arg(long, default_value_t = 200)]
    pub assets: usize,
    /// Photos.sqlite schema generation.
    #[arg(long, value_enum, default_value_t = IosSchema::Ios18)]
    pub schema: IosSchema,
    /// Seed: the same seed and options give a byte-identical image.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fraction (0–1) of eligible assets whose original is only in iCloud ("Optimize iPhone
    /// Storage"). Applies after the coverage set of one asset per scenario.
    #[arg(long, default_value_t = 0.3)]
    pub icloud_only: f64,
    /// File sizes.
    #[arg(long, value_enum, default_value_t = MediaSize::Small)]
    pub media_size: MediaSize,
    /// Make the first plain video this many bytes, as a sparse file (multi-GiB tests).
    #[arg(long)]
    pub sparse_video_bytes: Option<u64>,
    /// iCloud Photos on or off for the library.
    #[arg(long, value_enum, default_value_t = IcloudPhotos::On)]
    pub icloud_photos: IcloudPhotos,
    /// Fraction (0–1) of assets, the newest, committed only to Photos.sqlite-wal.
    #[arg(long, default_value_t = 0.3)]
    pub wal_fraction: f64,
    /// Device name (default: an "Ada’s iPhone"-style name picked by the seed).
    #[arg(long)]
    pub name: Option<String>,
    /// Replace an existing image in --out (device.toml, Media/, expected.json; the simulator's
    /// .ferry-sim/ state is never touched).
    #[arg(long)]
    pub force: bool,
}

impl MakePhoneArgs {
    /// Defaults as on the command line, writing to `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        MakePhoneArgs {
            out: out.into(),
            assets: 200,
            schema: IosSchema::Ios18,
            seed: 1,
            icloud_only: 0.3,
            media_size: MediaSize::Small,
            sparse_video_bytes: None,
            icloud_photos: IcloudPhotos::On,
            wal_fraction: 0.3,
            name: None,
            force: false,
        }
    }
}

/// What `run` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The image directory.
    pub out: PathBuf,
    /// The device's UDID.
    pub udid: String,
    /// Assets in the library.
    pub assets: usize,
    /// Of which only in the WAL.
    pub assets_only_in_wal: usize,
    /// Media files written (excluding the database).
    pub files: usize,
    /// Their bytes (logical; sparse files count fully).
    pub media_bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Wall time per phase: plan, media files, database, expected.json.
    pub phases: [Duration; 4],
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote {} ({}): {} assets ({} only in the WAL), {} files, {:.1} MB in {:.2?} \
             (plan {:.2?}, files {:.2?}, database {:.2?}, expected.json {:.2?})",
            self.out.display(),
            self.udid,
            self.assets,
            self.assets_only_in_wal,
            self.files,
            self.media_bytes as f64 / 1e6,
            self.elapsed,
            self.phases[0],
            self.phases[1],
            self.phases[2],
            self.phases[3]
        )
    }
}

/// Writes the image described by `args`.
pub fn run(args: &MakePhoneArgs) -> anyhow::Result<Summary> {
    let start = Instant::now();
    if !(0.0..=1.0).contains(&args.icloud_only) {
        bail!(
            "--icloud-only must be between 0 and 1, got {}",
            args.icloud_only
        );
    }
    if !(0.0..=1.0).contains(&args.wal_fraction) {
        bail!(
            "--wal-fraction must be between 0 and 1, got {}",
            args.wal_fraction
        );
    }
    if args.assets > 10_000_000 {
        bail!(
            "--assets {} is more than this generator supports (10,000,000)",
            args.assets
        );
    }
    prepare_out(&args.out, args.force)?;
    let media = args.out.join("Media");

    let plan = plan::Planner::new(args).plan(args.assets, args.wal_fraction);
    let t_plan = start.elapsed();
    let hashes = write_files(&media, &plan.files)?;
    let t_files = start.elapsed();
    for dir in [
        "DCIM",
        "PhotoData/CPLAssets",
        "PhotoData/Metadata",
        "PhotoData/Mutations",
        "PhotoData/Thumbnails/V2",
        "Downloads",
        "Books",
        "Recordings",
        "PublicStaging",
        "iTunes_Control",
    ] {
        std::fs::create_dir_all(media.join(dir))
            .with_context(|| format!("creating Media/{dir}"))?;
    }
    let photo_data = media.join("PhotoData");
    db::write_db(&plan, &photo_data, args.seed)?;
    let t_db = start.elapsed();

    let header = expected::Expected {
        format: expected::FORMAT,
        generator: format!("ferry-phonegen {}", env!("CARGO_PKG_VERSION")),
        seed: args.seed,
        schema: args.schema.name().into(),
        media_size: match args.media_size {
            MediaSize::Small => "small",
            MediaSize::Realistic => "realistic",
        }
        .into(),
        icloud_photos: plan.icloud_on,
        icloud_only_fraction: args.icloud_only,
        wal: expected::WalSplit {
            assets_in_main_file: 0,
            assets_only_in_wal: 0,
            assets_changed_in_wal: 0,
        },
        totals: expected::Totals::default(),
        assets: Vec::new(),
    };
    let exp = expected::build(&plan, &hashes, header);
    expected::write(&args.out.join("expected.json"), &exp)?;
    let t_expected = start.elapsed();

    let db_bytes: u64 = ["Photos.sqlite", "Photos.sqlite-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(photo_data.join(f)).ok())
        .map(|m| m.len())
        .sum();
    let dev = device::device(
        args.schema,
        args.seed,
        exp.totals.media_bytes + db_bytes,
        args.name.as_deref(),
    );
    let toml = toml::to_string(&dev).context("serializing device.toml")?;
    std::fs::write(args.out.join("device.toml"), toml).context("writing device.toml")?;

    Ok(Summary {
        out: args.out.clone(),
        udid: dev.udid,
        assets: plan.assets.len(),
        assets_only_in_wal: plan.assets.len() - plan.wal_start,
        files: plan.files.len(),
        media_bytes: exp.totals.media_bytes,
        elapsed: start.elapsed(),
        phases: [t_plan, t_files - t_plan, t_db - t_files, t_expected - t_db],
    })
}

/// Creates `out`, refusing to overwrite an image unless `force`.
fn prepare_out(out: &Path, force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ours = ["Media", "device.toml", "expected.json"];
    let existing: Vec<&str> = ours
        .iter()
        .copied()
        .filter(|n| out.join(n).exists())
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    if !force {
        bail!(
            "{} already holds a phone image ({}); pass --force to replace it",
            out.display(),
            existing.join(", ")
        );
    }
    for name in existing {
        let p = out.join(name);
        if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        }
        .with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

/// Writes every planned file (on all cores) and returns their SHA-256s, in plan order.
fn write_files(media: &Path, files: &[media::PFile]) -> anyhow::Result<Vec<String>> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let chunk = files.len().div_ceil(workers).max(1);
    let results: Vec<anyhow::Result<Vec<String>>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|f| media::write_file(media, f)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a writer thread panicked")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(files.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}
