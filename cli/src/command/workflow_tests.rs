use super::tests::{parse, usage_error};
use super::*;
use crate::client;
use clap::CommandFactory;
use clap::error::ErrorKind;

#[test]
fn dump_workflow_commands() {
    let Command::Suspend(a) = parse(&["suspend", "web-01"]).unwrap().command else { panic!() };
    assert_eq!(a.pair.as_str(), "web-01");
    let Command::Standby(s) = parse(&["standby", "skip-to-resync-marker", "web-01"]).unwrap().command else { panic!() };
    assert!(matches!(s.command, dump::steps::StandbyCommand::SkipToResyncMarker(ref a) if a.pair.as_str() == "web-01"));
    let Command::Standby(s) = parse(&["standby", "resume-apply", "web-01"]).unwrap().command else { panic!() };
    assert!(matches!(s.command, dump::steps::StandbyCommand::ResumeApply(ref a) if a.pair.as_str() == "web-01"));

    let cli = parse(&["standby", "load-dump", "web-01", "--disk", "1", "--image", "/srv/d1.qcow2"]).unwrap();
    let Command::Standby(s) = cli.command else { panic!() };
    let dump::steps::StandbyCommand::LoadDump(l) = s.command else { panic!() };
    assert_eq!((l.disk, l.image.to_str(), l.format, l.no_wait), (1, Some("/srv/d1.qcow2"), None, false));
    let cli = parse(&[
        "standby",
        "load-dump",
        "web-01",
        "--disk",
        "0",
        "--image",
        "d0.img",
        "--format",
        "qcow2",
        "--no-wait",
    ])
    .unwrap();
    let Command::Standby(s) = cli.command else { panic!() };
    let dump::steps::StandbyCommand::LoadDump(l) = s.command else { panic!() };
    assert_eq!((l.format, l.no_wait), (Some(dump::load::ImageFormatArg::Qcow2), true));

    let Command::Marker(m) = parse(&["marker", "dump", "web-01"]).unwrap().command else { panic!() };
    let dump::marker::MarkerCommand::Dump(d) = m.command;
    assert_eq!(d.request(), drpair_types::DumpMarkerRequest::default());
    let Command::Marker(m) = parse(&["marker", "dump", "web-01", "--at", "2026-11-22T10:30:00Z"]).unwrap().command
    else {
        panic!()
    };
    let dump::marker::MarkerCommand::Dump(d) = m.command;
    assert_eq!(d.at.as_deref(), Some("2026-11-22T10:30:00Z"));
    let cli = parse(&[
        "marker",
        "dump",
        "web-01",
        "--freeze",
        "/var/lib/postgresql",
        "--freeze",
        "/srv",
        "--exec",
        "lvcreate -s -n snap vg0/web01",
        "--thaw-budget",
        "10s",
        "--exec-timeout",
        "5m",
    ])
    .unwrap();
    let Command::Marker(m) = cli.command else { panic!() };
    let dump::marker::MarkerCommand::Dump(d) = m.command;
    assert_eq!(
        d.request(),
        drpair_types::DumpMarkerRequest {
            at: None,
            freeze: vec!["/var/lib/postgresql".into(), "/srv".into()],
            exec: Some("lvcreate -s -n snap vg0/web01".into()),
            thaw_budget_ms: Some(10_000),
            exec_timeout_seconds: Some(300),
        }
    );
}

#[test]
fn resume_flags() {
    let Command::Resume(r) = parse(&["resume", "web-01"]).unwrap().command else { panic!() };
    assert!(!r.resync && !r.reinit && !r.force);
    let Command::Resume(r) = parse(&["resume", "web-01", "--resync"]).unwrap().command else { panic!() };
    assert!(r.resync && !r.reinit && !r.force);
    assert_eq!(lifecycle::resume_request(&r), drpair_types::ResumeRequest { resync: true, ..Default::default() });
    let Command::Resume(r) = parse(&["resume", "web-01", "--resync", "--reinit", "--force"]).unwrap().command else {
        panic!()
    };
    assert!(r.resync && r.reinit && r.force);
    assert_eq!(
        lifecycle::resume_request(&r),
        drpair_types::ResumeRequest { resync: true, reinit: true, confirm: Some("web-01".into()) }
    );
}

#[test]
fn dump_usage_errors_exit_2() {
    use ErrorKind::*;
    let cases: [(&[&str], ErrorKind); 17] = [
        (&["resume", "web-01", "--reinit"], MissingRequiredArgument),
        (&["resume", "web-01", "--reinit", "--force"], MissingRequiredArgument),
        (&["resume", "web-01", "--resync", "--reinit"], MissingRequiredArgument),
        (&["resume", "web-01", "--force"], MissingRequiredArgument),
        (&["resume", "web-01", "--resync", "--force"], MissingRequiredArgument),
        (&["standby", "load-dump", "web-01", "--disk", "0"], MissingRequiredArgument),
        (&["standby", "load-dump", "web-01", "--image", "/d.img"], MissingRequiredArgument),
        (&["standby", "load-dump", "web-01", "--disk", "first", "--image", "/d.img"], ValueValidation),
        (&["standby", "load-dump", "web-01", "--disk", "0", "--image", "/d.img", "--format", "vmdk"], InvalidValue),
        (&["standby", "frobnicate", "web-01"], InvalidSubcommand),
        (&["marker", "dump", "web-01", "--freeze", "/data"], MissingRequiredArgument),
        (&["marker", "dump", "web-01", "--at", "now", "--exec", "snap"], ArgumentConflict),
        (&["marker", "dump", "web-01", "--at", "yesterday"], ValueValidation),
        (&["marker", "dump", "web-01", "--exec", "snap", "--thaw-budget", "5s"], MissingRequiredArgument),
        (&["marker", "dump", "web-01", "--exec", "snap", "--freeze", "data"], ValueValidation),
        (&["marker", "dump", "web-01", "--exec", "snap", "--exec-timeout", "2d"], ValueValidation),
        (&["suspend", "../x"], ValueValidation),
    ];
    for (args, kind) in cases {
        assert_eq!(usage_error(args), kind, "{args:?}");
    }
}

#[test]
fn maintenance_commands() {
    let Command::Verify(v) = parse(&["verify", "web-01"]).unwrap().command else { panic!() };
    assert!((v.pair.as_str(), v.point, v.source, v.no_wait) == ("web-01", None, false, false));
    let Command::Verify(v) = parse(&["verify", "web-01", "--point", "17", "--no-wait"]).unwrap().command else {
        panic!()
    };
    assert!(v.point == Some(17) && !v.source && v.no_wait);
    let Command::Verify(v) = parse(&["verify", "web-01", "--source"]).unwrap().command else { panic!() };
    assert!(v.source && v.point.is_none());
    let Command::Prune(p) = parse(&["prune", "web-01", "--dry-run"]).unwrap().command else { panic!() };
    assert!(p.dry_run);
    let cli = parse(&["retention", "web-01", "--grid", "1x10m(keep=all) | 60x1m", "--keep-last", "5"]).unwrap();
    let Command::Retention(r) = cli.command else { panic!() };
    assert_eq!(
        r.update(),
        Some(drpair_types::RetentionUpdate {
            grid: Some("1x10m(keep=all) | 60x1m".into()),
            keep_last: Some(5),
            reset: false
        })
    );
    let Command::Retention(r) = parse(&["retention", "web-01"]).unwrap().command else { panic!() };
    assert_eq!(r.update(), None, "no option: show");
    let Command::Retention(r) = parse(&["retention", "web-01", "--reset"]).unwrap().command else { panic!() };
    assert_eq!(r.update(), Some(drpair_types::RetentionUpdate { reset: true, ..Default::default() }));
    let Command::Storage(s) = parse(&["storage", "web-01", "--points"]).unwrap().command else { panic!() };
    assert!(s.points);
}

#[test]
fn maintenance_usage_errors_exit_2() {
    use ErrorKind::*;
    let cases: [(&[&str], ErrorKind); 9] = [
        (&["verify", "web-01", "--point", "17", "--source"], ArgumentConflict),
        (&["verify", "web-01", "--point", "latest"], ValueValidation),
        (&["retention", "web-01", "--reset", "--grid", "1x1h"], ArgumentConflict),
        (&["retention", "web-01", "--keep-last", "3", "--reset"], ArgumentConflict),
        (&["retention", "web-01", "--keep-last", "-1"], UnknownArgument),
        (&["prune", "web-01", "--yes"], UnknownArgument),
        (&["storage"], MissingRequiredArgument),
        (&["points", "pin", "web-01"], MissingRequiredArgument),
        (&["points", "unpin", "web-01", "newest"], ValueValidation),
    ];
    for (args, kind) in cases {
        assert_eq!(usage_error(args), kind, "{args:?}");
    }
    for args in [&["verify", "web-01", "--source", "--point", "17"], &["verify", "web-01", "--point", "17", "--source"]]
    {
        let err = parse(args).unwrap_err().to_string();
        assert!(
            err.contains("cannot be used with") && err.contains("'--point <ID>'") && err.contains("'--source'"),
            "{err}"
        );
    }
    assert_eq!(client::exit::DAMAGE_FOUND, 12, "scripts rely on it");
}

#[test]
fn maintenance_commands_have_long_help_with_examples() {
    let mut cli = Cli::command();
    for (name, endpoint) in [
        ("verify", "POST /api/v1/pairs/PAIR/verify"),
        ("prune", "POST /api/v1/pairs/PAIR/prune"),
        ("retention", "PUT /api/v1/pairs/PAIR/retention"),
        ("storage", "GET\n"),
    ] {
        let help = cli.find_subcommand_mut(name).unwrap().render_long_help().to_string();
        assert!(help.contains("Examples:") && help.contains(&format!("drpair {name} web-01")), "{name}:\n{help}");
        assert!(help.contains(endpoint) || name == "storage", "{name}:\n{help}");
    }
    for name in ["pin", "unpin"] {
        let cmd = cli.find_subcommand_mut("points").unwrap().find_subcommand_mut(name).unwrap();
        let help = cmd.render_long_help().to_string();
        assert!(help.contains(&format!("drpair points {name} web-01 17")), "{name}:\n{help}");
    }
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("12 damage found: verify found recovery points"), "{help}");
    assert!(help.contains("drpair verify web-01 --source"), "{help}");
}

#[test]
fn failover_and_failback_flags() {
    let cli = parse(&["failover", "web-01", "--latest", "--to", "/dev/sdc", "--to", "d1.img"]).unwrap();
    let Command::Failover(f) = cli.command else { panic!() };
    assert_eq!((f.pair.as_str(), f.point, f.latest), ("web-01", None, true));
    assert_eq!(f.to, ["/dev/sdc", "d1.img"]);
    assert!(!f.force && !f.yes && !f.no_wait);
    let cli = parse(&["failover", "web-01", "--point", "42", "--to", "x", "--force", "-y", "--no-wait"]).unwrap();
    let Command::Failover(f) = cli.command else { panic!() };
    assert!(f.point == Some(42) && !f.latest && f.force && f.yes && f.no_wait);

    // --direction is optional on purpose: the standby refuses without it (exit 8).
    let Command::Failback(b) = parse(&["failback", "web-01", "--from", "/dev/sdc"]).unwrap().command else { panic!() };
    assert_eq!((b.from.as_slice(), b.direction, b.yes), (&["/dev/sdc".to_string()][..], None, false));
    for (value, want) in
        [("to-original", failback::DirectionArg::ToOriginal), ("to-recovered", failback::DirectionArg::ToRecovered)]
    {
        let cli = parse(&["failback", "web-01", "--from", "a", "--from", "b", "--direction", value, "--yes"]).unwrap();
        let Command::Failback(b) = cli.command else { panic!() };
        assert_eq!((b.from.len(), b.direction, b.yes), (2, Some(want), true));
    }
}

#[test]
fn failover_usage_errors_exit_2() {
    use ErrorKind::*;
    let cases: [(&[&str], ErrorKind); 8] = [
        (&["failover", "web-01", "--point", "4", "--latest", "--to", "/dev/sdc"], ArgumentConflict),
        (&["failover", "web-01", "--latest"], MissingRequiredArgument),
        (&["failover", "web-01", "--to", "/dev/sdc"], MissingRequiredArgument),
        (&["failover", "web-01", "--point", "latest", "--to", "/dev/sdc"], ValueValidation),
        (&["failover", "web-01", "--latest", "--to", ""], InvalidValue),
        (&["failback", "web-01", "--direction", "to-original"], MissingRequiredArgument),
        (&["failback", "web-01", "--from", "/dev/sdc", "--direction", "auto"], InvalidValue),
        (&["failback", "web-01", "--from", "/dev/sdc", "--force"], UnknownArgument),
    ];
    for (args, kind) in cases {
        assert_eq!(usage_error(args), kind, "{args:?}");
    }
    let err = parse(&["failover", "web-01", "--point", "4", "--latest", "--to", "x"]).unwrap_err().to_string();
    assert!(err.contains("'--point <ID>'") && err.contains("'--latest'"), "{err}");
}

#[test]
fn failover_commands_have_long_help_with_examples() {
    let mut cli = Cli::command();
    for (name, endpoint) in
        [("failover", "POST /api/v1/pairs/PAIR/failover"), ("failback", "POST /api/v1/pairs/PAIR/failback")]
    {
        let help = cli.find_subcommand_mut(name).unwrap().render_long_help().to_string();
        assert!(help.contains("Examples:") && help.contains(&format!("drpair {name} web-01")), "{name}:\n{help}");
        assert!(help.contains(endpoint) && help.contains("Exit codes:"), "{name}:\n{help}");
    }
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("a failed failover or failback"), "{help}");
    assert!(help.contains("drpair failback web-01 --from /dev/vg0/web01-sda --direction to-original"), "{help}");
}
