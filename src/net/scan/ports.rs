//! Which ports to scan: an array, a Rhai range, or text like
//! `"22,80,8000-8100"`, read strictly, as every port in netsh is.

use std::collections::BTreeSet;

use rhai::{Array, Dynamic};

use crate::error::{Error, Result};
use crate::net::addr;

/// Ports from an array, a Rhai range, or text like `"22,80,8000-8100"`.
pub fn port_list(ports: &Dynamic) -> Result<BTreeSet<u16>> {
    let mut set = BTreeSet::new();
    if let Some(range) = ports.clone().try_cast::<std::ops::Range<i64>>() {
        if range.end > 65536 || range.start < 0 {
            return Err(Error::invalid(format!(
                "the range {}..{} goes outside 0–65535",
                range.start, range.end
            )));
        }
        set.extend(range.map(|p| p as u16));
    } else if let Some(range) = ports.clone().try_cast::<std::ops::RangeInclusive<i64>>() {
        set.insert(addr::port(*range.start())?);
        set.insert(addr::port(*range.end())?);
        set.extend((*range.start()..=*range.end()).map(|p| p as u16));
    } else if let Some(array) = ports.clone().try_cast::<Array>() {
        for item in array {
            let n = item
                .as_int()
                .map_err(|t| Error::invalid(format!("ports must be numbers, not {t}")))?;
            set.insert(addr::port(n)?);
        }
    } else if let Ok(port) = ports.as_int() {
        set.insert(addr::port(port)?);
    } else if let Some(text) = ports.clone().try_cast::<rhai::ImmutableString>() {
        set.extend(port_text(&text)?);
    } else {
        return Err(Error::invalid(format!(
            "ports must be an array, a range like 1..1024, or text like \"22,80-90\", not {}",
            ports.type_name()
        )));
    }
    if set.is_empty() {
        return Err(Error::invalid("no ports to scan"));
    }
    // A SYN to port 0 is not a question any host can answer usefully.
    if set.contains(&0) {
        return Err(Error::invalid(
            "port 0 cannot be scanned (0 means \"any free port\" only when binding); start at 1",
        ));
    }
    Ok(set)
}

/// Ports written as text, `"22,80,8000-8100"`, read strictly as every
/// other address and port in netsh is: nothing trimmed, no signs, no empty
/// parts. `" 80"` or `"80\n"` is more likely a mistake (a stray space, an
/// unchomped line) than a port, and a refusal naming the part says which.
fn port_text(text: &str) -> Result<BTreeSet<u16>> {
    const FORM: &str = "ports are written like \"22,80,8000-8100\": digits, commas and dashes only";
    let mut set = BTreeSet::new();
    if text.is_empty() {
        return Err(Error::invalid("no ports to scan (the text is empty)"));
    }
    let number = |s: &str, part: &str| -> Result<u16> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            let place = if part == text {
                String::new()
            } else {
                format!(" in {}", quoted(text))
            };
            return Err(Error::invalid(format!(
                "{} is not a port number{place} ({FORM})",
                quoted(part)
            )));
        }
        match s.parse() {
            Ok(n) => addr::port(n),
            // All digits, too many for any number: out of range, as 70000 is.
            Err(_) => Err(Error::invalid(format!(
                "port {s} is out of range (0–65535)"
            ))),
        }
    };
    for part in text.split(',') {
        if part.is_empty() {
            return Err(Error::invalid(format!(
                "{} has an empty part (a comma at an end, or two together; {FORM})",
                quoted(text)
            )));
        }
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a, part)?, number(b, part)?);
                if a > b {
                    return Err(Error::invalid(format!("the range {part} runs backwards")));
                }
                set.extend(a..=b);
            }
            None => {
                set.insert(number(part, part)?);
            }
        }
    }
    Ok(set)
}

/// `text` in double quotes, its control characters escaped.
fn quoted(text: &str) -> String {
    format!("{text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists_in_every_form() {
        let text = port_list(&Dynamic::from("22,80,8000-8002")).unwrap();
        assert_eq!(
            text.into_iter().collect::<Vec<_>>(),
            [22, 80, 8000, 8001, 8002]
        );
        let range = port_list(&Dynamic::from(1_i64..4)).unwrap();
        assert_eq!(range.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
        assert!(port_list(&Dynamic::from("70000")).is_err());
        let err = port_list(&Dynamic::from("99999999999999999999")).unwrap_err();
        assert!(
            err.to_string()
                .contains("port 99999999999999999999 is out of range"),
            "{err}"
        );
        assert!(port_list(&Dynamic::from("90-80")).is_err());
        assert!(port_list(&Dynamic::from(0_i64..70000)).is_err());
        for with_zero in [
            Dynamic::from(0_i64..10),
            Dynamic::from("0,80"),
            Dynamic::from(0_i64),
        ] {
            let err = port_list(&with_zero).unwrap_err().to_string();
            assert!(err.contains("port 0 cannot be scanned"), "{err}");
        }
    }
}
