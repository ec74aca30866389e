//! Bytes as text and back: hex (`hex`, `from_hex`) and base64 (`base64`,
//! `from_base64`), for protocols that carry binary data in text and for
//! looking at what arrived.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use rhai::Blob;
use rhai::plugin::*;

use crate::error::{Error, Result};

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
}

/// Hex digits to bytes. Spaces, tabs, newlines, `:` and `-` between bytes are
/// allowed (`"68 69"`, `"68:69"`, as tools print them), and a leading `0x`.
fn decode_hex(text: &str) -> Result<Vec<u8>> {
    let mut body = text.trim();
    let mut offset = text.len() - text.trim_start().len();
    if let Some(rest) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        body = rest;
        offset += 2;
    }
    let mut digits = Vec::with_capacity(body.len());
    for (i, c) in body.char_indices() {
        match c {
            ' ' | '\t' | '\n' | '\r' | ':' | '-' => {}
            c if c.is_ascii_hexdigit() => digits.push(c as u8),
            other => {
                return Err(Error::invalid(format!(
                    "'{}' at position {} is not a hex digit (0-9, a-f)",
                    other.escape_debug(),
                    text[..offset + i].chars().count()
                )));
            }
        }
    }
    if !digits.len().is_multiple_of(2) {
        return Err(Error::invalid(format!(
            "{} hex digits is an odd number: each byte takes two",
            digits.len()
        )));
    }
    hex::decode(&digits).map_err(|e| Error::invalid(format!("not hex: {e}")))
}

/// Standard base64 (RFC 4648, with `+` and `/`) to bytes; whitespace and
/// line breaks (as in PEM or e-mail) are ignored, missing padding is fine.
fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let mut compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    while !compact.len().is_multiple_of(4) {
        compact.push(b'=');
    }
    STANDARD.decode(&compact).map_err(|e| {
        let hint = if text.contains(['-', '_']) {
            " (this looks like URL-safe base64, with - and _)"
        } else {
            ""
        };
        Error::invalid(format!("not base64: {e}{hint}"))
    })
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail};

    /// A blob as lowercase hex digits.
    ///
    /// ```rhai
    /// hex(blob(3, 255))   // "ffffff"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure)]
    pub fn hex(data: &mut Blob) -> String {
        hex::encode(data.as_slice())
    }

    /// A string's UTF-8 bytes as lowercase hex digits.
    ///
    /// ```rhai
    /// hex("hi")   // "6869"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "hex")]
    pub fn hex_str(data: &str) -> String {
        hex::encode(data.as_bytes())
    }

    /// Hex digits as a blob. Spaces, `:` and `-` between bytes and a
    /// leading `0x` are allowed, so what `hex`, `xxd` or Wireshark print
    /// can be pasted in.
    ///
    /// ```rhai
    /// from_hex("68 69");        // blob(2 bytes: 68 69)
    /// from_hex("de:ad:be:ef")   // blob(4 bytes: de ad be ef)
    /// ```
    ///
    /// Fails when: a character is not a hex digit or separator (the message
    /// says which and where), or the number of digits is odd.
    #[rhai_fn(return_raw)]
    pub fn from_hex(text: &str) -> ScriptResult<Blob> {
        super::decode_hex(text).map_err(fail("from_hex"))
    }

    /// A blob as standard base64 (RFC 4648, padded).
    ///
    /// ```rhai
    /// base64(blob(3, 255))   // "////"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure)]
    pub fn base64(data: &mut Blob) -> String {
        STANDARD.encode(data.as_slice())
    }

    /// A string's UTF-8 bytes as standard base64.
    ///
    /// ```rhai
    /// base64("user:pass")   // "dXNlcjpwYXNz", for an HTTP Basic header
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "base64")]
    pub fn base64_str(data: &str) -> String {
        STANDARD.encode(data.as_bytes())
    }

    /// Standard base64 as a blob; line breaks and spaces are ignored and
    /// padding may be left out.
    ///
    /// ```rhai
    /// from_base64("aGk=")   // blob(2 bytes: 68 69)
    /// ```
    ///
    /// Fails when: the text is not base64 (URL-safe base64 with `-` and `_`
    /// is named as such).
    #[rhai_fn(return_raw)]
    pub fn from_base64(text: &str) -> ScriptResult<Blob> {
        super::decode_base64(text).map_err(fail("from_base64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hex with separators decodes; bad digits and odd lengths say what is wrong.
    #[test]
    fn hex_accepts_separators_and_explains_errors() {
        assert_eq!(decode_hex("68 69").unwrap(), b"hi");
        assert_eq!(
            decode_hex("0xDEad:be-EF\n").unwrap(),
            [0xde, 0xad, 0xbe, 0xef]
        );
        assert_eq!(decode_hex("").unwrap(), b"");
        let err = decode_hex("68 6g").unwrap_err().to_string();
        assert_eq!(err, "'g' at position 4 is not a hex digit (0-9, a-f)");
        let err = decode_hex("686").unwrap_err().to_string();
        assert!(err.contains("odd"), "{err}");
        let err = decode_hex("é1").unwrap_err().to_string();
        assert!(err.contains("'é' at position 0"), "{err}");
    }

    /// Base64 round-trips, tolerates line breaks and missing padding, and
    /// names URL-safe input.
    #[test]
    fn base64_round_trips_and_explains_errors() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = STANDARD.encode(&bytes);
        assert_eq!(decode_base64(&text).unwrap(), bytes);
        assert_eq!(decode_base64("aGk").unwrap(), b"hi");
        assert_eq!(decode_base64("aG\r\nk=").unwrap(), b"hi");
        let err = decode_base64("a-_b").unwrap_err().to_string();
        assert!(err.contains("URL-safe"), "{err}");
        assert!(decode_base64("a").is_err());
    }
}
