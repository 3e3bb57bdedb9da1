//! `drpair pairs set PAIR --bandwidth … --rpo-target …` and `drpair standby set --bandwidth …`:
//! the link's bandwidth limits, a pair's own and the standby-wide one (a rate or a schedule in
//! the standby's local time), and a pair's RPO target. Without an option, the settings are shown.

use crate::client::{CliError, Client};
use crate::output::{self, OutputFormat};
use drpair_types::bandwidth::rate_text;
use drpair_types::rpo::rpo_text;
use drpair_types::{PairId, PairSettings, StandbySettings};

pub const BANDWIDTH_HELP: &str = "A rate such as 20MiB/s or 100Mbit/s, 'unlimited', or a schedule in the \
    standby's local time: rules separated by ';', the first that matches wins, e.g. \
    \"Mon-Fri 08:00-18:00 = 10MiB/s; * = unlimited\" (days Mon..Sun, ranges and lists; a time \
    range HH:MM-HH:MM may wrap past midnight; no match means unlimited).";

/// What `drpair pairs set` changes (nothing: show the settings).
#[derive(Debug, Default)]
pub struct PairChange {
    pub bandwidth: Option<String>,
    pub rpo_target: Option<String>,
    pub rpo_error: Option<String>,
}

/// Shows or sets a pair's settings.
pub fn pair(client: &Client, output: OutputFormat, pair: &PairId, change: PairChange) -> Result<(), CliError> {
    let path = format!("/api/v1/pairs/{pair}/settings");
    let mut body = serde_json::Map::new();
    for (key, value) in
        [("bandwidth", &change.bandwidth), ("rpo_target", &change.rpo_target), ("rpo_error", &change.rpo_error)]
    {
        if let Some(v) = value {
            body.insert(key.into(), v.clone().into());
        }
    }
    let (raw, s) = if body.is_empty() {
        client.get_json::<PairSettings>(&path)?
    } else {
        client.put_json::<_, PairSettings>(&path, &serde_json::Value::Object(body))?
    };
    output::answer(output, &raw, || {
        let whose = match s.rpo_target_source {
            Some(drpair_types::RpoTargetSource::Standby) => "; the standby's default",
            _ => "",
        };
        let rpo = match (s.rpo_target_seconds, s.rpo_error_seconds) {
            (Some(t), Some(e)) => format!("RPO target {} (error at {}{whose})", rpo_text(t), rpo_text(e)),
            _ => "no RPO target".to_string(),
        };
        format!(
            "pair {}: bandwidth {} (in force now: {}); {rpo}",
            s.pair_id,
            s.bandwidth,
            rate_text(s.bandwidth_limit_bytes_per_second)
        )
    });
    Ok(())
}

/// Shows or sets the standby-wide settings.
pub fn standby(client: &Client, output: OutputFormat, bandwidth: Option<&str>) -> Result<(), CliError> {
    let path = "/api/v1/standby/settings";
    let (raw, s) = match bandwidth {
        Some(b) => client.put_json::<_, StandbySettings>(path, &serde_json::json!({ "bandwidth": b }))?,
        None => client.get_json::<StandbySettings>(path)?,
    };
    output::answer(output, &raw, || {
        format!(
            "standby-wide bandwidth {} (in force now: {}); every link together now: {}",
            s.bandwidth,
            rate_text(s.bandwidth_limit_bytes_per_second),
            output::format_rate(s.wire_bytes_per_second)
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_server::{FakeServer, Reply};

    #[test]
    fn set_sends_the_setting() {
        let body = r#"{"pair_id":"web-01","bandwidth":"20MiB/s","bandwidth_limit_bytes_per_second":20971520}"#;
        let server = FakeServer::start(vec![Reply::json(200, body)]);
        let client = Client::new(&server.url, None).unwrap();
        let change = PairChange { bandwidth: Some("20MiB/s".into()), ..Default::default() };
        pair(&client, OutputFormat::Text, &PairId::new("web-01").unwrap(), change).unwrap();
        let reqs = server.finish();
        assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("PUT", "/api/v1/pairs/web-01/settings"));
        assert!(String::from_utf8_lossy(&reqs[0].body).contains("20MiB/s"));
    }
}
