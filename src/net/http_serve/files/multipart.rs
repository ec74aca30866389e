//! A streaming `multipart/form-data` reader (RFC 7578), for the listing
//! page's upload form: file bytes go to disk as they arrive, never held
//! whole in memory. Fed chunks of the body, it hands back events; only a
//! delimiter's length of bytes is kept back between chunks.

use memchr::memmem;

/// The most a part's header block may hold.
const MAX_PART_HEADERS: usize = 8 * 1024;

/// What the body holds, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A part begins: its form field name and file name, if any.
    Start {
        field: Option<String>,
        filename: Option<Vec<u8>>,
    },
    /// Bytes of the current part.
    Data(Vec<u8>),
    /// The current part ended.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    Headers,
    Body,
    AfterDelimiter,
    Done,
}

/// The reader of one body.
pub struct Reader {
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    state: State,
}

/// The boundary of a `multipart/form-data` Content-Type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    if !params
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    for param in params {
        let (key, value) = param.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if (1..=70).contains(&value.len()) {
                return Some(value.to_string());
            }
            return None;
        }
    }
    None
}

impl Reader {
    pub fn new(boundary: &str) -> Reader {
        // The body is read as if it began with CRLF, so the first delimiter
        // looks like every other: CRLF "--" boundary.
        Reader {
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            buf: b"\r\n".to_vec(),
            state: State::Preamble,
        }
    }

    /// Has the closing delimiter been read?
    pub fn finished(&self) -> bool {
        self.state == State::Done
    }

    /// Takes the next chunk of the body; the events it completes are pushed
    /// onto `out`. An error is a malformed body.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), &'static str> {
        if self.state == State::Done {
            return Ok(());
        }
        self.buf.extend_from_slice(chunk);
        loop {
            match self.state {
                State::Preamble | State::Body => {
                    let body = self.state == State::Body;
                    if let Some(at) = memmem::find(&self.buf, &self.delimiter) {
                        if body {
                            if at > 0 {
                                out.push(Event::Data(self.buf[..at].to_vec()));
                            }
                            out.push(Event::End);
                        }
                        self.buf.drain(..at + self.delimiter.len());
                        self.state = State::AfterDelimiter;
                    } else {
                        // Keep back what could be the start of a delimiter.
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() > keep {
                            let cut = self.buf.len() - keep;
                            if body {
                                out.push(Event::Data(self.buf[..cut].to_vec()));
                            }
                            self.buf.drain(..cut);
                        }
                        return Ok(());
                    }
                }
                State::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        return Ok(());
                    }
                    if self.buf.starts_with(b"--") {
                        self.state = State::Done;
                        self.buf.clear();
                        return Ok(());
                    }
                    // Transport padding (spaces, tabs) may sit before the CRLF.
                    let pad = self
                        .buf
                        .iter()
                        .take_while(|b| matches!(b, b' ' | b'\t'))
                        .count();
                    if self.buf.len() < pad + 2 {
                        return Ok(());
                    }
                    if &self.buf[pad..pad + 2] != b"\r\n" {
                        return Err("a multipart delimiter is not followed by CRLF");
                    }
                    self.buf.drain(..pad + 2);
                    self.state = State::Headers;
                }
                State::Headers => {
                    let Some(end) = memmem::find(&self.buf, b"\r\n\r\n") else {
                        if self.buf.len() > MAX_PART_HEADERS {
                            return Err("a multipart part's headers are too long");
                        }
                        // An empty header block is just CRLF.
                        if self.buf.starts_with(b"\r\n") {
                            self.buf.drain(..2);
                            out.push(Event::Start {
                                field: None,
                                filename: None,
                            });
                            self.state = State::Body;
                        }
                        return Ok(());
                    };
                    let (field, filename) = disposition(&self.buf[..end]);
                    out.push(Event::Start { field, filename });
                    self.buf.drain(..end + 4);
                    self.state = State::Body;
                }
                State::Done => return Ok(()),
            }
        }
    }
}

/// The `name` and `filename` of a part's Content-Disposition header.
fn disposition(headers: &[u8]) -> (Option<String>, Option<Vec<u8>>) {
    let mut field = None;
    let mut filename = None;
    for line in headers.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if !line[..colon].eq_ignore_ascii_case(b"content-disposition") {
            continue;
        }
        for (key, value) in params(&line[colon + 1..]) {
            match key.to_ascii_lowercase().as_slice() {
                b"name" => field = Some(String::from_utf8_lossy(&value).into_owned()),
                b"filename" => filename = Some(value),
                _ => {}
            }
        }
    }
    (field, filename)
}

/// `; key=value; key="quoted \" value"` pairs, values unquoted.
fn params(mut rest: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(semi) = rest.iter().position(|b| *b == b';') {
        rest = &rest[semi + 1..];
        let skip = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
        rest = &rest[skip..];
        let Some(eq) = rest.iter().position(|b| *b == b'=') else {
            break;
        };
        let key = rest[..eq].trim_ascii().to_vec();
        rest = &rest[eq + 1..];
        let mut value = Vec::new();
        if rest.first() == Some(&b'"') {
            let mut i = 1;
            while i < rest.len() && rest[i] != b'"' {
                if rest[i] == b'\\' && i + 1 < rest.len() {
                    i += 1;
                }
                value.push(rest[i]);
                i += 1;
            }
            rest = &rest[(i + 1).min(rest.len())..];
        } else {
            let end = rest.iter().position(|b| *b == b';').unwrap_or(rest.len());
            value = rest[..end].trim_ascii().to_vec();
            rest = &rest[end..];
        }
        out.push((key, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".txt\"\r\n\
        Content-Type: text/plain\r\n\r\n\
        hello\r\n--Xy not yet\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XyZ--\r\nepilogue";

    fn read(body: &[u8], step: usize) -> Vec<Event> {
        let mut reader = Reader::new("XyZ");
        let mut events = Vec::new();
        for chunk in body.chunks(step) {
            reader.feed(chunk, &mut events).unwrap();
        }
        assert!(reader.finished());
        // Merge Data events so any chunking gives the same answer.
        let mut merged: Vec<Event> = Vec::new();
        for e in events {
            match (merged.last_mut(), e) {
                (Some(Event::Data(a)), Event::Data(b)) => a.extend(b),
                (_, e) => merged.push(e),
            }
        }
        merged
    }

    #[test]
    fn parts_come_out_the_same_however_the_body_is_cut() {
        let want = vec![
            Event::Start {
                field: Some("file".into()),
                filename: Some(b"a \"b\".txt".to_vec()),
            },
            Event::Data(b"hello\r\n--Xy not yet".to_vec()),
            Event::End,
            Event::Start {
                field: Some("note".into()),
                filename: None,
            },
            Event::Data(b"hi".to_vec()),
            Event::End,
        ];
        for step in [1, 2, 3, 7, 16, BODY.len()] {
            assert_eq!(read(BODY, step), want, "chunks of {step}");
        }
    }

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=x; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("text/plain; boundary=abc"), None);
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))),
            None
        );
    }

    #[test]
    fn malformed_bodies_fail() {
        let mut reader = Reader::new("b");
        let mut events = Vec::new();
        assert!(reader.feed(b"--bXX", &mut events).is_err());
        let mut reader = Reader::new("b");
        let huge = [b"--b\r\n".to_vec(), vec![b'h'; MAX_PART_HEADERS + 10]].concat();
        assert!(reader.feed(&huge, &mut Vec::new()).is_err());
    }
}
