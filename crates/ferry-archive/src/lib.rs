//! `ferry-archive`: the destination side of a Ferry backup.
//!
//! A destination folder `DIR` holds one archive per phone plus a metadata folder:
//!
//! ```text
//! DIR/
//!   .ferry/archive.toml     marker: format version + archive id (no marker → no writes)
//!   .ferry/catalog.sqlite   index: phone + asset UUID + role → path, size, BLAKE3, state
//!   .ferry/journal.jsonl    append-only journal the catalog can be rebuilt from
//!   .ferry/lock             OS advisory lock: one run per destination
//!   .ferry/reports/<udid>/  run reports; .ferry/plans/<udid>.json: fetch plans
//!   Anna's iPhone/2024/01/IMG_1234.HEIC
//!   Anna's iPhone/2024/01/IMG_1234.MOV        (Live Photo video: same base name)
//!   Anna's iPhone/unknown-date/IMG_0001.JPG
//! ```
//!
//! An open archive holds its destination (a directory handle, `*at` calls, no links followed
//! in Ferry's own files, `.ferry` owner-only): see [`root`](crate::archive) and
//! [`Error::DestinationGone`].
//!
//! Every byte written under `DIR` goes through one audited path — [`PhoneArchive::begin`],
//! [`PendingFile::write_chunk`], [`PendingFile::finish`] — which never puts a partial file
//! under a final name and never replaces an existing file. See `docs/archive.md`.
//!
//! ```no_run
//! use ferry_archive::{Archive, ArchiveOptions, ResourceSpec};
//! use ferry_photos::ResourceRole;
//!
//! # fn main() -> ferry_archive::Result<()> {
//! let dir = std::path::Path::new("/media/backup/Photos");
//! // Once, on the user's request (`ferry sync --dest DIR --init`):
//! Archive::init(dir)?;
//! // Every run:
//! let archive = Archive::open(dir, ArchiveOptions::default())?;
//! let phone = archive.phone("00008110-000A1B2C3D4E5F60", "Anna's iPhone")?;
//! let spec = ResourceSpec {
//!     asset_uuid: "9F1C2D3E-0000-4000-8000-000000000001".into(),
//!     role: ResourceRole::Primary,
//!     size: 11,
//!     afc_path: "DCIM/100APPLE/IMG_1234.HEIC".into(),
//!     original_filename: Some("IMG_1234.HEIC".into()),
//!     capture_utc_millis: Some(1_706_743_800_000),
//!     tz_offset_seconds: Some(3600),
//! };
//! if phone.lookup(&spec.asset_uuid, spec.role)?.is_none() {
//!     let mut pending = phone.begin(spec)?;
//!     for chunk in [&b"hello "[..], &b"world"[..]] {
//!         pending.write_chunk(chunk)?; // chunks as they arrive from AFC
//!     }
//!     let archived = pending.finish()?;
//!     println!("{} ({})", archived.rel_path, archived.blake3);
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod archive;
pub mod catalog;
pub mod check;
pub mod durable;
pub mod error;
pub mod fsinfo;
pub mod journal;
pub mod lock;
pub mod marker;
pub mod names;
mod root;
pub mod spec;
pub mod stores;
#[doc(hidden)]
pub mod testing;
pub mod write;

pub use archive::{
    destination_holder, Archive, ArchiveOptions, DestinationFacts, DriveState, OpenReport,
};
pub use catalog::{CatalogEntry, FileState, PhoneRow};
pub use check::{hash_file, ConsistencyReport};
pub use durable::Durability;
pub use error::{human_bytes, Error, ErrorScope, Result};
pub use fsinfo::FsKind;
pub use marker::Marker;
pub use spec::ResourceSpec;
pub use stores::{
    read_fetch_plan, read_latest_report, recent_reports, reported_phones, safe_udid, LATEST_REPORT,
};
pub use write::{Archived, PendingFile, PhoneArchive, WriteOutcome};

pub(crate) use archive::now_millis;

/// The content hash recorded for every file.
pub const HASH_ALGORITHM: &str = "blake3";
