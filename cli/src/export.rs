//! `drpair points export PAIR POINT --out FILE`: download one disk of a recovery point as a
//! raw image, sparse.
//!
//! Invariants:
//! - The image has exactly the Content-Length the standby announced, or the command fails:
//!   a short body is reported as truncated and never left behind as if complete.
//! - Nothing is created before the standby answered 200 with a Content-Length.
//! - A regular FILE is written as `FILE.partial` and renamed to FILE only after every byte
//!   arrived and was synced; a truncated or failed export removes `FILE.partial`
//!   (`image_target.rs`). A block device is written in place, every block.
//! - All-zero 64 KiB blocks of a regular file become holes (`sparse.rs`).

use crate::client::{CliError, Client};
use crate::image_target::ImageTarget;
use crate::output::{self, OutputFormat};
use crate::sparse::{CopyError, SparseWriter, copy_sparse};
use clap::Args;
use drpair_types::{PairId, PointId};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// A body read that gets no byte for this long fails (and the export is truncated).
const STALL: Duration = Duration::from_secs(120);
/// Header in which the standby may name the point `latest` resolved to.
pub const POINT_ID_HEADER: &str = "x-drpair-point";

#[derive(Debug, Args)]
#[command(
    about = "Export one disk of a recovery point as a raw image file",
    long_about = "Export one disk of a recovery point as a raw image \
        (GET /api/v1/pairs/PAIR/points/POINT/disks/N/image).\n\n\
        POINT is a point id (see 'drpair points list') or 'latest'. The image is exactly the \
        size of the disk. A regular FILE is written sparse (all-zero 64 KiB blocks become holes) \
        to FILE.partial, which is synced and renamed to FILE only once every byte has arrived; \
        an existing non-empty FILE is refused unless --force. FILE may also be a block device: \
        then every block is written in place, --force is required, and a mounted or otherwise \
        busy device is refused.\n\n\
        If the standby stops sending before the announced size, the command fails with \
        'export … truncated at B of T bytes', removes FILE.partial and exits 1.\n\n\
        A progress bar (bytes, rate, ETA) is shown on stderr when it is a terminal. With \
        --output json: {\"pair_id\", \"point\", \"disk\", \"out\", \"bytes\", \"zero_bytes\", \"seconds\"}.",
    after_help = "Examples:\n  drpair points export web-01 latest --out web-01-disk0.img\n  \
        drpair points export web-01 42 --disk 1 --out /srv/images/web-01-d1.img --force\n  \
        drpair points export web-01 latest --out /dev/vg0/restore --force"
)]
pub struct ExportArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// Recovery point id, or 'latest'
    #[arg(value_name = "POINT")]
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

/// A point as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointRef {
    Latest,
    Id(PointId),
}

impl FromStr for PointRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "latest" => Ok(PointRef::Latest),
            _ => s.parse().map(PointRef::Id).map_err(|_| format!("'{s}' is neither a point id nor 'latest'")),
        }
    }
}

impl fmt::Display for PointRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointRef::Latest => f.write_str("latest"),
            PointRef::Id(id) => write!(f, "{id}"),
        }
    }
}

/// What an export did; printed as text or as the `--output json` summary.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    pub pair_id: PairId,
    /// The point exported: `latest` resolved when the standby names it.
    pub point: PointRef,
    pub disk: u32,
    pub out: String,
    pub bytes: u64,
    /// Bytes in all-zero 64 KiB blocks (holes in a regular file).
    pub zero_bytes: u64,
    pub seconds: f64,
    pub sparse: bool,
}

impl ExportSummary {
    pub fn to_json(&self) -> serde_json::Value {
        let point = match self.point {
            PointRef::Id(id) => serde_json::json!(id),
            PointRef::Latest => serde_json::json!("latest"),
        };
        serde_json::json!({
            "pair_id": self.pair_id,
            "point": point,
            "disk": self.disk,
            "out": self.out,
            "bytes": self.bytes,
            "zero_bytes": self.zero_bytes,
            "seconds": self.seconds,
        })
    }

    pub fn to_text(&self) -> String {
        let how = if self.sparse { "left as holes" } else { "written" };
        let rate = if self.seconds > 0.0 {
            #[allow(clippy::cast_precision_loss)] // a rate to one decimal
            let per_sec = self.bytes as f64 / self.seconds;
            format!(", {}/s", output::format_size(output::round_u64(per_sec)))
        } else {
            String::new()
        };
        format!(
            "exported pair {} point {} disk {} to {}: {} in {}{rate} ({} of all-zero blocks {how})",
            self.pair_id,
            self.point,
            self.disk,
            self.out,
            output::format_size(self.bytes),
            output::format_duration(output::round_u64(self.seconds)),
            output::format_size(self.zero_bytes),
        )
    }
}

pub fn run(client: &Client, output: OutputFormat, args: &ExportArgs) -> Result<(), CliError> {
    let summary = export(client, output, args)?;
    match output {
        OutputFormat::Json => output::emit(&output::to_json(&summary.to_json())),
        OutputFormat::Text => output::emit(&summary.to_text()),
    }
    Ok(())
}

fn export(client: &Client, output: OutputFormat, args: &ExportArgs) -> Result<ExportSummary, CliError> {
    let target = ImageTarget::check(&args.out, args.force)?;
    let shown = args.out.display().to_string();
    let path = format!("/api/v1/pairs/{}/points/{}/disks/{}/image", args.pair, args.point, args.disk);
    let started = Instant::now();
    let resp = client.get_stream(&path, STALL)?;
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let Some(total) = header("content-length").and_then(|v| v.parse::<u64>().ok()) else {
        return Err(CliError::Protocol {
            url: client.url(&path),
            detail: "no Content-Length: the image's completeness could not be checked".into(),
        });
    };
    let resolved = header(POINT_ID_HEADER).and_then(|v| v.parse::<PointId>().ok());
    let point = resolved.map_or(args.point, PointRef::Id);

    let sparse = target.sparse();
    let image = target.open(total)?;
    let bar = ProgressBar::with_draw_target(Some(total), output::progress_target(output))
        .with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        )
        .with_message(format!("{} point {point} disk {}", args.pair, args.disk));
    let mut writer = SparseWriter::new(&image.file, sparse);
    let mut body = resp.into_body().into_reader();
    let copied = copy_sparse(&mut body, &mut writer, |n| bar.inc(n));
    bar.finish_and_clear();
    let truncated = |received: u64| CliError::Truncated {
        pair: args.pair.to_string(),
        point: point.to_string(),
        disk: args.disk,
        received,
        total,
        partial_kept: (!sparse).then(|| shown.clone()),
    };
    match copied {
        Ok(received) if received < total => return Err(truncated(received)),
        Err(CopyError::Read { received, .. }) if received < total => {
            return Err(truncated(received));
        }
        Err(CopyError::Read { source, .. }) => {
            return Err(CliError::io("reading the image", source));
        }
        Err(CopyError::Write(e)) => return Err(CliError::io(format!("writing {shown}"), e)),
        Ok(_) => {}
    }
    let stats = writer.finish().map_err(|e| CliError::io(format!("writing {shown}"), e))?;
    target.commit(image)?;
    Ok(ExportSummary {
        pair_id: args.pair.clone(),
        point,
        disk: args.disk,
        out: shown,
        bytes: stats.bytes,
        zero_bytes: stats.zero_bytes,
        seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        sparse,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::exit;
    use crate::fake_server::{FakeServer, Reply};
    use crate::sparse::BLOCK;
    use crate::sparse::tests::temp_path;
    use std::fs;
    use std::path::Path;

    fn args(out: &Path, point: PointRef, force: bool) -> ExportArgs {
        ExportArgs { pair: PairId::new("web-01").unwrap(), point, disk: 1, out: out.to_path_buf(), force }
    }

    fn partial_of(out: &Path) -> PathBuf {
        match ImageTarget::file(out) {
            ImageTarget::File { partial, .. } => partial,
            ImageTarget::Device { .. } => unreachable!(),
        }
    }

    #[test]
    fn point_refs() {
        assert_eq!("latest".parse::<PointRef>(), Ok(PointRef::Latest));
        assert_eq!("42".parse::<PointRef>(), Ok(PointRef::Id(42)));
        assert!("-1".parse::<PointRef>().is_err());
        assert!("newest".parse::<PointRef>().is_err());
        assert_eq!(PointRef::Id(7).to_string(), "7");
    }

    #[test]
    fn export_writes_the_whole_image() {
        let mut img = vec![0u8; 16 * BLOCK + 123];
        img[5 * BLOCK..6 * BLOCK].fill(0x5A);
        img[16 * BLOCK..].fill(1);
        let reply = Reply::bytes(200, "application/octet-stream", img.clone()).header("X-Drpair-Point", "42");
        let server = FakeServer::start(vec![reply]);
        let client = Client::new(&server.url, Some("tok".into())).unwrap();
        let out = temp_path("whole.img");
        fs::write(&out, b"previous contents").unwrap();
        let summary = export(&client, OutputFormat::Json, &args(&out, PointRef::Latest, true)).unwrap();
        assert_eq!(summary.point, PointRef::Id(42), "'latest' resolved from the header");
        assert_eq!((summary.bytes, summary.zero_bytes), (img.len() as u64, 15 * BLOCK as u64));
        let json = summary.to_json();
        assert_eq!(json["point"], 42);
        assert_eq!(json["pair_id"], "web-01");
        assert_eq!(json["out"], out.display().to_string());
        for key in ["disk", "bytes", "zero_bytes", "seconds"] {
            assert!(json[key].is_number(), "{key} in {json}");
        }
        assert!(summary.to_text().starts_with("exported pair web-01 point 42 disk 1 to "));
        assert_eq!(fs::read(&out).unwrap(), img);
        assert!(!partial_of(&out).exists());
        let req = &server.finish()[0];
        assert_eq!(req.path, "/api/v1/pairs/web-01/points/latest/disks/1/image");
        assert_eq!(req.header("authorization").as_deref(), Some("Bearer tok"));
        fs::remove_file(&out).unwrap();
    }

    #[test]
    fn truncated_body_fails_and_removes_the_partial_file() {
        let mut reply = Reply::bytes(200, "application/octet-stream", vec![3u8; 300_000]);
        reply.content_length = 1 << 20;
        let server = FakeServer::start(vec![reply]);
        let client = Client::new(&server.url, None).unwrap();
        let out = temp_path("truncated.img");
        let err = run(&client, OutputFormat::Text, &args(&out, PointRef::Id(9), false)).unwrap_err();
        assert_eq!(err.exit_code(), exit::FAILURE);
        assert_eq!(
            err.to_string(),
            "export of pair web-01 point 9 disk 1 truncated at 300000 of 1048576 bytes: \
             the standby stopped sending (see its log)"
        );
        assert!(!out.exists() && !partial_of(&out).exists());
        server.finish();
    }

    #[test]
    fn missing_point_creates_no_file() {
        let body = r#"{"code":"PointNotFound","message":"pair 'web-01' has no point 9"}"#;
        let server = FakeServer::start(vec![Reply::json(404, body)]);
        let client = Client::new(&server.url, None).unwrap();
        let out = temp_path("missing.img");
        let err = run(&client, OutputFormat::Json, &args(&out, PointRef::Id(9), false)).unwrap_err();
        assert_eq!(err.exit_code(), exit::NOT_FOUND);
        assert_eq!(err.to_string(), "pair 'web-01' has no point 9");
        assert!(!out.exists() && !partial_of(&out).exists());
        server.finish();
    }
}
