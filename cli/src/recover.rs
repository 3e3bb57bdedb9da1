//! `drpair debug recover`: rebuild one disk image straight from a stopped standby's store, with
//! no daemon running ([`drpair_recover`]). The one command that does not speak the API: it is
//! for when the standby cannot serve.
//!
//! Invariants: stdout carries the report (text, or the JSON report with `--output json`); a
//! recovery that had to write damaged chunks as zeros exits 11 ([`crate::client::exit::RECOVERED_WITH_DAMAGE`]), so
//! a script never takes a damaged image for a whole one; refused input writes nothing. Lookups
//! that fail answer like the API's (pair, point or disk not found: exit 3, the same JSON error).

use crate::client::CliError;
use crate::export::PointRef;
use crate::output::{self, Block, OutputFormat};
use clap::{Args, Subcommand};
use drpair_recover::{PointSelector, RecoverError, RecoverOptions, RecoverReport, recover};
use drpair_types::{ApiError, ErrorCode, PairId};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Damaged chunks listed in text; the rest are counted (the JSON report lists them).
const LISTED: usize = 50;

#[derive(Debug, Args)]
#[command(about = "Tools that work on a standby's files directly, with no daemon running")]
pub struct DebugArgs {
    #[command(subcommand)]
    pub command: DebugCommand,
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    Recover(RecoverArgs),
}

#[derive(Debug, Args)]
#[command(
    about = "Rebuild a disk image straight from a stopped standby's store",
    long_about = "Rebuild one disk of a recovery point straight from the standby's store, with no \
        daemon running: for when the standby cannot serve 'drpair points export'. Stop the standby \
        first (a running one holds the store: the command then fails with 'in use', exit 4). The \
        store is only read.\n\n\
        Each chunk is read as the online export reads it (the newest version at or before the point, \
        blake3-verified). Unlike the export, a chunk that is missing or corrupt does not stop the \
        recovery: it is written as zeros and reported (disk, chunk, byte offset, hash, reason), and \
        the command exits 11 (recovered with damage) after writing every other byte.\n\n\
        A regular FILE is written sparse (zero chunks become holes) to FILE.partial, synced and \
        renamed to FILE; an existing non-empty FILE is refused unless --force. FILE may be a block \
        device of at least the disk's size (with --force; a mounted or busy one is refused): every \
        block is written. FILE may not be inside the store's directory.\n\n\
        A store whose chunks are on an S3-compatible object store (store = \"s3\") is read from the \
        bucket where the standby last reached it, with the credentials in the environment \
        variables DRPAIR_S3_ACCESS_KEY_ID and DRPAIR_S3_SECRET_ACCESS_KEY.\n\n\
        A progress bar is shown on stderr when it is a terminal. With --output json: the report \
        {\"pair_id\", \"point\", \"point_time\", \"disk\", \"out\", \"bytes\", \"chunk_size\", \"chunks\", \
        \"zero_chunks\", \"damaged_chunks\", \"damaged\": [{\"disk\", \"chunk\", \"offset\", \"length\", \
        \"hash\", \"reason\", \"detail\"}], \"blake3\", \"seconds\"}, also when exiting 11.",
    after_help = "Examples:\n  \
        drpair debug recover --pair web-01 --point latest --disk 0 --out /srv/web-01-disk0.img\n  \
        drpair debug recover --data-dir /srv/drpair --pair web-01 --point 42 --disk 1 --out /dev/vg0/restore --force\n  \
        drpair debug recover --pair web-01 --point 42 --out d0.img --output json | jq '.damaged'"
)]
pub struct RecoverArgs {
    /// The standby's data dir (its store is DIR/store)
    #[arg(long, value_name = "DIR", default_value = drpair_types::DEFAULT_STANDBY_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The DR Pair ID
    #[arg(long, value_name = "PAIR")]
    pub pair: PairId,
    /// Recovery point id, or 'latest'
    #[arg(long, value_name = "ID")]
    pub point: PointRef,
    /// Index of the disk within the pair
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub disk: u32,
    /// Image file (or block device) to write
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    /// Replace an existing non-empty FILE; required to write to a block device
    #[arg(long)]
    pub force: bool,
}

pub fn run(output: OutputFormat, args: &DebugArgs) -> Result<(), CliError> {
    match &args.command {
        DebugCommand::Recover(a) => run_recover(output, a),
    }
}

fn run_recover(output: OutputFormat, args: &RecoverArgs) -> Result<(), CliError> {
    let opts = RecoverOptions {
        data_dir: args.data_dir.clone(),
        pair: args.pair.clone(),
        point: match args.point {
            PointRef::Latest => PointSelector::Latest,
            PointRef::Id(id) => PointSelector::Id(id),
        },
        disk: args.disk,
        out: args.out.clone(),
        force: args.force,
        s3_credentials: s3_credentials(),
    };
    let bar = ProgressBar::with_draw_target(None, output::progress_target(output))
        .with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        )
        .with_message(format!("recovering {} point {} disk {}", args.pair, args.point, args.disk));
    let result = recover(&opts, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let report = result.map_err(cli_error)?;
    if output == OutputFormat::Text {
        output::emit(&render(&report));
    }
    if report.damaged_chunks == 0 {
        if output == OutputFormat::Json {
            output::emit(&output::to_json(&report));
        }
        return Ok(());
    }
    // The JSON report is printed by the error (see CliError::RecoveredWithDamage): once.
    Err(CliError::RecoveredWithDamage {
        damaged: report.damaged_chunks,
        chunks: report.chunks,
        out: report.out.clone(),
        report: serde_json::to_value(&report).unwrap_or_default(),
    })
}

/// The bucket's credentials from `DRPAIR_S3_ACCESS_KEY_ID` and `DRPAIR_S3_SECRET_ACCESS_KEY`,
/// when both are set (a store whose chunks are on an object store needs them).
fn s3_credentials() -> Option<drpair_recover::S3Credentials> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Some(drpair_recover::S3Credentials {
        access_key_id: var("DRPAIR_S3_ACCESS_KEY_ID")?,
        secret_access_key: var("DRPAIR_S3_SECRET_ACCESS_KEY")?,
    })
}

/// The exit code and JSON error of each refusal.
fn cli_error(e: RecoverError) -> CliError {
    let not_found = |code, e: RecoverError| CliError::Api {
        status: 404,
        error: ApiError { code, message: e.to_string(), parameter: None },
        hint: None,
    };
    match e {
        RecoverError::PairNotFound { .. } => not_found(ErrorCode::PairNotFound, e),
        RecoverError::PointNotFound { .. } => not_found(ErrorCode::PointNotFound, e),
        RecoverError::DiskNotFound { .. } => not_found(ErrorCode::NotFound, e),
        RecoverError::InUse { .. } => CliError::State(e.to_string()),
        RecoverError::Io { context, source } => CliError::Io { context, source },
        RecoverError::NoStore { .. } | RecoverError::Store(_) | RecoverError::Target(_) => {
            CliError::Failed(e.to_string())
        }
    }
}

/// The text report: a summary block, then the damaged chunks (the first [`LISTED`]).
pub fn render(r: &RecoverReport) -> String {
    let mut b = Block::default();
    b.line("Recovered", format!("pair {} point {} disk {}", r.pair_id, r.point, r.disk));
    b.line("Point time", &r.point_time);
    b.line("Image", format!("{} ({}, {} bytes)", r.out, output::format_size(r.bytes), r.bytes));
    b.line(
        "Chunks",
        format!("{} of {}, {} all zero", r.chunks, output::format_size(r.chunk_size.into()), r.zero_chunks),
    );
    b.line("Damaged", if r.damaged_chunks == 0 { "none".to_string() } else { r.damaged_chunks.to_string() });
    b.line("blake3", &r.blake3);
    b.line("Took", format!("{:.1}s", r.seconds));
    let mut text = b.render();
    if r.damaged_chunks > 0 {
        text.push_str(&format!("\n{} chunk(s) could not be recovered and were written as zeros:\n", r.damaged_chunks));
        for d in r.damaged.iter().take(LISTED) {
            text.push_str(&format!("  {d}\n"));
        }
        let more = r.damaged_chunks.saturating_sub(LISTED.min(r.damaged.len()) as u64);
        if more > 0 {
            text.push_str(&format!("  … and {more} more (--output json lists them)\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::exit;
    use drpair_recover::{DamageReason, DamagedChunk};

    fn parse(args: &[&str]) -> Result<crate::Cli, clap::Error> {
        use clap::Parser;
        crate::Cli::try_parse_from(std::iter::once("drpair").chain(args.iter().copied()))
    }

    fn recover_args(args: &[&str]) -> RecoverArgs {
        let cli = parse(args).unwrap();
        let crate::Command::Debug(d) = cli.command else { panic!("{args:?}") };
        let DebugCommand::Recover(r) = d.command;
        r
    }

    #[test]
    fn arguments() {
        let r = recover_args(&["debug", "recover", "--pair", "web-01", "--point", "latest", "--out", "d.img"]);
        assert_eq!(r.data_dir, PathBuf::from(drpair_types::DEFAULT_STANDBY_DATA_DIR));
        assert_eq!((r.pair.as_str(), r.point, r.disk, r.force), ("web-01", PointRef::Latest, 0, false));
        let r = recover_args(&[
            "debug",
            "recover",
            "--data-dir",
            "/srv/sb",
            "--pair",
            "web-01",
            "--point",
            "42",
            "--disk",
            "1",
            "--out",
            "/dev/sdz",
            "--force",
            "--output",
            "json",
        ]);
        assert_eq!((r.data_dir.to_str(), r.point, r.disk, r.force), (Some("/srv/sb"), PointRef::Id(42), 1, true));
        use clap::error::ErrorKind::*;
        for (args, kind) in [
            (&["debug", "recover", "--pair", "web-01", "--out", "d.img"][..], MissingRequiredArgument),
            (&["debug", "recover", "--pair", "web-01", "--point", "newest", "--out", "d"], ValueValidation),
            (&["debug", "recover", "--pair", "../x", "--point", "1", "--out", "d"], ValueValidation),
            (&["debug", "recover", "--pair", "web-01", "--point", "1"], MissingRequiredArgument),
        ] {
            assert_eq!(parse(args).unwrap_err().kind(), kind, "{args:?}");
        }
    }

    #[test]
    fn help_documents_the_command_and_exit_code_11() {
        use clap::CommandFactory;
        let mut cli = crate::Cli::command();
        assert!(cli.render_long_help().to_string().contains("11 recovered with damage"));
        let cmd = cli.find_subcommand_mut("debug").unwrap().find_subcommand_mut("recover").unwrap();
        let help = cmd.render_long_help().to_string();
        for want in ["Examples:", "drpair debug recover --pair web-01 --point latest", "exits 11", "--data-dir <DIR>"] {
            assert!(help.contains(want), "{want}:\n{help}");
        }
        assert!(help.contains(drpair_types::DEFAULT_STANDBY_DATA_DIR), "{help}");
    }

    #[test]
    fn refusals_have_the_documented_exit_codes() {
        let pair = || "web-01".to_string();
        let cases = [
            (RecoverError::PairNotFound { pair: pair(), dir: "/d".into(), known: "it holds no pairs".into() }, 3),
            (RecoverError::PointNotFound { pair: pair(), point: "7".into(), nearest: "nearest: 5".into() }, 3),
            (RecoverError::DiskNotFound { pair: pair(), disk: 2, count: 1 }, 3),
            (RecoverError::InUse { dir: "/d/store".into() }, 4),
            (RecoverError::NoStore { dir: "/d/store".into(), data_dir: "/d".into() }, 1),
            (RecoverError::Target("refusing to overwrite x".into()), 1),
        ];
        for (e, code) in cases {
            let msg = e.to_string();
            let cli = cli_error(e);
            assert_eq!((cli.exit_code(), cli.to_string()), (code, msg.clone()));
            assert_eq!(cli.to_json()["message"], msg);
        }
        let e = cli_error(RecoverError::PointNotFound { pair: pair(), point: "7".into(), nearest: String::new() });
        assert_eq!(e.to_json()["code"], "PointNotFound");
    }

    #[test]
    fn damage_is_listed_and_exits_11() {
        let chunk = |c: u64| DamagedChunk {
            disk: 0,
            chunk: c,
            offset: c * 65536,
            length: 65536,
            hash: None,
            reason: DamageReason::NoVersion,
            detail: "no version at or before epoch 9".into(),
        };
        let mut r = RecoverReport {
            pair_id: PairId::new("web-01").unwrap(),
            point: 9,
            point_time: "2026-01-01T00:00:09Z".into(),
            disk: 0,
            out: "d.img".into(),
            bytes: 80 << 16,
            chunk_size: 65536,
            chunks: 80,
            zero_chunks: 3,
            damaged_chunks: 0,
            damaged: vec![],
            blake3: "ab".into(),
            seconds: 1.25,
        };
        let text = render(&r);
        assert!(
            text.contains("Recovered:   pair web-01 point 9 disk 0") && text.contains("Damaged:     none"),
            "{text}"
        );
        r.damaged = (0..60).map(chunk).collect();
        r.damaged_chunks = 70;
        let text = render(&r);
        assert!(text.contains("70 chunk(s) could not be recovered and were written as zeros:"), "{text}");
        assert!(text.contains("  disk 0 chunk 49 at byte 3211264 (65536 bytes): no version: no version at"));
        assert!(!text.contains("chunk 50 at"), "{text}");
        assert!(text.ends_with("  … and 20 more (--output json lists them)\n"), "{text}");
        let e = CliError::RecoveredWithDamage {
            damaged: 70,
            chunks: 80,
            out: "d.img".into(),
            report: serde_json::to_value(&r).unwrap(),
        };
        assert_eq!(e.exit_code(), exit::RECOVERED_WITH_DAMAGE);
        assert_eq!(e.exit_code(), 11);
        assert_eq!(e.to_json()["damaged_chunks"], 70);
        assert_eq!(
            e.to_string(),
            "recovered with damage: 70 of 80 chunks could not be read and were written as zeros in d.img"
        );
    }

    #[test]
    fn a_missing_store_writes_nothing() {
        let dir = crate::sparse::tests::temp_path("recover-no-store");
        let out = crate::sparse::tests::temp_path("recover-no-store.img");
        let args = RecoverArgs {
            data_dir: dir.clone(),
            pair: PairId::new("web-01").unwrap(),
            point: PointRef::Latest,
            disk: 0,
            out: out.clone(),
            force: false,
        };
        let e = run_recover(OutputFormat::Json, &args).unwrap_err();
        assert_eq!(e.exit_code(), exit::FAILURE);
        assert!(e.to_string().starts_with("no standby store at "), "{e}");
        assert!(!dir.exists() && !out.exists());
    }
}
