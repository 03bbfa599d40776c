//! Who speaks VRRP on a link: the advertisements a VRRP master (keepalived) multicasts to
//! 224.0.0.18, IP protocol 112, every advert interval (default 1 s); backups are silent (RFC 3768
//! 6.4). Listening for a few intervals shows the virtual router ids in use on the link, with their
//! masters' addresses and priorities.
//!
//! Pure: [`parse`] reads one packet as a raw IPv4 socket delivers it (IP header first) - the IPv4
//! header, then the VRRP header of version 2 (RFC 3768) or 3 (RFC 5798), its addresses and its
//! checksum (v3: with the IPv4 pseudo-header) - defensively: anything short, inconsistent or
//! foreign is a [`Malformed`], never a panic. The v2 authentication data (a clear-text password
//! with `auth_type` 1) is never read. [`tally`] groups identical adverts.
//! I/O: [`Listener`] opens `socket(AF_INET, SOCK_RAW, 112)`, binds it to the interface
//! (SO_BINDTODEVICE) and joins 224.0.0.18 there (IP_ADD_MEMBERSHIP), then listens for a while.
//!
//! Not visible this way: unicast VRRP between other hosts and VRRP with AH (IP protocol 51).

use crate::error::Result;
use crate::net::raw;
use nix::sys::socket::{recv, setsockopt, sockopt, IpMembershipRequest, MsgFlags};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// The multicast group VRRP advertises to.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// v2: the authentication data after the addresses.
const AUTH_DATA_LEN: usize = 8;
const HEADER_LEN: usize = 8;
const TYPE_ADVERTISEMENT: u8 = 1;

/// One VRRP advertisement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Advert {
    /// The sender (the master's own address on the link).
    pub source: Ipv4Addr,
    pub router_id: u8,
    pub version: u8,
    pub priority: u8,
    /// The advert interval in centiseconds (v2 carries seconds: times 100).
    pub interval_cs: u16,
    /// The virtual addresses the master holds.
    pub addresses: Vec<Ipv4Addr>,
    /// v2 only: 0 none, 1 simple text password, 2 IP authentication header.
    pub auth_type: Option<u8>,
}

/// Why a packet is not a well-formed VRRP advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Fewer bytes than the IPv4 header says or needs.
    ShortIp(usize),
    NotIpv4(u8),
    /// An IPv4 header length below 20 bytes or beyond the packet.
    HeaderLength(usize),
    /// The IPv4 total length disagrees with the bytes received.
    TotalLength {
        stated: usize,
        received: usize,
    },
    Protocol(u8),
    /// Fewer VRRP bytes than its header, addresses (and v2 authentication data) need.
    ShortVrrp {
        have: usize,
        need: usize,
    },
    Version(u8),
    Type(u8),
    RouterIdZero,
    Checksum,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::ShortIp(n) => write!(f, "{n} bytes: shorter than an IPv4 header"),
            Malformed::NotIpv4(v) => write!(f, "IP version {v}"),
            Malformed::HeaderLength(n) => write!(f, "IPv4 header length {n}"),
            Malformed::TotalLength { stated, received } => {
                write!(f, "IPv4 total length {stated}, {received} bytes received")
            }
            Malformed::Protocol(p) => write!(f, "IP protocol {p}, not 112"),
            Malformed::ShortVrrp { have, need } => {
                write!(f, "{have} VRRP bytes where {need} are needed")
            }
            Malformed::Version(v) => write!(f, "VRRP version {v}"),
            Malformed::Type(t) => write!(f, "VRRP type {t}, not an advertisement"),
            Malformed::RouterIdZero => write!(f, "virtual router id 0"),
            Malformed::Checksum => write!(f, "bad VRRP checksum"),
        }
    }
}

/// The Internet checksum (RFC 1071) of the concatenated `parts`: 0 when data that carries its
/// checksum is intact.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut high: Option<u8> = None;
    for byte in parts.iter().flat_map(|p| p.iter().copied()) {
        match high.take() {
            None => high = Some(byte),
            Some(h) => sum += u32::from(u16::from_be_bytes([h, byte])),
        }
    }
    if let Some(h) = high {
        sum += u32::from(u16::from_be_bytes([h, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // `sum` fits 16 bits after the fold
    !(sum as u16)
}

/// Read one packet (IPv4 header included) as a VRRP advertisement.
pub fn parse(packet: &[u8]) -> std::result::Result<Advert, Malformed> {
    let Some(&first) = packet.first() else {
        return Err(Malformed::ShortIp(0));
    };
    if first >> 4 != 4 {
        return Err(Malformed::NotIpv4(first >> 4));
    }
    if packet.len() < 20 {
        return Err(Malformed::ShortIp(packet.len()));
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < 20 || header_len > packet.len() {
        return Err(Malformed::HeaderLength(header_len));
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total < header_len || total > packet.len() {
        return Err(Malformed::TotalLength {
            stated: total,
            received: packet.len(),
        });
    }
    if packet[9] != PROTOCOL {
        return Err(Malformed::Protocol(packet[9]));
    }
    let source = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let destination = [packet[16], packet[17], packet[18], packet[19]];
    let vrrp = &packet[header_len..total];
    if vrrp.len() < HEADER_LEN {
        return Err(Malformed::ShortVrrp {
            have: vrrp.len(),
            need: HEADER_LEN,
        });
    }
    let version = vrrp[0] >> 4;
    if version != 2 && version != 3 {
        return Err(Malformed::Version(version));
    }
    if vrrp[0] & 0x0f != TYPE_ADVERTISEMENT {
        return Err(Malformed::Type(vrrp[0] & 0x0f));
    }
    let router_id = vrrp[1];
    if router_id == 0 {
        return Err(Malformed::RouterIdZero);
    }
    let count = usize::from(vrrp[3]);
    let auth = if version == 2 { AUTH_DATA_LEN } else { 0 };
    let need = HEADER_LEN + 4 * count + auth;
    if vrrp.len() < need {
        return Err(Malformed::ShortVrrp {
            have: vrrp.len(),
            need,
        });
    }
    let intact = if version == 2 {
        checksum(&[vrrp]) == 0
    } else {
        // RFC 5798 5.2.8: over the IPv4 pseudo-header too
        let length = u16::try_from(vrrp.len()).unwrap_or(u16::MAX).to_be_bytes();
        let pseudo = [
            packet[12],
            packet[13],
            packet[14],
            packet[15],
            destination[0],
            destination[1],
            destination[2],
            destination[3],
            0,
            PROTOCOL,
            length[0],
            length[1],
        ];
        checksum(&[&pseudo, vrrp]) == 0
    };
    if !intact {
        return Err(Malformed::Checksum);
    }
    let addresses = vrrp[HEADER_LEN..HEADER_LEN + 4 * count]
        .chunks_exact(4)
        .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        .collect();
    let (interval_cs, auth_type) = if version == 2 {
        (u16::from(vrrp[5]) * 100, Some(vrrp[4]))
    } else {
        (u16::from_be_bytes([vrrp[4] & 0x0f, vrrp[5]]), None)
    };
    Ok(Advert {
        source,
        router_id,
        version,
        priority: vrrp[2],
        interval_cs,
        addresses,
        auth_type,
    })
}

/// Identical adverts (one master's, every interval) once each, with how many were heard.
pub fn tally(adverts: &[Advert]) -> Vec<(Advert, u32)> {
    let mut counts: BTreeMap<&Advert, u32> = BTreeMap::new();
    for advert in adverts {
        *counts.entry(advert).or_default() += 1;
    }
    counts.into_iter().map(|(a, n)| (a.clone(), n)).collect()
}

/// What a listen heard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heard {
    /// Every well-formed advert, in arrival order.
    pub adverts: Vec<Advert>,
    /// Packets of protocol 112 that were not.
    pub malformed: u32,
    /// Why the listen stopped early (a receive error), when it did.
    pub error: Option<String>,
}

/// A raw socket joined to 224.0.0.18 on one interface.
pub struct Listener {
    fd: OwnedFd,
    interface: String,
}

impl Listener {
    /// Open and join now, so that a missing CAP_NET_RAW fails before any waiting. `local` is an
    /// IPv4 address of `interface` (IP_ADD_MEMBERSHIP names the interface by one).
    pub fn open(interface: &str, local: Ipv4Addr) -> Result<Listener> {
        let fd = raw::ipv4_raw_socket(PROTOCOL, "a raw IPv4 socket for VRRP (IP protocol 112)")?;
        setsockopt(&fd, sockopt::BindToDevice, &OsString::from(interface)).map_err(|e| {
            raw::socket_error(
                &format!("cannot bind the VRRP socket to {interface} (SO_BINDTODEVICE)"),
                e,
            )
        })?;
        setsockopt(
            &fd,
            sockopt::IpAddMembership,
            &IpMembershipRequest::new(GROUP, Some(local)),
        )
        .map_err(|e| {
            raw::socket_error(&format!("cannot join {GROUP} on {interface} ({local})"), e)
        })?;
        Ok(Listener {
            fd,
            interface: interface.to_string(),
        })
    }

    /// Receive for `duration`.
    pub fn listen(&self, duration: Duration) -> Heard {
        let until = Instant::now() + duration;
        let mut heard = Heard::default();
        let mut buf = vec![0u8; 65536];
        loop {
            match raw::readable_before(&self.fd, until) {
                Ok(false) => return heard,
                Ok(true) => {}
                Err(e) => {
                    heard.error = Some(format!("cannot wait for VRRP adverts: {e}"));
                    return heard;
                }
            }
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(len) => match buf.get(..len).map(parse) {
                    Some(Ok(advert)) => heard.adverts.push(advert),
                    Some(Err(_)) | None => heard.malformed += 1,
                },
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(e) => {
                    heard.error = Some(format!(
                        "cannot receive VRRP adverts on {}: {e}",
                        self.interface
                    ));
                    return heard;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 header (no options) before `payload`, TTL 255, protocol 112, to 224.0.0.18.
    fn ip(source: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + payload.len()).unwrap().to_be_bytes();
        let mut p = vec![
            0x45, 0xc0, total[0], total[1], 0, 0, 0, 0, 255, 112, 0, 0, source[0], source[1],
            source[2], source[3], 224, 0, 0, 18,
        ];
        let sum = checksum(&[&p]).to_be_bytes();
        p[10] = sum[0];
        p[11] = sum[1];
        p.extend_from_slice(payload);
        p
    }

    /// keepalived's default advert: v2, vrid 51, priority 100, 1 s, auth PASS "secret12", one VIP.
    fn v2_packet() -> Vec<u8> {
        let mut vrrp = vec![
            0x21, 51, 100, 1, 1, 1, 0, 0, 10, 0, 0, 10, b's', b'e', b'c', b'r', b'e', b't', b'1',
            b'2',
        ];
        let sum = checksum(&[&vrrp]).to_be_bytes();
        vrrp[6] = sum[0];
        vrrp[7] = sum[1];
        ip([10, 0, 0, 11], &vrrp)
    }

    /// v3, vrid 7, priority 150, 100 cs, two VIPs; the checksum over the pseudo-header.
    fn v3_packet() -> Vec<u8> {
        let mut vrrp = vec![
            0x31, 7, 150, 2, 0x00, 0x64, 0, 0, 10, 0, 0, 10, 10, 0, 0, 20,
        ];
        let pseudo = [10, 0, 0, 12, 224, 0, 0, 18, 0, 112, 0, 16];
        let sum = checksum(&[&pseudo, &vrrp]).to_be_bytes();
        vrrp[6] = sum[0];
        vrrp[7] = sum[1];
        ip([10, 0, 0, 12], &vrrp)
    }

    #[test]
    fn checksum_is_rfc_1071() {
        // the worked example of RFC 1071 section 3: the one's complement sum is ddf2
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            !0xddf2
        );
        // an odd length pads with a zero byte; the split between parts does not matter
        assert_eq!(checksum(&[&[0x01]]), !0x0100);
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2], &[0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            !0xddf2
        );
    }

    #[test]
    fn a_v2_advert_parses_without_its_password() {
        let advert = parse(&v2_packet()).unwrap();
        assert_eq!(
            advert,
            Advert {
                source: Ipv4Addr::new(10, 0, 0, 11),
                router_id: 51,
                version: 2,
                priority: 100,
                interval_cs: 100,
                addresses: vec![Ipv4Addr::new(10, 0, 0, 10)],
                auth_type: Some(1),
            }
        );
        assert!(!format!("{advert:?}").contains("secret"));
    }

    #[test]
    fn a_v3_advert_parses_with_its_pseudo_header_checksum() {
        let advert = parse(&v3_packet()).unwrap();
        assert_eq!(advert.version, 3);
        assert_eq!(advert.router_id, 7);
        assert_eq!(advert.priority, 150);
        assert_eq!(advert.interval_cs, 100);
        assert_eq!(
            advert.addresses,
            vec![Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 20)]
        );
        assert_eq!(advert.auth_type, None);
        // the same bytes sent from another source fail the pseudo-header checksum
        let mut moved = v3_packet();
        moved[15] = 99;
        assert_eq!(parse(&moved), Err(Malformed::Checksum));
    }

    #[test]
    fn truncated_packets_are_malformed_never_a_panic() {
        for packet in [v2_packet(), v3_packet()] {
            for len in 0..packet.len() {
                assert!(parse(&packet[..len]).is_err(), "{len} bytes parsed");
            }
        }
        assert_eq!(parse(&[]), Err(Malformed::ShortIp(0)));
        assert_eq!(parse(&[0x45, 0, 0]), Err(Malformed::ShortIp(3)));
    }

    #[test]
    fn inconsistent_headers_are_malformed() {
        let good = v2_packet();
        let with = |at: usize, value: u8| {
            let mut p = good.clone();
            p[at] = value;
            parse(&p)
        };
        assert_eq!(with(0, 0x65), Err(Malformed::NotIpv4(6)));
        assert_eq!(with(0, 0x44), Err(Malformed::HeaderLength(16)));
        assert_eq!(with(0, 0x4f), Err(Malformed::HeaderLength(60)));
        assert_eq!(
            with(3, 200),
            Err(Malformed::TotalLength {
                stated: 200,
                received: 40
            })
        );
        assert_eq!(with(9, 6), Err(Malformed::Protocol(6)));
        assert_eq!(with(20, 0x11), Err(Malformed::Version(1)));
        assert_eq!(with(20, 0x22), Err(Malformed::Type(2)));
        assert_eq!(with(21, 0), Err(Malformed::RouterIdZero));
        assert_eq!(
            with(23, 5),
            Err(Malformed::ShortVrrp { have: 20, need: 36 })
        );
        assert_eq!(with(22, 101), Err(Malformed::Checksum));
        // a shorter total length than the buffer: the rest is ignored (and here cuts the advert)
        let mut short_total = good.clone();
        short_total[3] = 30;
        assert!(matches!(
            parse(&short_total),
            Err(Malformed::ShortVrrp { have: 10, .. })
        ));
        // trailing bytes beyond the total length are ignored
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0xde, 0xad]);
        assert_eq!(parse(&trailing), parse(&good));
        // every error has a message
        assert!(Malformed::Checksum.to_string().contains("checksum"));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..300 {
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x.to_le_bytes()[1]
                })
                .collect();
            let _ = parse(&bytes);
            // and with a plausible IPv4 header in front
            if bytes.len() >= 20 {
                bytes[0] = 0x45;
                bytes[9] = PROTOCOL;
                let _ = parse(&bytes);
            }
        }
    }

    #[test]
    fn identical_adverts_are_counted_once() {
        let a = parse(&v2_packet()).unwrap();
        let b = parse(&v3_packet()).unwrap();
        let tallied = tally(&[a.clone(), b.clone(), a.clone()]);
        assert_eq!(tallied, vec![(a, 2), (b, 1)]);
    }
}
