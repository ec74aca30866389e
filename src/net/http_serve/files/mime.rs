//! Content-Type from a file's extension, and which types are text (worth
//! gzip with `compress`). A short table of what a folder served to a
//! browser usually holds; anything else is application/octet-stream.

/// The Content-Type for a file name.
pub fn content_type(name: &[u8]) -> &'static str {
    let ext = match name.iter().rposition(|b| *b == b'.') {
        Some(dot) => name[dot + 1..].to_ascii_lowercase(),
        None => return "application/octet-stream",
    };
    match ext.as_slice() {
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"txt" | b"text" | b"log" | b"md" | b"rhai" | b"rs" | b"py" | b"sh" | b"c" | b"h"
        | b"toml" | b"yaml" | b"yml" | b"ini" | b"conf" => "text/plain; charset=utf-8",
        b"css" => "text/css; charset=utf-8",
        b"js" | b"mjs" => "text/javascript; charset=utf-8",
        b"json" | b"map" => "application/json",
        b"xml" => "application/xml",
        b"csv" => "text/csv; charset=utf-8",
        b"svg" => "image/svg+xml",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"webp" => "image/webp",
        b"ico" => "image/x-icon",
        b"avif" => "image/avif",
        b"pdf" => "application/pdf",
        b"wasm" => "application/wasm",
        b"woff" => "font/woff",
        b"woff2" => "font/woff2",
        b"ttf" => "font/ttf",
        b"mp3" => "audio/mpeg",
        b"ogg" => "audio/ogg",
        b"wav" => "audio/wav",
        b"mp4" => "video/mp4",
        b"webm" => "video/webm",
        b"zip" => "application/zip",
        b"gz" => "application/gzip",
        b"tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

/// Is this type text that gzip shrinks (and that is not compressed already)?
pub fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/xml")
        || content_type.starts_with("image/svg+xml")
        || content_type.starts_with("application/wasm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension() {
        assert_eq!(content_type(b"index.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type(b"a.tar.gz"), "application/gzip");
        assert_eq!(content_type(b"noext"), "application/octet-stream");
        assert_eq!(content_type(b"x.unknown"), "application/octet-stream");
        assert!(compressible(content_type(b"app.js")));
        assert!(!compressible(content_type(b"photo.jpg")));
    }
}
