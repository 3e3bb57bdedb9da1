//! A drill's check command is confined (issue "Secure by default": checks run with no access
//! to the store): `drpaird check-sandbox`, which the standby runs a check through, keeps the
//! denied paths out of reach even of root (Landlock, not file modes, refuses), leaves the rest
//! of the system readable, and cuts the check off from signalling or tracing processes
//! outside it. Bad input: no program, an unreadable deny list.

use drpair_e2e::{TestEnv, bin, step};
use std::process::Command;

/// The kernel's Landlock ABI version (0: none).
fn landlock_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute, size 0 and the VERSION flag, the call only returns the ABI.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

/// Runs `script` through `drpaird check-sandbox --require --deny DENY`, as `as_uid` when given
/// (through setpriv, as the standby does as root); its stdout and stderr.
fn confined(deny: &std::path::Path, script: &str, as_uid: Option<u32>) -> String {
    let mut c = match as_uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into()]).arg(bin("drpaird"));
            c
        }
        None => Command::new(bin("drpaird")),
    };
    let out =
        c.args(["check-sandbox", "--require", "--deny"]).arg(deny).args(["--", "sh", "-c", script]).output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_check_reaches_neither_the_store_nor_the_standby() {
    let abi = landlock_abi();
    if abi == 0 {
        eprintln!("SKIPPED: this kernel enforces no Landlock; a check there runs only as nobody (setpriv)");
        return;
    }
    let env = TestEnv::new("check-sandbox");
    let store = env.mkdir("store");
    std::fs::write(store.join("admin.token"), "the-standby-secret\n").unwrap();
    std::fs::write(env.path("beside.txt"), "readable\n").unwrap();

    // As root: file modes stop nothing, Landlock keeps the store out; the rest stays readable.
    let s = store.display();
    let b = env.path("beside.txt");
    let text = confined(
        &store,
        &format!("cat {s}/admin.token; echo token=$?; ls {s}; echo ls=$?; cat {}; id -u", b.display()),
        None,
    );
    assert!(!text.contains("the-standby-secret"), "the check read the store: {text}");
    assert!(text.contains("token=1") && text.contains("ls=2"), "{text}");
    assert!(text.contains("readable\n0\n"), "the rest stays readable, as root: {text}");
    step(format!("as root, confined: {:?}", text.lines().collect::<Vec<_>>()));

    // As the standby's own user (the packaged service): the store is the user's own, and so is
    // a process outside the check; the check reaches neither.
    const UID: u32 = 65534;
    for p in [env.path(""), store.clone(), store.join("admin.token")] {
        std::os::unix::fs::chown(&p, Some(UID), Some(UID)).unwrap();
    }
    let mut outside = Command::new("setpriv")
        .args([
            format!("--reuid={UID}"),
            format!("--regid={UID}"),
            "--clear-groups".into(),
            "sleep".into(),
            "60".into(),
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let p = outside.id();
    let text = confined(
        &store,
        &format!(
            "id -u; cat {s}/admin.token; echo token=$?; kill -0 {p}; echo kill=$?; cat /proc/{p}/environ >/dev/null; echo environ=$?"
        ),
        Some(UID),
    );
    let _ = outside.kill();
    let _ = outside.wait();
    assert!(text.starts_with("65534\n"), "{text}");
    assert!(
        !text.contains("the-standby-secret") && text.contains("token=1"),
        "the check read its user's store: {text}"
    );
    assert!(
        text.contains("environ=1") || text.contains("environ=2"),
        "the check read another process's environment: {text}"
    );
    if abi >= 6 {
        assert!(text.contains("kill=1"), "the check signalled a process outside it: {text}");
    } else {
        eprintln!("note: Landlock ABI {abi} < 6: signals out of the check are not scoped on this kernel");
    }
    step(format!("as the store's own user, confined: {:?}", text.lines().collect::<Vec<_>>()));

    // Bad input: no program to run; a usage error, nothing run.
    let none = Command::new(bin("drpaird")).args(["check-sandbox", "--deny", "/tmp"]).output().unwrap();
    assert_eq!(none.status.code(), Some(2), "{}", String::from_utf8_lossy(&none.stderr));
    let missing = Command::new(bin("drpaird"))
        .args(["check-sandbox", "--deny", "/no/such/dir", "--", "/no/such/program"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(126));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot run /no/such/program"));
    step("no program: usage error; a missing program: 126 with its name");
}
