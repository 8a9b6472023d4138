//! The seam between the schedule logic and the service manager: [`SystemCtl`] runs one
//! command (`systemctl --user …`, `launchctl …`). [`RealSystemCtl`] runs it;
//! [`FakeSystemCtl`] records it and answers from rules, for tests (here and in the CLI).

use std::io;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CmdOutput {
    /// Exit status 0.
    pub success: bool,
    /// The exit code, if it exited (not killed by a signal).
    pub code: Option<i32>,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

/// Runs service-manager commands. An `Err` with kind `NotFound` means the program is missing.
pub trait SystemCtl {
    /// Runs `program args…` without a shell, stdin closed, and captures its output.
    fn run(&self, program: &str, args: &[String]) -> io::Result<CmdOutput>;
}

/// Runs the real commands.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealSystemCtl;

impl SystemCtl for RealSystemCtl {
    fn run(&self, program: &str, args: &[String]) -> io::Result<CmdOutput> {
        let out = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        Ok(CmdOutput {
            success: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// A scripted answer of [`FakeSystemCtl`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeReply {
    /// Exit 0 with this standard output.
    Ok(String),
    /// Exit `code` with this standard error.
    Fail(i32, String),
    /// The program does not exist (`ENOENT`).
    Missing,
}

/// Records every command and answers from prefix rules (first match wins; default: exit 0,
/// no output).
#[derive(Debug, Default)]
pub struct FakeSystemCtl {
    calls: Mutex<Vec<String>>,
    rules: Mutex<Vec<(String, FakeReply)>>,
}

impl FakeSystemCtl {
    /// Succeeds at everything.
    pub fn new() -> FakeSystemCtl {
        FakeSystemCtl::default()
    }

    /// Answers commands whose text (`program arg arg…`) starts with `prefix` with `reply`.
    pub fn reply(&self, prefix: &str, reply: FakeReply) -> &Self {
        if let Ok(mut r) = self.rules.lock() {
            r.push((prefix.to_string(), reply));
        }
        self
    }

    /// Every command run so far, as `program arg arg…`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl SystemCtl for FakeSystemCtl {
    fn run(&self, program: &str, args: &[String]) -> io::Result<CmdOutput> {
        let line = std::iter::once(program)
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        if let Ok(mut c) = self.calls.lock() {
            c.push(line.clone());
        }
        let reply = self
            .rules
            .lock()
            .ok()
            .and_then(|r| {
                r.iter()
                    .find(|(p, _)| line.starts_with(p.as_str()))
                    .map(|(_, r)| r.clone())
            })
            .unwrap_or(FakeReply::Ok(String::new()));
        match reply {
            FakeReply::Ok(stdout) => Ok(CmdOutput {
                success: true,
                code: Some(0),
                stdout,
                stderr: String::new(),
            }),
            FakeReply::Fail(code, stderr) => Ok(CmdOutput {
                success: false,
                code: Some(code),
                stdout: String::new(),
                stderr,
            }),
            FakeReply::Missing => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{program}: not found"),
            )),
        }
    }
}
