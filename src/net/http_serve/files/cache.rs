//! Validators and conditional requests (RFC 9110 §8.8, §13): the ETag and
//! Last-Modified a file is sent with, and whether a client's
//! If-None-Match / If-Modified-Since / If-Range let it keep its copy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A file's validators, from its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// A strong ETag from size and modification time in nanoseconds.
    pub etag: String,
    /// Modification time, whole seconds (HTTP dates have no fraction).
    pub modified: SystemTime,
}

impl Validators {
    pub fn new(size: u64, modified: SystemTime) -> Validators {
        let since = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        Validators {
            etag: format!("\"{size:x}-{:x}\"", since.as_nanos()),
            modified: UNIX_EPOCH + Duration::from_secs(since.as_secs()),
        }
    }

    /// The Last-Modified header value.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified)
    }

    /// Does the request allow a 304? If-None-Match wins over
    /// If-Modified-Since when both are sent (§13.1.3).
    pub fn not_modified(
        &self,
        if_none_match: Option<&[u8]>,
        if_modified_since: Option<&[u8]>,
    ) -> bool {
        if let Some(list) = if_none_match {
            return self.matches_any(list);
        }
        let Some(since) = if_modified_since.and_then(|v| std::str::from_utf8(v).ok()) else {
            return false;
        };
        match httpdate::parse_http_date(since.trim()) {
            Ok(since) => self.modified <= since,
            Err(_) => false,
        }
    }

    /// Does an If-Range value still name this file (the strong ETag, or the
    /// exact date)? When not, the whole file is sent instead of a range.
    pub fn range_still_valid(&self, if_range: Option<&[u8]>) -> bool {
        let Some(value) = if_range.and_then(|v| std::str::from_utf8(v).ok()) else {
            return true;
        };
        let value = value.trim();
        if value.starts_with('"') {
            return value == self.etag;
        }
        httpdate::parse_http_date(value).is_ok_and(|date| date == self.modified)
    }

    /// If-None-Match: `*` or a list of tags, compared weakly (§8.8.3.2).
    fn matches_any(&self, list: &[u8]) -> bool {
        let Ok(list) = std::str::from_utf8(list) else {
            return false;
        };
        list.split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validators {
        Validators::new(1024, UNIX_EPOCH + Duration::new(1_700_000_000, 123))
    }

    #[test]
    fn etag_changes_with_size_and_time() {
        let other = Validators::new(1025, UNIX_EPOCH + Duration::new(1_700_000_000, 123));
        assert_ne!(v().etag, other.etag);
        let touched = Validators::new(1024, UNIX_EPOCH + Duration::new(1_700_000_000, 124));
        assert_ne!(v().etag, touched.etag);
        assert_eq!(v().last_modified(), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn if_none_match() {
        let tag = v().etag;
        assert!(v().not_modified(Some(tag.as_bytes()), None));
        assert!(v().not_modified(Some(format!("\"x\", W/{tag}").as_bytes()), None));
        assert!(v().not_modified(Some(b"*"), None));
        assert!(!v().not_modified(Some(b"\"other\""), None));
        // A tag that does not match wins over a date that would.
        assert!(!v().not_modified(Some(b"\"other\""), Some(b"Tue, 14 Nov 2023 22:13:20 GMT")));
    }

    #[test]
    fn if_modified_since() {
        assert!(v().not_modified(None, Some(b"Tue, 14 Nov 2023 22:13:20 GMT")));
        assert!(v().not_modified(None, Some(b"Wed, 15 Nov 2023 00:00:00 GMT")));
        assert!(!v().not_modified(None, Some(b"Tue, 14 Nov 2023 22:13:19 GMT")));
        assert!(!v().not_modified(None, Some(b"yesterday")));
        assert!(!v().not_modified(None, None));
    }

    #[test]
    fn if_range() {
        let tag = v().etag;
        assert!(v().range_still_valid(None));
        assert!(v().range_still_valid(Some(tag.as_bytes())));
        assert!(!v().range_still_valid(Some(b"\"old\"")));
        assert!(v().range_still_valid(Some(b"Tue, 14 Nov 2023 22:13:20 GMT")));
        assert!(!v().range_still_valid(Some(b"Tue, 14 Nov 2023 22:13:21 GMT")));
    }
}
