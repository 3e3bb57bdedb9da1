//! Where the chunk packs go: the standby's choice of chunk backend and, for an S3-compatible
//! object store, its address and credentials. The credentials never appear in `Debug`, in
//! logs or in error messages: [`S3Settings::describe`] is what names the store.

/// Which backend holds the chunk bytes. The version index, points and pair records are in the
/// local rocksdb either way.
#[derive(Debug, Clone, Default)]
pub enum ChunkBackend {
    /// The `chunks` column family of the local rocksdb (BlobDB): the default.
    #[default]
    Local,
    /// Packs of chunks in a bucket of an S3-compatible object store.
    S3(S3Settings),
}

/// Default size at which an open pack is sealed and uploaded.
pub const DEFAULT_PACK_BYTES: u64 = 32 << 20;
/// Smallest and largest pack sizes accepted.
pub const MIN_PACK_BYTES: u64 = 1 << 20;
pub const MAX_PACK_BYTES: u64 = 1 << 30;
/// Default size of the local cache of pack ranges read back.
pub const DEFAULT_CACHE_BYTES: u64 = 128 << 20;
/// Default rewrite threshold: a pack whose live chunks fill less than half of its chunk bytes
/// is rewritten by space reclaim. At one half, the bucket holds at most about twice the live
/// bytes in packs waiting for a rewrite, and a rewrite copies at most one live byte per
/// byte it frees (`rewrite.rs`).
pub const DEFAULT_REWRITE_BELOW: f64 = 0.5;
/// Largest rewrite threshold accepted: above it, packs would be copied for little gain (at
/// 1.0 every pack, forever).
pub const MAX_REWRITE_BELOW: f64 = 0.9;
/// Default age under which a pack object no ledger record names is left alone by the
/// orphan sweep (`sweep.rs`): besides the in-memory set of packs being uploaded, a margin
/// against clock differences between the standby and the store.
pub const DEFAULT_ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// An S3-compatible bucket holding the chunk packs.
#[derive(Clone)]
pub struct S3Settings {
    /// `http://host:port` or `https://host:port`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Key prefix of every object this standby writes (no leading or trailing `/`); may be
    /// empty.
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// An open pack is sealed and uploaded once it holds this many bytes.
    pub pack_bytes: u64,
    /// Bound of the local cache of pack ranges read back.
    pub cache_bytes: u64,
    /// Space reclaim rewrites packs whose live share of chunk bytes is under this
    /// (0..=[`MAX_REWRITE_BELOW`]; 0: only packs with no live chunk go).
    pub rewrite_below: f64,
    /// Pack objects no ledger record names are deleted once older than this.
    pub orphan_grace: std::time::Duration,
}

impl S3Settings {
    /// Names the store in logs and messages: endpoint, bucket and prefix, no credential.
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3 {}/{}", self.endpoint.trim_end_matches('/'), self.bucket)
        } else {
            format!("s3 {}/{}/{}", self.endpoint.trim_end_matches('/'), self.bucket, self.prefix)
        }
    }

    /// What the store records in its `meta` family so that it is never reopened on another
    /// bucket or prefix (the endpoint may change: the same bucket can be reached otherwise).
    pub(crate) fn identity(&self) -> String {
        format!("s3:{}/{}", self.bucket, self.prefix)
    }
}

/// An object store's access key, for offline tools; never shown (`Debug` redacts it).
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S3Credentials(<redacted>)")
    }
}

/// Where a store's object store was last reached, as recorded in its `meta` (JSON; no
/// credential): endpoint, region, bucket, prefix, pack and cache sizes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct S3Location {
    endpoint: String,
    region: String,
    bucket: String,
    prefix: String,
    pack_bytes: u64,
    cache_bytes: u64,
}

impl S3Location {
    pub(crate) fn of(s: &S3Settings) -> S3Location {
        S3Location {
            endpoint: s.endpoint.clone(),
            region: s.region.clone(),
            bucket: s.bucket.clone(),
            prefix: s.prefix.clone(),
            pack_bytes: s.pack_bytes,
            cache_bytes: s.cache_bytes,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain strings and numbers")
    }

    pub(crate) fn decode(v: &[u8]) -> Result<S3Location, String> {
        serde_json::from_slice(v).map_err(|e| format!("its recorded object store location is unreadable: {e}"))
    }

    /// Settings to reach it with `c`; reclaim's settings at their defaults (offline tools
    /// only read).
    pub(crate) fn settings(&self, c: &S3Credentials) -> S3Settings {
        S3Settings {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            pack_bytes: self.pack_bytes,
            cache_bytes: self.cache_bytes,
            rewrite_below: DEFAULT_REWRITE_BELOW,
            orphan_grace: DEFAULT_ORPHAN_GRACE,
        }
    }

    pub(crate) fn describe(&self) -> String {
        self.settings(&S3Credentials { access_key_id: String::new(), secret_access_key: String::new() }).describe()
    }
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field("pack_bytes", &self.pack_bytes)
            .field("cache_bytes", &self.cache_bytes)
            .field("rewrite_below", &self.rewrite_below)
            .field("orphan_grace", &self.orphan_grace)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_describe_never_show_credentials() {
        let s = S3Settings {
            endpoint: "http://127.0.0.1:3900/".into(),
            region: "garage".into(),
            bucket: "drpair".into(),
            prefix: "site-a".into(),
            access_key_id: "GKkeyid123".into(),
            secret_access_key: "s3cr3t-value".into(),
            pack_bytes: DEFAULT_PACK_BYTES,
            cache_bytes: DEFAULT_CACHE_BYTES,
            rewrite_below: DEFAULT_REWRITE_BELOW,
            orphan_grace: DEFAULT_ORPHAN_GRACE,
        };
        for text in [format!("{s:?}"), s.describe(), format!("{:?}", ChunkBackend::S3(s.clone()))] {
            assert!(!text.contains("s3cr3t") && !text.contains("GKkeyid"), "{text}");
        }
        assert_eq!(s.describe(), "s3 http://127.0.0.1:3900/drpair/site-a");
    }
}
