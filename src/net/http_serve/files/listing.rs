//! The directory listing page: sorted entries with sizes and dates, names
//! HTML-escaped, links percent-encoded byte by byte (a name is bytes on
//! Linux, and `<`, `#`, `?` or `%` in it must not change what a link
//! means), and the upload form when uploads are on.

use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::net::transfer::protocol::is_part_name;

/// Everything but the unreserved characters (RFC 3986 §2.3) is escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One row of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub folder: bool,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// The entries of `dir`, sorted folders first then by name; dotfiles only
/// when `dotfiles`, unfinished uploads never.
pub fn entries(dir: &Path, dotfiles: bool) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().as_bytes().to_vec();
        if (name.starts_with(b".") && !dotfiles) || is_part_name(&String::from_utf8_lossy(&name)) {
            continue;
        }
        // Where a link leads decides folder or file; a dangling one shows as a file.
        let meta = std::fs::metadata(entry.path()).or_else(|_| entry.metadata())?;
        out.push(Entry {
            name,
            folder: meta.is_dir(),
            size: meta.len(),
            modified: meta.modified().ok(),
        });
    }
    out.sort_by(|a, b| b.folder.cmp(&a.folder).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

/// A byte string as one percent-encoded path segment.
pub fn href_segment(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(text) => utf8_percent_encode(text, SEGMENT).to_string(),
        Err(_) => name.iter().map(|b| format!("%{b:02X}")).collect(),
    }
}

/// Text escaped for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// "1.5 KiB", "12 B".
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// "2026-12-07 18:50" in UTC.
fn date(when: Option<SystemTime>) -> String {
    let Some(when) = when else {
        return String::new();
    };
    let t = time::OffsetDateTime::from(when);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// The page for folder `shown` (the decoded request path, for the title),
/// with `upload` adding the form that posts files to this folder.
pub fn page(shown: &str, entries: &[Entry], upload: bool) -> String {
    let title = escape(shown);
    let mut html = String::with_capacity(512 + entries.len() * 160);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Index of {title}</title>\n<style>body{{font-family:sans-serif;margin:2em}}\
         table{{border-collapse:collapse}}td,th{{padding:.2em 1em;text-align:left}}\
         td.size{{text-align:right}}</style></head>\n<body>\n<h1>Index of {title}</h1>\n"
    );
    if upload {
        html.push_str(
            "<form method=\"post\" enctype=\"multipart/form-data\">\
             <input type=\"file\" name=\"file\" multiple> <button type=\"submit\">Upload</button></form>\n",
        );
    }
    html.push_str("<table>\n<thead><tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr></thead>\n<tbody>\n");
    if shown != "/" {
        html.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for entry in entries {
        let slash = if entry.folder { "/" } else { "" };
        let name = escape(&String::from_utf8_lossy(&entry.name));
        let size = if entry.folder {
            String::new()
        } else {
            human_size(entry.size)
        };
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{}{slash}\">{name}{slash}</a></td><td class=\"size\" title=\"{} bytes\">{size}</td><td>{}</td></tr>",
            href_segment(&entry.name),
            entry.size,
            date(entry.modified)
        );
    }
    html.push_str("</tbody>\n</table>\n</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_links_encoded() {
        let entries = [Entry {
            name: b"<b>&\"x#?%.txt".to_vec(),
            folder: false,
            size: 1536,
            modified: None,
        }];
        let html = page("/a<b>/", &entries, false);
        assert!(
            html.contains("href=\"%3Cb%3E%26%22x%23%3F%25.txt\""),
            "{html}"
        );
        assert!(html.contains(">&lt;b&gt;&amp;&quot;x#?%.txt</a>"), "{html}");
        assert!(html.contains("Index of /a&lt;b&gt;/"));
        assert!(html.contains("1.5 KiB"));
        assert!(!html.contains("<b>"));
        assert!(!html.contains("<form"));
        assert!(page("/", &entries, true).contains("multipart/form-data"));
    }

    #[test]
    fn non_utf8_names_link_to_their_bytes() {
        assert_eq!(href_segment(b"a\xff b"), "%61%FF%20%62");
    }

    #[test]
    fn entries_are_sorted_and_hide_dotfiles_and_parts() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.txt", "a.txt", ".secret", ".x.txt.netsh-part"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("z")).unwrap();
        let names = |dot| -> Vec<String> {
            entries(dir.path(), dot)
                .unwrap()
                .into_iter()
                .map(|e| String::from_utf8(e.name).unwrap())
                .collect()
        };
        assert_eq!(names(false), ["z", "a.txt", "b.txt"]);
        assert_eq!(names(true), ["z", ".secret", "a.txt", "b.txt"]);
    }
}
