//! Which role each API call needs. Reading needs `viewer` (`/metrics`: `metrics`); the calls
//! of day-to-day operation need `operator`; anything that deletes points, moves data between
//! sides, changes retention or credentials needs `admin`. A call not listed needs `admin`.

use axum::http::Method;
use drpair_types::Role;

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
            "start" => !start_deletes,
            a => a.starts_with("points/") && (a.ends_with("/pin") || a.ends_with("/unpin")),
        };
        return if operator { Role::Operator } else { Role::Admin };
    }
    if rest.starts_with("/drills/") && rest.ends_with("/stop") {
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
    }
}
