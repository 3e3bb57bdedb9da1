//! Which role each API call needs. Reading needs `viewer` (`/metrics`: `metrics`); the calls
//! of day-to-day operation, and the benchmarks of `drpair bench`, need `operator`; anything
//! that deletes points, moves data between sides, changes retention or credentials needs
//! `admin`. A call not listed needs `admin`.
//! Following a one-time download link needs no token at all ([`token_free`]): the operator
//! who asked for the link was checked then.

use axum::http::Method;
use drpair_types::Role;

/// Whether a call is let through without a token: `GET /api/v1/downloads/{ticket}` only
/// (one path segment after `downloads/`), whose ticket is the credential.
pub fn token_free(method: &Method, path: &str) -> bool {
    *method == Method::GET && path.strip_prefix("/api/v1/downloads/").is_some_and(|t| !t.is_empty() && !t.contains('/'))
}

/// The role a call needs. `start_deletes` says whether a `start` body asks for a reload or a
/// replay (which delete points).
pub fn required(method: &Method, path: &str, start_deletes: bool) -> Role {
    if path == "/metrics" {
        return Role::Metrics;
    }
    let rest = path.strip_prefix("/api/v1").unwrap_or(path);
    let admin_reads = rest.starts_with("/audit") || rest.starts_with("/tokens");
    if *method == Method::GET || *method == Method::HEAD {
        if admin_reads {
            return Role::Admin;
        }
        // Disk images leave the standby: an operator's export.
        if rest.ends_with("/image") {
            return Role::Operator;
        }
        return Role::Viewer;
    }
    if let Some(pair_rest) = rest.strip_prefix("/pairs/") {
        let action = pair_rest.split_once('/').map_or("", |(_, a)| a);
        let operator = match action {
            "pause" | "resume" | "stop" | "points" | "drills" | "verify" | "verify-source" | "adopt-growth"
            | "settings" => true,
            // A dry run of a proposed policy changes nothing; setting it stays an admin's.
            "retention/preview" => true,
            "start" => !start_deletes,
            // A download link carries the disk image out, as the export does.
            a => a.starts_with("points/") && (a.ends_with("/pin") || a.ends_with("/unpin") || a.ends_with("/download")),
        };
        return if operator { Role::Operator } else { Role::Admin };
    }
    if rest.starts_with("/drills/") && rest.ends_with("/stop") {
        return Role::Operator;
    }
    // A test notification changes nothing: it tells the operators who asked for them.
    if rest == "/notify/test" {
        return Role::Operator;
    }
    // Benchmarks write only to a scratch store of their own, removed afterwards.
    if rest == "/bench/sink" || rest == "/bench/store" {
        return Role::Operator;
    }
    Role::Admin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_of_calls() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(required(&get, "/metrics", false), Role::Metrics);
        assert_eq!(required(&get, "/api/v1/pairs/web-01", false), Role::Viewer);
        assert_eq!(required(&get, "/api/v1/audit", false), Role::Admin);
        assert_eq!(required(&get, "/api/v1/pairs/web-01/points/3/disks/0/image", false), Role::Operator);
        for a in
            ["pause", "resume", "stop", "points", "points/3/pin", "drills", "verify", "verify-source", "adopt-growth"]
        {
            assert_eq!(required(&post, &format!("/api/v1/pairs/p/{a}"), false), Role::Operator, "{a}");
        }
        assert_eq!(required(&Method::PUT, "/api/v1/pairs/p/settings", false), Role::Operator);
        assert_eq!(required(&Method::PUT, "/api/v1/standby/settings", false), Role::Admin);
        assert_eq!(required(&post, "/api/v1/pairs/p/start", false), Role::Operator);
        assert_eq!(required(&post, "/api/v1/pairs/p/start", true), Role::Admin);
        for a in ["restart", "failover", "failback", "suspend", "dump/load", "prune", "enroll", "revoke", "x"] {
            assert_eq!(required(&post, &format!("/api/v1/pairs/p/{a}"), false), Role::Admin, "{a}");
        }
        assert_eq!(required(&Method::PUT, "/api/v1/pairs/p/retention", false), Role::Admin);
        assert_eq!(required(&post, "/api/v1/drills/4/stop", false), Role::Operator);
        assert_eq!(required(&post, "/api/v1/tokens", false), Role::Admin);
        assert_eq!(required(&post, "/api/v1/pairs/p/points/3/disks/0/download", false), Role::Operator);
        assert_eq!(required(&post, "/api/v1/pairs/p/points/latest/disks/1/download", false), Role::Operator);
        assert_eq!(required(&post, "/api/v1/pairs/p/retention/preview", false), Role::Operator);
        assert_eq!(required(&get, "/api/v1/events", false), Role::Viewer);
        assert_eq!(required(&post, "/api/v1/bench/sink", false), Role::Operator);
        assert_eq!(required(&post, "/api/v1/bench/store", false), Role::Operator);
        assert_eq!(required(&get, "/api/v1/notify", false), Role::Viewer);
        assert_eq!(required(&post, "/api/v1/notify/test", false), Role::Operator);
        assert_eq!(required(&post, "/api/v1/notify/test/x", false), Role::Admin);
        for p in ["/api/v1/bench", "/api/v1/bench/", "/api/v1/bench/sink/x", "/api/v1/bench/other"] {
            assert_eq!(required(&post, p, false), Role::Admin, "{p}");
        }
    }

    #[test]
    fn only_download_links_go_without_a_token() {
        let t = "/api/v1/downloads/0123abcd";
        assert!(token_free(&Method::GET, t));
        for (m, p) in [
            (Method::HEAD, t),
            (Method::POST, t),
            (Method::DELETE, t),
            (Method::GET, "/api/v1/downloads/"),
            (Method::GET, "/api/v1/downloads"),
            (Method::GET, "/api/v1/downloads/a/b"),
            (Method::GET, "/api/v1/downloadsx/a"),
            (Method::GET, "/api/v1/pairs/p/points/3/disks/0/image"),
            (Method::POST, "/api/v1/pairs/p/points/3/disks/0/download"),
            (Method::GET, "/metrics"),
        ] {
            assert!(!token_free(&m, p), "{m} {p}");
        }
    }
}
