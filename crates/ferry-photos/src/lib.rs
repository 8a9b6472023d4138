//! Reads an iPhone's `Photos.sqlite` and classifies every asset: is its original on the
//! phone, only in iCloud, or excluded (trashed, shared album, …) — and where are its files.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use ferry_photos::{reconcile, snapshot, LocalMediaDir};
//!
//! # fn main() -> Result<(), ferry_photos::Error> {
//! // 1. A consistent private copy of Photos.sqlite + -wal (here from a phone image).
//! let mut source = snapshot::DirSource::new("phone/Media/PhotoData");
//! let snap = snapshot::take_snapshot(&mut source, &Default::default())?;
//! // 2. Open it read-only and stream one record per asset.
//! let db = snap.open()?;
//! let media = LocalMediaDir::new("phone/Media");
//! db.scan(|asset| {
//!     // 3. The file system has the last word.
//!     let verdicts = reconcile::reconcile(&asset, &media).unwrap_or_default();
//!     println!("{} {}", asset.uuid, reconcile::asset_classification(&asset, &verdicts));
//!     ControlFlow::Continue(())
//! })?;
//! # Ok(()) }
//! ```
//!
//! Modules:
//! - [`snapshot`]: copy the database from any byte source, consistently;
//! - [`wal`]: check the write-ahead log SQLite would otherwise silently ignore;
//! - [`schema`]: detect tables/columns and Core Data entities;
//! - [`reader`]: [`PhotosDb`], the streaming classifier;
//! - [`record`]: [`AssetRecord`] and its enums;
//! - [`reconcile`]: decide per resource with the files on the phone;
//! - [`path`]: validated AFC paths;
//! - [`error`], [`Error`].
//!
//! The `Z_METADATA` plist is bounds-checked first by the `plist-bounds` crate (plists that
//! would expand or nest without bound are refused).
//!
//! The rules follow `shared/specs/photos-sqlite.md`; everything marked ⚠ UNCONFIRMED there is
//! marked the same way here and in `docs/photos-reader.md`.

#![deny(missing_docs)]

pub mod error;
pub mod path;
pub mod reader;
pub mod reconcile;
pub mod record;
pub mod schema;
pub mod snapshot;
pub mod wal;

pub use error::{Error, Fault, Result};
pub use path::{AfcPath, PathError};
pub use reader::{LibraryInfo, PhotosDb, ScanSummary};
pub use reconcile::{LocalMediaDir, MediaFs, Verdict};
pub use record::{
    AssetKind, AssetRecord, AssetSubtype, Availability, Exclusion, LibraryFlags, OriginalResource,
    ResourceLocation, ResourceRole, SharedLibrary, UploadState,
};
pub use schema::Schema;
