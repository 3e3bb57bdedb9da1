//! `drpair storage PAIR [--points]`: what the pair's recovery points cost in the chunk
//! store, in total and per point.

use crate::client::{CliError, Client};
use crate::output::{self, Block, OutputFormat, Table, format_ratio as ratio, format_size as size};
use crate::poll;
use clap::Args;
use drpair_types::{PairId, StorageReport, StorageSummary};
use std::time::Duration;

/// How long the standby may take to compute the report (it walks every chunk version).
const STORAGE_ANSWER_TIMEOUT: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Args)]
#[command(
    about = "Show what a pair's recovery points cost in the chunk store",
    long_about = "Show what a pair's recovery points cost in the chunk store (GET \
        /api/v1/pairs/PAIR/storage; computed on request, which may take a while on big pairs).\n\n\
        Disks: one full copy of the pair's disks. Logical: every point as a full image. \
        Written: the uncompressed bytes of every chunk version the pair stores (zero chunks \
        excluded). Distinct: the distinct chunks those versions name. Stored: their compressed \
        bytes on disk. Unique: of those, chunks no other pair refers to (what deleting the pair \
        frees). Compression is distinct / stored, dedup written / distinct, space saving logical \
        / stored.\n\n\
        --points adds a table of the points, oldest first: the chunk versions each introduced \
        (written after the point before, up to it), their bytes, stored bytes, and the unique \
        bytes (no other version of any pair refers to them: removing the point frees at most \
        this).\n\n\
        With --output json: the StorageReport object as the API returns it (always with \
        per_point).",
    after_help = "Examples:\n  drpair storage web-01\n  drpair storage web-01 --points\n  \
        drpair storage web-01 --output json | jq .space_saving_ratio"
)]
pub struct StorageArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// Also list each point's share of the store
    #[arg(long)]
    pub points: bool,
}

pub fn run(client: &Client, output: OutputFormat, args: &StorageArgs) -> Result<(), CliError> {
    let pair = &args.pair;
    let (raw, report) = poll::waiting(output, format!("computing the storage report of pair {pair}"), || {
        client.get_json_within::<StorageReport>(&format!("/api/v1/pairs/{pair}/storage"), STORAGE_ANSWER_TIMEOUT)
    })?;
    match output {
        OutputFormat::Json => output::emit(&output::to_json(&raw)),
        OutputFormat::Text => {
            let mut text = render_report(&report);
            if args.points {
                text.push('\n');
                text.push_str(&render_points(&report));
            }
            output::emit(&text);
        }
    }
    Ok(())
}

/// The totals of a storage report.
pub fn render_report(r: &StorageReport) -> String {
    let mut b = Block::default();
    b.line(
        "Storage",
        format!("pair {}, {} points, computed at {}", r.pair_id, r.points, output::format_time(r.computed_unix_ms)),
    );
    b.line("Disks", format!("{} (one full copy)", size(r.disk_bytes)));
    b.line("Logical", format!("{} (every point as a full image)", size(r.logical_bytes)));
    b.line("Written", format!("{} (chunk versions, uncompressed, zero chunks excluded)", size(r.written_bytes)));
    b.line("Distinct", format!("{} (the distinct chunks of those versions)", size(r.distinct_bytes)));
    b.line("Stored", format!("{} (compressed, on disk)", size(r.stored_bytes)));
    b.line(
        "Unique",
        format!("{} (no other pair refers to it: deleting the pair frees it)", size(r.unique_stored_bytes)),
    );
    b.line("Compression", format!("{} (distinct / stored)", ratio(r.compression_ratio)));
    b.line("Dedup", format!("{} (written / distinct)", ratio(r.dedup_ratio)));
    b.line("Space saving", format!("{} (logical / stored)", ratio(r.space_saving_ratio)));
    if let Some(o) = &r.object_store {
        b.line("Object store", format!("{} (every pair's packs)", o.store));
        b.line("Packs", format!("{} holding {}", o.packs, size(o.pack_bytes)));
        b.line("Live", format!("{} (chunks some point still names)", size(o.live_bytes)));
        b.line(
            "Garbage",
            format!("{} (chunks named no more; {} pack(s) due for a rewrite)", size(o.garbage_bytes), o.sparse_packs),
        );
    }
    b.render()
}

/// The per-point table, oldest first.
pub fn render_points(r: &StorageReport) -> String {
    if r.per_point.is_empty() {
        return "no recovery points\n".to_string();
    }
    let mut t = Table::new(&["ID", "TIME", "VERSIONS", "WRITTEN", "STORED", "UNIQUE"]);
    for p in &r.per_point {
        t.row(vec![
            p.id.to_string(),
            p.time.clone(),
            p.versions.to_string(),
            size(p.written_bytes),
            size(p.stored_bytes),
            size(p.unique_bytes),
        ]);
    }
    t.render()
}

/// One line for `drpair status`: the store's totals as last computed.
pub fn status_line(s: &StorageSummary, now_ms: u64) -> String {
    format!(
        "{} stored ({} unique) for {} of points; compression {}, dedup {}, space saving {} (computed {})",
        size(s.stored_bytes),
        size(s.unique_stored_bytes),
        size(s.logical_bytes),
        ratio(s.compression_ratio),
        ratio(s.dedup_ratio),
        ratio(s.space_saving_ratio),
        output::format_age(s.computed_unix_ms, now_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::exit;
    use crate::fake_server::{FakeServer, Reply};
    use drpair_types::PointStorage;

    fn report() -> StorageReport {
        StorageReport {
            pair_id: PairId::new("web-01").unwrap(),
            computed_unix_ms: 1_777_629_600_000,
            points: 2,
            disk_bytes: 10 << 30,
            logical_bytes: 20 << 30,
            written_bytes: 12 << 30,
            distinct_bytes: 9 << 30,
            stored_bytes: 4 << 30,
            unique_stored_bytes: 3 << 30,
            compression_ratio: 2.25,
            dedup_ratio: 1.3333,
            space_saving_ratio: 5.0,
            per_point: vec![
                PointStorage {
                    id: 1,
                    time: "2026-05-01T10:00:00Z".into(),
                    logical_bytes: 10 << 30,
                    versions: 163_840,
                    written_bytes: 10 << 30,
                    stored_bytes: 4 << 30,
                    unique_bytes: 3 << 30,
                },
                PointStorage {
                    id: 2,
                    time: "2026-05-01T10:10:00Z".into(),
                    logical_bytes: 10 << 30,
                    versions: 32,
                    written_bytes: 2 << 20,
                    stored_bytes: 1 << 20,
                    unique_bytes: 0,
                },
            ],
            object_store: None,
        }
    }

    #[test]
    fn gets_the_report() {
        let server = FakeServer::start(vec![Reply::json(200, &serde_json::to_string(&report()).unwrap())]);
        let client = Client::new(&server.url, None).unwrap();
        run(&client, OutputFormat::Text, &StorageArgs { pair: PairId::new("web-01").unwrap(), points: true }).unwrap();
        let req = &server.finish()[0];
        assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "/api/v1/pairs/web-01/storage"));

        let server = FakeServer::start(vec![Reply::json(404, r#"{"code":"PairNotFound","message":"no pair 'db-9'"}"#)]);
        let client = Client::new(&server.url, None).unwrap();
        let err = run(&client, OutputFormat::Text, &StorageArgs { pair: PairId::new("db-9").unwrap(), points: false })
            .unwrap_err();
        assert_eq!((err.exit_code(), err.to_string()), (exit::NOT_FOUND, "no pair 'db-9'".to_string()));
        server.finish();
    }

    #[test]
    fn texts() {
        assert_eq!(
            render_report(&report()),
            "Storage:       pair web-01, 2 points, computed at 2026-05-01T10:00:00Z\n\
             Disks:         10.0 GiB (one full copy)\n\
             Logical:       20.0 GiB (every point as a full image)\n\
             Written:       12.0 GiB (chunk versions, uncompressed, zero chunks excluded)\n\
             Distinct:      9.0 GiB (the distinct chunks of those versions)\n\
             Stored:        4.0 GiB (compressed, on disk)\n\
             Unique:        3.0 GiB (no other pair refers to it: deleting the pair frees it)\n\
             Compression:   2.25× (distinct / stored)\n\
             Dedup:         1.33× (written / distinct)\n\
             Space saving:  5.00× (logical / stored)\n"
        );
        assert_eq!(
            render_points(&report()),
            "ID  TIME                  VERSIONS  WRITTEN   STORED   UNIQUE\n\
             1   2026-05-01T10:00:00Z  163840    10.0 GiB  4.0 GiB  3.0 GiB\n\
             2   2026-05-01T10:10:00Z  32        2.0 MiB   1.0 MiB  0 B\n"
        );
        let summary = StorageSummary {
            computed_unix_ms: 1_777_629_600_000,
            logical_bytes: 20 << 30,
            stored_bytes: 4 << 30,
            unique_stored_bytes: 3 << 30,
            compression_ratio: 2.25,
            dedup_ratio: 1.3333,
            space_saving_ratio: 0.0,
        };
        assert_eq!(
            status_line(&summary, 1_777_629_900_000),
            "4.0 GiB stored (3.0 GiB unique) for 20.0 GiB of points; compression 2.25×, dedup 1.33×, space saving - \
             (computed 5m ago)"
        );
    }

    #[test]
    fn an_object_store_adds_its_packs() {
        let r = StorageReport {
            object_store: Some(drpair_types::PackUsageReport {
                store: "s3 http://10.0.0.5:3900/drpair/standby-a".into(),
                packs: 130,
                pack_bytes: 4 << 30,
                live_bytes: 3 << 30,
                garbage_bytes: 1 << 30,
                sparse_packs: 12,
            }),
            ..report()
        };
        let text = render_report(&r);
        assert!(
            text.ends_with(
                "Object store:  s3 http://10.0.0.5:3900/drpair/standby-a (every pair's packs)\n\
             Packs:         130 holding 4.0 GiB\n\
             Live:          3.0 GiB (chunks some point still names)\n\
             Garbage:       1.0 GiB (chunks named no more; 12 pack(s) due for a rewrite)\n"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["object_store"]["garbage_bytes"], 1u64 << 30);
        assert!(serde_json::to_value(report()).unwrap().get("object_store").is_none(), "absent with local chunks");
    }
}
