//! `Range: bytes=…` (RFC 9110 §14): which parts of a file a client asks
//! for. One range is answered with 206; several with a 206 of
//! `multipart/byteranges`, unless they are many, overlap or are out of
//! order (then the whole file, as §14.2 allows against a client that would
//! make the server send more than the file); one that does not parse with
//! the whole file (200); a range that starts past the end with 416.

/// The most ranges one request may ask for before it gets the whole file.
pub const MAX_RANGES: usize = 16;

/// What to send for a request's Range header, given the file's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// The whole file, 200.
    Whole,
    /// `[start, end)`, 206 with Content-Range.
    Part(u64, u64),
    /// Several `[start, end)`, in order and apart: 206 multipart/byteranges.
    Parts(Vec<(u64, u64)>),
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
    if !spec.contains(',') {
        return one(spec, size);
    }
    let specs: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.len() > MAX_RANGES {
        return Wanted::Whole;
    }
    let mut parts = Vec::with_capacity(specs.len());
    for spec in specs {
        match one(spec, size) {
            Wanted::Part(start, end) => parts.push((start, end)),
            // A part past the end is dropped; the others are still sent.
            Wanted::Unsatisfiable => {}
            _ => return Wanted::Whole,
        }
    }
    if parts.windows(2).any(|w| w[1].0 < w[0].1) {
        return Wanted::Whole;
    }
    match parts.as_slice() {
        [] => Wanted::Unsatisfiable,
        [(start, end)] => Wanted::Part(*start, *end),
        _ => Wanted::Parts(parts),
    }
}

/// One `first-last` spec.
fn one(spec: &str, size: u64) -> Wanted {
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
            "bytes=0-1,x",
            "bytes=",
            "bytes=+1-2",
            "bytes=-",
        ] {
            assert_eq!(w(h, 1000), Wanted::Whole, "{h}");
        }
        assert_eq!(wanted(None, 10), Wanted::Whole);
    }

    #[test]
    fn several_ranges() {
        assert_eq!(
            w("bytes=0-9, 20-29", 1000),
            Wanted::Parts(vec![(0, 10), (20, 30)])
        );
        // Past the end is dropped; one left is a plain part.
        assert_eq!(w("bytes=0-9,5000-", 1000), Wanted::Part(0, 10));
        assert_eq!(w("bytes=2000-,5000-", 1000), Wanted::Unsatisfiable);
        // Overlapping, out of order or too many: the whole file.
        assert_eq!(w("bytes=0-9,5-20", 1000), Wanted::Whole);
        assert_eq!(w("bytes=20-29,0-9", 1000), Wanted::Whole);
        let many = (0..=MAX_RANGES)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(w(&format!("bytes={many}"), 1000), Wanted::Whole);
    }
}
