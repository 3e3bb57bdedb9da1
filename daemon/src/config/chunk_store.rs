//! `[standby] store` and `[standby.s3]`: where the standby keeps chunk bytes. `local` (the
//! default) needs nothing: rocksdb in the data dir. `s3` puts them, packed, in a bucket of an
//! S3-compatible object store; the version index, points and pair records stay local.
//!
//! Credentials come from a file (`credentials_file`, TOML with `access_key_id` and
//! `secret_access_key`, not readable by others) or from the environment (`credentials_env =
//! "NAME"` reads `NAME_ACCESS_KEY_ID` and `NAME_SECRET_ACCESS_KEY`); never from this file,
//! and they are never shown (`S3Settings`' Debug redacts them).

use anyhow::{Context, Result, bail};
use drpair_store::{
    ChunkBackend, DEFAULT_CACHE_BYTES, DEFAULT_ORPHAN_GRACE, DEFAULT_PACK_BYTES, DEFAULT_REWRITE_BELOW, MAX_PACK_BYTES,
    MAX_REWRITE_BELOW, MIN_PACK_BYTES, S3Settings,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[standby.s3]` as written in a file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3File {
    /// `http(s)://HOST:PORT` of the S3 API. Required.
    pub endpoint: Option<String>,
    /// Region name the store expects (garage: its `s3_region`). Default `us-east-1`.
    pub region: Option<String>,
    /// Bucket (created beforehand). Required.
    pub bucket: Option<String>,
    /// Key prefix of this standby's objects, e.g. `standby-a`. Default: none.
    pub prefix: Option<String>,
    /// File with `access_key_id = "…"` and `secret_access_key = "…"`.
    pub credentials_file: Option<PathBuf>,
    /// Or: environment variables `NAME_ACCESS_KEY_ID` and `NAME_SECRET_ACCESS_KEY`.
    pub credentials_env: Option<String>,
    /// Size of a pack (one object) of chunks, 1MiB..1GiB. Default `32MiB`.
    pub pack_size: Option<String>,
    /// Local cache of pack ranges read back. Default `128MiB`.
    pub cache: Option<String>,
    /// Space reclaim rewrites a pack whose live chunks fill less than this share of its
    /// chunk bytes (0 to 0.9; 0: only packs with no live chunk are deleted). Default `0.5`.
    pub rewrite_below: Option<f64>,
    /// A pack object no chunk entry names is deleted once this old (`0s` to `7d`).
    /// Default `15m`.
    pub orphan_grace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    access_key_id: String,
    secret_access_key: String,
}

/// The backend from `store` and `[standby.s3]`.
pub fn backend_of(store: Option<&str>, s3: Option<&S3File>) -> Result<ChunkBackend> {
    match store.unwrap_or("local") {
        "local" => {
            if s3.is_some() {
                bail!("[standby.s3] is set but store is 'local': set store = \"s3\" to use it");
            }
            Ok(ChunkBackend::Local)
        }
        "s3" => {
            let s3 = s3.context("store = \"s3\" needs a [standby.s3] table (endpoint, bucket, credentials)")?;
            Ok(ChunkBackend::S3(s3_settings(s3).context("[standby.s3]")?))
        }
        other => bail!("store: '{other}' is not a chunk store; 'local' (the default) or 's3'"),
    }
}

fn s3_settings(f: &S3File) -> Result<S3Settings> {
    let endpoint = f
        .endpoint
        .clone()
        .filter(|e| !e.trim().is_empty())
        .context("endpoint: missing (e.g. \"http://127.0.0.1:3900\")")?;
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        bail!("endpoint: '{endpoint}' must start with http:// or https://");
    }
    let bucket = f.bucket.clone().filter(|b| !b.trim().is_empty()).context("bucket: missing")?;
    if bucket.contains('/') {
        bail!("bucket: '{bucket}' is a bucket name, not a path");
    }
    let prefix = f.prefix.clone().unwrap_or_default().trim_matches('/').to_string();
    if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
        bail!("prefix: '{prefix}' has an empty, '.' or '..' part");
    }
    let rewrite_below = f.rewrite_below.unwrap_or(DEFAULT_REWRITE_BELOW);
    if !(0.0..=MAX_REWRITE_BELOW).contains(&rewrite_below) {
        bail!(
            "rewrite_below: {rewrite_below} is outside 0..{MAX_REWRITE_BELOW} (the live share of a pack under which \
             space reclaim rewrites it; 0.5 by default)"
        );
    }
    let orphan_grace = match &f.orphan_grace {
        Some(t) => super::parse_duration("orphan_grace", t, std::time::Duration::ZERO, MAX_ORPHAN_GRACE)?,
        None => DEFAULT_ORPHAN_GRACE,
    };
    let (access_key_id, secret_access_key) = match (&f.credentials_file, &f.credentials_env) {
        (Some(_), Some(_)) => bail!("credentials_file and credentials_env: give one of them, not both"),
        (None, None) => {
            bail!("credentials: missing; set credentials_file (a file readable only by drpair) or credentials_env")
        }
        (Some(path), None) => read_credentials(path)?,
        (None, Some(name)) => {
            let var = |suffix: &str| {
                let key = format!("{name}_{suffix}");
                std::env::var(&key)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .with_context(|| format!("credentials_env: environment variable {key} is not set"))
            };
            (var("ACCESS_KEY_ID")?, var("SECRET_ACCESS_KEY")?)
        }
    };
    let size = |key: &str, text: Option<&String>, default: u64| -> Result<u64> {
        match text {
            Some(t) => crate::standby::resources::parse_bytes(t).map_err(|e| anyhow::anyhow!("{key}: {e}")),
            None => Ok(default),
        }
    };
    let pack_bytes = size("pack_size", f.pack_size.as_ref(), DEFAULT_PACK_BYTES)?;
    if !(MIN_PACK_BYTES..=MAX_PACK_BYTES).contains(&pack_bytes) {
        bail!("pack_size: {pack_bytes} bytes is outside 1MiB..1GiB");
    }
    let cache_bytes = size("cache", f.cache.as_ref(), DEFAULT_CACHE_BYTES)?;
    if cache_bytes < 8 << 20 {
        bail!("cache: {cache_bytes} bytes is under the least of 8MiB");
    }
    Ok(S3Settings {
        endpoint,
        region: f.region.clone().unwrap_or_else(|| "us-east-1".into()),
        bucket,
        prefix,
        access_key_id,
        secret_access_key,
        pack_bytes,
        cache_bytes,
        rewrite_below,
        orphan_grace,
    })
}

/// Longest `orphan_grace` accepted.
const MAX_ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

fn read_credentials(path: &Path) -> Result<(String, String)> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("credentials_file: cannot read {}", path.display()))?;
    if meta.permissions().mode() & 0o004 != 0 {
        bail!("credentials_file: {} is readable by every user; chmod 600 it", path.display());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("credentials_file: cannot read {}", path.display()))?;
    // The parser's message could quote a line of the file: only say where it failed.
    let c: CredentialsFile = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "credentials_file: {} must hold access_key_id = \"…\" and secret_access_key = \"…\" ({})",
            path.display(),
            e.span().map_or_else(|| "unreadable".to_string(), |s| format!("error at byte {}", s.start))
        )
    })?;
    if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
        bail!("credentials_file: {}: access_key_id and secret_access_key must not be empty", path.display());
    }
    Ok((c.access_key_id, c.secret_access_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, creds: &str) -> S3File {
        let p = dir.join("s3.credentials");
        std::fs::write(&p, creds).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        S3File {
            endpoint: Some("http://127.0.0.1:3900".into()),
            bucket: Some("drpair".into()),
            prefix: Some("/site-a/".into()),
            credentials_file: Some(p),
            ..S3File::default()
        }
    }

    #[test]
    fn local_by_default_and_s3_with_everything() {
        assert!(matches!(backend_of(None, None).unwrap(), ChunkBackend::Local));
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path(), "access_key_id = \"GK1\"\nsecret_access_key = \"hush-hush\"\n");
        let ChunkBackend::S3(s) = backend_of(Some("s3"), Some(&f)).unwrap() else { panic!("s3") };
        assert_eq!((s.prefix.as_str(), s.pack_bytes, s.access_key_id.as_str()), ("site-a", 32 << 20, "GK1"));
        assert_eq!((s.rewrite_below, s.orphan_grace), (0.5, std::time::Duration::from_secs(900)));
        let tuned = S3File { rewrite_below: Some(0.0), orphan_grace: Some("0s".into()), ..f };
        let ChunkBackend::S3(s) = backend_of(Some("s3"), Some(&tuned)).unwrap() else { panic!("s3") };
        assert_eq!((s.rewrite_below, s.orphan_grace), (0.0, std::time::Duration::ZERO));
        assert!(!format!("{s:?}").contains("hush-hush"));
    }

    #[test]
    fn refusals_name_the_key_and_never_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let good = file(dir.path(), "access_key_id = \"GK1\"\nsecret_access_key = \"hush-hush\"\n");
        let cases: Vec<(Option<&str>, Option<S3File>, &str)> = vec![
            (Some("s3"), None, "needs a [standby.s3] table"),
            (Some("nfs"), None, "'nfs' is not a chunk store"),
            (None, Some(good.clone()), "store is 'local'"),
            (Some("s3"), Some(S3File { endpoint: None, ..good.clone() }), "endpoint: missing"),
            (Some("s3"), Some(S3File { endpoint: Some("ftp://x".into()), ..good.clone() }), "http://"),
            (Some("s3"), Some(S3File { bucket: None, ..good.clone() }), "bucket: missing"),
            (Some("s3"), Some(S3File { credentials_file: None, ..good.clone() }), "credentials: missing"),
            (
                Some("s3"),
                Some(S3File { credentials_file: Some(dir.path().join("nope")), ..good.clone() }),
                "cannot read",
            ),
            (Some("s3"), Some(S3File { credentials_env: Some("X".into()), ..good.clone() }), "not both"),
            (
                Some("s3"),
                Some(S3File {
                    credentials_file: None,
                    credentials_env: Some("DRPAIR_TEST_UNSET_S3".into()),
                    ..good.clone()
                }),
                "DRPAIR_TEST_UNSET_S3_ACCESS_KEY_ID is not set",
            ),
            (Some("s3"), Some(S3File { pack_size: Some("4KiB".into()), ..good.clone() }), "pack_size"),
            (Some("s3"), Some(S3File { prefix: Some("a/../b".into()), ..good.clone() }), "prefix"),
            (Some("s3"), Some(S3File { rewrite_below: Some(1.5), ..good.clone() }), "rewrite_below: 1.5 is outside"),
            (Some("s3"), Some(S3File { rewrite_below: Some(-0.1), ..good.clone() }), "rewrite_below"),
            (Some("s3"), Some(S3File { rewrite_below: Some(f64::NAN), ..good.clone() }), "rewrite_below"),
            (Some("s3"), Some(S3File { orphan_grace: Some("soon".into()), ..good.clone() }), "orphan_grace"),
            (Some("s3"), Some(S3File { orphan_grace: Some("30d".into()), ..good.clone() }), "orphan_grace"),
        ];
        for (store, s3, want) in cases {
            let e = format!("{:#}", backend_of(store, s3.as_ref()).unwrap_err());
            assert!(e.contains(want), "{store:?}: '{e}' lacks '{want}'");
        }
        let bad = file(dir.path(), "secret_access_key = \"hush-hush\"\nextra = 1\n");
        let e = format!("{:#}", backend_of(Some("s3"), Some(&bad)).unwrap_err());
        assert!(e.contains("must hold access_key_id") && !e.contains("hush-hush"), "{e}");
        std::fs::set_permissions(
            bad.credentials_file.as_ref().unwrap(),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        let e = format!("{:#}", backend_of(Some("s3"), Some(&bad)).unwrap_err());
        assert!(e.contains("readable by every user"), "{e}");
    }
}
