//! Chat attachments: uploads checked by their bytes, not by what the client says.
//!
//! The type is sniffed from the magic numbers (`infer`); a declared content type that names
//! another type is refused (422 on `file`), so a script cannot be uploaded as an "image".
//! Allowed: PNG, JPEG, GIF and WebP images (≤ 10 MB, a ≤ 320 px PNG thumbnail and the size
//! read by the `image` crate, on the blocking pool, with decoding limits against
//! decompression bombs); audio (WebM/Ogg Opus, MP4/AAC, MPEG; a voice note when it comes with
//! `duration_ms`, optionally a `waveform` of ≤ 128 values 0–100); PDF, ZIP, office documents
//! and UTF-8 text (≤ 25 MB). Files are stored under `chat/{org}/{id}` in the blob store.
//!
//! View-once files are served once to each recipient (the uploader may always open theirs):
//! the first `GET` records the view, later ones answer 410 `viewed`. They get no thumbnail.

use std::io::Cursor;

use bytes::Bytes;
use http::StatusCode;
use wamage_identity::Principal;
use wamage_kernel::Problem;
use wamage_platform::blob::Blob;

use super::{Chat, db_err};
use crate::{
    http::AttachmentOut,
    model::AttachmentId,
    store::{self, AttachmentRow},
};

/// Largest file.
pub const ATTACHMENT_MAX: usize = 25 * 1024 * 1024;
/// Largest image.
pub const IMAGE_MAX: usize = 10 * 1024 * 1024;
const THUMB_SIZE: u32 = 320;
const MAX_PIXELS_SIDE: u32 = 12_000;
const WAVEFORM_MAX: usize = 128;
const NAME_MAX: usize = 255;
const DURATION_MAX_MS: i64 = 4 * 3600 * 1000;

/// A multipart upload as received.
#[derive(Debug, Default)]
pub struct Upload {
    pub file_name: Option<String>,
    /// The content type the client declared for the file part.
    pub content_type: Option<String>,
    pub file: Option<Bytes>,
    pub view_once: Option<String>,
    pub duration_ms: Option<String>,
    pub waveform: Option<String>,
}

/// What the bytes are.
struct Sniffed {
    mime: &'static str,
    kind: Family,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Image,
    Audio,
    Document,
    Text,
}

fn sniff(bytes: &[u8]) -> Option<Sniffed> {
    let t = infer::get(bytes);
    let mime = match t {
        Some(t) => t.mime_type(),
        None => {
            // No magic number: plain UTF-8 text (without NULs) is the one thing allowed.
            let head = &bytes[..bytes.len().min(64 * 1024)];
            let text = match std::str::from_utf8(head) {
                Ok(_) => true,
                // A multi-byte character cut at the window's end is still text.
                Err(e) => e.error_len().is_none(),
            };
            return (text && !head.contains(&0)).then_some(Sniffed {
                mime: "text/plain",
                kind: Family::Text,
            });
        }
    };
    let kind = match mime {
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" => Family::Image,
        "audio/mpeg" | "audio/ogg" | "audio/m4a" | "audio/aac" | "audio/x-aac" | "video/webm"
        | "video/mp4" | "audio/webm" | "audio/mp4" | "audio/opus" => Family::Audio,
        "application/pdf"
        | "application/zip"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        | "application/vnd.oasis.opendocument.text"
        | "application/vnd.oasis.opendocument.spreadsheet"
        | "application/vnd.oasis.opendocument.presentation"
        | "application/msword"
        | "application/vnd.ms-excel"
        | "application/vnd.ms-powerpoint" => Family::Document,
        _ => return None,
    };
    Some(Sniffed { mime, kind })
}

/// The content type a file is served with: audio containers as audio.
fn served_type(s: &Sniffed) -> &'static str {
    match s.mime {
        "video/webm" => "audio/webm",
        "video/mp4" | "audio/m4a" => "audio/mp4",
        "text/plain" => "text/plain; charset=utf-8",
        other => other,
    }
}

/// Whether the declared type may describe what the bytes are: the same type, an alias of
/// it, or the generic `application/octet-stream`.
fn declared_matches(declared: &str, s: &Sniffed) -> bool {
    let declared = declared
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if declared.is_empty() || declared == "application/octet-stream" || declared == s.mime {
        return true;
    }
    match s.kind {
        Family::Image => declared == "image/jpg" && s.mime == "image/jpeg",
        // Browsers label MediaRecorder output audio/webm, audio/ogg, audio/mp4 …; the
        // containers are sniffed as audio or video.
        Family::Audio => {
            declared.starts_with("audio/")
                || (declared.starts_with("video/") && s.mime.starts_with("video/"))
        }
        Family::Document => {
            // Office documents are ZIP files; some clients say so.
            declared == "application/zip" && s.mime.starts_with("application/vnd.")
                || declared == "application/x-zip-compressed" && s.mime == "application/zip"
                || declared == "application/x-pdf" && s.mime == "application/pdf"
        }
        Family::Text => declared.starts_with("text/") || declared == "application/json",
    }
}

fn bad_file(message: impl Into<String>) -> Problem {
    Problem::invalid_field("file", message)
}

/// Reads an image's size and makes its thumbnail (PNG), on the blocking pool.
async fn thumbnail(bytes: Bytes, make_thumb: bool) -> Result<(u32, u32, Option<Vec<u8>>), Problem> {
    tokio::task::spawn_blocking(move || {
        let mut reader = image::ImageReader::new(Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|_| bad_file("is not a readable image"))?;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_PIXELS_SIDE);
        limits.max_image_height = Some(MAX_PIXELS_SIDE);
        limits.max_alloc = Some(256 * 1024 * 1024);
        reader.limits(limits);
        let img = reader
            .decode()
            .map_err(|_| bad_file("is not a readable image (or is larger than 12000 px)"))?;
        let (w, h) = (img.width(), img.height());
        let thumb = if make_thumb {
            let t = img.thumbnail(THUMB_SIZE, THUMB_SIZE);
            let mut out = Vec::new();
            t.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
                .map_err(Problem::internal)?;
            Some(out)
        } else {
            None
        };
        Ok((w, h, thumb))
    })
    .await
    .map_err(Problem::internal)?
}

fn parse_bool(field: &str, v: Option<&str>) -> Result<bool, Problem> {
    match v.map(str::trim) {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(Problem::invalid_field(field, "must be true or false")),
    }
}

/// Cleans a client file name: the last path segment, no control characters, ≤ 255 chars.
fn clean_name(raw: Option<&str>, fallback: &str) -> String {
    let base = raw
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(NAME_MAX)
        .collect::<String>();
    let base = base.trim();
    if base.is_empty() {
        fallback.to_owned()
    } else {
        base.to_owned()
    }
}

pub(super) fn url(id: AttachmentId) -> String {
    format!("/api/v1/chat/attachments/{id}")
}

/// The API view of an attachment; `viewed`: the viewer already opened it (view-once).
pub(super) fn out(a: AttachmentRow, viewed: bool) -> AttachmentOut {
    AttachmentOut {
        id: a.id,
        kind: a.kind,
        name: a.name,
        content_type: a.content_type,
        size: a.size,
        width: a.width,
        height: a.height,
        duration_ms: a.duration_ms,
        waveform: a.waveform.map(|w| w.0),
        view_once: a.view_once,
        viewed,
        url: url(a.id),
        thumbnail_url: a
            .thumb_key
            .as_ref()
            .map(|_| format!("{}/thumbnail", url(a.id))),
    }
}

impl Chat {
    /// Stores an upload for the caller's next message.
    pub async fn upload(&self, who: &Principal, up: Upload) -> Result<AttachmentOut, Problem> {
        let file = up.file.ok_or_else(|| bad_file("is required"))?;
        if file.is_empty() {
            return Err(bad_file("is empty"));
        }
        if file.len() > ATTACHMENT_MAX {
            return Err(Problem::payload_too_large(ATTACHMENT_MAX)
                .with_field("file", "must be at most 25 MB"));
        }
        let sniffed = sniff(&file).ok_or_else(|| {
            Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_file_type",
                "This type of file cannot be sent",
            )
            .with_field(
                "file",
                "must be an image (PNG, JPEG, GIF, WebP), audio, PDF, text, ZIP or office document",
            )
        })?;
        if let Some(declared) = up.content_type.as_deref()
            && !declared_matches(declared, &sniffed)
        {
            return Err(bad_file(format!(
                "is declared as {declared} but its content is {}",
                sniffed.mime
            )));
        }
        if sniffed.kind == Family::Image && file.len() > IMAGE_MAX {
            return Err(Problem::payload_too_large(IMAGE_MAX)
                .with_field("file", "images must be at most 10 MB"));
        }
        let view_once = parse_bool("view_once", up.view_once.as_deref())?;
        let duration_ms = match up
            .duration_ms
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(d) => match d.parse::<i64>() {
                Ok(n) if (0..=DURATION_MAX_MS).contains(&n) => Some(n),
                _ => {
                    return Err(Problem::invalid_field(
                        "duration_ms",
                        "must be a whole number of milliseconds up to 4 hours",
                    ));
                }
            },
        };
        let waveform = match up
            .waveform
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(w) => match serde_json::from_str::<Vec<u8>>(w) {
                Ok(v) if v.len() <= WAVEFORM_MAX && v.iter().all(|x| *x <= 100) => Some(v),
                _ => {
                    return Err(Problem::invalid_field(
                        "waveform",
                        "must be a JSON array of at most 128 numbers from 0 to 100",
                    ));
                }
            },
        };
        if (duration_ms.is_some() || waveform.is_some()) && sniffed.kind != Family::Audio {
            let field = if duration_ms.is_some() {
                "duration_ms"
            } else {
                "waveform"
            };
            return Err(Problem::invalid_field(field, "is only for audio files"));
        }
        let kind = match sniffed.kind {
            Family::Image => "image",
            Family::Audio if duration_ms.is_some() => "voice",
            Family::Audio => "audio",
            Family::Document | Family::Text => "file",
        };
        let (width, height, thumb) = if sniffed.kind == Family::Image {
            let (w, h, t) = thumbnail(file.clone(), !view_once).await?;
            (Some(i64::from(w)), Some(i64::from(h)), t)
        } else {
            (None, None, None)
        };
        let id = AttachmentId::new();
        let key = format!("chat/{}/{id}", who.org_id);
        let thumb_key = thumb.as_ref().map(|_| format!("{key}-thumb"));
        let content_type = served_type(&sniffed);
        let name = clean_name(up.file_name.as_deref(), kind);
        let size = file.len() as i64;
        self.blobs
            .put(&key, file, content_type)
            .await
            .map_err(Problem::internal)?;
        if let (Some(t), Some(k)) = (thumb, &thumb_key)
            && let Err(e) = self.blobs.put(k, Bytes::from(t), "image/png").await
        {
            self.delete_blobs(std::slice::from_ref(&key)).await;
            return Err(Problem::internal(e));
        }
        let row = store::NewAttachment {
            id,
            uploader_id: who.user_id,
            kind,
            name: &name,
            content_type,
            size,
            width,
            height,
            duration_ms,
            waveform: waveform.as_deref(),
            view_once,
            blob_key: &key,
            thumb_key: thumb_key.as_deref(),
            now: self.now(),
        };
        if let Err(e) = store::insert_attachment(&self.db, who.org_id, &row).await {
            let keys: Vec<String> = std::iter::once(key.clone())
                .chain(thumb_key.clone())
                .collect();
            self.delete_blobs(&keys).await;
            return Err(db_err(e));
        }
        let row = store::attachment(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::internal("attachment vanished after insert"))?;
        Ok(out(row, false))
    }

    /// An attachment the caller may open: their own unsent upload, or a file of a message in
    /// a channel they may read (a locked channel needs its unlock token).
    async fn openable(
        &self,
        who: &Principal,
        id: AttachmentId,
        unlock: &[String],
    ) -> Result<AttachmentRow, Problem> {
        let a = store::attachment(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("attachment"))?;
        match a.channel_id {
            None if a.uploader_id == who.user_id => {}
            None => return Err(Problem::not_found("attachment")),
            Some(c) => {
                self.readable(who, c, unlock).await?;
            }
        }
        Ok(a)
    }

    /// The bytes of an attachment, with its name. A view-once file opens once per recipient.
    pub async fn attachment_file(
        &self,
        who: &Principal,
        id: AttachmentId,
        unlock: &[String],
    ) -> Result<(Blob, String, bool), Problem> {
        let a = self.openable(who, id, unlock).await?;
        if a.view_once
            && a.uploader_id != who.user_id
            && !store::record_view(&self.db, a.id, who.user_id, self.now())
                .await
                .map_err(db_err)?
        {
            return Err(Problem::gone(
                "viewed",
                "This view-once file was already opened",
            ));
        }
        let blob = self
            .blobs
            .get(&a.blob_key)
            .await
            .map_err(Problem::internal)?
            .ok_or_else(|| Problem::not_found("attachment"))?;
        Ok((blob, a.name, a.view_once))
    }

    pub async fn attachment_thumbnail(
        &self,
        who: &Principal,
        id: AttachmentId,
        unlock: &[String],
    ) -> Result<Blob, Problem> {
        let a = self.openable(who, id, unlock).await?;
        let key = a.thumb_key.ok_or_else(|| Problem::not_found("thumbnail"))?;
        self.blobs
            .get(&key)
            .await
            .map_err(Problem::internal)?
            .ok_or_else(|| Problem::not_found("thumbnail"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_and_declared_types() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let s = sniff(png).unwrap();
        assert_eq!(s.mime, "image/png");
        assert!(declared_matches("image/png", &s));
        assert!(declared_matches("application/octet-stream", &s));
        assert!(!declared_matches("application/pdf", &s));
        assert!(!declared_matches("image/jpeg", &s));
        let pdf = sniff(b"%PDF-1.7\n").unwrap();
        assert!(!declared_matches("image/png", &pdf));
        let text = sniff("olá, mundo\n".as_bytes()).unwrap();
        assert_eq!(text.mime, "text/plain");
        assert!(!declared_matches("image/png", &text));
        assert!(sniff(b"\0\x01\x02binary").is_none());
        assert!(
            sniff(b"MZ\x90\0\x03\0\0\0").is_none(),
            "executables are refused"
        );
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name(Some("../../etc/passwd"), "file"), "passwd");
        assert_eq!(clean_name(Some("C:\\x\\a\"b.txt"), "file"), "ab.txt");
        assert_eq!(clean_name(None, "image"), "image");
    }
}
