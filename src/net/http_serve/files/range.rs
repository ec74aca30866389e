//! `Range: bytes=…` (RFC 9110 §14): which part of a file a client asks
//! for. One range is answered with 206; several, or one that does not
//! parse, with the whole file (200), as the RFC allows; a range that
//! starts past the end with 416.

/// What to send for a request's Range header, given the file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The whole file, 200.
    Whole,
    /// `[start, end)`, 206 with Content-Range.
    Part(u64, u64),
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Reads a Range header (`None`: no header).
pub fn wanted(header: Option<&[u8]>, size: u64) -> Wanted {
    let Some(header) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
        return Wanted::Whole;
    };
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Wanted::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    if first.is_empty() {
        // A suffix: the last N bytes.
        return match number(last) {
            Some(0) => Wanted::Unsatisfiable,
            Some(_) if size == 0 => Wanted::Unsatisfiable,
            Some(n) => Wanted::Part(size.saturating_sub(n), size),
            None => Wanted::Whole,
        };
    }
    let Some(start) = number(first) else {
        return Wanted::Whole;
    };
    let end = if last.is_empty() {
        size
    } else {
        match number(last) {
            Some(last) if last >= start => last.saturating_add(1).min(size),
            _ => return Wanted::Whole,
        }
    };
    if start >= size {
        return Wanted::Unsatisfiable;
    }
    Wanted::Part(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(h: &str, size: u64) -> Wanted {
        wanted(Some(h.as_bytes()), size)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(w("bytes=0-99", 1000), Wanted::Part(0, 100));
        assert_eq!(w("bytes=100-", 1000), Wanted::Part(100, 1000));
        assert_eq!(w("bytes=900-5000", 1000), Wanted::Part(900, 1000));
        assert_eq!(w("bytes=-10", 1000), Wanted::Part(990, 1000));
        assert_eq!(w("bytes=-5000", 1000), Wanted::Part(0, 1000));
    }

    #[test]
    fn past_the_end_is_unsatisfiable() {
        assert_eq!(w("bytes=1000-", 1000), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=-0", 1000), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=0-", 0), Wanted::Unsatisfiable);
    }

    #[test]
    fn anything_else_is_the_whole_file() {
        for h in [
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=",
            "bytes=+1-2",
            "bytes=-",
        ] {
            assert_eq!(w(h, 1000), Wanted::Whole, "{h}");
        }
        assert_eq!(wanted(None, 10), Wanted::Whole);
    }
}
