//! Prometheus metrics of the standby, named `drpair_<subsystem>_<name>_<unit>` with a `pair`
//! label. Counters move as things happen; gauges are refreshed at each scrape. Every family
//! is described in `metrics/help.rs` (HELP text, kind); a test there checks that every name
//! used here is, and that only counters end in `_total`. Base units: seconds, bytes, ratios
//! of 0 to 1 (progress included).

use super::Standby;
use super::ingest::Ingested;
use super::pair::results::{ReclaimRecord, VerifyRecord, VerifyState};
use drpair_types::{DumpStatus, DumpStep, PairId, PairState, RecoveryPoint};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

mod expiry;
mod help;

/// Installs the process-wide recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_ok() {
                help::describe_all();
            }
            handle
        })
        .clone()
}

pub fn ingested(pair: &PairId, i: &Ingested) {
    let p = pair.to_string();
    counter!("drpair_link_shipped_bytes_total", "pair" => p.clone()).increment(i.shipped);
    counter!("drpair_store_written_bytes_total", "pair" => p.clone()).increment(i.stored);
    counter!("drpair_link_logical_bytes_total", "pair" => p.clone()).increment(i.raw_bytes);
    let data = i.chunks - i.zero - i.dedup;
    counter!("drpair_link_chunks_total", "pair" => p.clone(), "kind" => "data").increment(data);
    counter!("drpair_link_chunks_total", "pair" => p.clone(), "kind" => "zero").increment(i.zero);
    counter!("drpair_link_chunks_total", "pair" => p.clone(), "kind" => "dedup").increment(i.dedup);
    // Per frame; the summary's _sum is each stage's busy time.
    histogram!("drpair_ingest_frame_stage_seconds", "pair" => p.clone(), "stage" => "verify")
        .record(i.verify_ns as f64 / 1e9);
    histogram!("drpair_ingest_frame_stage_seconds", "pair" => p, "stage" => "store").record(i.store_ns as f64 / 1e9);
}

pub fn committed(pair: &PairId, pt: &RecoveryPoint) {
    counter!("drpair_pair_points_committed_total", "pair" => pair.to_string()).increment(1);
    gauge!("drpair_pair_epoch", "pair" => pair.to_string()).set(pt.epoch as f64);
    // A summary: the exposition carries its quantiles (p50, p99, ...) per pair.
    if let Some(ms) = pt.read_window_ms {
        histogram!("drpair_point_read_window_seconds", "pair" => pair.to_string()).record(ms as f64 / 1000.0);
    }
    if pt.window_exceeded {
        counter!("drpair_point_window_exceeded_total", "pair" => pair.to_string()).increment(1);
    }
}

/// Renders the text exposition after refreshing the per-pair gauges.
pub fn render(sb: &Standby) -> String {
    for h in sb.registry.all() {
        let s = h.status();
        let p = s.pair_id.to_string();
        gauge!("drpair_pair_lag_seconds", "pair" => p.clone()).set(s.stats.lag_seconds);
        gauge!("drpair_pair_backlog_bytes", "pair" => p.clone()).set(s.stats.backlog_bytes as f64);
        gauge!("drpair_pair_backlog_chunks", "pair" => p.clone()).set(s.stats.backlog_chunks as f64);
        gauge!("drpair_pair_progress_ratio", "pair" => p.clone()).set(s.stats.progress_percent / 100.0);
        gauge!("drpair_pair_epoch", "pair" => p.clone()).set(s.stats.current_epoch as f64);
        gauge!("drpair_pair_checkpoint_epoch", "pair" => p.clone())
            .set(s.checkpoint.map(|c| c.epoch).unwrap_or(0) as f64);
        gauge!("drpair_pair_points", "pair" => p.clone()).set(s.stats.points as f64);
        gauge!("drpair_agent_read_bytes", "pair" => p.clone()).set(s.stats.bytes_read as f64);
        gauge!("drpair_pair_ready_for_failover", "pair" => p.clone()).set(if s.ready_for_failover { 1.0 } else { 0.0 });
        // The panel's badge: 0 ok, 1 warning, 2 critical.
        gauge!("drpair_pair_health", "pair" => p.clone()).set(s.health.level as u8 as f64);
        // One series per state, 1 for the current one (the usual Prometheus enum encoding).
        for st in PairState::ALL {
            let name = serde_json::to_value(st).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            gauge!("drpair_pair_state", "pair" => p.clone(), "state" => name).set(if st == s.state {
                1.0
            } else {
                0.0
            });
        }
        gauge!("drpair_pair_stopped", "pair" => p.clone()).set(if s.stop_reason.is_some() { 1.0 } else { 0.0 });
        gauge!("drpair_pair_restarting", "pair" => p.clone()).set(if s.restart.is_some() { 1.0 } else { 0.0 });
        if let Some(f) = &s.failover {
            gauge!("drpair_failover_progress_ratio", "pair" => p.clone()).set(f.progress_percent / 100.0);
            gauge!("drpair_failover_written_bytes", "pair" => p.clone()).set(f.bytes_written as f64);
            gauge!("drpair_failover_write_bytes_per_second", "pair" => p.clone()).set(f.throughput_bytes_per_sec);
        }
        if let Some(b) = &s.failback {
            gauge!("drpair_failback_progress_ratio", "pair" => p.clone()).set(b.progress_percent / 100.0);
            gauge!("drpair_failback_differing_chunks", "pair" => p.clone()).set(b.differing_chunks as f64);
            gauge!("drpair_failback_moved_chunks", "pair" => p.clone()).set(b.chunks_moved as f64);
            gauge!("drpair_failback_moved_bytes", "pair" => p.clone()).set(b.bytes_moved as f64);
        }
        gauge!("drpair_pair_pass_chunks", "pair" => p.clone()).set(s.stats.chunks_total as f64);
        gauge!("drpair_pair_pass_chunks_shipped", "pair" => p.clone()).set(s.stats.chunks_shipped as f64);
        gauge!("drpair_link_frame_received_bytes", "pair" => p.clone()).set(s.stats.bytes_on_wire as f64);
        gauge!("drpair_link_compression_ratio", "pair" => p.clone()).set(s.stats.compression_ratio);
        gauge!("drpair_agent_read_bytes_per_second", "pair" => p.clone()).set(s.stats.throughput_bytes_per_second);
        link_gauges(&p, &s.link);
        if let Some(t) = s.agent.as_ref().and_then(|a| a.tracking) {
            for (op, n) in [("write", t.writes), ("discard", t.discards), ("write_zeroes", t.zeroes)] {
                gauge!("drpair_tracker_events", "pair" => p.clone(), "op" => op).set(n as f64);
            }
            gauge!("drpair_tracker_lost_events", "pair" => p.clone()).set(t.lost_events as f64);
            gauge!("drpair_tracker_losses", "pair" => p.clone()).set(t.losses as f64);
        }
        if let Some(d) = &s.dump {
            dump_gauges(&p, d);
        }
        if let Some(v) = &s.source_verify {
            source_verify_gauges(&p, v);
        }
        if let Some(v) = &s.verify {
            gauge!("drpair_verify_progress_ratio", "pair" => p.clone()).set(v.progress_percent / 100.0);
        }
        if let Some(r) = &s.rpo_state {
            // The current RPO itself is drpair_pair_lag_seconds.
            gauge!("drpair_pair_rpo_target_seconds", "pair" => p.clone()).set(r.target_seconds as f64);
            gauge!("drpair_pair_rpo_error_seconds", "pair" => p.clone()).set(r.error_seconds as f64);
            for level in drpair_types::RpoLevel::ALL {
                gauge!("drpair_pair_rpo_state", "pair" => p.clone(), "state" => level.as_str())
                    .set(if level == r.state { 1.0 } else { 0.0 });
            }
        }
        last_success_gauges(&p, &s.last_successes);
        gauge!("drpair_pair_eta_seconds", "pair" => p).set(s.stats.eta_seconds.map(|e| e as f64).unwrap_or(0.0));
    }
    match sb.store.pack_usage() {
        Ok(Some(u)) => packs(&u),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "reading the pack ledger for metrics"),
    }
    if let Some((free, reserve)) = sb.resources.disk() {
        gauge!("drpair_store_filesystem_free_bytes").set(free as f64);
        gauge!("drpair_store_filesystem_reserve_bytes").set(reserve as f64);
    }
    let mut out = sb.metrics.render();
    expiry::render(&mut out, &super::expiry::expiries(sb));
    out
}

/// The last successes as Unix timestamps in seconds; a kind that never succeeded has no
/// series (`time() - metric` then finds nothing rather than an age of 56 years).
fn last_success_gauges(p: &str, l: &drpair_types::LastSuccesses) {
    for (kind, at) in l.each() {
        let Some(at) = at else { continue };
        let g = match kind {
            "point" => gauge!("drpair_pair_last_point_timestamp_seconds", "pair" => p.to_string()),
            "verify" => gauge!("drpair_pair_last_verify_success_timestamp_seconds", "pair" => p.to_string()),
            "source_verify" => {
                gauge!("drpair_pair_last_source_verify_success_timestamp_seconds", "pair" => p.to_string())
            }
            "drill" => gauge!("drpair_pair_last_drill_success_timestamp_seconds", "pair" => p.to_string()),
            _ => gauge!("drpair_pair_last_app_consistent_point_timestamp_seconds", "pair" => p.to_string()),
        };
        g.set(at.at_unix_ms as f64 / 1000.0);
    }
}

/// The dump workflow's step (enum encoding), each disk's load and the verification.
fn dump_gauges(p: &str, d: &DumpStatus) {
    for st in DUMP_STEPS {
        let name = serde_json::to_value(st).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        gauge!("drpair_dump_step", "pair" => p.to_string(), "step" => name).set(if st == d.step { 1.0 } else { 0.0 });
    }
    for l in &d.disks {
        gauge!("drpair_dump_load_ratio", "pair" => p.to_string(), "disk" => l.disk.to_string()).set(l.percent / 100.0);
    }
    if let Some(v) = &d.verification {
        gauge!("drpair_dump_mismatched_chunks", "pair" => p.to_string()).set(v.mismatched_chunks as f64);
    }
}

const DUMP_STEPS: [DumpStep; 7] = [
    DumpStep::Suspended,
    DumpStep::AwaitingResyncMarker,
    DumpStep::AwaitingDumpMarker,
    DumpStep::ApplySuspended,
    DumpStep::Verifying,
    DumpStep::Done,
    DumpStep::Abandoned,
];

/// A marker of the dump workflow was processed (`marker` = `resync` or `dump`).
pub fn dump_marker(pair: &PairId, marker: &'static str) {
    counter!("drpair_dump_markers_total", "pair" => pair.to_string(), "marker" => marker).increment(1);
}

/// A dump image was loaded into the store.
pub fn dump_loaded(pair: &PairId, raw_bytes: u64, stored_bytes: u64) {
    counter!("drpair_dump_loaded_bytes_total", "pair" => pair.to_string()).increment(raw_bytes);
    counter!("drpair_store_written_bytes_total", "pair" => pair.to_string()).increment(stored_bytes);
}

/// An online verify against the source ended (`result`: `matched`, `mismatched`, `failed`).
pub fn source_verify_finished(pair: &PairId, result: &'static str) {
    counter!("drpair_source_verify_runs_total", "pair" => pair.to_string(), "result" => result).increment(1);
}

/// The running verify's progress, and the mismatches the last completed one found.
fn source_verify_gauges(p: &str, v: &drpair_types::SourceVerifyStatus) {
    gauge!("drpair_source_verify_progress_ratio", "pair" => p.to_string()).set(v.progress_percent / 100.0);
    if v.state == drpair_types::SourceVerifyState::Done {
        gauge!("drpair_source_verify_mismatched_chunks", "pair" => p.to_string()).set(v.mismatched_chunks as f64);
    }
}

/// Points removed by retention and the space reclaim that followed.
pub fn pruned(pair: &PairId, points: u64, reclaim: Option<&ReclaimRecord>) {
    counter!("drpair_retention_pruned_points_total", "pair" => pair.to_string()).increment(points);
    if let Some(r) = reclaim {
        counter!("drpair_store_reclaimed_chunks_total").increment(r.chunks_deleted);
        counter!("drpair_store_reclaimed_bytes_total").increment(r.bytes_freed);
    }
}

/// The object store's packs (store-wide, from the pack ledger).
pub fn packs(u: &drpair_store::PackUsage) {
    gauge!("drpair_store_packs").set(u.packs as f64);
    gauge!("drpair_store_pack_bytes").set(u.pack_bytes as f64);
    gauge!("drpair_store_pack_live_bytes").set(u.live_bytes as f64);
    gauge!("drpair_store_pack_garbage_bytes").set(u.garbage_bytes as f64);
    gauge!("drpair_store_packs_sparse").set(u.sparse_packs as f64);
}

/// A verification of stored chunks finished.
pub fn verified(pair: &PairId, s: &VerifyRecord) {
    let p = pair.to_string();
    let result = if s.state == VerifyState::Failed {
        "failed"
    } else if s.points_damaged > 0 {
        "damaged"
    } else {
        "intact"
    };
    counter!("drpair_verify_runs_total", "pair" => p.clone(), "result" => result).increment(1);
    gauge!("drpair_verify_damaged_points", "pair" => p.clone()).set(s.points_damaged as f64);
    gauge!("drpair_verify_damaged_chunks", "pair" => p.clone()).set(s.damaged.len() as f64);
    gauge!("drpair_verify_checked_chunks", "pair" => p.clone()).set(s.chunks_checked as f64);
    if let Some(t) = s.finished_unix_ms {
        gauge!("drpair_verify_last_finished_timestamp_seconds", "pair" => p).set(t as f64 / 1000.0);
    }
}

/// The storage report's totals.
pub fn storage(pair: &PairId, s: &drpair_types::StorageSummary) {
    let p = pair.to_string();
    gauge!("drpair_store_pair_logical_bytes", "pair" => p.clone()).set(s.logical_bytes as f64);
    gauge!("drpair_store_pair_held_bytes", "pair" => p.clone()).set(s.stored_bytes as f64);
    gauge!("drpair_store_pair_unique_bytes", "pair" => p.clone()).set(s.unique_stored_bytes as f64);
    gauge!("drpair_store_pair_compression_ratio", "pair" => p.clone()).set(s.compression_ratio);
    gauge!("drpair_store_pair_dedup_ratio", "pair" => p.clone()).set(s.dedup_ratio);
    gauge!("drpair_store_pair_space_saving_ratio", "pair" => p).set(s.space_saving_ratio);
}

/// The link's truth (issue 20): bytes on the wire now, liveness, the limit, faults.
fn link_gauges(p: &str, l: &drpair_types::LinkStatus) {
    let p = p.to_string();
    gauge!("drpair_link_wire_bytes_per_second", "pair" => p.clone()).set(l.wire_bytes_per_second);
    gauge!("drpair_link_wire_received_bytes", "pair" => p.clone()).set(l.wire_bytes_received as f64);
    gauge!("drpair_link_wire_sent_bytes", "pair" => p.clone()).set(l.wire_bytes_sent as f64);
    gauge!("drpair_link_bandwidth_limit_bytes_per_second", "pair" => p.clone())
        .set(l.bandwidth_limit_bytes_per_second.unwrap_or(0) as f64);
    gauge!("drpair_link_rtt_seconds", "pair" => p.clone()).set(l.rtt_ms.unwrap_or(0.0) / 1000.0);
    gauge!("drpair_link_last_byte_age_seconds", "pair" => p.clone())
        .set(l.last_byte_ms_ago.map_or(-1.0, |ms| ms as f64 / 1000.0));
    gauge!("drpair_link_connected", "pair" => p.clone()).set(if l.connected { 1.0 } else { 0.0 });
    gauge!("drpair_link_reconnects", "pair" => p.clone()).set(l.reconnects as f64);
    gauge!("drpair_link_connections_failed", "pair" => p.clone()).set(l.connections_failed as f64);
    gauge!("drpair_link_stalls", "pair" => p.clone()).set(l.stalls as f64);
    gauge!("drpair_link_frames_refused_checksum", "pair" => p.clone()).set(l.frames_refused_checksum as f64);
    gauge!("drpair_link_chunks_refused", "pair" => p).set(l.chunks_refused as f64);
}
