//! The object store client: `object_store`'s S3 client (or its in-memory store in tests) on a
//! small runtime of its own, so the store's synchronous callers, async tasks included, can
//! wait for a request without needing (or entering) a runtime of theirs.

use super::settings::S3Settings;
use crate::StoreError;
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Longest a request (with its retries) may take before it fails: the pair then shows the
/// failure and the session retries with its own backoff instead of hanging.
const RETRY_TIMEOUT: Duration = Duration::from_secs(15);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Remote {
    objects: Arc<dyn ObjectStore>,
    /// Always `Some` until drop, which shuts it down without blocking (a drop may happen in
    /// an async context, where waiting for a runtime is forbidden).
    rt: Option<tokio::runtime::Runtime>,
    /// Names the store in messages (no credential).
    name: String,
    prefix: String,
}

impl Remote {
    /// A client of the bucket described by `s`. Makes no request.
    pub(crate) fn connect(s: &S3Settings) -> Result<Remote, StoreError> {
        let err = |reason: String| StoreError::ObjectStore {
            store: s.describe(),
            what: "client".into(),
            reason,
            retryable: false,
        };
        let retry = object_store::RetryConfig {
            max_retries: 4,
            retry_timeout: RETRY_TIMEOUT,
            ..object_store::RetryConfig::default()
        };
        let client = object_store::ClientOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_allow_http(s.endpoint.starts_with("http://"));
        let objects = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(s.endpoint.trim_end_matches('/'))
            .with_region(&s.region)
            .with_bucket_name(&s.bucket)
            .with_access_key_id(&s.access_key_id)
            .with_secret_access_key(&s.secret_access_key)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(s.endpoint.starts_with("http://"))
            .with_retry(retry)
            .with_client_options(client)
            .build()
            .map_err(|e| err(e.to_string()))?;
        Remote::over(Arc::new(objects), s.describe(), &s.prefix)
    }

    /// A client of any object store (tests use the in-memory one).
    pub(crate) fn over(objects: Arc<dyn ObjectStore>, name: String, prefix: &str) -> Result<Remote, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("drpair-packs")
            .enable_all()
            .build()
            .map_err(|e| StoreError::ObjectStore {
                store: name.clone(),
                what: "runtime".into(),
                reason: e.to_string(),
                retryable: false,
            })?;
        Ok(Remote { objects, rt: Some(rt), name, prefix: prefix.trim_matches('/').to_string() })
    }

    /// The store's name for messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The object key of a pack: `PREFIX/packs/XX/ID.pack` (XX: the id's first two hex digits).
    pub(crate) fn pack_key(&self, pack: &uuid::Uuid) -> ObjectPath {
        let id = pack.simple().to_string();
        let key = format!("packs/{}/{id}.pack", &id[..2]);
        if self.prefix.is_empty() { ObjectPath::from(key) } else { ObjectPath::from(format!("{}/{key}", self.prefix)) }
    }

    fn error(&self, what: String, e: &object_store::Error) -> StoreError {
        let retryable = !matches!(
            e,
            object_store::Error::NotFound { .. }
                | object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        );
        StoreError::ObjectStore { store: self.name.clone(), what, reason: e.to_string(), retryable }
    }

    /// Uploads `bytes` as `key` in the background and calls `done` with the outcome.
    pub(crate) fn spawn_put(
        &self,
        key: ObjectPath,
        bytes: Bytes,
        done: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) {
        let objects = self.objects.clone();
        let name = self.name.clone();
        self.runtime().spawn(async move {
            let res = objects.put(&key, bytes.into()).await.map(|_| ()).map_err(|e| StoreError::ObjectStore {
                store: name,
                what: format!("PUT {key}"),
                reason: e.to_string(),
                retryable: true,
            });
            done(res);
        });
    }

    /// Bytes `range` of object `key`; None when the object does not exist.
    pub(crate) fn get_range(&self, key: &ObjectPath, range: std::ops::Range<u64>) -> Result<Option<Bytes>, StoreError> {
        let objects = self.objects.clone();
        let k = key.clone();
        let r = range.clone();
        match self.wait(async move { objects.get_range(&k, r).await }) {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(format!("GET {key} bytes {}..{}", range.start, range.end), &e)),
        }
    }

    /// The whole object `key`; None when it does not exist.
    pub(crate) fn get(&self, key: &ObjectPath) -> Result<Option<Bytes>, StoreError> {
        let objects = self.objects.clone();
        let k = key.clone();
        let fetch = async move {
            match objects.get(&k).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            }
        };
        match self.wait(fetch) {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(format!("GET {key}"), &e)),
        }
    }

    /// Uploads `bytes` as `key` and waits for the outcome.
    pub(crate) fn put(&self, key: &ObjectPath, bytes: Bytes) -> Result<(), StoreError> {
        let objects = self.objects.clone();
        let k = key.clone();
        self.wait(async move { objects.put(&k, bytes.into()).await.map(|_| ()) }).map_err(|e| StoreError::ObjectStore {
            store: self.name.clone(),
            what: format!("PUT {key}"),
            reason: e.to_string(),
            retryable: true,
        })
    }

    /// Deletes object `key` (one already gone is no error).
    pub(crate) fn delete(&self, key: &ObjectPath) -> Result<(), StoreError> {
        let objects = self.objects.clone();
        let k = key.clone();
        match self.wait(async move { objects.delete(&k).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(format!("DELETE {key}"), &e)),
        }
    }

    /// The pack objects under this store's prefix: id (None for a key that is not a pack
    /// this store would write), key, size and last modification.
    pub(crate) fn list_packs(&self) -> Result<Vec<Listed>, StoreError> {
        use futures_util::TryStreamExt;
        let objects = self.objects.clone();
        let prefix = self.packs_prefix();
        let p = prefix.clone();
        let metas = self
            .wait(async move { objects.list(Some(&p)).try_collect::<Vec<_>>().await })
            .map_err(|e| self.error(format!("LIST {prefix}"), &e))?;
        Ok(metas
            .into_iter()
            .map(|m| Listed {
                id: self.pack_of_key(&m.location),
                size: m.size,
                modified: std::time::UNIX_EPOCH
                    + Duration::from_millis(u64::try_from(m.last_modified.timestamp_millis()).unwrap_or(0)),
                key: m.location,
            })
            .collect())
    }

    /// The pack id a key names, when it is exactly [`Remote::pack_key`] of that id.
    fn pack_of_key(&self, key: &ObjectPath) -> Option<uuid::Uuid> {
        let name = key.filename()?.strip_suffix(".pack")?;
        let id = uuid::Uuid::try_parse(name).ok()?;
        (self.pack_key(&id) == *key).then_some(id)
    }

    fn packs_prefix(&self) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from("packs")
        } else {
            ObjectPath::from(format!("{}/packs", self.prefix))
        }
    }

    /// Number of pack objects and their bytes under this store's prefix.
    pub(crate) fn count_packs(&self) -> Result<(u64, u64), StoreError> {
        use futures_util::TryStreamExt;
        let objects = self.objects.clone();
        let prefix = self.packs_prefix();
        let p = prefix.clone();
        self.wait(async move {
            objects.list(Some(&p)).try_fold((0u64, 0u64), |(n, b), m| async move { Ok((n + 1, b + m.size)) }).await
        })
        .map_err(|e| self.error(format!("LIST {prefix}"), &e))
    }

    /// Runs `fut` on the client's runtime and waits for it (from any thread, async or not).
    pub(crate) fn wait<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().expect("the packs runtime lives as long as the store")
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("taken only by drop")
    }
}

/// One object of a listing.
pub(crate) struct Listed {
    pub id: Option<uuid::Uuid>,
    pub key: ObjectPath,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

impl Drop for Remote {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
