//! The standby-wide bandwidth limit: one token bucket every link's reads are charged to,
//! its setting (a rate or a schedule in local time) and where a live change is kept.
//!
//! The setting comes from the config; a live change (`drpair standby set --bandwidth`) is
//! kept in `DATA_DIR/bandwidth.json` and wins over the config it was made under, until the
//! config's own setting changes.

use crate::link::meter::Bucket;
use drpair_types::Schedule;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The standby-wide limit.
pub struct Bandwidth {
    pub global: Arc<Bucket>,
    setting: Mutex<Schedule>,
    config: Schedule,
    file: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    bandwidth: String,
    /// The config's setting when this was saved.
    config_was: String,
}

impl Bandwidth {
    /// The standby-wide setting: the live one saved in `data_dir` if the config has not
    /// changed since, else the config's.
    pub fn new(data_dir: &Path, config: Schedule) -> Self {
        let file = data_dir.join("bandwidth.json");
        let saved = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice::<Saved>(&b).ok());
        let setting = match saved {
            Some(s) if s.config_was == config.to_string() => match Schedule::parse(&s.bandwidth) {
                Ok(live) => {
                    tracing::info!(bandwidth = %live, "standby-wide bandwidth as last set through the API");
                    live
                }
                Err(e) => {
                    tracing::warn!("{}: {e}; using the config's bandwidth", file.display());
                    config.clone()
                }
            },
            Some(s) => {
                tracing::info!(config = %config, saved = %s.bandwidth, "the config's bandwidth changed since the last live change: the config's applies");
                config.clone()
            }
            None => config.clone(),
        };
        let b = Self { global: Arc::default(), setting: Mutex::new(setting), config, file };
        b.apply_now();
        b
    }

    /// The standby-wide setting in force.
    pub fn setting(&self) -> Schedule {
        self.setting.lock().expect("bandwidth").clone()
    }

    /// Changes the standby-wide setting now and keeps it over restarts.
    pub fn set(&self, text: &str) -> Result<Schedule, String> {
        let s = Schedule::parse(text)?;
        let saved = Saved { bandwidth: s.to_string(), config_was: self.config.to_string() };
        let bytes = serde_json::to_vec_pretty(&saved).map_err(|e| e.to_string())?;
        let tmp = self.file.with_extension("json.tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &self.file))
            .map_err(|e| format!("saving {}: {e}", self.file.display()))?;
        *self.setting.lock().expect("bandwidth") = s.clone();
        self.apply_now();
        Ok(s)
    }

    /// Sets the bucket from the setting at this minute (once a second, and on a change).
    pub fn apply_now(&self) {
        let (day, minute) = local_now();
        self.global.set_rate(self.setting().at(day, minute).unwrap_or(0));
    }
}

/// The weekday (0 = Monday) and minute of the day, in the standby's local time zone.
pub fn local_now() -> (u8, u16) {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let t = t as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value to be overwritten.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r is the reentrant form.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return (0, 0);
    }
    (((tm.tm_wday + 6) % 7) as u8, (tm.tm_hour * 60 + tm.tm_min) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_change_is_kept_until_the_config_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Schedule::parse("100MiB/s").unwrap();
        let b = Bandwidth::new(dir.path(), cfg.clone());
        assert_eq!(b.global.rate(), 100 << 20);
        b.set("10MiB/s").unwrap();
        assert_eq!(b.global.rate(), 10 << 20);
        assert!(b.set("fast").is_err());
        assert_eq!(b.setting().to_string(), "10MiB/s", "bad input changes nothing");
        assert_eq!(Bandwidth::new(dir.path(), cfg).setting().to_string(), "10MiB/s");
        let other = Schedule::parse("50MiB/s").unwrap();
        assert_eq!(Bandwidth::new(dir.path(), other).global.rate(), 50 << 20);
    }

    #[test]
    fn local_time_is_a_weekday_and_minute() {
        let (d, m) = local_now();
        assert!(d < 7 && m < 1440);
    }
}
