//! Every metric family the standby exports, with its kind and HELP text: Prometheus (and
//! `promtool check metrics`) want HELP on each, and a reader wants to know what is counted.
//! Renamed once in issue 26 so that `promtool check metrics` finds nothing; the old names are
//! listed in CHANGELOG.md.

use metrics::{describe_counter, describe_gauge, describe_histogram};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Counter,
    Gauge,
    /// Recorded as a histogram, exported as a summary with quantiles.
    Summary,
}

use Kind::{Counter, Gauge, Summary};

/// (name, kind, HELP). Labels are bounded: `pair`, and small fixed sets (`kind`, `state`,
/// `op`, `result`, `reason`, `marker`, `step`, `stage`, `disk`, `role`, the notification `target`); `name` is
/// an API token's.
pub(super) const FAMILIES: &[(&str, Kind, &str)] = &[
    // The link: what the pair's agent sent.
    (
        "drpair_link_shipped_bytes_total",
        Counter,
        "Chunk payload bytes received from the pair's agent, as sent (compressed when compressed).",
    ),
    (
        "drpair_link_logical_bytes_total",
        Counter,
        "Uncompressed disk bytes covered by the chunks received from the pair's agent (data, zero and already-held chunks).",
    ),
    (
        "drpair_link_chunks_total",
        Counter,
        "Chunks received from the pair's agent, by kind: data, zero (a flag only), dedup (the hash of a chunk the store held).",
    ),
    (
        "drpair_ingest_frame_stage_seconds",
        Summary,
        "Time the standby spent on each frame of chunks, by stage: verify (decompression and blake3 of every chunk) and store (the frame's write batch); the _sum is the stage's busy time.",
    ),
    ("drpair_link_refused_total", Counter, "Link connections and frames the standby refused, by reason."),
    (
        "drpair_link_frame_received_bytes",
        Gauge,
        "Bytes of link frames received from the pair's agent (payload, hashes, framing; before TLS) since the standby started.",
    ),
    (
        "drpair_link_compression_ratio",
        Gauge,
        "Uncompressed bytes of the pair's data chunks divided by their bytes on the link (1: no compression).",
    ),
    ("drpair_link_wire_bytes_per_second", Gauge, "Bytes per second on the wire from the pair's agent, recently."),
    ("drpair_link_wire_received_bytes", Gauge, "Bytes on the wire from the pair's agent since the standby started."),
    ("drpair_link_wire_sent_bytes", Gauge, "Bytes on the wire to the pair's agent since the standby started."),
    (
        "drpair_link_bandwidth_limit_bytes_per_second",
        Gauge,
        "The pair's bandwidth limit in force now, in bytes per second (0: none).",
    ),
    ("drpair_link_rtt_seconds", Gauge, "Round-trip time to the pair's agent, last measured (0: not yet)."),
    (
        "drpair_link_last_byte_age_seconds",
        Gauge,
        "Seconds since the last byte arrived from the pair's agent (-1: none yet).",
    ),
    ("drpair_link_connected", Gauge, "1 while the pair's agent is connected."),
    ("drpair_link_reconnects", Gauge, "Connections of the pair's agent after its first, since the standby started."),
    (
        "drpair_link_connections_failed",
        Gauge,
        "Connections of the pair's agent that ended in a failure, since the standby started.",
    ),
    ("drpair_link_stalls", Gauge, "Connections ended because nothing arrived for too long (a half-open link)."),
    ("drpair_link_frames_refused_checksum", Gauge, "Link frames of the pair refused for a bad checksum."),
    ("drpair_link_chunks_refused", Gauge, "Chunks of the pair refused (bad hash, length or compression)."),
    // The pair.
    ("drpair_pair_points_committed_total", Counter, "Recovery points committed for the pair."),
    ("drpair_pair_epoch", Gauge, "The epoch the pair's agent ships now (or shipped last)."),
    ("drpair_pair_checkpoint_epoch", Gauge, "The epoch of the pair's newest committed point (0: none)."),
    ("drpair_pair_points", Gauge, "Recovery points the pair holds."),
    (
        "drpair_pair_lag_seconds",
        Gauge,
        "The current RPO (replication lag): seconds since the newest committed point's time, as status shows (stats.lag_seconds, rpo_state.rpo_seconds).",
    ),
    ("drpair_pair_rpo_target_seconds", Gauge, "The pair's RPO target, in seconds (only pairs with a target)."),
    (
        "drpair_pair_rpo_error_seconds",
        Gauge,
        "The pair's RPO error threshold, in seconds (twice the target unless set).",
    ),
    (
        "drpair_pair_rpo_state",
        Gauge,
        "1 for the pair's RPO level (ok, warning, error), 0 for the others (only pairs with a target).",
    ),
    (
        "drpair_pair_last_point_timestamp_seconds",
        Gauge,
        "Unix time (seconds) of the pair's newest committed point's cut (no series before the first).",
    ),
    (
        "drpair_pair_last_verify_success_timestamp_seconds",
        Gauge,
        "Unix time (seconds) the last verification of the pair's stored chunks that found no damage ended (no series before one).",
    ),
    (
        "drpair_pair_last_source_verify_success_timestamp_seconds",
        Gauge,
        "Unix time (seconds) the last online verify against the source that found no chunk differing ended (no series before one).",
    ),
    (
        "drpair_pair_last_drill_success_timestamp_seconds",
        Gauge,
        "Unix time (seconds) the pair's last drill passed: served, and its check if any exited 0 (no series before one).",
    ),
    (
        "drpair_pair_last_app_consistent_point_timestamp_seconds",
        Gauge,
        "Unix time (seconds) of the cut of the pair's newest app-consistent point (no series before the first).",
    ),
    ("drpair_pair_backlog_bytes", Gauge, "Bytes known changed on the source and not shipped yet."),
    ("drpair_pair_backlog_chunks", Gauge, "Chunks known changed on the source and not shipped yet."),
    ("drpair_pair_progress_ratio", Gauge, "Progress of the running pass (initial sync, re-copy or catch-up), 0 to 1."),
    ("drpair_pair_eta_seconds", Gauge, "Estimated seconds until the running pass ends (0: none running or unknown)."),
    ("drpair_pair_pass_chunks", Gauge, "Chunks the running pass covers (0 when idle)."),
    ("drpair_pair_pass_chunks_shipped", Gauge, "Chunks of the running pass shipped so far."),
    ("drpair_pair_ready_for_failover", Gauge, "1 when the pair has a point to fail over to."),
    ("drpair_pair_health", Gauge, "The panel's health badge: 0 ok, 1 warning, 2 critical."),
    ("drpair_pair_state", Gauge, "1 for the pair's current state, 0 for every other state."),
    ("drpair_pair_stopped", Gauge, "1 while the pair is stopped (a stop reason is set)."),
    ("drpair_pair_restarting", Gauge, "1 while a restart (points wiped, everything copied again) runs."),
    // The agent, as it reports.
    ("drpair_agent_read_bytes", Gauge, "Bytes the pair's agent read from its disks, as it reports (from its start)."),
    (
        "drpair_agent_read_bytes_per_second",
        Gauge,
        "Bytes per second the pair's agent read recently (about the last 10 s).",
    ),
    (
        "drpair_tracker_events",
        Gauge,
        "Block events the agent's tracker saw, by op (write, discard, write_zeroes), as it reports.",
    ),
    (
        "drpair_tracker_lost_events",
        Gauge,
        "Tracker events the kernel's buffer lost, as the agent reports (each loss makes it rescan).",
    ),
    ("drpair_tracker_losses", Gauge, "Times the agent's tracker lost events."),
    // Points.
    (
        "drpair_point_read_window_seconds",
        Summary,
        "Seconds from a point's cut to the last chunk read for it, over the points committed.",
    ),
    (
        "drpair_point_window_exceeded_total",
        Counter,
        "Points read over longer than the standby's max_read_window (passed over as latest).",
    ),
    // The store.
    (
        "drpair_store_written_bytes_total",
        Counter,
        "Bytes the pair's chunks added to the store (chunks it did not hold; dump loads included).",
    ),
    ("drpair_store_reclaimed_chunks_total", Counter, "Chunks deleted from the store once no point named them."),
    ("drpair_store_reclaimed_bytes_total", Counter, "Stored bytes of the chunks reclaimed."),
    ("drpair_store_packs", Gauge, "Pack objects on the object store that some chunk entry names (store = \"s3\")."),
    ("drpair_store_pack_bytes", Gauge, "Bytes of those pack objects."),
    ("drpair_store_pack_live_bytes", Gauge, "Bytes of the chunks in packs that some recovery point still names."),
    (
        "drpair_store_pack_garbage_bytes",
        Gauge,
        "Bytes of chunks in packs named no more, freed when their packs are rewritten or deleted.",
    ),
    ("drpair_store_packs_sparse", Gauge, "Packs under the rewrite threshold, rewritten by the next space reclaim."),
    ("drpair_store_pair_logical_bytes", Gauge, "The pair's points as full images, in bytes (last storage report)."),
    (
        "drpair_store_pair_held_bytes",
        Gauge,
        "Stored bytes of the chunks the pair's points name (last storage report; a chunk shared with another pair counts for both).",
    ),
    (
        "drpair_store_pair_unique_bytes",
        Gauge,
        "Stored bytes of the chunks only the pair's points name: what deleting the pair frees at most.",
    ),
    (
        "drpair_store_pair_compression_ratio",
        Gauge,
        "Uncompressed bytes of the pair's stored chunks over their stored bytes.",
    ),
    (
        "drpair_store_pair_dedup_ratio",
        Gauge,
        "Bytes the pair's chunk versions name over the bytes of the distinct chunks.",
    ),
    ("drpair_store_pair_space_saving_ratio", Gauge, "1 minus stored bytes over logical bytes, for the pair's points."),
    (
        "drpair_store_filesystem_free_bytes",
        Gauge,
        "Free bytes of the standby's data filesystem, less what the store's memtables will write when flushed.",
    ),
    (
        "drpair_store_filesystem_reserve_bytes",
        Gauge,
        "The data filesystem's reserve: at or below it, ingest stops (STOPPED_DUE_TO_LOW_DISK).",
    ),
    ("drpair_retention_pruned_points_total", Counter, "Recovery points removed by retention."),
    // Verification.
    (
        "drpair_verify_runs_total",
        Counter,
        "Verifications of the pair's stored chunks that ended, by result (intact, damaged, failed).",
    ),
    ("drpair_verify_progress_ratio", Gauge, "Progress of the running verification of stored chunks, 0 to 1."),
    ("drpair_verify_damaged_points", Gauge, "Points the last verification found damaged."),
    ("drpair_verify_damaged_chunks", Gauge, "Chunks the last verification found damaged."),
    ("drpair_verify_checked_chunks", Gauge, "Chunks the last verification checked."),
    ("drpair_verify_last_finished_timestamp_seconds", Gauge, "When the last verification ended (Unix time)."),
    (
        "drpair_source_verify_runs_total",
        Counter,
        "Online verifies against the source that ended, by result (matched, mismatched, failed).",
    ),
    ("drpair_source_verify_progress_ratio", Gauge, "Progress of the running online verify against the source, 0 to 1."),
    (
        "drpair_source_verify_mismatched_chunks",
        Gauge,
        "Chunks the last completed online verify found different from the source.",
    ),
    // Failover, failback and the dump workflow.
    ("drpair_failover_progress_ratio", Gauge, "Progress of the running failover's materialisation, 0 to 1."),
    ("drpair_failover_written_bytes", Gauge, "Bytes the running failover wrote to its target."),
    ("drpair_failover_write_bytes_per_second", Gauge, "Bytes per second the running failover writes."),
    ("drpair_failback_progress_ratio", Gauge, "Progress of the running failback, 0 to 1."),
    (
        "drpair_failback_differing_chunks",
        Gauge,
        "Chunks the failback found different between the standby's copy and the original server.",
    ),
    ("drpair_failback_moved_chunks", Gauge, "Chunks the failback moved to the original server so far."),
    ("drpair_failback_moved_bytes", Gauge, "Bytes the failback moved to the original server so far."),
    ("drpair_dump_markers_total", Counter, "Markers of the dump workflow processed, by marker (resync, dump)."),
    ("drpair_dump_loaded_bytes_total", Counter, "Bytes of dump images loaded into the store."),
    ("drpair_dump_step", Gauge, "1 for the dump workflow's current step, 0 for every other step."),
    ("drpair_dump_load_ratio", Gauge, "Progress of a disk's dump image load, 0 to 1."),
    ("drpair_dump_mismatched_chunks", Gauge, "Chunks the dump's verification found different."),
    // Notifications, by target (the configured targets: a small fixed set).
    ("drpair_notify_delivered_total", Counter, "Notifications delivered to the target."),
    (
        "drpair_notify_failed_attempts_total",
        Counter,
        "Attempts to deliver a notification to the target that failed (each is retried with backoff).",
    ),
    (
        "drpair_notify_queued_notifications",
        Gauge,
        "Notifications not yet delivered to every target they are for (kept in the store over restarts).",
    ),
    // Credentials that end (written by metrics/expiry.rs at each scrape).
    (
        "drpair_tls_certificate_expiry_timestamp_seconds",
        Gauge,
        "When a certificate stops being valid (notAfter, Unix time), by role: server (the standby's own), ca (signs agents), agent (the pair's newest not revoked).",
    ),
    (
        "drpair_api_token_expiry_timestamp_seconds",
        Gauge,
        "When an API token made with an expiry stops being accepted (Unix time), by token name.",
    ),
];

/// Describes every family to the global recorder (HELP lines in the exposition).
pub(super) fn describe_all() {
    for &(name, kind, help) in FAMILIES {
        match kind {
            Counter => describe_counter!(name, help),
            Gauge => describe_gauge!(name, help),
            Summary => describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names used with `macro!("` in `src`, with the kind the macro records.
    fn used(src: &str) -> Vec<(String, Kind)> {
        let mut out = vec![];
        for (mac, kind) in [("counter!(\"", Counter), ("gauge!(\"", Gauge), ("histogram!(\"", Summary)] {
            for (at, _) in src.match_indices(mac) {
                let rest = &src[at + mac.len()..];
                out.push((rest[..rest.find('"').unwrap()].to_string(), kind));
            }
        }
        out
    }

    #[test]
    fn every_family_used_is_described_with_its_kind() {
        let used: Vec<_> = [
            include_str!("../metrics.rs"),
            include_str!("../session/refusals.rs"),
            include_str!("../notify/outbox.rs"),
            include_str!("../notify/delivery.rs"),
        ]
        .iter()
        .flat_map(|s| used(s))
        .chain(super::super::expiry::RENDERED.iter().map(|n| (n.to_string(), Gauge)))
        .collect();
        assert!(used.len() > 50, "the scan found only {} uses", used.len());
        for (name, kind) in &used {
            let described = FAMILIES.iter().find(|f| f.0 == name);
            assert_eq!(described.map(|f| f.1), Some(*kind), "{name} is used as a {kind:?}: describe it so in FAMILIES");
        }
        for (name, kind, help) in FAMILIES {
            assert!(used.iter().any(|u| u.0 == *name), "{name} is described but never recorded");
            assert_eq!(
                name.ends_with("_total"),
                *kind == Counter,
                "{name}: `_total` is for counters, and counters only"
            );
            assert!(name.starts_with("drpair_") && !help.is_empty() && help.ends_with('.'), "{name}: {help}");
            assert!(!name.contains("percent"), "{name}: progress is a ratio of 0 to 1");
        }
        let mut names: Vec<_> = FAMILIES.iter().map(|f| f.0).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len(), "a family is described twice");
    }

    /// The `drpair_…` names in `text` (a family's name, or one with a summary's suffix).
    fn names_in(text: &str) -> Vec<String> {
        let mut out: Vec<String> = text
            .match_indices("drpair_")
            .filter(|(at, _)| !text[..*at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
            .map(|(at, _)| text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The shipped Grafana dashboard and alert rules name only families the standby exports:
    /// a renamed family would leave a panel empty or an alert silent.
    #[test]
    fn the_dashboard_and_the_alert_rules_name_only_exported_families() {
        for (file, text) in [
            (
                "packaging/grafana/drpair-overview.json",
                include_str!("../../../../packaging/grafana/drpair-overview.json"),
            ),
            (
                "packaging/prometheus/drpair-rules.yml",
                include_str!("../../../../packaging/prometheus/drpair-rules.yml"),
            ),
        ] {
            let names = names_in(text);
            assert!(names.len() >= 10, "{file}: only {names:?}");
            for name in names {
                let base = ["_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
                let known = FAMILIES.iter().any(|f| f.0 == name || (f.0 == base && f.1 == Summary));
                assert!(known, "{file} names {name}, which is not in FAMILIES");
            }
        }
        assert_eq!(names_in("x drpair_a{y} + drpair_b_total - mydrpair_c"), ["drpair_a", "drpair_b_total"]);
    }
}
