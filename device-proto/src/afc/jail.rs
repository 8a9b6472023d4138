//! AFC paths and the jail: every path a client names is resolved inside `Media/` and nowhere
//! else. `..`, absolute paths, `//` prefixes and symlinks pointing outside cannot reach a host
//! file.
//!
//! Request paths are normalised lexically first (`/a/./../a/b/` = `a/b`; `..` above the root
//! stays at the root, UNCONFIRMED but what the real-device tests imply). Symlinks inside the
//! tree are then followed component by component: a relative target is resolved from the
//! link's directory and may not climb above the root; an absolute target is honoured only when
//! it points into `/var/mobile/Media` (or `/private/var/mobile/Media`). Anything else is
//! PERM_DENIED, the status a real phone gives outside the AFC root.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The phone-side absolute prefixes of the AFC root.
const MEDIA_PREFIXES: [&str; 2] = ["/private/var/mobile/Media", "/var/mobile/Media"];
/// Most symlinks followed while resolving one path (like the kernel's MAXSYMLINKS).
const MAX_LINKS: usize = 32;

/// Why a path did not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JailError {
    NotFound,
    Denied,
}

/// A resolved path.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The host path (inside the root).
    pub host: PathBuf,
    /// The normalised path relative to the root, `/`-separated ("" is the root).
    pub rel: String,
}

/// Splits a request path into normal components (lexically resolving `.` and `..`).
pub fn normalise(path: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c.to_vec()),
        }
    }
    out
}

fn join_rel(parts: &[Vec<u8>]) -> String {
    parts
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Resolves `path` under `root`. With `follow_last`, a symlink as the last component is
/// followed (open, list); without, it is returned as itself (stat).
pub fn resolve(root: &Path, path: &[u8], follow_last: bool) -> Result<Resolved, JailError> {
    let mut pending: Vec<Vec<u8>> = normalise(path);
    pending.reverse(); // a stack: next component at the end
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut links = 0usize;
    while let Some(c) = pending.pop() {
        if c.as_slice() == b".." {
            // Only link targets put `..` back on the stack.
            if done.pop().is_none() {
                return Err(JailError::Denied);
            }
            continue;
        }
        let mut host = root.to_path_buf();
        for d in &done {
            host.push(OsStr::from_bytes(d));
        }
        host.push(OsStr::from_bytes(&c));
        let meta = std::fs::symlink_metadata(&host).map_err(|_| JailError::NotFound)?;
        let last = pending.is_empty();
        if meta.file_type().is_symlink() && (!last || follow_last) {
            links += 1;
            if links > MAX_LINKS {
                return Err(JailError::NotFound);
            }
            let target = std::fs::read_link(&host).map_err(|_| JailError::NotFound)?;
            let tb = target.as_os_str().as_bytes();
            let rest: Vec<Vec<u8>> = if tb.starts_with(b"/") {
                let inside = MEDIA_PREFIXES.iter().find_map(|p| {
                    let p = p.as_bytes();
                    (tb == p || (tb.starts_with(p) && tb.get(p.len()) == Some(&b'/')))
                        .then(|| &tb[p.len()..])
                });
                let Some(inside) = inside else {
                    return Err(JailError::Denied);
                };
                done.clear();
                normalise(inside)
            } else {
                tb.split(|&b| b == b'/')
                    .filter(|c| !c.is_empty() && *c != b".")
                    .map(<[u8]>::to_vec)
                    .collect()
            };
            for r in rest.into_iter().rev() {
                pending.push(r);
            }
            continue;
        }
        if !last && !meta.is_dir() {
            // A file used as a directory. UNCONFIRMED whether iOS says 4 or 8; both read as
            // "not found" to clients.
            return Err(JailError::NotFound);
        }
        done.push(c);
    }
    let mut host = root.to_path_buf();
    for d in &done {
        host.push(OsStr::from_bytes(d));
    }
    Ok(Resolved {
        host,
        rel: join_rel(&done),
    })
}

/// The `LinkTarget` a client is shown for a symlink in the image. Relative targets and
/// targets already in the phone's namespace are shown as they are; an absolute target into the
/// image's `Media/` on the host is shown as the phone path (`/var/mobile/Media/…`). Any other
/// absolute target would reveal the host's file system, so it is shown as a path under
/// `/private/var/root/` with only its last component (simulator policy: on a phone such a link
/// also points outside the AFC jail, where AFC cannot follow it).
pub fn phone_link_target(media: &Path, target: &Path) -> String {
    let lossy = |p: &Path| String::from_utf8_lossy(p.as_os_str().as_bytes()).into_owned();
    if !target.is_absolute() {
        return lossy(target);
    }
    let text = lossy(target);
    if MEDIA_PREFIXES
        .iter()
        .any(|p| text == *p || text.starts_with(&format!("{p}/")))
    {
        return text;
    }
    if let Ok(rel) = target.strip_prefix(media) {
        let rel = lossy(rel);
        return if rel.is_empty() {
            "/var/mobile/Media".to_string()
        } else {
            format!("/var/mobile/Media/{rel}")
        };
    }
    let name = target
        .file_name()
        .map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned())
        .unwrap_or_default();
    format!("/private/var/root/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("Media");
        std::fs::create_dir_all(root.join("DCIM/100APPLE")).expect("mkdir");
        std::fs::write(root.join("DCIM/100APPLE/IMG_0001.JPG"), b"jpg").expect("write");
        std::fs::write(t.path().join("secret"), b"host file").expect("write");
        symlink("100APPLE/IMG_0001.JPG", root.join("DCIM/link")).expect("symlink");
        symlink("../../secret", root.join("DCIM/escape")).expect("symlink");
        symlink(t.path().join("secret"), root.join("abs_escape")).expect("symlink");
        symlink("/var/mobile/Media/DCIM", root.join("abs_inside")).expect("symlink");
        symlink("loop", root.join("loop")).expect("symlink");
        (t, root)
    }

    #[test]
    fn link_targets_never_show_host_paths() {
        let media = Path::new("/tmp/img/Media");
        let show = |t: &str| phone_link_target(media, Path::new(t));
        assert_eq!(show("100APPLE/IMG_0001.JPG"), "100APPLE/IMG_0001.JPG");
        assert_eq!(show("/var/mobile/Media/DCIM"), "/var/mobile/Media/DCIM");
        assert_eq!(
            show("/tmp/img/Media/DCIM/x.JPG"),
            "/var/mobile/Media/DCIM/x.JPG"
        );
        assert_eq!(show("/tmp/img/secret.txt"), "/private/var/root/secret.txt");
        assert!(!show("/home/someone/photos/a.jpg").contains("/home"));
    }

    #[test]
    fn lexical_normalisation() {
        assert_eq!(
            normalise(b"/a/./../a/b/../b/c/"),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(normalise(b"//DCIM"), vec![b"DCIM".to_vec()]);
        assert!(normalise(b"../../..").is_empty());
    }

    #[test]
    fn paths_resolve_inside_the_root_only() {
        let (_t, root) = tree();
        let r = resolve(&root, b"//DCIM/100APPLE/IMG_0001.JPG", true).expect("found");
        assert_eq!(r.rel, "DCIM/100APPLE/IMG_0001.JPG");
        let r = resolve(&root, b"../../../DCIM", true).expect("clamped to root");
        assert_eq!(r.rel, "DCIM");
        assert_eq!(resolve(&root, b"/", true).expect("root").rel, "");
        assert_eq!(
            resolve(&root, b"DCIM/nope", true).err(),
            Some(JailError::NotFound)
        );
        assert_eq!(
            resolve(&root, b"DCIM/100APPLE/IMG_0001.JPG/child", true).err(),
            Some(JailError::NotFound)
        );
    }

    #[test]
    fn symlinks_are_followed_only_inside() {
        let (_t, root) = tree();
        let r = resolve(&root, b"DCIM/link", true).expect("followed");
        assert_eq!(r.rel, "DCIM/100APPLE/IMG_0001.JPG");
        let r = resolve(&root, b"DCIM/link", false).expect("not followed");
        assert_eq!(r.rel, "DCIM/link");
        assert_eq!(
            resolve(&root, b"DCIM/escape", true).err(),
            Some(JailError::Denied)
        );
        assert_eq!(
            resolve(&root, b"abs_escape", true).err(),
            Some(JailError::Denied)
        );
        assert_eq!(
            resolve(&root, b"abs_escape/x", false).err(),
            Some(JailError::Denied)
        );
        let r = resolve(&root, b"abs_inside/100APPLE", true).expect("inside");
        assert_eq!(r.rel, "DCIM/100APPLE");
        assert_eq!(
            resolve(&root, b"loop", true).err(),
            Some(JailError::NotFound)
        );
    }
}
