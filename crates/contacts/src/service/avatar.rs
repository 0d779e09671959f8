//! Contact photos, stored like member avatars: the image type is judged by its first bytes (never
//! by the name or the declared type, so an SVG posing as a PNG is refused), each upload gets a new
//! blob key `contact-avatars/{org}/{contact}/{random}.{ext}`, and the photo is served without
//! authentication at `/api/v1/contact-avatars/{org}/{contact}/{random}.{ext}`: the random part
//! makes the URL unguessable, and it works in an `<img src>`, which sends no bearer token. A
//! replaced or removed photo's blob is deleted, so its old URL stops answering.

use bytes::Bytes;
use serde_json::json;
use wamage_identity::Principal;
use wamage_kernel::{OrgId, Problem};
use wamage_platform::blob::{Blob, sniff_image};

use super::{Contacts, db_err};
use crate::{http::ContactOut, model::ContactId, store};

/// Largest accepted photo.
pub const AVATAR_MAX_BYTES: usize = 2 * 1024 * 1024;
const KEY_PREFIX: &str = "contact-avatars/";

/// The public URL of a photo's blob key.
pub(crate) fn avatar_url(key: Option<&str>) -> Option<String> {
    key.and_then(|k| k.strip_prefix(KEY_PREFIX))
        .map(|rest| format!("/api/v1/contact-avatars/{rest}"))
}

fn new_key(org: OrgId, id: ContactId, ext: &str) -> String {
    // A v4 UUID is 122 bits from the operating system's CSPRNG.
    let random = uuid::Uuid::new_v4().simple();
    format!("{KEY_PREFIX}{org}/{id}/{random}.{ext}")
}

fn too_large() -> Problem {
    Problem::payload_too_large(AVATAR_MAX_BYTES).with_field("file", "must be at most 2 MB")
}

impl Contacts {
    /// Stores a new photo for the contact (PNG, JPEG, GIF or WebP, at most 2 MB) and deletes the
    /// one it replaces.
    pub async fn set_avatar(
        &self,
        who: &Principal,
        id: ContactId,
        bytes: Bytes,
    ) -> Result<ContactOut, Problem> {
        if bytes.len() > AVATAR_MAX_BYTES {
            return Err(too_large());
        }
        let Some((ext, content_type)) = sniff_image(&bytes) else {
            return Err(Problem::invalid_field(
                "file",
                "must be a PNG, JPEG, GIF or WebP image",
            ));
        };
        // Answer 404 for another organisation's contact before anything is stored.
        store::get_contact(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("contact"))?;
        let key = new_key(who.org_id, id, ext);
        self.blobs
            .put(&key, bytes, content_type)
            .await
            .map_err(Problem::internal)?;
        match self.replace_avatar(who, id, Some(&key)).await {
            Ok(out) => Ok(out),
            Err(p) => {
                self.drop_blob(&key).await;
                Err(p)
            }
        }
    }

    /// Removes the contact's photo; removing a photo that is not there changes nothing.
    pub async fn clear_avatar(&self, who: &Principal, id: ContactId) -> Result<(), Problem> {
        self.replace_avatar(who, id, None).await.map(|_| ())
    }

    async fn replace_avatar(
        &self,
        who: &Principal,
        id: ContactId,
        key: Option<&str>,
    ) -> Result<ContactOut, Problem> {
        let org = who.org_id;
        let mut tx = self.begin().await?;
        let old = store::set_avatar(&mut tx, org, id, key, self.now())
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("contact"))?;
        if old.as_deref() == key {
            // Nothing to write: no new `updated_at`, no event.
            drop(tx);
            return self.contact(who, id).await;
        }
        let out = self.load_tx(&mut tx, org, id).await?;
        tx.commit().await.map_err(db_err)?;
        if let Some(old) = old {
            self.drop_blob(&old).await;
        }
        self.forget(org).await;
        self.publish(
            org,
            "wamage.contact.updated",
            json!({ "contact": out, "changed": ["avatar_url"] }),
        )
        .await;
        Ok(out)
    }

    /// Copies another contact's photo under a new key of contact `to` (a merge survivor taking
    /// the merged contact's photo); `None` when the blob is already gone.
    pub(super) async fn copy_avatar(
        &self,
        org: OrgId,
        to: ContactId,
        from_key: &str,
    ) -> Result<Option<String>, Problem> {
        let Some(blob) = self.blobs.get(from_key).await.map_err(Problem::internal)? else {
            return Ok(None);
        };
        let Some((ext, content_type)) = sniff_image(&blob.bytes) else {
            return Ok(None);
        };
        let key = new_key(org, to, ext);
        self.blobs
            .put(&key, blob.bytes, content_type)
            .await
            .map_err(Problem::internal)?;
        Ok(Some(key))
    }

    /// Deletes a photo's blob that no contact points to any more; a failure is logged (the blob
    /// is orphaned, nothing a user sees breaks).
    pub(super) async fn drop_blob(&self, key: &str) {
        if let Err(e) = self.blobs.delete(key).await {
            tracing::warn!(error = %e, key, "failed to delete contact photo");
        }
    }

    /// A photo by its public path. Not scoped to a caller: the random name is the secret.
    pub async fn avatar(&self, org: &str, contact: &str, name: &str) -> Result<Blob, Problem> {
        let not_found = || Problem::not_found("photo");
        let org: OrgId = org.parse().map_err(|_| not_found())?;
        let contact: ContactId = contact.parse().map_err(|_| not_found())?;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
        if !valid {
            return Err(not_found());
        }
        self.blobs
            .get(&format!("{KEY_PREFIX}{org}/{contact}/{name}"))
            .await
            .map_err(Problem::internal)?
            .ok_or_else(not_found)
    }
}

#[cfg(test)]
mod tests {
    use super::avatar_url;

    #[test]
    fn urls_name_the_key_without_its_prefix() {
        assert_eq!(
            avatar_url(Some("contact-avatars/o/c/ab12.png")).as_deref(),
            Some("/api/v1/contact-avatars/o/c/ab12.png")
        );
        assert_eq!(avatar_url(None), None);
        assert_eq!(avatar_url(Some("avatars/x.png")), None);
    }
}
