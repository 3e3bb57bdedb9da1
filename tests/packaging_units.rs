//! What the Debian package installs, checked without installing it:
//! - every systemd unit in `packaging/systemd/` passes `systemd-analyze verify` without a
//!   word (unknown keys only warn, so any output fails), with `ExecStart=` pointing at the
//!   binaries under test;
//! - every unit keeps its hardening: `systemd-analyze security --offline=true` scores it at
//!   most the exposure recorded here (lower is better; raise a number only with a reason);
//! - the config samples under test (`packaging/config/`) check, the invalid ones fail with a
//!   message; the samples installed as `/etc/drpair/*.toml` (`packaging/etc/`) refuse to start
//!   until configured, and every key they show commented out is a real key with a valid value;
//! - the manual pages the units name exist, the completion scripts are generated, and the
//!   maintainer scripts parse.
//!
//! Needs systemd's tools (`systemd-analyze`, systemd 252 here); no root, no systemd running.

use drpair_e2e::{TestEnv, bin};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Highest overall exposure `systemd-analyze security --offline=true` may give each unit, as
/// measured with systemd 252 when the hardening was written. The agent runs as root with
/// CAP_SYS_ADMIN (fsfreeze), raw devices and the host's network: it cannot go much lower.
const MAX_EXPOSURE: &[(&str, f64)] = &[("drpaird-agent.service", 3.4), ("drpaird-standby.service", 1.1)];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn units() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("packaging/systemd"))
        .expect("packaging/systemd")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    v.sort();
    assert_eq!(v.len(), MAX_EXPOSURE.len(), "every unit has a recorded exposure: {v:?}");
    v
}

/// A copy of `unit` in `dir` whose commands run the binaries under test instead of
/// `/usr/bin/…` (verify refuses a unit whose ExecStart does not exist, and the package is not
/// installed here).
fn unit_under_test(unit: &Path, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(unit).expect("unit");
    assert!(text.contains("/usr/bin/drpaird "), "{}: commands run /usr/bin/drpaird", unit.display());
    let text = text.replace("/usr/bin/drpaird ", &format!("{} ", bin("drpaird").display()));
    let copy = dir.join(unit.file_name().expect("name"));
    std::fs::write(&copy, text).expect("write unit");
    copy
}

fn systemd_analyze(args: &[&str], unit: &Path) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .unwrap_or_else(|e| panic!("cannot run systemd-analyze (apt-get install systemd): {e}"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn units_verify_without_a_word() {
    let env = TestEnv::new("units-verify");
    for unit in units() {
        let copy = unit_under_test(&unit, env.root());
        let out = systemd_analyze(&["verify", "--man=no"], &copy);
        assert!(
            out.status.success() && text(&out).trim().is_empty(),
            "systemd-analyze verify {} ({}):\n{}",
            unit.display(),
            out.status,
            text(&out)
        );
    }
}

/// `→ Overall exposure level for drpaird-agent.service: 3.2 OK 🙂`
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report.lines().find(|l| l.contains("Overall exposure level for"))?;
    line.rsplit_once(": ")?.1.split_whitespace().next()?.parse().ok()
}

#[test]
fn units_keep_their_hardening() {
    let env = TestEnv::new("units-security");
    for unit in units() {
        let name = unit.file_name().expect("name").to_string_lossy().into_owned();
        let max = MAX_EXPOSURE.iter().find(|(n, _)| *n == name).map(|(_, m)| *m).expect("recorded");
        let copy = unit_under_test(&unit, env.root());
        let out = systemd_analyze(&["security", "--offline=true"], &copy);
        let report = text(&out);
        let score = overall_exposure(&report).unwrap_or_else(|| panic!("{name}: no overall exposure in:\n{report}"));
        assert!(score <= max, "{name}: exposure {score} is above the recorded {max}; what was loosened?\n{report}");
        eprintln!("{name}: exposure {score} (recorded maximum {max})");
    }
}

fn config_check(file: &Path) -> (bool, String) {
    let out = Command::new(bin("drpaird")).args(["config", "check"]).arg(file).output().expect("run drpaird");
    (out.status.success(), text(&out))
}

fn tomls(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no samples in {}", dir.display());
    v
}

#[test]
fn config_samples_check_and_invalid_ones_say_why() {
    for file in tomls(&repo().join("packaging/config")) {
        let (ok, out) = config_check(&file);
        assert!(ok, "{} does not check:\n{out}", file.display());
    }
    for file in tomls(&repo().join("packaging/config/invalid")) {
        let (ok, out) = config_check(&file);
        assert!(!ok, "{} was accepted:\n{out}", file.display());
        let message = out.split_once("error:").map(|(_, m)| m.trim()).unwrap_or("");
        assert!(!message.is_empty(), "{} was refused without a message:\n{out}", file.display());
    }
}

/// `text` with `token_file = "…"` pointing at `token` (the sample names /etc/drpair/token).
fn with_token_file(text: &str, token: &Path) -> String {
    text.replace("\"/etc/drpair/token\"", &format!("\"{}\"", token.display()))
}

/// `text` with every commented-out `key = value` line (`# key = value`) made live.
fn uncommented(text: &str) -> String {
    let is_setting = |rest: &str| {
        rest.split_once(" = ")
            .is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    };
    text.lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if is_setting(rest) => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn installed_samples_wait_for_the_operator() {
    let env = TestEnv::new("installed-samples");
    let etc = repo().join("packaging/etc");
    let token = env.token_file("standby", "installed-sample-token");
    let missing = env.path("no-token-here");

    // The agent: nothing set, so nothing to protect yet.
    let agent = std::fs::read_to_string(etc.join("agent.toml")).expect("agent.toml");
    let (ok, out) = config_check(&etc.join("agent.toml"));
    assert!(!ok && out.contains("no pair id"), "the installed agent.toml must not check as is:\n{out}");
    let live = env.path("agent-live.toml");
    std::fs::write(&live, with_token_file(&uncommented(&agent), &token)).expect("write");
    let (ok, out) = config_check(&live);
    assert!(ok, "agent.toml with its commented keys made live must check:\n{out}");

    // The standby: defaults are usable, but it waits for its token.
    let standby = std::fs::read_to_string(etc.join("standby.toml")).expect("standby.toml");
    let no_token = env.path("standby-no-token.toml");
    std::fs::write(&no_token, with_token_file(&standby, &missing)).expect("write");
    let (ok, out) = config_check(&no_token);
    assert!(!ok && out.contains("cannot read token file"), "standby.toml must wait for its token:\n{out}");
    for (name, text) in [("as installed", standby.clone()), ("made live", uncommented(&standby))] {
        let file = env.path("standby-live.toml");
        std::fs::write(&file, with_token_file(&text, &token)).expect("write");
        let (ok, out) = config_check(&file);
        assert!(ok, "standby.toml {name}, with a token, must check:\n{out}");
    }
}

#[test]
fn units_name_manual_pages_that_exist() {
    let env = TestEnv::new("man-pages");
    let man8 = env.path("man8");
    let out = Command::new(bin("drpaird")).arg("man").arg(&man8).output().expect("drpaird man");
    assert!(out.status.success(), "drpaird man: {}", text(&out));
    for unit in units() {
        let body = std::fs::read_to_string(&unit).expect("unit");
        for page in body.lines().filter_map(|l| l.strip_prefix("Documentation=")).flat_map(str::split_whitespace) {
            let Some(name) = page.strip_prefix("man:") else { continue };
            let file = name.replace('(', ".").replace(')', "");
            assert!(man8.join(&file).is_file(), "{} names {page}: no {file} from drpaird man", unit.display());
        }
    }
    let man1 = env.path("man1");
    let out = Command::new(bin("drpair")).arg("man").arg(&man1).output().expect("drpair man");
    assert!(out.status.success(), "drpair man: {}", text(&out));
    for page in ["drpair.1", "drpair-status.1", "drpair-points-export.1", "drpair-completions.1"] {
        assert!(man1.join(page).is_file(), "drpair man wrote no {page}");
    }
}

#[test]
fn completions_are_generated_for_each_shell() {
    for (shell, needle) in [("bash", "complete -F"), ("zsh", "#compdef drpair"), ("fish", "complete -c drpair")] {
        let out = Command::new(bin("drpair")).args(["completions", shell]).output().expect("drpair completions");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && script.contains(needle), "drpair completions {shell}: {}", text(&out));
        assert!(script.contains("points"), "{shell} completion knows the subcommands");
    }
}

#[test]
fn maintainer_scripts_parse() {
    for name in ["postinst", "postrm"] {
        let path = repo().join("packaging/debian").join(name);
        let out = Command::new("sh").arg("-n").arg(&path).output().expect("sh -n");
        assert!(out.status.success(), "{}: {}", path.display(), text(&out));
        let body = std::fs::read_to_string(&path).expect("script");
        assert!(body.contains("#DEBHELPER#"), "{name} has no #DEBHELPER# for the generated unit handling");
        assert!(!body.contains("systemctl start") && !body.contains("systemctl enable"), "{name} starts nothing");
    }
}
