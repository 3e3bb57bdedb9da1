use super::*;
use crate::client;
use crate::export;
use clap::CommandFactory;
use clap::error::ErrorKind;

pub(super) fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("drpair").chain(args.iter().copied()))
}

pub(super) fn usage_error(args: &[&str]) -> ErrorKind {
    let err = parse(args).unwrap_err();
    assert_eq!(err.exit_code(), i32::from(client::exit::USAGE), "{args:?}");
    err.kind()
}

#[test]
fn clap_definition_is_valid() {
    Cli::command().debug_assert();
    assert_eq!(DEFAULT_SERVER, format!("https://127.0.0.1:{}", drpair_types::DEFAULT_API_PORT));
}

#[test]
fn global_options_go_anywhere() {
    let cli = parse(&["pairs", "list", "--output", "json", "--server", "http://s:1"]).unwrap();
    assert_eq!(cli.global.output, OutputFormat::Json);
    assert_eq!(cli.global.server, "http://s:1");
    let cli = parse(&["--token", "abc", "status", "web-01"]).unwrap();
    assert_eq!(cli.global.token.as_deref(), Some("abc"));
    assert!(matches!(cli.command, Command::Status(ref s) if s.pair.as_str() == "web-01" && !s.watch));
}

#[test]
fn export_arguments() {
    let cli = parse(&["points", "export", "web-01", "latest", "--out", "/tmp/x.img"]).unwrap();
    let Command::Points(p) = cli.command else { panic!() };
    let points::PointsCommand::Export(e) = p.command else { panic!() };
    assert_eq!((e.point, e.disk, e.force), (export::PointRef::Latest, 0, false));
    let cli = parse(&["points", "export", "web-01", "17", "--disk", "2", "-o", "d.img", "--force"]).unwrap();
    let Command::Points(p) = cli.command else { panic!() };
    let points::PointsCommand::Export(e) = p.command else { panic!() };
    assert_eq!((e.point, e.disk, e.force), (export::PointRef::Id(17), 2, true));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(usage_error(&["points", "export", "web-01", "latest"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(usage_error(&["pairs", "list", "--output", "yaml"]), ErrorKind::InvalidValue);
    assert_eq!(usage_error(&["points", "export", "web-01", "newest", "--out", "f"]), ErrorKind::ValueValidation);
    assert_eq!(usage_error(&["status", "../etc"]), ErrorKind::ValueValidation);
    assert_eq!(usage_error(&["points", "create", "web-01", "--timeout", "5m"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(usage_error(&["points", "create", "web-01", "--wait", "--timeout", "soon"]), ErrorKind::ValueValidation);
    assert_eq!(usage_error(&["status", "web-01", "--timeout", "5m"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(usage_error(&["frobnicate"]), ErrorKind::InvalidSubcommand);
    assert_eq!(usage_error(&[]), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand);
}

#[test]
fn create_and_status_flags() {
    let cli = parse(&["points", "create", "web-01", "--wait", "--timeout", "90s"]).unwrap();
    let Command::Points(p) = cli.command else { panic!() };
    let points::PointsCommand::Create { wait, timeout, .. } = p.command else { panic!() };
    assert!(wait);
    assert_eq!(timeout, Some(std::time::Duration::from_secs(90)));
    let cli = parse(&["status", "web-01", "--wait-synced", "--timeout", "2h"]).unwrap();
    assert!(matches!(cli.command, Command::Status(ref s) if s.wait_synced));
}

#[test]
fn pairs_list_search() {
    let cli = parse(&["pairs", "list", "--search", "web 01"]).unwrap();
    let Command::Pairs(p) = cli.command else { panic!() };
    assert!(matches!(p.command, pairs::PairsCommand::List { search: Some(ref s) } if s == "web 01"));
    let cli = parse(&["pairs", "ls"]).unwrap();
    let Command::Pairs(p) = cli.command else { panic!() };
    assert!(matches!(p.command, pairs::PairsCommand::List { search: None }));
}

#[test]
fn restart_flags() {
    let cli = parse(&["restart", "web-01"]).unwrap();
    let Command::Restart(r) = cli.command else { panic!() };
    assert_eq!(r.pair.as_str(), "web-01");
    assert!(!r.yes && !r.full_copy && !r.keep_points_until_synced && !r.wait.wait && r.wait.timeout.is_none());
    let cli = parse(&[
        "restart",
        "web-01",
        "--yes",
        "--full-copy",
        "--keep-points-until-synced",
        "--wait",
        "--timeout",
        "12h",
    ])
    .unwrap();
    let Command::Restart(r) = cli.command else { panic!() };
    assert!(r.yes && r.full_copy && r.keep_points_until_synced && r.wait.wait);
    assert_eq!(r.wait.timeout, Some(std::time::Duration::from_secs(12 * 3600)));
    let Command::Restart(r) = parse(&["restart", "web-01", "-y"]).unwrap().command else { panic!() };
    assert!(r.yes);
}

#[test]
fn pause_resume_stop() {
    assert!(
        matches!(parse(&["pause", "web-01"]).unwrap().command, Command::Pause(ref a) if a.pair.as_str() == "web-01")
    );
    assert!(
        matches!(parse(&["resume", "web-01"]).unwrap().command, Command::Resume(ref a) if a.pair.as_str() == "web-01")
    );
    assert!(matches!(parse(&["stop", "web-01"]).unwrap().command, Command::Stop(ref a) if a.pair.as_str() == "web-01"));
}

#[test]
fn start_flags() {
    let cli = parse(&[
        "start",
        "web-01",
        "--type",
        "resume",
        "--from-point",
        "LIN:17",
        "--from-time",
        "2026-11-22T10:30:00Z",
        "--stop-at-point",
        "40",
        "--stop-at-time",
        "@1763807400",
        "--yes",
        "--full-copy",
        "--keep-points-until-synced",
        "--wait",
        "--timeout",
        "90m",
    ])
    .unwrap();
    let Command::Start(s) = cli.command else { panic!() };
    assert_eq!(s.start_type, start::StartTypeArg::Resume);
    assert_eq!(s.from_point.as_deref(), Some("LIN:17"));
    assert_eq!(s.from_time.as_deref(), Some("2026-11-22T10:30:00Z"));
    assert_eq!(s.stop_at_point, Some(40));
    assert_eq!(s.stop_at_time.as_deref(), Some("@1763807400"));
    assert!(s.yes && s.full_copy && s.keep_points_until_synced && s.wait.wait);
    assert_eq!(s.wait.timeout, Some(std::time::Duration::from_secs(90 * 60)));
    for (value, want) in [
        ("start", start::StartTypeArg::Start),
        ("resume", start::StartTypeArg::Resume),
        ("reload", start::StartTypeArg::Reload),
    ] {
        let Command::Start(s) = parse(&["start", "web-01", "--type", value]).unwrap().command else { panic!() };
        assert_eq!(s.start_type, want);
        assert!(s.from_point.is_none() && s.stop_at_point.is_none() && !s.yes && !s.wait.wait);
    }
}

#[test]
fn lifecycle_usage_errors_exit_2() {
    assert_eq!(usage_error(&["start", "web-01"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(usage_error(&["start", "web-01", "--type", "begin"]), ErrorKind::InvalidValue);
    for flag in ["--from-time", "--stop-at-time"] {
        assert_eq!(
            usage_error(&["start", "web-01", "--type", "resume", flag, "yesterday"]),
            ErrorKind::ValueValidation,
            "{flag}"
        );
    }
    assert_eq!(
        usage_error(&["start", "web-01", "--type", "resume", "--stop-at-point", "LIN:17"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        usage_error(&["start", "web-01", "--type", "start", "--timeout", "1h"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(usage_error(&["restart", "web-01", "--timeout", "1h"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(usage_error(&["restart", "web-01", "--wait", "--timeout", "soon"]), ErrorKind::ValueValidation);
    assert_eq!(usage_error(&["restart"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(usage_error(&["pause", "../x"]), ErrorKind::ValueValidation);
    assert_eq!(usage_error(&["stop", "web-01", "--yes"]), ErrorKind::UnknownArgument);
}

#[test]
fn every_new_command_has_long_help_with_examples() {
    let mut cli = Cli::command();
    for name in ["start", "pause", "resume", "stop", "restart", "suspend"] {
        let cmd = cli.find_subcommand_mut(name).unwrap();
        let help = cmd.render_long_help().to_string();
        assert!(help.contains("Examples:") && help.contains(&format!("drpair {name} web-01")), "{name}:\n{help}");
        assert!(help.contains("POST /api/v1/pairs/PAIR/"), "{name}");
    }
    for (group, name) in [
        ("standby", "skip-to-resync-marker"),
        ("standby", "load-dump"),
        ("standby", "resume-apply"),
        ("marker", "dump"),
    ] {
        let cmd = cli.find_subcommand_mut(group).unwrap().find_subcommand_mut(name).unwrap();
        let help = cmd.render_long_help().to_string();
        let example = format!("drpair {group} {name} web-01");
        assert!(help.contains("Examples:") && help.contains(&example), "{group} {name}:\n{help}");
        assert!(help.contains("POST /api/v1/pairs/PAIR/"), "{group} {name}");
    }
    let load = cli.find_subcommand_mut("standby").unwrap().find_subcommand_mut("load-dump").unwrap();
    let help = load.render_long_help().to_string();
    assert!(help.contains("a path ON THE STANDBY") && help.contains("read by the standby"), "{help}");
    let resume = cli.find_subcommand_mut("resume").unwrap().render_long_help().to_string();
    assert!(resume.contains("drpair resume web-01 --resync --reinit --force"), "{resume}");
}

#[test]
fn help_documents_exit_codes() {
    let help = Cli::command().render_long_help().to_string();
    for want in [
        "Exit codes:",
        "6  standby unreachable",
        "9  aborted: the confirmation was not given",
        "10 app-consistent attempt failed",
        "DRPAIR_SERVER",
        "--token-file",
        "drpair restart web-01",
        "drpair start web-01 --type",
        "drpair pause web-01",
        "drpair suspend web-01",
        "drpair standby load-dump web-01 --disk 0 --image",
    ] {
        assert!(help.contains(want), "{want}");
    }
}
