//! File storage: media, imports, exports. Local directory now, S3-compatible later.
//!
//! [`LocalBlobStore`] layout under its root:
//!
//! ```text
//! objects/<key>   the bytes
//! types/<key>     the content type (a small sidecar file)
//! tmp/            files being written
//! ```
//!
//! Keys are checked before they touch the file system (`[A-Za-z0-9._/-]`, at most 512
//! characters and 255 between two `/`, no leading `/`, no empty, `.` or `..` segment, no `..` at
//! all), so a key can never
//! name a path outside the root. A write goes to `tmp/` and is then renamed into place, so a
//! reader sees the old object or the new one, never half of one. The sidecar is renamed first,
//! the object last: an object that is visible always has a content type.

use std::{
    fmt,
    io::ErrorKind,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// Stores `bytes` under `key`, replacing any previous object.
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> anyhow::Result<()>;
    /// The object under `key`, `None` if there is none.
    async fn get(&self, key: &str) -> anyhow::Result<Option<Blob>>;
    /// Removes the object; removing a missing object is not an error.
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Up to `max_len` bytes of the object from byte `offset` (fewer at the end, none past
    /// it), `None` if there is no object: lets a reader stream a large file in windows
    /// without holding all of it. The default reads the whole object; stores override it.
    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        max_len: usize,
    ) -> anyhow::Result<Option<Bytes>> {
        Ok(self.get(key).await?.map(|b| {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(b.bytes.len());
            let end = start.saturating_add(max_len).min(b.bytes.len());
            b.bytes.slice(start..end)
        }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub bytes: Bytes,
    pub content_type: String,
}

pub type SharedBlobStore = Arc<dyn BlobStore>;

/// Longest accepted key, in bytes (keys are ASCII).
pub const MAX_KEY_LEN: usize = 512;

/// Longest accepted segment between two `/`: file systems refuse longer file names.
pub const MAX_SEGMENT_LEN: usize = 255;

/// Content type returned for an object whose sidecar is missing.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Recognises an uploaded image by its first bytes, never by its name or declared type (an SVG
/// sent as `image/png` must not be served as an image it is not); returns (extension, content
/// type) for PNG, JPEG, GIF and WebP, the types every browser shows.
pub fn sniff_image(b: &[u8]) -> Option<(&'static str, &'static str)> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(("png", "image/png"))
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(("jpg", "image/jpeg"))
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some(("gif", "image/gif"))
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some(("webp", "image/webp"))
    } else {
        None
    }
}

/// Checks a blob key; see the module docs for the rules.
pub fn validate_key(key: &str) -> anyhow::Result<()> {
    if key.is_empty() {
        bail!("invalid blob key: empty");
    }
    if key.len() > MAX_KEY_LEN {
        bail!("invalid blob key: longer than {MAX_KEY_LEN} characters");
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')))
    {
        bail!("invalid blob key {key:?}: character {c:?} is not allowed");
    }
    if key.starts_with('/') {
        bail!("invalid blob key {key:?}: leading '/'");
    }
    if key.contains("..") {
        bail!("invalid blob key {key:?}: '..' is not allowed");
    }
    if key
        .split('/')
        .any(|segment| segment.is_empty() || segment == ".")
    {
        bail!("invalid blob key {key:?}: empty or '.' path segment");
    }
    if key
        .split('/')
        .any(|segment| segment.len() > MAX_SEGMENT_LEN)
    {
        bail!("invalid blob key: a path segment is longer than {MAX_SEGMENT_LEN} characters");
    }
    Ok(())
}

fn validate_content_type(content_type: &str) -> anyhow::Result<()> {
    if content_type.is_empty()
        || content_type.len() > 255
        || content_type.chars().any(|c| c.is_control())
    {
        bail!("invalid content type {content_type:?}");
    }
    Ok(())
}

/// Blobs in a local directory (the embedded default).
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// Uses (and creates if needed) `root`.
    pub fn new(root: PathBuf) -> anyhow::Result<Self> {
        for dir in ["objects", "types", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("failed to create blob directory {}", path.display()))?;
        }
        Ok(Self { root })
    }

    fn object_path(&self, key: &str) -> PathBuf {
        self.root.join("objects").join(key)
    }

    fn type_path(&self, key: &str) -> PathBuf {
        self.root.join("types").join(key)
    }

    /// Writes `bytes` to a fresh temp file and renames it to `dest`.
    async fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
        let tmp = self
            .root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .context("failed to create temp blob file")?;
            file.write_all(bytes)
                .await
                .context("failed to write temp blob file")?;
            file.sync_all()
                .await
                .context("failed to sync temp blob file")?;
            drop(file);
            tokio::fs::rename(&tmp, dest)
                .await
                .with_context(|| format!("failed to move blob into {}", dest.display()))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

async fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("failed to remove {}", path.display())),
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> anyhow::Result<()> {
        validate_key(key)?;
        validate_content_type(content_type)?;
        self.write_atomic(&self.type_path(key), content_type.as_bytes())
            .await?;
        self.write_atomic(&self.object_path(key), &bytes).await
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Blob>> {
        validate_key(key)?;
        let path = self.object_path(key);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("failed to read blob {}", path.display()));
            }
        };
        let content_type = match tokio::fs::read_to_string(self.type_path(key)).await {
            Ok(content_type) => content_type,
            Err(e) if e.kind() == ErrorKind::NotFound => DEFAULT_CONTENT_TYPE.to_owned(),
            Err(e) => return Err(e).context("failed to read blob content type"),
        };
        Ok(Some(Blob {
            bytes,
            content_type,
        }))
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        max_len: usize,
    ) -> anyhow::Result<Option<Bytes>> {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        validate_key(key)?;
        let path = self.object_path(key);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("failed to open blob {}", path.display()));
            }
        };
        let len = file.metadata().await.context("failed to stat blob")?.len();
        let want = usize::try_from(len.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(max_len);
        let mut buf = Vec::with_capacity(want);
        if want > 0 {
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .context("failed to seek in blob")?;
            (&mut file)
                .take(want as u64)
                .read_to_end(&mut buf)
                .await
                .with_context(|| format!("failed to read blob {}", path.display()))?;
        }
        Ok(Some(Bytes::from(buf)))
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        validate_key(key)?;
        // Object first: once it is gone the blob is gone, whatever happens to the sidecar.
        remove_if_exists(&self.object_path(key)).await?;
        remove_if_exists(&self.type_path(key)).await
    }
}
