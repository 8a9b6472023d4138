//! Where usbmuxd listens, found the way libusbmuxd finds it.
//!
//! `USBMUXD_SOCKET_ADDRESS` may be `UNIX:/path` (libusbmuxd), `/path` (pymobiledevice3 and
//! idevice), or `host:port` with the host resolved by name (`localhost:27015`). Unset, the
//! platform default is used: `/var/run/usbmuxd` on Unix, `127.0.0.1:27015` on Windows (Apple
//! Mobile Device Service). idevice's own `UsbmuxdAddr::from_env_var` accepts neither
//! `UNIX:` nor host names, so we parse it here.
//!
//! The functions that depend on the platform take an [`Os`] so that every branch is unit-tested
//! on any host.

use std::net::ToSocketAddrs;

use idevice::usbmuxd::UsbmuxdAddr;

use crate::error::{Error, Result};

/// The environment variable libusbmuxd reads.
pub const ENV_VAR: &str = "USBMUXD_SOCKET_ADDRESS";
/// Default Unix socket of usbmuxd.
pub const DEFAULT_SOCKET: &str = "/var/run/usbmuxd";
/// Default TCP port of usbmuxd (Windows: Apple Mobile Device Service).
pub const DEFAULT_PORT: u16 = 27015;

/// The operating systems whose usbmuxd set-up differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// Linux and other Unix without a built-in usbmuxd.
    Linux,
    /// macOS: usbmuxd is part of the system.
    MacOs,
    /// Windows: Apple Mobile Device Service (comes with iTunes / Apple Devices).
    Windows,
}

impl Os {
    /// The OS this program was built for.
    pub fn current() -> Os {
        if cfg!(target_os = "macos") {
            Os::MacOs
        } else if cfg!(target_os = "windows") {
            Os::Windows
        } else {
            Os::Linux
        }
    }
}

/// A parsed usbmuxd address, with the text shown to users.
#[derive(Debug, Clone)]
pub struct MuxAddress {
    /// What idevice connects to.
    pub addr: UsbmuxdAddr,
    /// Human-readable form (`/var/run/usbmuxd`, `127.0.0.1:27015`).
    pub display: String,
    /// True when it came from `USBMUXD_SOCKET_ADDRESS`.
    pub from_env: bool,
}

impl std::fmt::Display for MuxAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl MuxAddress {
    /// Reads `USBMUXD_SOCKET_ADDRESS` (or the platform default).
    pub fn from_env() -> Result<MuxAddress> {
        let value = std::env::var(ENV_VAR).ok();
        parse(value.as_deref(), Os::current())
    }
}

/// Parses a `USBMUXD_SOCKET_ADDRESS` value; `None` (or empty) means the platform default.
pub fn parse(value: Option<&str>, os: Os) -> Result<MuxAddress> {
    let bad = |v: &str, reason: String| Error::BadMuxAddress {
        value: v.to_string(),
        reason,
    };
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(default_for(os));
    };
    if let Some(path) = v.strip_prefix("UNIX:") {
        if path.is_empty() {
            return Err(bad(v, "UNIX: needs a socket path after it".into()));
        }
        return unix(path, v, os);
    }
    if v.starts_with('/') {
        return unix(v, v, os);
    }
    // host:port; the port is mandatory (libusbmuxd requires it too).
    let (host, port) = v
        .rsplit_once(':')
        .ok_or_else(|| bad(v, "expected UNIX:/path, /path or host:port".into()))?;
    if host.is_empty() {
        return Err(bad(v, "the host is missing".into()));
    }
    port.parse::<u16>()
        .map_err(|_| bad(v, format!("{port:?} is not a port number")))?;
    let sa = v
        .to_socket_addrs()
        .map_err(|e| bad(v, format!("cannot resolve the host: {e}")))?
        .next()
        .ok_or_else(|| bad(v, "the host name has no address".into()))?;
    Ok(MuxAddress {
        addr: UsbmuxdAddr::TcpSocket(sa),
        display: v.to_string(),
        from_env: true,
    })
}

fn default_for(os: Os) -> MuxAddress {
    match os {
        #[cfg(unix)]
        Os::Linux | Os::MacOs => MuxAddress {
            addr: UsbmuxdAddr::UnixSocket(DEFAULT_SOCKET.into()),
            display: DEFAULT_SOCKET.into(),
            from_env: false,
        },
        _ => {
            let sa = std::net::SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT));
            MuxAddress {
                addr: UsbmuxdAddr::TcpSocket(sa),
                display: sa.to_string(),
                from_env: false,
            }
        }
    }
}

#[cfg(unix)]
fn unix(path: &str, _raw: &str, _os: Os) -> Result<MuxAddress> {
    Ok(MuxAddress {
        addr: UsbmuxdAddr::UnixSocket(path.into()),
        display: path.into(),
        from_env: true,
    })
}

#[cfg(not(unix))]
fn unix(_path: &str, raw: &str, _os: Os) -> Result<MuxAddress> {
    Err(Error::BadMuxAddress {
        value: raw.into(),
        reason: "Unix sockets are not available on this system; use host:port".into(),
    })
}

/// What to tell a user whose usbmuxd cannot be reached.
pub fn missing_daemon_hint(os: Os) -> &'static str {
    match os {
        Os::Linux => {
            "usbmuxd is not running. Install it (Debian/Ubuntu: `sudo apt install usbmuxd`; \
             Fedora: `sudo dnf install usbmuxd`; Arch: `sudo pacman -S usbmuxd`), then plug the \
             iPhone in (udev starts it) or run `sudo systemctl start usbmuxd`. If you set \
             USBMUXD_SOCKET_ADDRESS, check its value."
        }
        Os::MacOs => {
            "usbmuxd is built into macOS and should always run; restart the Mac, or check \
             USBMUXD_SOCKET_ADDRESS if you set it."
        }
        Os::Windows => {
            "install Apple's \"Apple Devices\" app (or iTunes) from the Microsoft Store, which \
             provides the Apple Mobile Device Service, and make sure that service is running."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(m: &MuxAddress) -> std::net::SocketAddr {
        match &m.addr {
            UsbmuxdAddr::TcpSocket(sa) => *sa,
            #[allow(unreachable_patterns)]
            other => panic!("expected TCP, got {other:?}"),
        }
    }

    #[cfg(unix)]
    fn path(m: &MuxAddress) -> String {
        match &m.addr {
            UsbmuxdAddr::UnixSocket(p) => p.clone(),
            other => panic!("expected a Unix socket, got {other:?}"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn unix_forms() {
        assert_eq!(
            path(&parse(Some("UNIX:/tmp/mux"), Os::Linux).unwrap()),
            "/tmp/mux"
        );
        assert_eq!(
            path(&parse(Some("/tmp/mux"), Os::Linux).unwrap()),
            "/tmp/mux"
        );
        assert_eq!(path(&parse(None, Os::Linux).unwrap()), DEFAULT_SOCKET);
        assert_eq!(path(&parse(Some("  "), Os::MacOs).unwrap()), DEFAULT_SOCKET);
        assert!(parse(Some("UNIX:"), Os::Linux).is_err());
    }

    #[test]
    fn tcp_forms() {
        let m = parse(Some("127.0.0.1:27099"), Os::Linux).unwrap();
        assert_eq!(tcp(&m).port(), 27099);
        assert!(m.from_env);
        let m = parse(Some("localhost:27099"), Os::Linux).unwrap();
        assert_eq!(tcp(&m).port(), 27099);
        assert!(tcp(&m).ip().is_loopback());
        let m = parse(Some("[::1]:27099"), Os::Linux).unwrap();
        assert!(tcp(&m).is_ipv6());
    }

    #[test]
    fn windows_default_is_tcp() {
        let m = parse(None, Os::Windows).unwrap();
        assert_eq!(tcp(&m).port(), DEFAULT_PORT);
        assert!(!m.from_env);
    }

    #[test]
    fn refuses_garbage() {
        for v in ["localhost", "host:notaport", ":27015", "host:99999"] {
            let e = parse(Some(v), Os::Linux).unwrap_err();
            assert!(matches!(e, Error::BadMuxAddress { .. }), "{v}: {e}");
        }
    }

    #[test]
    fn hints_name_the_fix() {
        assert!(missing_daemon_hint(Os::Linux).contains("apt install usbmuxd"));
        assert!(missing_daemon_hint(Os::MacOs).contains("built into macOS"));
        assert!(missing_daemon_hint(Os::Windows).contains("Apple Mobile Device Service"));
    }
}
