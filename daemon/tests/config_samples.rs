//! The config samples shipped in `packaging/config/` parse; the invalid ones are refused with
//! a message naming what is wrong. Runs the real `drpaird config check`.

use std::path::PathBuf;
use std::process::Command;

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/config")
}

fn check(file: &std::path::Path) -> (bool, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_drpaird")).args(["config", "check"]).arg(file).output().expect("run drpaird");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn valid_samples_pass() {
    for name in ["standby.toml", "agent.toml"] {
        let (ok, text) = check(&samples().join(name));
        assert!(ok, "{name}: {text}");
    }
}

#[test]
fn invalid_samples_are_refused_with_a_reason() {
    let want = [
        ("unknown-key.toml", "unknown field `disk`"),
        ("bad-chunk-size.toml", "power of two"),
        ("bad-listen.toml", "listen"),
        ("empty.toml", "neither"),
        ("bad-pair-id.toml", "may only contain"),
        ("bad-rpo-target.toml", "rpo_target"),
        ("bad-webhook-url.toml", "must start with http:// or https://"),
        ("s3-missing-bucket.toml", "bucket: missing"),
        ("s3-missing-endpoint.toml", "endpoint: missing"),
        ("s3-bad-rewrite-below.toml", "rewrite_below: 1.5 is outside 0..0.9"),
        ("s3-missing-credentials-file.toml", "credentials_file: cannot read /nonexistent/drpair/s3.credentials"),
    ];
    for (name, needle) in want {
        let (ok, text) = check(&samples().join("invalid").join(name));
        assert!(!ok, "{name} was accepted");
        assert!(text.contains(needle), "{name}: '{text}' should mention '{needle}'");
    }
    let count = std::fs::read_dir(samples().join("invalid")).unwrap().count();
    assert_eq!(count, want.len(), "every invalid sample has an expectation");
}

#[test]
fn missing_file_is_an_error() {
    let (ok, text) = check(&samples().join("nope.toml"));
    assert!(!ok);
    assert!(text.contains("cannot read config file"), "{text}");
}
