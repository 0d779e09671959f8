//! The web UI, embedded in the binary at build time from `web/dist` (read from disk in debug
//! builds, so `npm run build` is enough to refresh it). Unknown paths fall back to `index.html`
//! so the browser router can handle them — except under the reserved API prefixes, which answer
//! a 404 problem instead of a page.

use axum::{extract::Request, response::Response};
use rust_embed::RustEmbed;

use crate::http::{RESERVED_PREFIXES, bytes_response, not_found};

#[derive(RustEmbed)]
// Relative to this crate's directory.
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Assets;

const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>Wamage</title>\
<body style=\"font-family:sans-serif;max-width:40rem;margin:4rem auto\"><h1>Wamage is running</h1>\
<p>The web UI was not built into this binary. Build it with <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code> \
and restart (or rebuild the binary). The API is at <a href=\"/api/docs\">/api/docs</a>.</p>";

fn is_reserved(path: &str) -> bool {
    RESERVED_PREFIXES
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

pub async fn serve(req: Request) -> Response {
    let path = req.uri().path();
    if is_reserved(path) {
        return not_found();
    }
    let file = path.trim_start_matches('/');
    if !file.is_empty()
        && let Some(asset) = Assets::get(file)
    {
        let mime = mime_guess::from_path(file).first_or_octet_stream();
        // Vite fingerprints everything under assets/, so those never change.
        let cache = if file.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return bytes_response(mime.as_ref(), cache, asset.data.into_owned());
    }
    // A missing file with an extension is a real 404, not a page of the app.
    let looks_like_file = file
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'));
    if looks_like_file {
        return not_found();
    }
    match Assets::get("index.html") {
        Some(index) => bytes_response(
            "text/html; charset=utf-8",
            "no-cache",
            index.data.into_owned(),
        ),
        None => bytes_response(
            "text/html; charset=utf-8",
            "no-cache",
            NOT_BUILT.as_bytes().to_vec(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::is_reserved;

    #[test]
    fn reserved_prefixes_are_never_shadowed() {
        for p in [
            "/api",
            "/api/v1/nope",
            "/metrics",
            "/health",
            "/ready",
            "/socket.io/",
            "/webhooks/x",
        ] {
            assert!(is_reserved(p), "{p}");
        }
        for p in ["/", "/inbox", "/settings/profile", "/apiary", "/healthy"] {
            assert!(!is_reserved(p), "{p}");
        }
    }
}
