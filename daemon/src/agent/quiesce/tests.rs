//! Tests of quiescing: refusals, hooks, freezes, the thaw budget.

use super::validate::unescape_octal;
use super::*;
use std::fs::File;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::sync::mpsc;
use tempfile::TempDir;

fn plan(freeze: Vec<PathBuf>, state_dir: &Path) -> QuiescePlan {
    QuiescePlan {
        freeze,
        hooks: false,
        pre_hook: None,
        post_hook: None,
        budget: Duration::from_secs(2),
        pair: "web-01".into(),
        state_dir: state_dir.to_path_buf(),
        hook_timeout: HOOK_TIMEOUT,
    }
}

/// Quiesces, expecting a refusal; returns its message.
fn refusal(plan: QuiescePlan) -> String {
    let q = quiesce(plan);
    assert!(!q.is_quiesced());
    let out = q.release();
    assert!(!out.achieved);
    assert_eq!(out.frozen_ms, 0);
    out.failure.expect("a failure")
}

/// A shell script appending `NAME $1 $2 $DRPAIR_PAIR` to `log`, then running `tail`.
fn script(dir: &Path, name: &str, log: &Path, tail: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    let body = format!("#!/bin/sh\necho \"{name} $1 $2 $DRPAIR_PAIR\" >> {}\n{tail}\n", log.display());
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn hook_plan(dir: &TempDir, pre_tail: &str, post_tail: &str) -> (QuiescePlan, PathBuf) {
    let log = dir.path().join("log");
    let mut p = plan(vec![], dir.path());
    p.hooks = true;
    p.pre_hook = Some(script(dir.path(), "pre.sh", &log, pre_tail, 0o755));
    p.post_hook = Some(script(dir.path(), "post.sh", &log, post_tail, 0o755));
    (p, log)
}

fn read(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

#[test]
fn plans_from_requests_and_config() {
    let cfg = QuiesceConfig {
        freeze: vec!["/srv".into()],
        pre_hook: Some("/etc/drpair/pre".into()),
        post_hook: Some("/etc/drpair/post".into()),
        ..QuiesceConfig::default()
    };
    let req = QuiesceRequest { freeze: vec!["/data".into()], hooks: false, budget_ms: None };
    let p = QuiescePlan::from_request(&req, &cfg, "web-01", Path::new("/var/lib/drpair/agent"));
    assert_eq!(p.freeze, vec![PathBuf::from("/data")]);
    assert!(!p.hooks && p.pre_hook.is_none() && p.post_hook.is_none());
    assert_eq!(p.budget, Duration::from_secs(2));
    let req = QuiesceRequest { freeze: vec![], hooks: true, budget_ms: Some(5) };
    let p = QuiescePlan::from_request(&req, &cfg, "web-01", Path::new("/s"));
    assert!(p.hooks && p.pre_hook.is_some() && p.post_hook.is_some());
    assert_eq!(p.budget, Duration::from_millis(100), "clamped");
    let p = QuiescePlan::scheduled(&cfg, "web-01", Path::new("/s"));
    assert_eq!((p.freeze.len(), p.hooks, p.pair.as_str()), (1, true, "web-01"));
    assert!(!QuiescePlan::scheduled(&QuiesceConfig::default(), "a", Path::new("/s")).hooks);
}

#[test]
fn refusals_before_anything_is_frozen() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    assert_eq!(refusal(plan(vec!["mnt/data".into()], d)), "freeze path 'mnt/data' is not absolute");
    assert!(refusal(plan(vec![d.join("missing")], d)).contains("No such file"));
    assert!(refusal(plan(vec![d.to_path_buf()], d)).contains("is not a mount point"));
    std::fs::write(d.join("f"), "x").unwrap();
    assert!(refusal(plan(vec![d.join("f")], d)).ends_with("is not a directory"));
    assert_eq!(refusal(plan(vec![], d)), "nothing to quiesce: no mount points to freeze and no hooks");
    let mut p = plan(vec![], d);
    p.hooks = true;
    assert_eq!(refusal(p.clone()), "hooks requested but the agent has no pre_hook/post_hook configured");
    let log = d.join("log");
    p.pre_hook = Some(script(d, "pre.sh", &log, "", 0o644));
    assert!(refusal(p.clone()).ends_with("pre.sh is not executable"));
    p.pre_hook = None;
    p.post_hook = Some(d.join("no-such-hook"));
    assert!(refusal(p).starts_with("post_hook "));
    assert_eq!(read(&log), "", "no hook ran");
}

#[test]
fn hooks_run_in_order_with_their_arguments() {
    let dir = TempDir::new().unwrap();
    let (p, log) = hook_plan(&dir, "", "");
    let q = quiesce(p);
    assert!(q.is_quiesced());
    assert_eq!(read(&log), "pre.sh pre web-01 web-01\n");
    std::thread::sleep(Duration::from_millis(50));
    let out = q.release();
    assert_eq!(read(&log), "pre.sh pre web-01 web-01\npost.sh post web-01 web-01\n");
    assert!(out.achieved, "{out:?}");
    assert!(out.hooks && out.freeze.is_empty() && out.failure.is_none());
    assert!((50..2000).contains(&out.frozen_ms), "{}", out.frozen_ms);
    assert_eq!(out.budget_ms, 2000);
}

#[test]
fn a_failed_pre_hook_still_runs_the_post_hook() {
    let dir = TempDir::new().unwrap();
    let (p, log) = hook_plan(&dir, "echo 'database busy' >&2; exit 3", "");
    let q = quiesce(p);
    assert!(!q.is_quiesced());
    assert_eq!(read(&log), "pre.sh pre web-01 web-01\npost.sh post web-01 web-01\n");
    let out = q.release();
    assert!(!out.achieved);
    let why = out.failure.unwrap();
    assert!(why.starts_with("pre_hook failed: ") && why.contains("exit status: 3: database busy"), "{why}");
    assert!(why.ends_with("nothing was frozen"), "{why}");
    assert_eq!(read(&log).lines().count(), 2, "post ran once");
}

#[test]
fn a_hung_pre_hook_is_killed() {
    let dir = TempDir::new().unwrap();
    let (mut p, log) = hook_plan(&dir, "sleep 5", "");
    p.hook_timeout = Duration::from_millis(300);
    let t = Instant::now();
    let out = quiesce(p).release();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let why = out.failure.unwrap();
    assert!(why.contains("did not finish within 300ms and was killed"), "{why}");
    assert!(read(&log).ends_with("post.sh post web-01 web-01\n"));
}

#[test]
fn a_failed_post_hook_is_recorded() {
    let dir = TempDir::new().unwrap();
    let (p, _) = hook_plan(&dir, "", "exit 1");
    let out = quiesce(p).release();
    assert!(!out.achieved);
    assert!(out.failure.unwrap().contains("post_hook failed: "));
}

#[test]
fn mount_table_escapes() {
    assert_eq!(unescape_octal(r"/mnt/a\040b\134c"), r"/mnt/a b\c");
    assert_eq!(unescape_octal(r"/x\04"), r"/x\04");
}

// ---- real filesystems (root only): a loop device with ext4, cleaned up on drop ----

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

struct LoopFs {
    dir: TempDir,
    dev: Option<String>,
    mnt: PathBuf,
    /// Mounted on top: unmounted first.
    extra: Vec<PathBuf>,
}

impl LoopFs {
    /// None (the test is skipped) when not root.
    fn new() -> Option<Self> {
        if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
            eprintln!("skipped: needs root for loop devices and FIFREEZE");
            return None;
        }
        let dir = TempDir::new().unwrap();
        let img = dir.path().join("fs.img");
        File::create(&img).unwrap().set_len(64 << 20).unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mut fs = LoopFs { dev: None, mnt, extra: vec![], dir };
        fs.dev = Some(run("losetup", &["-f", "--show", img.to_str().unwrap()]).unwrap());
        let dev = fs.dev.clone().unwrap();
        run("mkfs.ext4", &["-q", &dev]).unwrap();
        run("mount", &[&dev, fs.mnt.to_str().unwrap()]).unwrap();
        File::create(fs.mnt.join("data")).unwrap().sync_all().unwrap();
        Some(fs)
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let mnt = self.mnt.to_str().unwrap().to_string();
        let _ = run("fsfreeze", &["-u", &mnt]);
        for e in self.extra.iter().rev() {
            let _ = run("umount", &[e.to_str().unwrap()]);
        }
        if run("umount", &[&mnt]).is_err() {
            let _ = run("umount", &["-l", &mnt]);
        }
        if let Some(dev) = &self.dev {
            let _ = run("losetup", &["-d", dev]);
        }
        let _ = self.dir.path();
    }
}

/// Appends 4 KiB to `path` and fsyncs it on a thread; sends when that is done.
fn writer(path: PathBuf) -> mpsc::Receiver<Instant> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut f = OpenOptions::new().create(true).append(true).open(&path).unwrap();
        f.write_all(&[7u8; 4096]).unwrap();
        f.sync_all().unwrap();
        let _ = tx.send(Instant::now());
    });
    rx
}

fn writable(mnt: &Path) -> bool {
    writer(mnt.join("probe")).recv_timeout(Duration::from_secs(5)).is_ok()
}

#[test]
fn refuses_the_state_dirs_filesystem_and_duplicates() {
    let Some(mut fs) = LoopFs::new() else { return };
    let state = fs.mnt.join("state");
    let why = refusal(plan(vec![fs.mnt.clone()], &state));
    assert!(why.starts_with(&format!("refusing to freeze {}: it holds the agent's state directory", fs.mnt.display())));
    assert!(why.ends_with("(freezing it would deadlock the agent)"), "{why}");
    let other = TempDir::new().unwrap();
    let twice = refusal(plan(vec![fs.mnt.clone(), fs.mnt.join(".")], other.path()));
    assert!(twice.ends_with("is listed twice"), "{twice}");
    // A bind mount of the same filesystem elsewhere is a mount point, but the same filesystem.
    let bind = fs.dir.path().join("bind");
    std::fs::create_dir(&bind).unwrap();
    run("mount", &["--bind", fs.mnt.to_str().unwrap(), bind.to_str().unwrap()]).unwrap();
    fs.extra.push(bind.clone());
    let same = refusal(plan(vec![fs.mnt.clone(), bind], other.path()));
    assert!(same.ends_with("are the same filesystem"), "{same}");
    assert!(writable(&fs.mnt), "nothing may stay frozen");
}

#[test]
fn a_freeze_blocks_writers_until_release() {
    let Some(fs) = LoopFs::new() else { return };
    let state = TempDir::new().unwrap();
    let t = Instant::now();
    let q = quiesce(plan(vec![fs.mnt.clone()], state.path()));
    let froze = t.elapsed();
    assert!(q.is_quiesced());
    let done = writer(fs.mnt.join("data"));
    assert!(std::fs::read_dir(&fs.mnt).is_ok(), "reads work while frozen");
    std::thread::sleep(Duration::from_millis(300));
    assert!(done.try_recv().is_err(), "the writer must block while frozen");
    let released = Instant::now();
    let out = q.release();
    let thawed = released.elapsed();
    let wrote = done.recv_timeout(Duration::from_secs(10)).expect("writer unblocked");
    assert!(wrote >= released, "the write finished before the release");
    assert!(out.achieved && out.failure.is_none(), "{out:?}");
    assert!((300..2000).contains(&out.frozen_ms), "{}", out.frozen_ms);
    assert_eq!(out.freeze, vec![fs.mnt.display().to_string()]);
    eprintln!(
        "freeze {} ms, release {} ms, frozen {} ms, writer done {} ms after release",
        froze.as_millis(),
        thawed.as_millis(),
        out.frozen_ms,
        wrote.duration_since(released).as_millis()
    );
}

#[test]
fn the_budget_thaws_without_release() {
    let Some(fs) = LoopFs::new() else { return };
    let state = TempDir::new().unwrap();
    let mut p = plan(vec![fs.mnt.clone()], state.path());
    p.budget = Duration::from_millis(200);
    let q = quiesce(p);
    let quiesced = Instant::now();
    let done = writer(fs.mnt.join("data"));
    std::thread::sleep(Duration::from_secs(1));
    let wrote = done.try_recv().expect("the watchdog thawed: the writer went on");
    let after = wrote.duration_since(quiesced);
    assert!(after >= Duration::from_millis(150) && after < Duration::from_millis(800), "{after:?}");
    assert!(!q.is_quiesced());
    let out = q.release();
    assert!(!out.achieved);
    assert_eq!(out.failure.as_deref(), Some("thaw budget of 200ms exceeded: thawed before the cut's reads finished"));
    assert!((200..800).contains(&out.frozen_ms), "{}", out.frozen_ms);
    assert_eq!(out.budget_ms, 200);
    eprintln!("writer went on {} ms after the freeze; frozen {} ms", after.as_millis(), out.frozen_ms);
}

#[test]
fn dropping_without_release_thaws() {
    let Some(fs) = LoopFs::new() else { return };
    let state = TempDir::new().unwrap();
    let q = quiesce(plan(vec![fs.mnt.clone()], state.path()));
    assert!(q.is_quiesced());
    drop(q);
    assert!(writable(&fs.mnt));
}

#[test]
fn a_failed_freeze_thaws_the_others_and_runs_the_post_hook() {
    let (Some(a), Some(b)) = (LoopFs::new(), LoopFs::new()) else { return };
    // Frozen by someone else: FIFREEZE says EBUSY, and it is left frozen.
    run("fsfreeze", &["-f", b.mnt.to_str().unwrap()]).unwrap();
    let dir = TempDir::new().unwrap();
    let (mut p, log) = hook_plan(&dir, "", "");
    p.freeze = vec![a.mnt.clone(), b.mnt.clone()];
    let q = quiesce(p);
    assert!(!q.is_quiesced());
    assert!(read(&log).ends_with("post.sh post web-01 web-01\n"));
    let why = q.release().failure.unwrap();
    assert!(why.contains(&format!("cannot freeze {}: it is already frozen", b.mnt.display())), "{why}");
    assert!(writable(&a.mnt));
    run("fsfreeze", &["-u", b.mnt.to_str().unwrap()]).expect("still frozen by its owner");
}
