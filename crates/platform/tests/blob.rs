#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use wamage_platform::blob::{Blob, BlobStore, LocalBlobStore, SharedBlobStore, sniff_image};

fn store() -> (tempfile::TempDir, SharedBlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(dir.path().join("blobs")).unwrap();
    (dir, std::sync::Arc::new(store))
}

#[tokio::test]
async fn put_then_get_returns_bytes_and_content_type() {
    let (_dir, store) = store();
    let bytes = Bytes::from_static(b"\x89PNG\r\n\x1a\n\0binary");
    store
        .put("org1/media/2024/photo_1.png", bytes.clone(), "image/png")
        .await
        .unwrap();
    let got = store.get("org1/media/2024/photo_1.png").await.unwrap();
    assert_eq!(
        got,
        Some(Blob {
            bytes,
            content_type: "image/png".into()
        })
    );
    assert_eq!(store.get("org1/media/2024/other.png").await.unwrap(), None);
}

#[tokio::test]
async fn put_replaces_bytes_and_content_type() {
    let (dir, store) = store();
    store
        .put("exports/a.csv", Bytes::from_static(b"a,b\n"), "text/csv")
        .await
        .unwrap();
    store
        .put(
            "exports/a.csv",
            Bytes::from_static(b"{}"),
            "application/json; charset=utf-8",
        )
        .await
        .unwrap();
    let got = store.get("exports/a.csv").await.unwrap().unwrap();
    assert_eq!(got.bytes, Bytes::from_static(b"{}"));
    assert_eq!(got.content_type, "application/json; charset=utf-8");
    // Writes went through temp files that were all renamed away.
    let leftovers = std::fs::read_dir(dir.path().join("blobs/tmp"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn empty_blob_round_trips() {
    let (_dir, store) = store();
    store
        .put("empty", Bytes::new(), "text/plain")
        .await
        .unwrap();
    let got = store.get("empty").await.unwrap().unwrap();
    assert!(got.bytes.is_empty());
    assert_eq!(got.content_type, "text/plain");
}

#[tokio::test]
async fn delete_removes_and_is_idempotent() {
    let (_dir, store) = store();
    store
        .put("a/b.txt", Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap();
    store
        .put("a/c.txt", Bytes::from_static(b"y"), "text/plain")
        .await
        .unwrap();
    store.delete("a/b.txt").await.unwrap();
    assert_eq!(store.get("a/b.txt").await.unwrap(), None);
    assert!(store.get("a/c.txt").await.unwrap().is_some());
    store.delete("a/b.txt").await.unwrap();
    store.delete("never/existed").await.unwrap();
}

#[tokio::test]
async fn traversal_and_malformed_keys_are_rejected() {
    let (dir, store) = store();
    // A file right next to the store that a traversal would reach.
    std::fs::write(dir.path().join("secret"), b"top secret").unwrap();
    let long = format!("{}/{}/{}", "a".repeat(255), "a".repeat(255), "a");
    assert_eq!(long.len(), 513);
    let long_segment = "a".repeat(256);
    let bad = [
        "",
        "../secret",
        "../../secret",
        "objects/../../secret",
        "a/../../secret",
        "..",
        "/etc/passwd",
        "a//b",
        "a/./b",
        "./a",
        "a/",
        "a\\..\\secret",
        "a b",
        "a\0b",
        "ünïcode",
        "a?b",
        "a%2e%2e",
        long.as_str(),
        long_segment.as_str(),
    ];
    for key in bad {
        assert!(store.get(key).await.is_err(), "get accepted {key:?}");
        assert!(
            store
                .put(key, Bytes::from_static(b"pwned"), "text/plain")
                .await
                .is_err(),
            "put accepted {key:?}"
        );
        assert!(store.delete(key).await.is_err(), "delete accepted {key:?}");
    }
    assert_eq!(
        std::fs::read(dir.path().join("secret")).unwrap(),
        b"top secret"
    );
    // The longest allowed key and every allowed character work.
    let max = format!("{}/{}/{}", "b".repeat(255), "b".repeat(254), "b");
    assert_eq!(max.len(), 512);
    store
        .put(&max, Bytes::from_static(b"ok"), "text/plain")
        .await
        .unwrap();
    store
        .put("Az09._-/x.y", Bytes::from_static(b"ok"), "text/plain")
        .await
        .unwrap();
    assert!(store.get("Az09._-/x.y").await.unwrap().is_some());
}

#[tokio::test]
async fn bad_content_type_is_rejected() {
    let (_dir, store) = store();
    for content_type in ["", "text/plain\r\nX-Evil: 1"] {
        assert!(
            store
                .put("k", Bytes::from_static(b"x"), content_type)
                .await
                .is_err()
        );
    }
    assert_eq!(store.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn blobs_survive_a_new_store_on_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let first = LocalBlobStore::new(dir.path().to_path_buf()).unwrap();
    first
        .put("k", Bytes::from_static(b"kept"), "text/plain")
        .await
        .unwrap();
    drop(first);
    let second = LocalBlobStore::new(dir.path().to_path_buf()).unwrap();
    let got = second.get("k").await.unwrap().unwrap();
    assert_eq!(got.bytes, Bytes::from_static(b"kept"));
}

#[tokio::test]
async fn ranges_read_windows_of_an_object() {
    let (_dir, store) = store();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    store
        .put("imports/big.csv", Bytes::from(bytes.clone()), "text/csv")
        .await
        .unwrap();
    let got = store
        .get_range("imports/big.csv", 1000, 300)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got[..], &bytes[1000..1300]);
    // A window running past the end is cut at the end; one starting past it is empty.
    let tail = store
        .get_range("imports/big.csv", 9_900, 4096)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&tail[..], &bytes[9_900..]);
    let past = store
        .get_range("imports/big.csv", 20_000, 10)
        .await
        .unwrap()
        .unwrap();
    assert!(past.is_empty());
    assert_eq!(
        store.get_range("imports/none.csv", 0, 10).await.unwrap(),
        None
    );
    assert!(store.get_range("../etc/passwd", 0, 10).await.is_err());
}

#[test]
fn images_are_recognised_by_their_bytes() {
    assert_eq!(
        sniff_image(b"\x89PNG\r\n\x1a\nrest").map(|x| x.0),
        Some("png")
    );
    assert_eq!(
        sniff_image(&[0xFF, 0xD8, 0xFF, 0xE0]).map(|x| x.1),
        Some("image/jpeg")
    );
    assert_eq!(sniff_image(b"GIF89a..").map(|x| x.1), Some("image/gif"));
    assert_eq!(
        sniff_image(b"RIFF\0\0\0\0WEBPVP8 ").map(|x| x.0),
        Some("webp")
    );
    assert_eq!(sniff_image(b"<svg onload=alert(1)>"), None);
    assert_eq!(sniff_image(b"RIFF\0\0\0\0WAVE"), None);
    assert_eq!(sniff_image(b""), None);
}
