//! install / remove / status in a temporary HOME for both platforms, with the recording fake.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_config::schedule::{
    self, FakeReply, FakeSystemCtl, FileChange, FileState, InstallRequest, LastRun, Platform,
    ScheduleError,
};
use ferry_config::{Os, TimeOfDay};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn platform(&self, os: Os, xdg: Option<&str>) -> Platform {
        let home = self.path().to_string_lossy().into_owned();
        let xdg = xdg.map(|x| self.path().join(x).to_string_lossy().into_owned());
        let env = move |k: &str| match k {
            "HOME" => Some(home.clone()),
            "XDG_CONFIG_HOME" => xdg.clone(),
            _ => None,
        };
        Platform::for_os(os, &env, 501).unwrap()
    }
    fn bin(&self) -> PathBuf {
        let b = self.path().join("My Apps/ferry");
        fs::create_dir_all(b.parent().unwrap()).unwrap();
        fs::write(&b, "#!/bin/sh\nexit 0\n").unwrap();
        b
    }
    fn req(&self, at: (u8, u8), on_plug: bool) -> InstallRequest {
        InstallRequest {
            ferry_bin: self.bin(),
            dest: PathBuf::from("/media/ana/My Photos"),
            at: TimeOfDay::new(at.0, at.1).unwrap(),
            on_plug,
            wait: Duration::from_secs(1800),
        }
    }
}

fn changes(r: &schedule::InstallReport) -> Vec<(String, FileChange)> {
    r.files
        .iter()
        .map(|(p, c)| (p.file_name().unwrap().to_string_lossy().into_owned(), *c))
        .collect()
}

#[test]
fn linux_install_is_idempotent_and_files_land_in_systemd_user_dir() {
    let h = Home::new();
    let p = h.platform(Os::Linux, None);
    let unit_dir = h.path().join(".config/systemd/user");
    assert_eq!(p.unit_dir, unit_dir);
    assert_eq!(p.state_dir, h.path().join(".local/state/ferry"));

    let ctl = FakeSystemCtl::new();
    let r = schedule::install(&h.req((2, 30), false), &p, &ctl).unwrap();
    assert_eq!(
        changes(&r),
        vec![
            ("ferry-nightly.service".into(), FileChange::Created),
            ("ferry-nightly.timer".into(), FileChange::Created)
        ]
    );
    assert_eq!(
        ctl.calls(),
        vec![
            "systemctl --user daemon-reload",
            "systemctl --user enable --now ferry-nightly.timer"
        ]
    );
    let service = fs::read_to_string(unit_dir.join("ferry-nightly.service")).unwrap();
    let bin = h.bin();
    assert!(
        service.contains(&format!(
            "\nExecStart=\"{}\" sync --unattended --dest \"/media/ana/My Photos\" --wait 30m\n",
            bin.display()
        )),
        "{service}"
    );
    let timer = fs::read_to_string(unit_dir.join("ferry-nightly.timer")).unwrap();
    assert!(timer.contains("OnCalendar=*-*-* 02:30:00"));
    assert!(p.state_dir.is_dir(), "state dir created");
    let shown = r.to_string();
    assert!(
        shown.starts_with("Nightly backup scheduled (systemd user timer): every day at 02:30 to /media/ana/My Photos\n"),
        "{shown}"
    );

    // again: nothing changes, the same two commands (both idempotent in systemd)
    let ctl = FakeSystemCtl::new();
    let r = schedule::install(&h.req((2, 30), false), &p, &ctl).unwrap();
    assert!(r.files.iter().all(|(_, c)| *c == FileChange::Unchanged));
    assert_eq!(ctl.calls().len(), 2);

    // a new time updates only the timer, and restarts it
    let ctl = FakeSystemCtl::new();
    let r = schedule::install(&h.req((4, 0), false), &p, &ctl).unwrap();
    assert_eq!(
        changes(&r),
        vec![
            ("ferry-nightly.service".into(), FileChange::Unchanged),
            ("ferry-nightly.timer".into(), FileChange::Updated)
        ]
    );
    assert_eq!(
        ctl.calls().last().unwrap(),
        "systemctl --user restart ferry-nightly.timer"
    );

    // on-plug adds the watch service; dropping it removes it again
    let ctl = FakeSystemCtl::new();
    schedule::install(&h.req((4, 0), true), &p, &ctl).unwrap();
    assert!(unit_dir.join("ferry-watch.service").is_file());
    assert!(ctl
        .calls()
        .contains(&"systemctl --user enable --now ferry-watch.service".to_string()));
    let ctl = FakeSystemCtl::new();
    let r = schedule::install(&h.req((4, 0), false), &p, &ctl).unwrap();
    assert!(!unit_dir.join("ferry-watch.service").exists());
    assert_eq!(
        ctl.calls()[0],
        "systemctl --user disable --now ferry-watch.service"
    );
    assert!(changes(&r).contains(&("ferry-watch.service".into(), FileChange::Removed)));

    // only Ferry's files were ever in the dir
    let mut names: Vec<_> = fs::read_dir(&unit_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ferry-nightly.service", "ferry-nightly.timer"]);

    // remove
    let ctl = FakeSystemCtl::new();
    let r = schedule::remove(&p, &ctl).unwrap();
    assert_eq!(r.removed.len(), 2);
    assert_eq!(
        ctl.calls(),
        vec![
            "systemctl --user disable --now ferry-nightly.timer",
            "systemctl --user daemon-reload"
        ]
    );
    assert_eq!(fs::read_dir(&unit_dir).unwrap().count(), 0);
    let r = schedule::remove(&p, &FakeSystemCtl::new()).unwrap();
    assert!(r.to_string().contains("nothing to remove"));
}

#[test]
fn linux_respects_xdg_config_home() {
    let h = Home::new();
    let p = h.platform(Os::Linux, Some("xdg"));
    assert_eq!(p.unit_dir, h.path().join("xdg/systemd/user"));
    schedule::install(&h.req((1, 0), true), &p, &FakeSystemCtl::new()).unwrap();
    for f in [
        "ferry-nightly.service",
        "ferry-nightly.timer",
        "ferry-watch.service",
    ] {
        assert!(h.path().join("xdg/systemd/user").join(f).is_file(), "{f}");
    }
    assert!(!h.path().join(".config").exists());
}

#[test]
fn macos_install_and_remove_in_launch_agents() {
    let h = Home::new();
    let p = h.platform(Os::MacOs, Some("ignored"));
    let agents = h.path().join("Library/LaunchAgents");
    assert_eq!(p.unit_dir, agents);
    assert_eq!(p.state_dir, h.path().join("Library/Logs/ferry"));

    let ctl = FakeSystemCtl::new();
    ctl.reply(
        "launchctl print",
        FakeReply::Fail(113, "Could not find service".into()),
    );
    let r = schedule::install(&h.req((23, 5), true), &p, &ctl).unwrap();
    let nightly = agents.join("org.ferry.nightly.plist");
    let watch = agents.join("org.ferry.watch.plist");
    assert_eq!(
        r.files,
        vec![
            (nightly.clone(), FileChange::Created),
            (watch.clone(), FileChange::Created)
        ]
    );
    assert_eq!(
        ctl.calls(),
        vec![
            "launchctl print gui/501/org.ferry.nightly".to_string(),
            "launchctl print gui/501/org.ferry.watch".to_string(),
            "launchctl enable gui/501/org.ferry.nightly".to_string(),
            format!("launchctl bootstrap gui/501 {}", nightly.display()),
            "launchctl enable gui/501/org.ferry.watch".to_string(),
            format!("launchctl bootstrap gui/501 {}", watch.display()),
        ]
    );
    assert!(p.state_dir.is_dir(), "launchd needs the log dir to exist");
    let v = plist::Value::from_file(&nightly).unwrap();
    let d = v.as_dictionary().unwrap();
    let pa: Vec<String> = d["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_string().unwrap().to_string())
        .collect();
    assert_eq!(
        pa,
        vec![
            h.bin().to_string_lossy().into_owned(),
            "sync".into(),
            "--unattended".into(),
            "--dest".into(),
            "/media/ana/My Photos".into(),
            "--wait".into(),
            "30m".into()
        ]
    );
    assert_eq!(
        d["StandardOutPath"].as_string().map(PathBuf::from),
        Some(p.state_dir.join("nightly.log"))
    );

    // loaded and unchanged: nothing to do; loaded and changed: bootout + bootstrap
    let ctl = FakeSystemCtl::new();
    schedule::install(&h.req((23, 5), true), &p, &ctl).unwrap();
    assert_eq!(
        ctl.calls(),
        vec![
            "launchctl print gui/501/org.ferry.nightly",
            "launchctl print gui/501/org.ferry.watch"
        ]
    );
    let ctl = FakeSystemCtl::new();
    schedule::install(&h.req((1, 0), true), &p, &ctl).unwrap();
    assert_eq!(
        ctl.calls(),
        vec![
            "launchctl print gui/501/org.ferry.nightly".to_string(),
            "launchctl print gui/501/org.ferry.watch".to_string(),
            "launchctl bootout gui/501/org.ferry.nightly".to_string(),
            "launchctl enable gui/501/org.ferry.nightly".to_string(),
            format!("launchctl bootstrap gui/501 {}", nightly.display()),
        ]
    );

    let ctl = FakeSystemCtl::new();
    let r = schedule::remove(&p, &ctl).unwrap();
    assert_eq!(r.removed, vec![nightly.clone(), watch.clone()]);
    assert_eq!(
        ctl.calls(),
        vec![
            "launchctl bootout gui/501/org.ferry.nightly",
            "launchctl bootout gui/501/org.ferry.watch"
        ]
    );
    assert!(!nightly.exists() && !watch.exists());
}

#[test]
fn edited_or_foreign_files_are_never_replaced_or_removed() {
    for os in [Os::Linux, Os::MacOs] {
        let h = Home::new();
        let p = h.platform(os, None);
        schedule::install(&h.req((2, 0), false), &p, &FakeSystemCtl::new()).unwrap();
        let first = p.files()[0].clone();
        let edited = format!("{}# my tweak\n", fs::read_to_string(&first).unwrap());
        fs::write(&first, &edited).unwrap();

        let e = schedule::remove(&p, &FakeSystemCtl::new()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ScheduleError::Refused { .. }));
        assert!(
            msg.starts_with("Ferry will not remove files it did not write or that were edited:"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "{} (edited after Ferry wrote it)",
                first.display()
            )),
            "{msg}"
        );
        assert_eq!(fs::read_to_string(&first).unwrap(), edited, "untouched");
        for f in &p.files()[1..] {
            if os == Os::Linux && f.ends_with("ferry-nightly.timer") {
                assert!(f.exists(), "nothing removed when one file is refused");
            }
        }

        let e = schedule::install(&h.req((3, 0), false), &p, &FakeSystemCtl::new()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Ferry will not replace files it did not write"),
            "{e}"
        );
        assert_eq!(fs::read_to_string(&first).unwrap(), edited);

        // a user's own file with the same name
        fs::write(&first, "[Service]\nExecStart=/bin/true\n").unwrap();
        let e = schedule::remove(&p, &FakeSystemCtl::new()).unwrap_err();
        assert!(e.to_string().contains("(not written by Ferry)"), "{e}");
        assert!(first.exists());
    }
}

#[test]
fn no_user_manager_leaves_files_and_says_what_to_run() {
    let h = Home::new();
    let p = h.platform(Os::Linux, None);
    let ctl = FakeSystemCtl::new();
    ctl.reply(
        "systemctl",
        FakeReply::Fail(1, "Failed to connect to bus: No medium found".into()),
    );
    let e = schedule::install(&h.req((2, 30), true), &p, &ctl).unwrap_err();
    let msg = e.to_string();
    let dir = h.path().join(".config/systemd/user");
    let expected = format!(
        "wrote\n  {d}/ferry-nightly.service\n  {d}/ferry-nightly.timer\n  {d}/ferry-watch.service\n\
but could not activate the schedule: `systemctl --user daemon-reload` failed: Failed to connect to bus: No medium found — the systemd user manager is not running (a container, or an ssh session without a login session)\n\
The files are in place. In a logged-in desktop session, run:\n  \
systemctl --user daemon-reload\n  \
systemctl --user enable --now ferry-nightly.timer\n  \
systemctl --user enable --now ferry-watch.service",
        d = dir.display()
    );
    assert_eq!(msg, expected);
    assert!(dir.join("ferry-nightly.timer").is_file());

    // systemctl missing altogether
    let ctl = FakeSystemCtl::new();
    ctl.reply("systemctl", FakeReply::Missing);
    let e = schedule::install(&h.req((2, 30), false), &p, &ctl).unwrap_err();
    assert!(
        e.to_string().contains(
            "could not activate the schedule: `systemctl` was not found: this system does not seem to run systemd"
        ),
        "{e}"
    );

    // launchctl missing
    let p = h.platform(Os::MacOs, None);
    let ctl = FakeSystemCtl::new();
    ctl.reply("launchctl", FakeReply::Missing);
    let e = schedule::install(&h.req((2, 30), false), &p, &ctl).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("`launchctl` was not found"), "{msg}");
    assert!(msg.contains("  launchctl bootstrap gui/501 "), "{msg}");

    // remove still works without a manager: files go, a note says why nothing was stopped
    let p = h.platform(Os::Linux, None);
    let ctl = FakeSystemCtl::new();
    ctl.reply("systemctl", FakeReply::Missing);
    let r = schedule::remove(&p, &ctl).unwrap();
    assert_eq!(r.removed.len(), 2, "the last install dropped on-plug");
    assert!(r.notes[0].contains("nothing was stopped"), "{:?}", r.notes);
}

#[test]
fn remove_cleans_a_leftover_enable_symlink_but_nothing_else() {
    let h = Home::new();
    let p = h.platform(Os::Linux, None);
    schedule::install(&h.req((2, 30), false), &p, &FakeSystemCtl::new()).unwrap();
    let wants = p.unit_dir.join("timers.target.wants");
    fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        p.unit_dir.join("ferry-nightly.timer"),
        wants.join("ferry-nightly.timer"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/elsewhere/other.timer", wants.join("other.timer")).unwrap();
    let ctl = FakeSystemCtl::new();
    ctl.reply("systemctl", FakeReply::Missing);
    let r = schedule::remove(&p, &ctl).unwrap();
    assert!(fs::symlink_metadata(wants.join("ferry-nightly.timer")).is_err());
    assert!(fs::symlink_metadata(wants.join("other.timer")).is_ok());
    assert!(r
        .notes
        .iter()
        .any(|n| n.contains("leftover link timers.target.wants/ferry-nightly.timer")));
}

#[test]
fn status_reports_schedule_next_run_and_last_result() {
    let h = Home::new();
    let p = h.platform(Os::Linux, None);
    let st = schedule::status(&p, &FakeSystemCtl::new()).unwrap();
    assert!(!st.installed);
    assert!(st.to_string().starts_with("Nightly backup: not installed"));

    schedule::install(&h.req((2, 30), true), &p, &FakeSystemCtl::new()).unwrap();
    schedule::record_last_run(&p.state_dir, &LastRun::now(0, "copied 3 photos")).unwrap();
    let ctl = FakeSystemCtl::new();
    ctl.reply(
        "systemctl --user show ferry-nightly.timer",
        FakeReply::Ok(
            "ActiveState=active\nNextElapseUSecRealtime=Wed 2026-11-04 02:30:00 UTC\n".into(),
        ),
    );
    let st = schedule::status(&p, &ctl).unwrap();
    assert!(st.installed && st.on_plug);
    assert_eq!(st.at, TimeOfDay::new(2, 30));
    assert_eq!(st.next_run.as_deref(), Some("Wed 2026-11-04 02:30:00 UTC"));
    assert_eq!(st.state.as_deref(), Some("timer active"));
    assert_eq!(st.last_run.as_ref().unwrap().summary, "copied 3 photos");
    assert_eq!(
        st.command.as_ref().unwrap()[3..5],
        ["--dest".to_string(), "/media/ana/My Photos".to_string()]
    );
    assert!(st.files.iter().all(|(_, s)| *s == FileState::Ferry));
    let shown = st.to_string();
    assert!(
        shown.contains("  next run:  Wed 2026-11-04 02:30:00 UTC\n"),
        "{shown}"
    );
    assert!(
        shown.contains("--dest '/media/ana/My Photos' --wait 30m"),
        "{shown}"
    );
    assert!(shown.contains("ok (exit 0): copied 3 photos"), "{shown}");

    // without a user manager the rest is still reported
    let ctl = FakeSystemCtl::new();
    ctl.reply("systemctl", FakeReply::Missing);
    let st = schedule::status(&p, &ctl).unwrap();
    assert!(st.installed && st.next_run.is_none());
    assert!(
        st.notes[0].contains("the next run time is unknown"),
        "{:?}",
        st.notes
    );

    // macOS
    let p = h.platform(Os::MacOs, None);
    schedule::install(&h.req((5, 15), false), &p, &FakeSystemCtl::new()).unwrap();
    let st = schedule::status(&p, &FakeSystemCtl::new()).unwrap();
    assert_eq!(st.at, TimeOfDay::new(5, 15));
    assert_eq!(st.state.as_deref(), Some("loaded"));
    assert!(!st.on_plug);
    assert!(
        st.logs.contains("Library/Logs/ferry/nightly.log"),
        "{}",
        st.logs
    );
}

#[test]
fn bad_requests_are_refused_clearly() {
    let h = Home::new();
    let p = h.platform(Os::Linux, None);
    let mut r = h.req((2, 30), false);
    r.dest = PathBuf::from("relative/dir");
    let e = schedule::install(&r, &p, &FakeSystemCtl::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the destination relative/dir is not an absolute path; give the full path (the schedule runs from another directory)"
    );
    let mut r = h.req((2, 30), false);
    r.ferry_bin = h.path().join("nope/ferry");
    let e = schedule::install(&r, &p, &FakeSystemCtl::new()).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(!p.unit_dir.exists(), "nothing written");
    let quoted = h.path().join("it's/ferry");
    fs::create_dir_all(quoted.parent().unwrap()).unwrap();
    fs::write(&quoted, "").unwrap();
    let mut r = h.req((2, 30), false);
    r.ferry_bin = quoted.clone();
    let e = schedule::install(&r, &p, &FakeSystemCtl::new()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("systemd refuses to run an executable whose path contains '\\''"),
        "{e}"
    );
    // launchd has no such limit
    let p = h.platform(Os::MacOs, None);
    schedule::install(&r, &p, &FakeSystemCtl::new()).unwrap();
    let mut r = h.req((2, 30), false);
    r.dest = PathBuf::from("/media/bad\u{1}name");
    let e = schedule::install(&r, &p, &FakeSystemCtl::new()).unwrap_err();
    assert!(
        e.to_string().contains("a launchd plist (XML) cannot hold"),
        "{e}"
    );
}
