//! `[standby] rpo_target` and `rpo_error`: the RPO target of every pair without one of its own
//! (`drpair pairs set PAIR --rpo-target`), read as the pairs' own are (`30s`, `5m`, `2h`,
//! `1d`, a number of seconds; at most 30 days), so the file and the API accept and refuse the
//! same text. Zero, negative or unparseable values are errors naming the key, at
//! `drpaird config check` and at start. `off` (or leaving the key out) sets no default.

use anyhow::{Result, bail};
use drpair_types::rpo::RpoDefault;
use drpair_types::rpo::{parse_rpo, rpo_text};

/// The default from the file's `rpo_target` and `rpo_error` (None: no default).
pub fn default_of(target: Option<&str>, error: Option<&str>) -> Result<Option<RpoDefault>> {
    let read = |key: &str, text: &str| parse_rpo(text).map_err(|e| anyhow::anyhow!("{key}: {e}"));
    let target = target.map(|t| read("rpo_target", t)).transpose()?.flatten();
    let error = error.map(|t| read("rpo_error", t)).transpose()?.flatten();
    match (target, error) {
        (None, Some(_)) => bail!("rpo_error: an error threshold needs rpo_target as well"),
        (Some(t), Some(e)) if e <= t => {
            bail!("rpo_error: the error threshold ({}) must be over rpo_target ({})", rpo_text(e), rpo_text(t))
        }
        (Some(t), e) => Ok(Some(RpoDefault { target_secs: t, error_secs: e })),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_defaults() {
        assert_eq!(default_of(None, None).unwrap(), None);
        assert_eq!(default_of(Some("off"), None).unwrap(), None);
        assert_eq!(default_of(Some("30s"), None).unwrap(), Some(RpoDefault { target_secs: 30, error_secs: None }));
        assert_eq!(
            default_of(Some("30s"), Some("1m")).unwrap(),
            Some(RpoDefault { target_secs: 30, error_secs: Some(60) })
        );
        for (t, e, want) in [
            (Some("0s"), None, "rpo_target: '0s': an RPO target must be more than 0"),
            (Some("0"), None, "more than 0"),
            (Some("-5s"), None, "rpo_target: '-5s' is not a duration"),
            (Some("abc"), None, "rpo_target: 'abc' is not a duration"),
            (Some("31d"), None, "over the longest"),
            (Some("30s"), Some("abc"), "rpo_error: 'abc' is not a duration"),
            (Some("30s"), Some("0s"), "rpo_error"),
            (Some("30s"), Some("30s"), "must be over rpo_target (30s)"),
            (None, Some("1m"), "needs rpo_target"),
        ] {
            let err = format!("{:#}", default_of(t, e).unwrap_err());
            assert!(err.contains(want), "{t:?}/{e:?}: {err} lacks {want}");
        }
    }

    /// From the file: the key is named, and `config check` says what it took.
    #[test]
    fn in_the_standby_table() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("standby.toml");
        for (text, want) in [
            ("rpo_target = \"0s\"", "rpo_target: '0s': an RPO target must be more than 0"),
            ("rpo_target = \"-5s\"", "rpo_target: '-5s' is not a duration"),
            ("rpo_target = \"abc\"", "rpo_target: 'abc' is not a duration"),
            ("rpo_target = \"30s\"\nrpo_error = \"10s\"", "rpo_error: the error threshold (10s) must be over"),
        ] {
            std::fs::write(&file, format!("[standby]\n{text}\n")).unwrap();
            let e = format!("{:#}", crate::config::check(&file).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
        std::fs::write(&file, "[standby]\nrpo_target = \"30s\"\nrpo_error = \"1m\"\n").unwrap();
        let ok = crate::config::check(&file).unwrap();
        assert!(ok.contains("default RPO target 30s (error at 1m)"), "{ok}");
    }
}
