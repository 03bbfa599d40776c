//! This host's network interfaces as the kernel reports them (`getifaddrs`): each one's flags and
//! its IPv4 and IPv6 addresses with their prefix lengths; which interface's IPv4 network holds a
//! given address ([`Interfaces::for_address`], pure), and which holds the address itself.

use crate::error::{Error, Result};
use nix::net::if_::InterfaceFlags;
use std::net::{IpAddr, Ipv4Addr};

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub up: bool,
    pub loopback: bool,
    /// IFF_NOARP: ARP is off on it.
    pub noarp: bool,
    /// Its addresses and prefix lengths, IPv4 first, in the kernel's order.
    pub addresses: Vec<(IpAddr, u8)>,
}

impl Interface {
    pub fn ipv4(&self) -> impl Iterator<Item = (Ipv4Addr, u8)> + '_ {
        self.addresses.iter().filter_map(|(a, p)| match a {
            IpAddr::V4(v4) => Some((*v4, *p)),
            IpAddr::V6(_) => None,
        })
    }

    /// `10.0.0.11/24`, ...
    pub fn cidrs(&self) -> Vec<String> {
        self.addresses
            .iter()
            .map(|(a, p)| format!("{a}/{p}"))
            .collect()
    }

    /// `eth0 (10.0.0.11/24)`, `ifb0 (no IPv4)`: how error messages list it.
    fn describe(&self) -> String {
        let v4: Vec<String> = self.ipv4().map(|(a, p)| format!("{a}/{p}")).collect();
        if v4.is_empty() {
            format!("{} (no IPv4)", self.name)
        } else {
            format!("{} ({})", self.name, v4.join(", "))
        }
    }
}

/// Whether `address` is in the network `network/prefix`.
pub fn in_network(address: Ipv4Addr, network: Ipv4Addr, prefix: u8) -> bool {
    let mask = match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - u32::from(p)),
    };
    u32::from(address) & mask == u32::from(network) & mask
}

/// The length of a contiguous netmask's prefix (its leading ones).
fn prefix_len(mask: &[u8]) -> u8 {
    let ones: u32 = mask
        .iter()
        .map(|b| b.leading_ones())
        .scan(true, |go, n| {
            if !*go {
                return Some(0);
            }
            *go = n == 8;
            Some(n)
        })
        .sum();
    u8::try_from(ones).unwrap_or(u8::MAX)
}

/// All interfaces, in the kernel's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces(pub Vec<Interface>);

impl Interfaces {
    /// Read them from the kernel.
    pub fn read() -> Result<Interfaces> {
        let list = nix::ifaddrs::getifaddrs().map_err(|e| {
            Error::Refused(format!(
                "cannot list the network interfaces (getifaddrs): {e}"
            ))
        })?;
        let mut out: Vec<Interface> = Vec::new();
        for entry in list {
            let index = match out.iter().position(|i| i.name == entry.interface_name) {
                Some(i) => i,
                None => {
                    out.push(Interface {
                        name: entry.interface_name.clone(),
                        up: false,
                        loopback: false,
                        noarp: false,
                        addresses: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            let interface = &mut out[index];
            interface.up |= entry.flags.contains(InterfaceFlags::IFF_UP);
            interface.loopback |= entry.flags.contains(InterfaceFlags::IFF_LOOPBACK);
            interface.noarp |= entry.flags.contains(InterfaceFlags::IFF_NOARP);
            let (Some(address), netmask) = (entry.address, entry.netmask) else {
                continue;
            };
            if let Some(v4) = address.as_sockaddr_in() {
                let prefix = netmask
                    .as_ref()
                    .and_then(|m| m.as_sockaddr_in())
                    .map_or(32, |m| prefix_len(&m.ip().octets()));
                interface.addresses.push((IpAddr::V4(v4.ip()), prefix));
            } else if let Some(v6) = address.as_sockaddr_in6() {
                let prefix = netmask
                    .as_ref()
                    .and_then(|m| m.as_sockaddr_in6())
                    .map_or(128, |m| prefix_len(&m.ip().octets()));
                interface.addresses.push((IpAddr::V6(v6.ip()), prefix));
            }
        }
        for interface in &mut out {
            // IPv4 first, each family in the kernel's order
            interface.addresses.sort_by_key(|(a, _)| a.is_ipv6());
        }
        Ok(Interfaces(out))
    }

    pub fn named(&self, name: &str) -> Option<&Interface> {
        self.0.iter().find(|i| i.name == name)
    }

    /// The interface that holds `address` itself, if any.
    pub fn holding(&self, address: Ipv4Addr) -> Option<&Interface> {
        self.0.iter().find(|i| i.ipv4().any(|(a, _)| a == address))
    }

    /// Every IPv4 address of the host.
    pub fn local_ipv4(&self) -> Vec<Ipv4Addr> {
        self.0
            .iter()
            .flat_map(|i| i.ipv4().map(|(a, _)| a))
            .collect()
    }

    /// The interface whose IPv4 network holds `address`: the longest prefix wins, as routing
    /// picks; a /32 (a VIP already held, which says nothing of the link) counts only when no
    /// network does. An error message (naming the address and the interfaces seen) when none
    /// does, or when two interfaces tie.
    pub fn for_address(&self, address: Ipv4Addr) -> std::result::Result<&Interface, String> {
        let matching = |host_routes: bool| {
            let mut best: Vec<(&Interface, u8)> = Vec::new();
            for interface in &self.0 {
                for (network, prefix) in interface.ipv4() {
                    if (prefix >= 32) != host_routes || !in_network(address, network, prefix) {
                        continue;
                    }
                    match best.first().map(|(_, p)| *p) {
                        Some(p) if p > prefix => {}
                        Some(p) if p == prefix => {
                            if !best.iter().any(|(i, _)| i.name == interface.name) {
                                best.push((interface, prefix));
                            }
                        }
                        _ => best = vec![(interface, prefix)],
                    }
                }
            }
            best
        };
        let mut best = matching(false);
        if best.is_empty() {
            best = matching(true);
        }
        match best.as_slice() {
            [(interface, _)] => Ok(*interface),
            [] => Err(format!(
                "no interface has an IPv4 network holding {address}; interfaces seen: {}. Set interface to the one the address belongs on",
                self.describe()
            )),
            several => Err(format!(
                "{address} is in the networks of several interfaces: {}. Set interface to the one the address belongs on",
                several
                    .iter()
                    .map(|(i, _)| i.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// `lo (127.0.0.1/8), eth0 (10.0.0.11/24), ...`
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(Interface::describe)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, addresses: &[(&str, u8)]) -> Interface {
        Interface {
            name: name.into(),
            up: true,
            loopback: name == "lo",
            noarp: false,
            addresses: addresses
                .iter()
                .map(|(a, p)| (a.parse().unwrap(), *p))
                .collect(),
        }
    }

    fn host() -> Interfaces {
        Interfaces(vec![
            iface("lo", &[("127.0.0.1", 8), ("::1", 128)]),
            iface("eth0", &[("10.0.0.11", 24), ("fd00::11", 64)]),
            iface("eth1", &[("192.168.0.5", 16)]),
            iface("eth2", &[("192.168.7.5", 24)]),
            iface("ifb0", &[]),
        ])
    }

    fn pick(ifs: &Interfaces, a: &str) -> std::result::Result<String, String> {
        ifs.for_address(a.parse().unwrap()).map(|i| i.name.clone())
    }

    #[test]
    fn networks_and_prefixes() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(in_network(a("10.0.0.250"), a("10.0.0.11"), 24));
        assert!(!in_network(a("10.0.1.250"), a("10.0.0.11"), 24));
        assert!(in_network(a("8.8.8.8"), a("10.0.0.11"), 0));
        assert!(in_network(a("10.0.0.11"), a("10.0.0.11"), 32));
        assert!(!in_network(a("10.0.0.12"), a("10.0.0.11"), 32));
        assert_eq!(prefix_len(&[255, 255, 255, 0]), 24);
        assert_eq!(prefix_len(&[255, 255, 240, 0]), 20);
        assert_eq!(prefix_len(&[0, 0, 0, 0]), 0);
        assert_eq!(prefix_len(&[255; 16]), 128);
        // a non-contiguous mask counts its leading ones only
        assert_eq!(prefix_len(&[255, 0, 255, 0]), 8);
    }

    #[test]
    fn the_longest_matching_network_wins() {
        let ifs = host();
        assert_eq!(pick(&ifs, "10.0.0.250"), Ok("eth0".into()));
        assert_eq!(pick(&ifs, "127.0.0.1"), Ok("lo".into()));
        assert_eq!(pick(&ifs, "192.168.7.9"), Ok("eth2".into()), "/24 over /16");
        assert_eq!(pick(&ifs, "192.168.9.9"), Ok("eth1".into()));
    }

    #[test]
    fn a_held_vip_does_not_hide_its_network() {
        let mut ifs = host();
        ifs.0[0].addresses.push(("10.0.0.250".parse().unwrap(), 32));
        assert_eq!(pick(&ifs, "10.0.0.250"), Ok("eth0".into()));
        assert_eq!(
            ifs.holding("10.0.0.250".parse().unwrap()).unwrap().name,
            "lo"
        );
        // alone, the /32 tells where it is
        ifs.0[0].addresses.push(("172.16.0.1".parse().unwrap(), 32));
        assert_eq!(pick(&ifs, "172.16.0.1"), Ok("lo".into()));
    }

    #[test]
    fn no_or_several_networks_name_the_address_and_the_interfaces() {
        let ifs = host();
        let e = pick(&ifs, "172.17.0.250").unwrap_err();
        assert!(e.contains("172.17.0.250"), "{e}");
        assert!(
            e.contains("lo (127.0.0.1/8), eth0 (10.0.0.11/24), eth1 (192.168.0.5/16)")
                && e.contains("ifb0 (no IPv4)"),
            "{e}"
        );
        let mut twice = host();
        twice.0.push(iface("eth3", &[("10.0.0.12", 24)]));
        let e = pick(&twice, "10.0.0.250").unwrap_err();
        assert!(
            e.contains("several") && e.contains("eth0") && e.contains("eth3"),
            "{e}"
        );
        // two addresses of one interface in the network are no tie
        let mut two = host();
        two.0[1].addresses.push(("10.0.0.13".parse().unwrap(), 24));
        assert_eq!(pick(&two, "10.0.0.250"), Ok("eth0".into()));
    }

    #[test]
    fn local_addresses_and_cidrs() {
        let ifs = host();
        assert_eq!(ifs.local_ipv4().len(), 4);
        assert!(ifs.holding("10.0.0.11".parse().unwrap()).is_some());
        assert!(ifs.holding("10.0.0.12".parse().unwrap()).is_none());
        assert_eq!(ifs.0[1].cidrs(), ["10.0.0.11/24", "fd00::11/64"]);
    }

    #[test]
    fn this_host_has_loopback() {
        let ifs = Interfaces::read().unwrap();
        let lo = ifs
            .holding(Ipv4Addr::LOCALHOST)
            .expect("127.0.0.1 on some interface");
        assert!(lo.loopback && lo.up, "{lo:?}");
        assert!(lo.cidrs().contains(&"127.0.0.1/8".to_string()), "{lo:?}");
    }
}
