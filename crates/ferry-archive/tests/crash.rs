//! kill -9 of a writer at random points: no partial file under a final name, the catalog and
//! the files agree after the next open, and the next run completes the archive exactly.
//!
//! The writer is this test binary re-executed as a child (`crash_child`, which does nothing
//! unless `FERRY_ARCHIVE_CRASH_CHILD` is set). Two kinds of kill point, chosen at random
//! (seed printed; set `FERRY_CRASH_SEED` to replay):
//!
//! * **at a step**: the child's step hook stops at the n-th occurrence of a chosen step of the
//!   write path (temp created, chunk written, fsynced, journaled, renamed, folder synced,
//!   catalog committed), prints `FERRY:STOP` and blocks reading stdin; the parent SIGKILLs it.
//!   This hits every window deterministically.
//! * **free-running**: the child prints `FERRY:chunk` after every chunk and keeps going; the
//!   parent SIGKILLs it after k such lines, wherever the child has got to by then.
//!
//! No sleeps: the parent waits on the child's output, the child on its stdin.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use common::*;
use ferry_archive::testing::{set_step_hook, Step};
use ferry_archive::{names, Archive, ArchiveOptions, PhoneArchive};
use ferry_photos::ResourceRole;
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "FERRY_ARCHIVE_CRASH_CHILD";
const MODE_ENV: &str = "FERRY_ARCHIVE_CRASH_MODE";
const ITEMS: u64 = 14;
const CHUNK: usize = 16 * 1024;

struct Item {
    uuid: String,
    role: ResourceRole,
    original: String,
    afc: String,
    data: Vec<u8>,
}

fn items() -> Vec<Item> {
    (0..ITEMS)
        .map(|i| {
            let asset = i / 2;
            let (role, ext) = if i % 2 == 0 {
                (ResourceRole::Primary, "HEIC")
            } else {
                (ResourceRole::LiveVideo, "MOV")
            };
            // Names clash on purpose (IMG_0..IMG_2 across 7 assets).
            let n = asset % 3;
            let size = 20_000 + (i as usize * 37_003) % 400_000;
            Item {
                uuid: format!("ASSET-{asset:04}"),
                role,
                original: format!("IMG_{n}.HEIC"),
                afc: format!("DCIM/100APPLE/IMG_{asset}.{ext}"),
                data: content(i + 1, size),
            }
        })
        .collect()
}

fn write_item(p: &PhoneArchive, it: &Item) -> ferry_archive::Result<()> {
    let mut w = p.begin(spec(
        &it.uuid,
        it.role,
        &it.original,
        &it.afc,
        it.data.len() as u64,
    ))?;
    for c in it.data.chunks(CHUNK) {
        w.write_chunk(c)?;
    }
    w.finish()?;
    Ok(())
}

fn write_missing(p: &PhoneArchive) -> ferry_archive::Result<usize> {
    let mut n = 0;
    for it in items() {
        if p.lookup(&it.uuid, it.role)?.is_none() {
            write_item(p, &it)?;
            n += 1;
        }
    }
    Ok(n)
}

// ---- child side ----

static STOP: OnceLock<Option<(Step, u64)>> = OnceLock::new();
static COUNTS: [AtomicU64; 7] = [const { AtomicU64::new(0) }; 7];

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn block_until_killed() -> ! {
    let mut s = String::new();
    loop {
        s.clear();
        // The parent never writes to our stdin: this blocks until SIGKILL.
        if std::io::stdin().read_line(&mut s).unwrap_or(0) == 0 {
            std::process::exit(3);
        }
    }
}

fn hook(s: Step) {
    let idx = Step::ALL.iter().position(|x| *x == s).unwrap_or(0);
    let n = COUNTS[idx].fetch_add(1, Ordering::SeqCst) + 1;
    match STOP.get().copied().flatten() {
        Some((step, at)) => {
            if step == s && n == at {
                say(&format!("FERRY:STOP {s:?} {n}"));
                block_until_killed();
            }
        }
        None => {
            if s == Step::ChunkWritten {
                say("FERRY:chunk");
            }
        }
    }
}

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mode = std::env::var(MODE_ENV).unwrap_or_default();
    let stop = mode.split_once(':').and_then(|(s, n)| {
        let step = Step::ALL.iter().copied().find(|x| format!("{x:?}") == s)?;
        Some((step, n.parse().ok()?))
    });
    let _ = STOP.set(stop);
    set_step_hook(hook);
    let a =
        Archive::open(std::path::Path::new(&dir), ArchiveOptions::default()).expect("child open");
    let p = a.phone(UDID, "Anna's iPhone").expect("child phone");
    write_missing(&p).expect("child write");
    say("FERRY:DONE");
    block_until_killed();
}

// ---- parent side ----

enum Kill {
    AtStep(Step, u64),
    AfterChunks(u64),
}

fn run_child_and_kill(dir: &std::path::Path, kill: &Kill) -> String {
    let mode = match kill {
        Kill::AtStep(s, n) => format!("{s:?}:{n}"),
        Kill::AfterChunks(_) => "progress".into(),
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(MODE_ENV, &mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let mut chunks = 0;
    let mut last = String::from("EOF");
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if std::env::var("FERRY_CRASH_DEBUG").is_ok() {
            eprintln!("child: {line}");
        }
        // libtest may print "test crash_child ... " on the same line first.
        if line.ends_with("FERRY:chunk") {
            chunks += 1;
            if let Kill::AfterChunks(k) = kill {
                if chunks >= *k {
                    last = format!("after {chunks} chunks");
                    break;
                }
            }
        } else if let Some(i) = line.find("FERRY:STOP").or_else(|| line.find("FERRY:DONE")) {
            last = line[i..].to_string();
            break;
        }
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    if last == "EOF" {
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
        panic!("child ended without reaching its kill point ({status}): {err}");
    }
    last
}

/// Every file under a final name is complete: byte-identical to one of the items.
fn assert_no_partial_final_files(dir: &std::path::Path, by_hash: &HashMap<String, usize>) {
    for f in photo_files(dir) {
        let name = f.rsplit('/').next().unwrap();
        if names::is_temp_name(name) {
            continue;
        }
        let h = blake3::hash(&std::fs::read(dir.join(&f)).unwrap())
            .to_hex()
            .to_string();
        assert!(
            by_hash.contains_key(&h),
            "partial or foreign file under a final name: {f}"
        );
    }
}

fn assert_agree(a: &Archive, by_hash: &HashMap<String, usize>, all: &[Item]) {
    let rep = a.check(true).unwrap();
    assert!(rep.is_clean(), "catalog and files disagree: {rep:?}");
    for e in a.all_entries().unwrap() {
        let i = by_hash[&e.hash];
        assert_eq!(
            (e.uuid.as_str(), e.role.as_str()),
            (all[i].uuid.as_str(), all[i].role.as_str()),
            "{}",
            e.path
        );
    }
}

#[test]
fn kill_minus_9_at_random_points_never_leaves_a_partial_file() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let seed: u64 = std::env::var("FERRY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("crash test seed: {seed} (FERRY_CRASH_SEED={seed} to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let all = items();
    let by_hash: HashMap<String, usize> = all
        .iter()
        .enumerate()
        .map(|(i, it)| (blake3::hash(&it.data).to_hex().to_string(), i))
        .collect();

    let trials = 14;
    let mut kills = Vec::new();
    for trial in 0..trials {
        let d = tempfile::tempdir().unwrap();
        Archive::init(d.path()).unwrap();
        // Two crashes in a row, then a clean completion.
        for round in 0..2 {
            // Round 0 walks through every step (each twice over the trials); round 1 alternates
            // free-running kills and steps again, on top of the first crash's leftovers.
            let kill = if round == 1 && trial % 2 == 0 {
                Kill::AfterChunks(rng.gen_range(1..=150))
            } else {
                let step = Step::ALL[(trial + round * 3) % Step::ALL.len()];
                let max = if step == Step::ChunkWritten { 60 } else { 5 };
                Kill::AtStep(step, rng.gen_range(1..=max))
            };
            let at = run_child_and_kill(d.path(), &kill);
            kills.push(at.clone());
            assert_no_partial_final_files(d.path(), &by_hash);
            // The next open recovers: temps swept, journaled renames entered, all consistent.
            let a = Archive::open(d.path(), ArchiveOptions::default())
                .unwrap_or_else(|e| panic!("trial {trial} round {round} ({at}): open: {e}"));
            assert_agree(&a, &by_hash, &all);
        }
        let a = Archive::open(d.path(), ArchiveOptions::default()).unwrap();
        let p = a.phone(UDID, "Anna's iPhone").unwrap();
        write_missing(&p).unwrap();
        assert_agree(&a, &by_hash, &all);
        // Exactly one file per item, each with the right bytes; none twice.
        let files = photo_files(d.path());
        assert_eq!(files.len(), all.len(), "trial {trial}: {files:?}");
        for it in &all {
            let e = p.lookup(&it.uuid, it.role).unwrap().expect("archived");
            assert_eq!(
                std::fs::read(d.path().join(&e.path)).unwrap(),
                it.data,
                "{}",
                e.path
            );
        }
        // Live Photo pairs share their base name.
        for pair in all.chunks(2) {
            let still = p.lookup(&pair[0].uuid, pair[0].role).unwrap().unwrap().path;
            let video = p.lookup(&pair[1].uuid, pair[1].role).unwrap().unwrap().path;
            assert_eq!(
                still.rsplit_once('.').unwrap().0,
                video.rsplit_once('.').unwrap().0
            );
        }
    }
    eprintln!("kill points: {kills:?}");
    assert!(kills.len() >= 20);
    for s in Step::ALL {
        assert!(
            kills
                .iter()
                .any(|k| k.starts_with(&format!("FERRY:STOP {s:?} "))),
            "no kill at {s:?}: {kills:?}"
        );
    }
}
