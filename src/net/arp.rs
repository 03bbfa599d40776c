//! Is an IPv4 address already answered for on the link? The duplicate-address probe of iputils
//! `arping -D` (RFC 5227 "ARP probe", RFC 2131 4.4.1): broadcast ARP requests for the address with
//! sender IP 0.0.0.0, so that no host's ARP cache learns anything from them, and count the
//! replies. A request or reply whose sender IP is the probed address, from a MAC that is not ours,
//! is a host using the address (iputils' rule in DAD mode; another host's own probe, sender IP
//! 0.0.0.0, is not counted: two masters probing the same VIP at once do not see each other).
//!
//! Pure: [`probe_frame`] builds the 60-byte Ethernet frame byte for byte, [`parse_frame`] reads
//! any frame defensively (a short or foreign frame is an `Err`, never a panic),
//! [`conflicting_mac`] applies the rule, [`parse_mac`] reads `/sys/class/net/<if>/address`.
//! I/O: [`Prober`] sends the probes over an `AF_PACKET` raw socket bound to the interface
//! ([`crate::net::raw`]) and listens until `wait` after the last one.
//!
//! The probe proves nothing on an interface without ARP (loopback, NOARP, no Ethernet address):
//! the caller does not probe there, and says so.

use crate::error::Result;
use crate::net::raw;
use nix::libc;
use nix::sys::socket::{recvfrom, send, LinkAddr, MsgFlags};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// An Ethernet (MAC-48) address.
pub type Mac = [u8; 6];

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;
const HARDWARE_ETHERNET: u16 = 1;
const OP_REQUEST: u16 = 1;
const OP_REPLY: u16 = 2;
/// Ethernet header (14) + ARP for IPv4 over Ethernet (28).
const ARP_FRAME_LEN: usize = 42;
/// The minimum Ethernet frame without its FCS: the probe is padded with zeros to it.
pub const FRAME_LEN: usize = 60;
const BROADCAST: Mac = [0xff; 6];

/// The ARP probe for `address` from `own`: to the Ethernet broadcast, sender IP 0.0.0.0, target
/// MAC all zeros (RFC 5227 2.1.1), padded to 60 bytes.
pub fn probe_frame(own: Mac, address: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut frame = [0u8; FRAME_LEN];
    frame[0..6].copy_from_slice(&BROADCAST);
    frame[6..12].copy_from_slice(&own);
    frame[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    frame[14..16].copy_from_slice(&HARDWARE_ETHERNET.to_be_bytes());
    frame[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    frame[18] = 6;
    frame[19] = 4;
    frame[20..22].copy_from_slice(&OP_REQUEST.to_be_bytes());
    frame[22..28].copy_from_slice(&own);
    // sender IP 0.0.0.0 (frame[28..32]) and target MAC 00:00:00:00:00:00 (frame[32..38]) stay zero
    frame[38..42].copy_from_slice(&address.octets());
    frame
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    /// 1 request, 2 reply.
    pub operation: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

/// Why a frame is not an ARP request or reply for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotArp {
    /// Fewer bytes than an Ethernet header and an ARP packet.
    Short(usize),
    EtherType(u16),
    Hardware(u16),
    Protocol(u16),
    /// Hardware and protocol address lengths other than 6 and 4.
    Lengths(u8, u8),
    Operation(u16),
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    match bytes.get(at..at + 2) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

fn mac_at(bytes: &[u8], at: usize) -> Mac {
    let mut mac = [0u8; 6];
    if let Some(slice) = bytes.get(at..at + 6) {
        mac.copy_from_slice(slice);
    }
    mac
}

fn ipv4_at(bytes: &[u8], at: usize) -> Ipv4Addr {
    match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

/// Read an Ethernet frame (header included) as an ARP request or reply; trailing padding ignored.
pub fn parse_frame(frame: &[u8]) -> std::result::Result<ArpPacket, NotArp> {
    if frame.len() < ARP_FRAME_LEN {
        return Err(NotArp::Short(frame.len()));
    }
    let ethertype = be16(frame, 12);
    if ethertype != ETHERTYPE_ARP {
        return Err(NotArp::EtherType(ethertype));
    }
    let hardware = be16(frame, 14);
    if hardware != HARDWARE_ETHERNET {
        return Err(NotArp::Hardware(hardware));
    }
    let protocol = be16(frame, 16);
    if protocol != ETHERTYPE_IPV4 {
        return Err(NotArp::Protocol(protocol));
    }
    if (frame[18], frame[19]) != (6, 4) {
        return Err(NotArp::Lengths(frame[18], frame[19]));
    }
    let operation = be16(frame, 20);
    if operation != OP_REQUEST && operation != OP_REPLY {
        return Err(NotArp::Operation(operation));
    }
    Ok(ArpPacket {
        operation,
        sender_mac: mac_at(frame, 22),
        sender_ip: ipv4_at(frame, 28),
        target_mac: mac_at(frame, 32),
        target_ip: ipv4_at(frame, 38),
    })
}

/// The MAC of a host using `address`, when `packet` shows one: its sender IP is the address and
/// its sender MAC is not ours (iputils `arping -D`).
pub fn conflicting_mac(packet: &ArpPacket, address: Ipv4Addr, own: Mac) -> Option<Mac> {
    (packet.sender_ip == address && packet.sender_mac != own).then_some(packet.sender_mac)
}

/// `02:42:ac:11:00:02` (a trailing newline allowed, as sysfs writes it); `None` for anything
/// else, such as the 20-byte address of an InfiniBand interface or an empty file.
pub fn parse_mac(text: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Lower-case and colon-separated, as `ip link` prints it.
pub fn format_mac(mac: Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What the probe saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Probes sent.
    pub sent: u32,
    /// Each MAC that used the address, with the number of its ARP packets seen.
    pub replies: BTreeMap<Mac, u32>,
    /// Why the probe stopped early (a send or receive error), when it did.
    pub error: Option<String>,
}

/// An open ARP socket on one interface.
pub struct Prober {
    fd: OwnedFd,
    ifindex: u32,
    own: Mac,
    interface: String,
}

impl Prober {
    /// Open the raw socket now, so that a missing CAP_NET_RAW fails before anything is sent.
    pub fn open(interface: &str, ifindex: u32, own: Mac) -> Result<Prober> {
        Ok(Prober {
            fd: raw::packet_socket(ifindex, ETHERTYPE_ARP, interface)?,
            ifindex,
            own,
            interface: interface.to_string(),
        })
    }

    /// Send `probes` probes for `address`, `interval` apart, and count the hosts answering until
    /// `wait` after the last one.
    pub fn probe(
        &self,
        address: Ipv4Addr,
        probes: u32,
        interval: Duration,
        wait: Duration,
    ) -> ProbeOutcome {
        let frame = probe_frame(self.own, address);
        let mut out = ProbeOutcome::default();
        let mut next_send = Instant::now();
        let mut end = next_send;
        let mut buf = [0u8; 2048];
        loop {
            let now = Instant::now();
            if out.sent < probes && now >= next_send {
                if let Err(e) = send(self.fd.as_raw_fd(), &frame, MsgFlags::empty()) {
                    out.error = Some(format!(
                        "cannot send an ARP probe on {}: {e}",
                        self.interface
                    ));
                    return out;
                }
                out.sent += 1;
                if out.sent == probes {
                    end = Instant::now() + wait;
                } else {
                    next_send += interval;
                }
                continue;
            }
            let until = if out.sent < probes { next_send } else { end };
            if out.sent >= probes && now >= end {
                return out;
            }
            match raw::readable_before(&self.fd, until) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(e) => {
                    out.error = Some(format!("cannot wait for ARP replies: {e}"));
                    return out;
                }
            }
            match recvfrom::<LinkAddr>(self.fd.as_raw_fd(), &mut buf) {
                Ok((len, from)) => {
                    // Our own probes come back as outgoing packets; another interface's frames
                    // could arrive before the bind took effect.
                    let ours = match from {
                        Some(f) => {
                            f.ifindex() == self.ifindex as usize
                                && f.pkttype() != libc::PACKET_OUTGOING
                        }
                        None => true,
                    };
                    let Some(frame) = buf.get(..len) else {
                        continue;
                    };
                    if let (true, Ok(packet)) = (ours, parse_frame(frame)) {
                        if let Some(mac) = conflicting_mac(&packet, address, self.own) {
                            *out.replies.entry(mac).or_default() += 1;
                        }
                    }
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(e) => {
                    out.error = Some(format!(
                        "cannot receive ARP replies on {}: {e}",
                        self.interface
                    ));
                    return out;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: Mac = [0x02, 0x42, 0xd3, 0x5a, 0x0e, 0x0e];
    const OTHER: Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    const VIP: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 250);

    /// An ARP packet as a peer would send it (no padding).
    fn frame(op: u16, sender: Mac, sender_ip: [u8; 4], target: Mac, target_ip: [u8; 4]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&target);
        f.extend_from_slice(&sender);
        f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4]);
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(&sender);
        f.extend_from_slice(&sender_ip);
        f.extend_from_slice(&target);
        f.extend_from_slice(&target_ip);
        f
    }

    #[test]
    fn the_probe_frame_is_byte_exact() {
        let expected: [u8; FRAME_LEN] = [
            // Ethernet: broadcast destination, our source, EtherType ARP
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xd3, 0x5a, 0x0e, 0x0e, 0x08, 0x06,
            // ARP: Ethernet, IPv4, lengths 6 and 4, request
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
            // sender MAC ours, sender IP 0.0.0.0
            0x02, 0x42, 0xd3, 0x5a, 0x0e, 0x0e, 0, 0, 0, 0,
            // target MAC zero, target IP the probed address
            0, 0, 0, 0, 0, 0, 172, 17, 0, 250, // padding to 60 bytes
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(probe_frame(OWN, VIP), expected);
    }

    #[test]
    fn our_probe_parses_back_and_is_no_conflict() {
        let packet = parse_frame(&probe_frame(OWN, VIP)).unwrap();
        assert_eq!(packet.operation, 1);
        assert_eq!(packet.sender_mac, OWN);
        assert_eq!(packet.sender_ip, Ipv4Addr::UNSPECIFIED);
        assert_eq!(packet.target_ip, VIP);
        assert_eq!(conflicting_mac(&packet, VIP, OWN), None);
        // another host's probe for the same address (sender IP 0.0.0.0) is no conflict either
        let theirs = parse_frame(&frame(1, OTHER, [0; 4], [0; 6], VIP.octets())).unwrap();
        assert_eq!(conflicting_mac(&theirs, VIP, OWN), None);
    }

    #[test]
    fn a_reply_from_the_address_is_a_conflict() {
        let reply = frame(2, OTHER, VIP.octets(), OWN, [0; 4]);
        let packet = parse_frame(&reply).unwrap();
        assert_eq!(packet.operation, 2);
        assert_eq!(packet.target_mac, OWN);
        assert_eq!(conflicting_mac(&packet, VIP, OWN), Some(OTHER));
        // a gratuitous ARP (request) announcing the address too
        let garp = frame(1, OTHER, VIP.octets(), BROADCAST, VIP.octets());
        assert_eq!(
            conflicting_mac(&parse_frame(&garp).unwrap(), VIP, OWN),
            Some(OTHER)
        );
        // with Ethernet padding and trailing bytes
        let mut padded = reply.clone();
        padded.resize(60, 0);
        assert_eq!(parse_frame(&padded).unwrap(), packet);
        // a reply for another address, or from our own MAC, is not
        let other_ip = frame(2, OTHER, [172, 17, 0, 3], OWN, [0; 4]);
        assert_eq!(
            conflicting_mac(&parse_frame(&other_ip).unwrap(), VIP, OWN),
            None
        );
        let own = frame(2, OWN, VIP.octets(), OWN, [0; 4]);
        assert_eq!(conflicting_mac(&parse_frame(&own).unwrap(), VIP, OWN), None);
    }

    #[test]
    fn truncated_foreign_and_garbage_frames_are_refused() {
        let reply = frame(2, OTHER, VIP.octets(), OWN, [0; 4]);
        for len in 0..reply.len() {
            assert_eq!(parse_frame(&reply[..len]), Err(NotArp::Short(len)));
        }
        let mut ipv4 = reply.clone();
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(parse_frame(&ipv4), Err(NotArp::EtherType(0x0800)));
        let mut hw = reply.clone();
        hw[15] = 6;
        assert_eq!(parse_frame(&hw), Err(NotArp::Hardware(6)));
        let mut proto = reply.clone();
        proto[16..18].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(parse_frame(&proto), Err(NotArp::Protocol(0x86dd)));
        let mut lengths = reply.clone();
        lengths[18] = 20;
        assert_eq!(parse_frame(&lengths), Err(NotArp::Lengths(20, 4)));
        let mut op = reply.clone();
        op[21] = 3;
        assert_eq!(parse_frame(&op), Err(NotArp::Operation(3)));
        // pseudo-random garbage of every length never panics
        let mut x: u32 = 0x1234_5678;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x.to_le_bytes()[0]
                })
                .collect();
            let _ = parse_frame(&bytes);
        }
    }

    #[test]
    fn macs_parse_from_sysfs_and_format_back() {
        assert_eq!(parse_mac("02:42:d3:5a:0e:0e\n"), Some(OWN));
        assert_eq!(parse_mac("02:42:D3:5A:0E:0E"), Some(OWN));
        assert_eq!(format_mac(OWN), "02:42:d3:5a:0e:0e");
        for bad in [
            "",
            "\n",
            "02:42:d3:5a:0e",
            "02:42:d3:5a:0e:0e:00",
            "02:42:d3:5a:0e:zz",
            "2:42:d3:5a:0e:0e",
            "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0a:bc:de",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }
}
