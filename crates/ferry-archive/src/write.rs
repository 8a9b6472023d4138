//! The one audited write path: [`PhoneArchive::begin`] → [`PendingFile::write_chunk`] →
//! [`PendingFile::finish`].
//!
//! Order of a write (restic's `Save`, plus a journal intent so the archive describes itself):
//!
//! 1. `begin`: the destination is still the archive that was opened; size vs the file
//!    system's limit (FAT32), free space vs size + margin, target folder opened through the
//!    held destination (created where missing, no links), temp file `.ferry-tmp-<16 hex>`
//!    created exclusively *in the target folder*, space preallocated (Linux
//!    `fallocate(KEEP_SIZE)`).
//! 2. `write_chunk`: bytes appended and hashed (BLAKE3); more bytes than the phone's stated
//!    size is an error at once; free space re-checked every 64 MiB when not preallocated.
//! 3. `finish`: byte count = stated size, mtime = capture time, fsync (tolerating
//!    unsupported), then under the archive mutex: the destination is checked again, the name
//!    picked (clash suffix only on a real clash), journal intent + sync, rename without
//!    replacing (`renameat2` between held folders), fsync the folder, catalog row.
//!
//! Any failure before the rename removes the temp file (also on drop); a temp file left by a
//! crash is removed on the next open, which runs under the lock, so it cannot be another
//! writer's. A failure after the rename leaves a complete, synced, journaled file that the
//! next open enters into the catalog. Every error is first checked against the destination:
//! an I/O error because the drive went away is reported as [`Error::DestinationGone`].

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use ferry_photos::ResourceRole;

use crate::archive::{now_millis, Archive, MAX_CLASH};
use crate::catalog::{CatalogEntry, PhoneRow};
use crate::durable::{self, Durability};
use crate::error::{Error, Result};
use crate::journal::{FileRecord, JournalRecord};
use crate::names;
use crate::root::{self, Kind, DATA_FILE_MODE};
use crate::spec::{check_text, ResourceSpec};
use crate::testing::{step, Step};

const WRITE_BUFFER: usize = 1 << 20;

/// The archive of one phone.
#[derive(Debug, Clone)]
pub struct PhoneArchive {
    archive: Archive,
    phone: PhoneRow,
}

/// How a finished write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOutcome {
    /// A new file is in the archive.
    New,
    /// A new version of a resource archived before (the old file is kept, marked superseded).
    NewVersion,
    /// The same bytes were already archived for this resource: nothing was written.
    AlreadyArchived,
}

/// A file in the archive, as returned by [`PendingFile::finish`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Archived {
    /// Path relative to the destination.
    pub rel_path: String,
    /// Absolute path.
    pub path: PathBuf,
    /// Size.
    pub size: u64,
    /// BLAKE3, hex.
    pub blake3: String,
    /// Durability achieved.
    pub durability: Durability,
    /// What happened.
    pub outcome: WriteOutcome,
}

impl PhoneArchive {
    pub(crate) fn new(archive: Archive, phone: PhoneRow) -> PhoneArchive {
        PhoneArchive { archive, phone }
    }

    /// The phone's folder name inside the destination.
    pub fn folder(&self) -> &str {
        &self.phone.folder
    }

    /// The phone's UDID.
    pub fn udid(&self) -> &str {
        &self.phone.udid
    }

    /// The archive this phone belongs to.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// The current archived copy of a resource, if any (the sync engine's diff).
    pub fn lookup(&self, asset_uuid: &str, role: ResourceRole) -> Result<Option<CatalogEntry>> {
        self.archive
            .state()
            .catalog
            .current(self.phone.id, asset_uuid, role.as_str())
    }

    /// Every file of this phone (archived and superseded), in archive order.
    pub fn entries(&self) -> Result<Vec<CatalogEntry>> {
        self.archive.state().catalog.entries(self.phone.id)
    }

    /// Records that an asset was deleted on the phone. Nothing is removed from the archive.
    /// Returns false if the asset was never archived (nothing to mark).
    pub fn mark_deleted_on_phone(&self, asset_uuid: &str) -> Result<bool> {
        check_text("asset UUID", asset_uuid, 256)?;
        self.archive.writable()?;
        let root = self.archive.held();
        root.check()?;
        let mut st = self.archive.state();
        if st.catalog.asset_place(self.phone.id, asset_uuid)?.is_none() {
            return Ok(false);
        }
        let now = now_millis();
        let end = st.journal()?.append(&JournalRecord::DeletedOnPhone {
            udid: self.phone.udid.clone(),
            uuid: asset_uuid.into(),
            at_ms: now,
        })?;
        let tx = st.catalog.tx()?;
        let known = tx.mark_deleted(self.phone.id, asset_uuid, now)?;
        tx.set_journal_applied(end)?;
        tx.commit()?;
        Ok(known)
    }

    /// Starts writing one resource: checks the size limit and free space, creates the temp
    /// file in the target folder. Feed it with [`PendingFile::write_chunk`], then call
    /// [`PendingFile::finish`]. Dropping it unfinished removes the temp file.
    pub fn begin(&self, spec: ResourceSpec) -> Result<PendingFile> {
        spec.validate()?;
        self.archive.writable()?;
        self.begin_inner(spec)
            .map_err(|e| self.archive.held().explain(e))
    }

    fn begin_inner(&self, spec: ResourceSpec) -> Result<PendingFile> {
        let inner = &self.archive.inner;
        let root = &inner.root;
        root.check()?;
        let (_, ext) = spec.name_parts();
        if let Some(limit) = inner.facts.fs.max_file_size() {
            if spec.size > limit {
                return Err(Error::TooLargeForFilesystem {
                    name: names::file_name(&spec.base_name(), 0, "", ext.as_deref()),
                    size: spec.size,
                    fs: inner.facts.fs,
                    limit,
                });
            }
        }
        let dir_rel = match self
            .archive
            .state()
            .catalog
            .asset_place(self.phone.id, &spec.asset_uuid)?
        {
            Some((dir, _)) => dir,
            None => names::date_folder(spec.capture_utc_millis, spec.tz_offset_seconds).join("/"),
        };
        let parts = dir_parts(&self.phone.folder, &dir_rel)?;
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let (dir, target_dir) = root.data_dir(&parts)?;
        let available = root
            .available_bytes()
            .map_err(|e| Error::io("statvfs", &target_dir, e))?;
        let needed = spec.size.saturating_add(inner.opts.min_free_bytes);
        if available < needed {
            return Err(Error::DiskFull {
                path: target_dir.join(names::file_name(&spec.base_name(), 0, "", ext.as_deref())),
                need: needed - available,
                available,
            });
        }
        let temp_name = names::temp_name();
        let temp_path = target_dir.join(&temp_name);
        let file = root::create_new_at(dir.as_fd(), &temp_name, DATA_FILE_MODE, &temp_path)
            .map_err(|e| Error::io_with_need("create", &temp_path, e, spec.size))?;
        let mut pending = PendingFile {
            phone: self.clone(),
            dir_rel,
            dir,
            temp_name,
            temp_path,
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            hasher: blake3::Hasher::new(),
            written: 0,
            preallocated: false,
            next_space_check: inner.opts.space_check_interval,
            spec,
        };
        step(Step::TempCreated);
        if inner.opts.preallocate {
            if let Some(w) = pending.file.as_ref() {
                pending.preallocated = durable::preallocate(w.get_ref(), pending.spec.size)
                    .map_err(|e| {
                        Error::io_with_need("reserve space for", &pending.temp_path, e, needed)
                    })?;
            }
        }
        Ok(pending)
    }

    /// Convenience: [`begin`](Self::begin), copy everything from `reader`, then
    /// [`finish`](PendingFile::finish).
    pub fn store_reader(&self, spec: ResourceSpec, mut reader: impl Read) -> Result<Archived> {
        let afc = spec.afc_path.clone();
        let mut pending = self.begin(spec)?;
        let mut buf = vec![0u8; WRITE_BUFFER];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Io {
                        op: "read from the phone",
                        path: PathBuf::from(afc),
                        source: e,
                    })
                }
            };
            pending.write_chunk(&buf[..n])?;
        }
        pending.finish()
    }
}

fn dir_parts(folder: &str, dir_rel: &str) -> Result<Vec<String>> {
    let rel = format!("{folder}/{dir_rel}");
    names::validate_relative(&rel)
        .map(|p| p.into_iter().map(str::to_string).collect())
        .map_err(|detail| Error::UnsafePath {
            path: PathBuf::from(rel),
            detail,
        })
}

/// A file being written: a temp file in its target folder, never under a final name until
/// [`finish`](Self::finish) succeeds. Dropping it removes the temp file.
pub struct PendingFile {
    phone: PhoneArchive,
    spec: ResourceSpec,
    dir_rel: String,
    /// The held folder the temp file is in.
    dir: OwnedFd,
    /// The temp file's name in `dir`; empty once it has its final name.
    temp_name: String,
    /// For messages.
    temp_path: PathBuf,
    file: Option<BufWriter<File>>,
    hasher: blake3::Hasher,
    written: u64,
    preallocated: bool,
    next_space_check: u64,
}

impl std::fmt::Debug for PendingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingFile")
            .field("temp_path", &self.temp_path)
            .field("written", &self.written)
            .field("size", &self.spec.size)
            .finish()
    }
}

impl PendingFile {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The size the phone stated.
    pub fn expected_size(&self) -> u64 {
        self.spec.size
    }

    /// Appends the next chunk from the phone.
    pub fn write_chunk(&mut self, data: &[u8]) -> Result<()> {
        self.write_chunk_inner(data).map_err(|e| match e {
            Error::SizeMismatch { .. } => e,
            e => self.phone.archive.held().explain(e),
        })
    }

    fn write_chunk_inner(&mut self, data: &[u8]) -> Result<()> {
        let total = self.written.saturating_add(data.len() as u64);
        if total > self.spec.size {
            return Err(Error::SizeMismatch {
                afc_path: self.spec.afc_path.clone(),
                expected: self.spec.size,
                got: total,
            });
        }
        let remaining = self.spec.size - self.written;
        let Some(w) = self.file.as_mut() else {
            return Err(Error::Io {
                op: "write",
                path: self.temp_path.clone(),
                source: io::Error::other("file already closed after an earlier error"),
            });
        };
        if let Err(e) = w.write_all(data) {
            self.file = None;
            return Err(Error::io_with_need("write", &self.temp_path, e, remaining));
        }
        self.hasher.update(data);
        self.written = total;
        step(Step::ChunkWritten);
        if !self.preallocated && self.written >= self.next_space_check {
            let interval = self.phone.archive.inner.opts.space_check_interval.max(1);
            self.next_space_check = self.written.saturating_add(interval);
            let left = self.spec.size - self.written;
            let available = self
                .file
                .as_ref()
                .and_then(|w| rustix::fs::fstatvfs(w.get_ref()).ok())
                .map(|st| st.f_bavail.saturating_mul(st.f_frsize))
                .unwrap_or(u64::MAX);
            if available < left {
                self.file = None;
                return Err(Error::DiskFull {
                    path: self.temp_path.clone(),
                    need: left - available,
                    available,
                });
            }
        }
        Ok(())
    }

    /// Discards the write (same as dropping it).
    pub fn abort(self) {}

    /// Checks the byte count, syncs, and gives the file its final name; then records it.
    pub fn finish(mut self) -> Result<Archived> {
        match self.finish_inner() {
            Err(e @ Error::SizeMismatch { .. }) => Err(e),
            Err(e) => Err(self.phone.archive.held().explain(e)),
            ok => ok,
        }
    }

    fn finish_inner(&mut self) -> Result<Archived> {
        if self.written != self.spec.size {
            return Err(Error::SizeMismatch {
                afc_path: self.spec.afc_path.clone(),
                expected: self.spec.size,
                got: self.written,
            });
        }
        let Some(w) = self.file.take() else {
            return Err(Error::Io {
                op: "finish",
                path: self.temp_path.clone(),
                source: io::Error::other("file already closed after an earlier error"),
            });
        };
        let file = w.into_inner().map_err(|e| {
            Error::io_with_need("write", &self.temp_path, e.into_error(), self.spec.size)
        })?;
        if let Some(t) = self.spec.mtime() {
            // Metadata never fails a copy (FAT, network file systems may refuse). Both times
            // in one call: exfat-fuse silently drops a `futimens` that sets the modification
            // time alone (access time UTIME_OMIT), which `set_modified` does.
            let times = std::fs::FileTimes::new()
                .set_modified(t)
                .set_accessed(std::time::SystemTime::now());
            if let Err(e) = file.set_times(times) {
                tracing::debug!(path = %self.temp_path.display(), "could not set mtime: {e}");
            }
        }
        let file_durability =
            durable::sync_file(&file).map_err(|e| Error::io("sync", &self.temp_path, e))?;
        drop(file);
        step(Step::FileSynced);
        let hash = self.hasher.finalize().to_hex().to_string();
        self.commit(hash, file_durability)
    }

    fn commit(&mut self, hash: String, file_durability: Durability) -> Result<Archived> {
        let archive = self.phone.archive.clone();
        let inner = &archive.inner;
        let phone = &self.phone.phone;
        let role = self.spec.role.as_str();
        let durability = file_durability.min(inner.facts.dir_sync);
        let root = &inner.root;
        let mut st = archive.state();
        // The last moment to notice that the drive went away before anything is recorded.
        root.check()?;

        if let Some(existing) = st.catalog.current(phone.id, &self.spec.asset_uuid, role)? {
            let present = names::validate_relative(&existing.path)
                .ok()
                .and_then(|p| root.lookup(&p));
            if let Some((Kind::File, len)) = present {
                if existing.hash == hash && existing.size == self.spec.size && len == existing.size
                {
                    let _ = rustix::fs::unlinkat(
                        self.dir.as_fd(),
                        self.temp_name.as_str(),
                        rustix::fs::AtFlags::empty(),
                    );
                    self.temp_name.clear();
                    return Ok(Archived {
                        path: root.path().join(&existing.path),
                        rel_path: existing.path,
                        size: existing.size,
                        blake3: hash,
                        durability: existing.durability,
                        outcome: WriteOutcome::AlreadyArchived,
                    });
                }
            }
        }
        let place = st.catalog.asset_place(phone.id, &self.spec.asset_uuid)?;
        let (dir_rel, base, asset_new) = match place {
            Some((d, b)) => (d, b, false),
            None => (self.dir_rel.clone(), self.spec.base_name(), true),
        };
        let parts = dir_parts(&phone.folder, &dir_rel)?;
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let (final_fd, final_dir) = root.data_dir(&parts)?;
        let (suffix, ext) = self.spec.name_parts();
        let had_version = st
            .catalog
            .current(phone.id, &self.spec.asset_uuid, role)?
            .is_some();

        for n in 0..MAX_CLASH {
            let (asset_base, name) = if asset_new {
                let b = if n == 0 {
                    base.clone()
                } else {
                    format!("{base} ({n})")
                };
                if st.catalog.base_taken(phone.id, &dir_rel, &b)? {
                    continue;
                }
                let name = names::file_name(&b, 0, suffix, ext.as_deref());
                (b, name)
            } else {
                (
                    base.clone(),
                    names::file_name(&base, n, suffix, ext.as_deref()),
                )
            };
            let rel = format!("{}/{dir_rel}/{name}", phone.folder);
            if st.catalog.path_taken(&rel)? {
                continue;
            }
            let final_path = final_dir.join(&name);
            if root::kind_at(final_fd.as_fd(), &name)
                .map_err(|e| Error::io("inspect", &final_path, e))?
                .is_some()
            {
                continue;
            }
            let rec = FileRecord {
                udid: phone.udid.clone(),
                uuid: self.spec.asset_uuid.clone(),
                role: role.to_string(),
                path: rel.clone(),
                dir: dir_rel.clone(),
                base: asset_base,
                size: self.spec.size,
                hash_alg: crate::HASH_ALGORITHM.to_string(),
                hash: hash.clone(),
                afc_path: self.spec.afc_path.clone(),
                original_filename: self.spec.original_filename.clone(),
                capture_utc_ms: self.spec.capture_utc_millis,
                tz_offset_s: self.spec.tz_offset_seconds,
                durability,
                at_ms: now_millis(),
            };
            let end = st
                .journal()?
                .append(&JournalRecord::File(Box::new(rec.clone())))?;
            step(Step::JournalWritten);
            match root::rename_noreplace_at(
                self.dir.as_fd(),
                &self.temp_name,
                final_fd.as_fd(),
                &name,
            ) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("rename", &final_path, e)),
            }
            // From here on the temp name is gone: Drop must not look for it.
            self.temp_name.clear();
            step(Step::Renamed);
            root::sync_dir_fd(final_fd.as_fd())
                .map_err(|e| Error::io("sync folder", &final_dir, e))?;
            step(Step::DirSynced);
            let tx = st.catalog.tx()?;
            tx.apply_file(phone.id, &rec, false)?;
            tx.set_journal_applied(end)?;
            tx.commit()?;
            step(Step::CatalogCommitted);
            return Ok(Archived {
                rel_path: rel,
                path: final_path,
                size: self.spec.size,
                blake3: hash,
                durability,
                outcome: if had_version {
                    WriteOutcome::NewVersion
                } else {
                    WriteOutcome::New
                },
            });
        }
        Err(Error::InvalidInput {
            what: "file name",
            detail: format!("more than {MAX_CLASH} files named like {base}"),
        })
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_chunk(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.temp_name.is_empty() {
            if let Err(e) = rustix::fs::unlinkat(
                self.dir.as_fd(),
                self.temp_name.as_str(),
                rustix::fs::AtFlags::empty(),
            ) {
                if e != rustix::io::Errno::NOENT {
                    tracing::warn!(path = %self.temp_path.display(), "could not remove temp file: {e}");
                }
            }
        }
    }
}
