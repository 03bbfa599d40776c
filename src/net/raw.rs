//! Raw sockets for `vip_probe`: an `AF_PACKET` socket bound to one interface and one EtherType
//! (the ARP probe, [`crate::net::arp`]) and an IPv4 raw socket of one IP protocol (VRRP,
//! [`crate::net::vrrp`]), plus a deadline-bounded wait for either to become readable.
//!
//! nix has no safe constructor for these two (its `SockProtocol` has neither an EtherType of
//! choice nor IP protocol 112, and `LinkAddr` cannot be built from its fields), so the two
//! `socket(2)` calls and the one `bind(2)` are made here through `nix::libc`, each checked and
//! wrapped into an `OwnedFd` at once. Both sockets need CAP_NET_RAW: a refusal (EPERM, EACCES) is
//! [`Error::Refused`] saying to run the module as root (`become: true`), never a panic.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// The failure of a raw socket call: a permission refusal names CAP_NET_RAW and the fix.
pub fn socket_error(what: &str, errno: Errno) -> Error {
    if matches!(errno, Errno::EPERM | Errno::EACCES) {
        Error::Refused(format!(
            "{what}: {errno}: vip_probe needs CAP_NET_RAW for its raw sockets; run it as root (become: true)"
        ))
    } else {
        Error::Refused(format!("{what}: {errno}"))
    }
}

/// `socket(2)`, close-on-exec; the fd owned at once.
fn socket(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> nix::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; the result is checked before use.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `fd` is a new descriptor returned by socket(2) and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `AF_PACKET`/`SOCK_RAW` socket receiving only `ethertype` frames of interface `ifindex` and
/// sending whole Ethernet frames (header included) out of it.
pub fn packet_socket(ifindex: u32, ethertype: u16, interface: &str) -> Result<OwnedFd> {
    let what = format!("cannot open an AF_PACKET raw socket on {interface}");
    let protocol = ethertype.to_be();
    let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(protocol))
        .map_err(|e| socket_error(&what, e))?;
    let index = libc::c_int::try_from(ifindex)
        .map_err(|_| Error::Refused(format!("{what}: interface index {ifindex} out of range")))?;
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value of it.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as libc::sa_family_t;
    address.sll_protocol = protocol;
    address.sll_ifindex = index;
    let length = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `address` is a valid sockaddr_ll that outlives the call, `length` is its size.
    let bound = unsafe {
        libc::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            std::ptr::addr_of!(address).cast::<libc::sockaddr>(),
            length,
        )
    };
    if bound < 0 {
        return Err(socket_error(
            &format!("cannot bind the AF_PACKET socket to {interface}"),
            Errno::last(),
        ));
    }
    Ok(fd)
}

/// An IPv4 `SOCK_RAW` socket of IP protocol `protocol`: it receives every such packet with its IP
/// header.
pub fn ipv4_raw_socket(protocol: u8, what: &str) -> Result<OwnedFd> {
    socket(libc::AF_INET, libc::SOCK_RAW, libc::c_int::from(protocol))
        .map_err(|e| socket_error(&format!("cannot open {what}"), e))
}

/// Wait until `fd` is readable or `until` passes: `Ok(true)` when readable. EINTR is retried.
pub fn readable_before<F: AsFd>(fd: &F, until: Instant) -> nix::Result<bool> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        // Round up, so that the last wait does not spin on a zero timeout.
        let millis = left.as_millis().saturating_add(1);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_name_cap_net_raw_and_the_fix() {
        let e = socket_error("cannot open x", Errno::EPERM).to_string();
        assert!(
            e.contains("CAP_NET_RAW") && e.contains("become: true"),
            "{e}"
        );
        let e = socket_error("cannot open x", Errno::ENODEV).to_string();
        assert!(
            !e.contains("CAP_NET_RAW") && e.contains("cannot open x"),
            "{e}"
        );
    }

    #[test]
    fn readable_before_times_out_on_a_silent_socket() {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let start = Instant::now();
        let until = start + std::time::Duration::from_millis(50);
        assert!(!readable_before(&a, until).unwrap());
        assert!(start.elapsed() >= std::time::Duration::from_millis(50));
        b.send(b"x").unwrap();
        assert!(readable_before(&a, Instant::now() + std::time::Duration::from_secs(1)).unwrap());
    }
}
