//! Persistent simulator state, kept out of `Media/` so AFC can never serve it.
//!
//! Two halves, as on a real system:
//! - the **host side** (what usbmuxd keeps in `/var/lib/lockdown`): the SystemBUID and the pair
//!   records saved by clients, stored and returned byte for byte;
//! - the **device side** (what the phone keeps): its RSA key pair and the list of hosts the user
//!   trusted, keyed by HostID, with the certificates each host presented when it paired.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};

/// Creates `dir` (and missing parents) and makes it private (0700): the state holds pair
/// records with host private keys and the device key. A directory left more open by an older
/// simulator is tightened. The Linux usbmuxd keeps `/var/lib/lockdown` private in the same way
/// (records are only for root and the daemon's user).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes a file atomically (temp file, fsync, rename) so a killed simulator never leaves a
/// half-written record behind. The file is created 0600 and its directory is private (see
/// [`create_private_dir`]): every file written here is a key, a pair record or the trust list.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // A temp file left by a killed run keeps its old mode: tighten it too.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// usbmuxd's store: the SystemBUID and the pair records (`<UDID>.plist`).
#[derive(Debug)]
pub struct MuxStore {
    dir: PathBuf,
    buid: String,
    lock: Mutex<()>,
}

#[derive(Serialize, Deserialize)]
struct SystemConfiguration {
    #[serde(rename = "SystemBUID")]
    system_buid: String,
}

impl MuxStore {
    /// Opens (creating if needed) the store in `dir`. The BUID is generated once and persisted
    /// in `SystemConfiguration.plist`, like the Linux daemon does.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        create_private_dir(dir)
            .with_context(|| format!("cannot create usbmuxd state dir {}", dir.display()))?;
        let conf = dir.join("SystemConfiguration.plist");
        let buid = match plist::from_file::<_, SystemConfiguration>(&conf) {
            Ok(c) => c.system_buid,
            Err(_) => {
                let buid = uuid::Uuid::new_v4().to_string().to_uppercase();
                let mut out = Vec::new();
                plist::to_writer_xml(
                    &mut out,
                    &SystemConfiguration {
                        system_buid: buid.clone(),
                    },
                )?;
                write_atomic(&conf, &out)
                    .with_context(|| format!("cannot write {}", conf.display()))?;
                buid
            }
        };
        Ok(MuxStore {
            dir: dir.to_path_buf(),
            buid,
            lock: Mutex::new(()),
        })
    }

    /// The host's SystemBUID (an uppercase UUID).
    pub fn buid(&self) -> &str {
        &self.buid
    }

    fn record_path(&self, id: &str) -> Option<PathBuf> {
        // A record id is a UDID; refuse anything that could name another file.
        let ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        ok.then(|| self.dir.join(format!("{id}.plist")))
    }

    /// The stored record, byte for byte.
    pub fn read(&self, id: &str) -> Option<Vec<u8>> {
        let _g = self.lock.lock().ok()?;
        std::fs::read(self.record_path(id)?).ok()
    }

    /// Stores a record byte for byte.
    pub fn save(&self, id: &str, data: &[u8]) -> anyhow::Result<()> {
        let Some(path) = self.record_path(id) else {
            bail!("pair record id {id:?} is not a UDID");
        };
        let _g = self
            .lock
            .lock()
            .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
        write_atomic(&path, data)?;
        Ok(())
    }

    /// Removes a record. Succeeds when there was none (as the daemon does).
    pub fn delete(&self, id: &str) -> anyhow::Result<()> {
        let Some(path) = self.record_path(id) else {
            bail!("pair record id {id:?} is not a UDID");
        };
        let _g = self
            .lock
            .lock()
            .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A host the user tapped "Trust" for, as the phone remembers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrustedHost {
    #[serde(rename = "HostID")]
    pub host_id: String,
    #[serde(rename = "SystemBUID", default)]
    pub system_buid: Option<String>,
    #[serde(rename = "HostName", default)]
    pub host_name: Option<String>,
    /// PEM, as the host sent it.
    #[serde(rename = "RootCertificate", with = "serde_bytes_as_data")]
    pub root_certificate: Vec<u8>,
    #[serde(rename = "HostCertificate", with = "serde_bytes_as_data")]
    pub host_certificate: Vec<u8>,
    #[serde(rename = "DeviceCertificate", with = "serde_bytes_as_data")]
    pub device_certificate: Vec<u8>,
    #[serde(rename = "EscrowBag", with = "serde_bytes_as_data")]
    pub escrow_bag: Vec<u8>,
}

mod serde_bytes_as_data {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let d = plist::Data::deserialize(d)?;
        Ok(d.into())
    }
}

/// The phone's own persistent state: its key pair and its trust list.
#[derive(Debug)]
pub struct DeviceStore {
    dir: PathBuf,
    key: RsaPrivateKey,
    trusted: Mutex<BTreeMap<String, TrustedHost>>,
}

impl DeviceStore {
    /// Opens (creating if needed) the device state in `dir`. The 2048-bit RSA key is generated
    /// once and kept, as a phone keeps its identity.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        create_private_dir(dir)
            .with_context(|| format!("cannot create device state dir {}", dir.display()))?;
        let key_path = dir.join("device-key.pem");
        let key = match std::fs::read_to_string(&key_path) {
            Ok(pem) => RsaPrivateKey::from_pkcs8_pem(&pem)
                .with_context(|| format!("{} is not a PKCS#8 RSA key", key_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut rng = rand::thread_rng();
                let key =
                    RsaPrivateKey::new(&mut rng, 2048).context("RSA key generation failed")?;
                let pem = key.to_pkcs8_pem(LineEnding::LF)?;
                write_atomic(&key_path, pem.as_bytes())
                    .with_context(|| format!("cannot write {}", key_path.display()))?;
                key
            }
            Err(e) => return Err(e).context(format!("cannot read {}", key_path.display())),
        };
        let trust_path = dir.join("trusted-hosts.plist");
        let trusted = match std::fs::metadata(&trust_path) {
            Ok(_) => plist::from_file::<_, BTreeMap<String, TrustedHost>>(&trust_path)
                .with_context(|| format!("{} is damaged", trust_path.display()))?,
            Err(_) => BTreeMap::new(),
        };
        Ok(DeviceStore {
            dir: dir.to_path_buf(),
            key,
            trusted: Mutex::new(trusted),
        })
    }

    /// The device private key.
    pub fn key(&self) -> &RsaPrivateKey {
        &self.key
    }

    /// `DevicePublicKey` as lockdownd serves it: PKCS#1 PEM (`BEGIN RSA PUBLIC KEY`).
    pub fn public_key_pem(&self) -> anyhow::Result<String> {
        Ok(self.key.to_public_key().to_pkcs1_pem(LineEnding::LF)?)
    }

    /// The device key as PKCS#8 DER, for the TLS server.
    pub fn private_key_pkcs8_der(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self.key.to_pkcs8_der()?.as_bytes().to_vec())
    }

    /// The public key as PKCS#1 DER (what a certificate's subjectPublicKey bit string holds).
    pub fn public_key_pkcs1_der(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self.key.to_public_key().to_pkcs1_der()?.as_bytes().to_vec())
    }

    /// Looks up a trusted host.
    pub fn trusted(&self, host_id: &str) -> Option<TrustedHost> {
        self.trusted.lock().ok()?.get(host_id).cloned()
    }

    /// How many hosts are trusted.
    pub fn trusted_count(&self) -> usize {
        self.trusted.lock().map(|t| t.len()).unwrap_or(0)
    }

    /// Adds (or replaces) a trusted host and persists the list.
    pub fn trust(&self, host: TrustedHost) -> anyhow::Result<()> {
        let mut t = self
            .trusted
            .lock()
            .map_err(|_| anyhow::anyhow!("trust list lock poisoned"))?;
        t.insert(host.host_id.clone(), host);
        self.persist(&t)
    }

    /// Forgets one host; returns whether it was known.
    pub fn forget(&self, host_id: &str) -> anyhow::Result<bool> {
        let mut t = self
            .trusted
            .lock()
            .map_err(|_| anyhow::anyhow!("trust list lock poisoned"))?;
        let known = t.remove(host_id).is_some();
        self.persist(&t)?;
        Ok(known)
    }

    /// Forgets every host ("Reset Location & Privacy" on the phone).
    pub fn forget_all(&self) -> anyhow::Result<()> {
        let mut t = self
            .trusted
            .lock()
            .map_err(|_| anyhow::anyhow!("trust list lock poisoned"))?;
        t.clear();
        self.persist(&t)
    }

    fn persist(&self, t: &BTreeMap<String, TrustedHost>) -> anyhow::Result<()> {
        let mut out = Vec::new();
        plist::to_writer_xml(&mut out, t)?;
        write_atomic(&self.dir.join("trusted-hosts.plist"), &out)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mux_store_keeps_buid_and_records_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = MuxStore::open(dir.path()).expect("open");
        let buid = a.buid().to_string();
        assert_eq!(buid.len(), 36);
        assert_eq!(buid, buid.to_uppercase());
        let rec = b"bplist00\x00\x01garbage-but-kept".to_vec();
        a.save("00008030-001A2B3C4D5E802E", &rec).expect("save");
        let b = MuxStore::open(dir.path()).expect("reopen");
        assert_eq!(b.buid(), buid);
        assert_eq!(b.read("00008030-001A2B3C4D5E802E"), Some(rec));
        assert!(b.save("../escape", b"x").is_err());
        assert_eq!(b.read("../escape"), None);
        b.delete("00008030-001A2B3C4D5E802E").expect("delete");
        b.delete("00008030-001A2B3C4D5E802E").expect("delete twice");
        assert_eq!(b.read("00008030-001A2B3C4D5E802E"), None);
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn pair_records_and_keys_are_private_like_the_daemons() {
        let t = tempfile::tempdir().expect("tempdir");
        let mux_dir = t.path().join("state/usbmuxd");
        let m = MuxStore::open(&mux_dir).expect("open");
        m.save("00008030-001A2B3C4D5E802E", b"HostPrivateKey")
            .expect("save");
        assert_eq!(mode(&mux_dir), 0o700, "usbmuxd state dir");
        assert_eq!(
            mode(&mux_dir.join("00008030-001A2B3C4D5E802E.plist")),
            0o600,
            "pair record"
        );
        assert_eq!(mode(&mux_dir.join("SystemConfiguration.plist")), 0o600);
        let dev_dir = t.path().join("state/devices/X");
        DeviceStore::open(&dev_dir).expect("open device");
        assert_eq!(mode(&dev_dir), 0o700, "device state dir");
        assert_eq!(mode(&dev_dir.join("device-key.pem")), 0o600, "device key");
        // A store left 0755 by an older simulator is tightened when opened.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&mux_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        MuxStore::open(&mux_dir).expect("reopen");
        assert_eq!(mode(&mux_dir), 0o700, "reopened usbmuxd state dir");
    }

    #[test]
    fn device_store_persists_trust() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = DeviceStore::open(dir.path()).expect("open");
        assert!(d
            .public_key_pem()
            .expect("pem")
            .starts_with("-----BEGIN RSA PUBLIC KEY-----"));
        let host = TrustedHost {
            host_id: "H1".into(),
            system_buid: Some("B".into()),
            host_name: None,
            root_certificate: b"root".to_vec(),
            host_certificate: b"host".to_vec(),
            device_certificate: b"dev".to_vec(),
            escrow_bag: vec![1, 2, 3],
        };
        d.trust(host.clone()).expect("trust");
        let d2 = DeviceStore::open(dir.path()).expect("reopen");
        assert_eq!(d2.trusted("H1"), Some(host));
        assert_eq!(
            d2.public_key_pem().expect("pem"),
            d.public_key_pem().expect("pem")
        );
        assert!(d2.forget("H1").expect("forget"));
        assert!(!d2.forget("H1").expect("forget again"));
        assert_eq!(d2.trusted_count(), 0);
    }
}
