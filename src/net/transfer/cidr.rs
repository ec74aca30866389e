//! Address blocks like `10.0.0.0/8` for `serve_files`'s `allow` list, an
//! IPv4-mapped IPv6 peer matching its IPv4 block.

use std::net::IpAddr;

use crate::error::{Error, Result};

/// An address block like `10.0.0.0/8` or `::1/128`; a bare address is a
/// block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr> {
        let bad = || {
            Error::invalid(format!(
                "'{text}' is not an address block like 10.0.0.0/8 or ::1/128"
            ))
        };
        let (ip_text, prefix_text) = match text.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (text, None),
        };
        let ip = crate::net::addr::parse_ip(ip_text)
            .map_err(|e| Error::invalid(format!("{}: {e}", bad())))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            // Digits only, without a leading zero: `/08` is no clearer than `/8`.
            Some(p)
                if !p.is_empty()
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (p == "0" || !p.starts_with('0')) =>
            {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        let network = ip.to_canonical();
        // `::ffff:10.0.0.0/104` is the IPv4 block 10.0.0.0/8: the first 96
        // bits are the mapping prefix. Shorter prefixes cover more than IPv4.
        let prefix = match (ip, network) {
            (IpAddr::V6(_), IpAddr::V4(_)) => prefix.checked_sub(96).ok_or_else(bad)?,
            _ => prefix,
        };
        Ok(Cidr { network, prefix })
    }

    /// Does the block hold `ip`? IPv4 clients of a dual-stack listener
    /// arrive as `::ffff:a.b.c.d` and are matched as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mask = |bits: u32, width: u32| -> u128 {
            match width.checked_sub(bits) {
                // /0 is every address.
                _ if bits == 0 => 0,
                Some(zeros) => (!0u128).checked_shl(zeros).unwrap_or(0),
                // More bits than the address has (parse prevents it): exact match.
                None => !0u128,
            }
        };
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = mask(u32::from(self.prefix), 32) as u32;
                u32::from(net) & m == u32::from(ip) & m
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = mask(u32::from(self.prefix), 128);
                u128::from(net) & m == u128::from(ip) & m
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let block = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(block.contains(ip("10.200.1.2")));
        assert!(block.contains(ip("::ffff:10.1.1.1")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("10.0.0.0/8").is_ok() && Cidr::parse("::/0").is_ok());
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        assert!(Cidr::parse("::1/128").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("fe80::/10").unwrap().contains(ip("fe80::1")));
        assert!(!Cidr::parse("fe80::/10").unwrap().contains(ip("10.0.0.1")));
        // IPv4-mapped blocks are IPv4 blocks; they must not open everything.
        let mapped = Cidr::parse("::ffff:10.0.0.1").unwrap();
        assert!(mapped.contains(ip("10.0.0.1")));
        assert!(!mapped.contains(ip("10.0.0.2")));
        assert!(!mapped.contains(ip("192.168.1.1")));
        let mapped_block = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped_block.contains(ip("10.9.9.9")));
        assert!(!mapped_block.contains(ip("11.0.0.1")));
        for bad in [
            "10.0.0.0/33",
            "nonsense",
            "1.2.3.4/x",
            "::/129",
            "::ffff:10.0.0.0/64",
            "127.1",
            "10.0.0.0/+8",
            " 10.0.0.0/8",
            "[::1/128",
            "10.0.0.0/08",
            "::1/0128",
            "10.0.0.0/",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
