//! `kubeha.control_plane.vip_probe`: the preflight of a keepalived + HAProxy VIP (issue #20), run
//! on each master before anything is changed: is the VIP free, is the VRRP virtual router id free,
//! and what already listens on the ports HAProxy would take. Read-only: it owns no state on the
//! host; it sends only ARP probes (sender IP 0.0.0.0, so no host's ARP cache learns anything) and
//! listens. The plan is the probing; `apply` has nothing to do; check mode is the same run.
//!
//! - the interface: `interface`, or the one whose IPv4 network holds `address`
//!   ([`crate::net::interfaces`]), with its addresses and MAC (`/sys/class/net/<if>/address`);
//! - `address_local`: the address is already on one of this host's interfaces (then no ARP probe);
//! - `arp`: `arp_probes` duplicate-address probes, one a second, and the hosts answering for the
//!   address until `arp_wait_ms` after the last ([`crate::net::arp`], as iputils `arping -D`);
//! - `vrrp`: the advertisements heard on the interface for `listen` seconds
//!   ([`crate::net::vrrp`]), and with `router_id` whether another host uses that id;
//! - `ports`: the TCP listeners on `ports` and their processes ([`crate::net::listeners`]).
//!
//! The ARP probe and the VRRP listen run at once. Both need CAP_NET_RAW: without it the module
//! fails saying so before sending anything. Docs: the sidecar `vip_probe.yml`.

use crate::error::{Error, Result};
use crate::net::arp::{self, ProbeOutcome, Prober};
use crate::net::interfaces::{Interface, Interfaces};
use crate::net::listeners::{self, Listener as TcpListener};
use crate::net::vrrp::{self, Heard, Listener};
use crate::options::{Default, Kind, ModuleSpec, OptionSpec, Options};
use crate::protocol::{Module, ModuleOutput};
use serde_json::{json, Map, Value};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Between two ARP probes, as `arping` sends them.
const ARP_INTERVAL: Duration = Duration::from_secs(1);

/// The module's options.
#[derive(Debug, Clone)]
pub struct VipProbe {
    pub address: Ipv4Addr,
    pub interface: Option<String>,
    pub router_id: Option<u8>,
    pub listen: Duration,
    pub ports: Vec<u16>,
    pub arp_probes: u32,
    pub arp_wait: Duration,
}

/// What the probe found: the result's fields, its summary and its warnings.
pub struct Findings {
    fields: Map<String, Value>,
    msg: String,
    warnings: Vec<String>,
}

/// The VIP: an IPv4 address a host can hold. IPv6 is refused by name.
fn parse_address(text: &str) -> Result<Ipv4Addr> {
    let text = text.trim();
    if let Ok(address) = text.parse::<Ipv4Addr>() {
        if address.is_unspecified() || address.is_multicast() || address.is_broadcast() {
            return Err(Error::option(
                "address",
                format!("{address} cannot be a virtual IP: give a unicast IPv4 address"),
            ));
        }
        return Ok(address);
    }
    if text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<Ipv6Addr>()
        .is_ok()
    {
        return Err(Error::option(
            "address",
            format!("{text} is an IPv6 address: only IPv4 is supported (the ARP probe and VRRP version 2 are IPv4 protocols)"),
        ));
    }
    Err(Error::option(
        "address",
        format!("{text:?} is not an IPv4 address (such as 10.0.0.10)"),
    ))
}

fn auth_type_name(auth_type: Option<u8>) -> Value {
    match auth_type {
        None => Value::Null,
        Some(0) => "none".into(),
        Some(1) => "simple".into(),
        Some(2) => "ah".into(),
        Some(n) => format!("type {n}").into(),
    }
}

/// Why no ARP probe is sent, when none is.
enum ArpSkip {
    /// As asked: the address is local, or `arp_probes` is 0.
    Needless(String),
    /// The interface cannot tell (no ARP, down, no Ethernet address): a warning, the address is
    /// not proven free.
    Cannot(String),
}

impl ArpSkip {
    fn reason(&self) -> &str {
        match self {
            ArpSkip::Needless(r) | ArpSkip::Cannot(r) => r,
        }
    }
}

/// No Ethernet address: none read, or all zeros (loopback, some tunnels).
fn no_mac(mac: Option<arp::Mac>) -> bool {
    mac.map_or(true, |m| m.iter().all(|b| *b == 0))
}

impl VipProbe {
    /// `interface`, which must exist, or the one whose network holds the address.
    fn interface<'a>(&self, interfaces: &'a Interfaces) -> Result<&'a Interface> {
        match &self.interface {
            Some(name) => interfaces.named(name).ok_or_else(|| {
                Error::option(
                    "interface",
                    format!(
                        "no interface {name:?} on this host; interfaces seen: {}",
                        interfaces.describe()
                    ),
                )
            }),
            None => interfaces
                .for_address(self.address)
                .map_err(|e| Error::option("interface", e)),
        }
    }

    /// Why no ARP probe is sent on `interface`, if none is.
    fn arp_skip(
        &self,
        interface: &Interface,
        mac: Option<arp::Mac>,
        holder: Option<&str>,
    ) -> Option<ArpSkip> {
        let name = &interface.name;
        if let Some(holder) = holder {
            return Some(ArpSkip::Needless(format!(
                "{} is assigned on this host ({holder}): not probed",
                self.address
            )));
        }
        if self.arp_probes == 0 {
            return Some(ArpSkip::Needless("arp_probes is 0".into()));
        }
        if interface.loopback || interface.noarp {
            Some(ArpSkip::Cannot(format!(
                "{name} does not use ARP (loopback or NOARP): a probe there proves nothing"
            )))
        } else if !interface.up {
            Some(ArpSkip::Cannot(format!(
                "{name} is down: no ARP probe sent"
            )))
        } else if no_mac(mac) {
            Some(ArpSkip::Cannot(format!(
                "{name} has no Ethernet address: no ARP probe sent"
            )))
        } else {
            None
        }
    }

    /// Why the module does not listen for VRRP, if it does not; `join_with` is the interface's
    /// first IPv4 address.
    fn vrrp_skip(&self, name: &str, join_with: Option<Ipv4Addr>) -> Option<String> {
        if self.listen.is_zero() {
            Some("listen is 0".into())
        } else if join_with.is_none() {
            Some(format!(
                "{name} has no IPv4 address to join {} with",
                vrrp::GROUP
            ))
        } else {
            None
        }
    }

    /// The `arp` field.
    fn arp_field(&self, skipped: Option<&ArpSkip>, outcome: &ProbeOutcome) -> Value {
        let replies: Vec<Value> = outcome
            .replies
            .iter()
            .map(|(mac, count)| json!({"mac": arp::format_mac(*mac), "count": count}))
            .collect();
        let mut field = json!({"probes": outcome.sent, "replies": replies});
        if let Some(skip) = skipped {
            field["skipped"] = skip.reason().into();
        }
        if let Some(error) = &outcome.error {
            field["error"] = error.clone().into();
        }
        field
    }

    /// The `vrrp` field, and the router ids heard from other hosts.
    fn vrrp_field(
        &self,
        skipped: Option<&str>,
        heard: &Heard,
        listened: Duration,
        local: &[Ipv4Addr],
    ) -> (Value, Vec<u8>) {
        let tallied = vrrp::tally(&heard.adverts);
        let adverts: Vec<Value> = tallied
            .iter()
            .map(|(a, count)| {
                json!({
                    "source": a.source.to_string(),
                    "router_id": a.router_id,
                    "priority": a.priority,
                    "version": a.version,
                    "addresses": a.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "auth_type": auth_type_name(a.auth_type),
                    "count": count,
                    "local": local.contains(&a.source),
                })
            })
            .collect();
        let mut foreign_ids: Vec<u8> = tallied
            .iter()
            .filter(|(a, _)| !local.contains(&a.source))
            .map(|(a, _)| a.router_id)
            .collect();
        foreign_ids.sort_unstable();
        foreign_ids.dedup();
        // the whole listen unless it was cut short
        let listened_s = match (skipped, &heard.error) {
            (None, None) => self.listen.as_secs(),
            _ => listened.as_secs(),
        };
        let mut field = json!({
            "listened_s": listened_s,
            "adverts": adverts,
            "malformed": heard.malformed,
        });
        if let Some(id) = self.router_id {
            field["router_id_in_use"] = foreign_ids.contains(&id).into();
        }
        if let Some(reason) = skipped {
            field["skipped"] = reason.into();
        }
        if let Some(error) = &heard.error {
            field["error"] = error.clone().into();
        }
        (field, foreign_ids)
    }

    /// The `ports` field: per port, its listeners; a warning per unreadable socket table.
    fn ports_field(&self, warnings: &mut Vec<String>) -> Map<String, Value> {
        let mut ports = Map::new();
        if self.ports.is_empty() {
            return ports;
        }
        let (found, unreadable) = listeners::listeners(&self.ports);
        warnings.extend(unreadable);
        for port in &self.ports {
            let on_port: Vec<Value> = found
                .iter()
                .filter(|l: &&TcpListener| l.port == *port)
                .map(|l| json!({"address": l.address.to_string(), "process": l.process}))
                .collect();
            ports.insert(port.to_string(), Value::Array(on_port));
        }
        ports
    }

    /// One sentence: where, whether the address is taken, what VRRP says, what listens.
    fn summary(
        &self,
        interface: &str,
        holder: Option<&str>,
        probed: Option<&ProbeOutcome>,
        heard: Option<(&[u8], u64)>,
        ports: &Map<String, Value>,
    ) -> String {
        let mut parts = vec![format!("{} on {interface}", self.address)];
        parts.push(match holder {
            Some(h) => format!("assigned on this host ({h})"),
            None => "not assigned on this host".into(),
        });
        if let Some(outcome) = probed {
            parts.push(match (outcome.replies.len(), &outcome.error) {
                (0, Some(_)) => "ARP probe failed (see warnings)".into(),
                (0, None) => format!("no ARP reply to {} probes", outcome.sent),
                (n, _) => format!("{n} other host(s) answer ARP for it"),
            });
        }
        if let Some((foreign_ids, secs)) = heard {
            parts.push(if foreign_ids.is_empty() {
                format!("no VRRP advert from another host in {secs} s")
            } else {
                let ids: Vec<String> = foreign_ids.iter().map(u8::to_string).collect();
                format!(
                    "VRRP router id(s) {} advertised by other hosts",
                    ids.join(", ")
                )
            });
            if let Some(id) = self.router_id {
                parts.push(if foreign_ids.contains(&id) {
                    format!("router id {id} is in use")
                } else {
                    format!("router id {id} not heard")
                });
            }
        }
        for (port, on_port) in ports {
            let holders: std::collections::BTreeSet<&str> = on_port
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["process"].as_str())
                .collect();
            parts.push(if holders.is_empty() {
                format!("port {port} free")
            } else {
                let names: Vec<&str> = holders.into_iter().collect();
                format!("port {port} held by {}", names.join(", "))
            });
        }
        parts.join("; ")
    }
}

impl Module for VipProbe {
    const SPEC: &'static ModuleSpec = &ModuleSpec {
        name: "vip_probe",
        options: &[
            OptionSpec::new(
                "address",
                Kind::Str,
                "The virtual IP to check, an IPv4 address (IPv6 is refused: the ARP probe and VRRP version 2 are IPv4 protocols).",
            )
            .required(),
            OptionSpec::new(
                "interface",
                Kind::Str,
                "The interface to probe and listen on. Defaults to the interface whose IPv4 network holds O(address) (the longest prefix; the module fails naming the interfaces seen when none does, or when two tie).",
            ),
            OptionSpec::new(
                "router_id",
                Kind::Int { min: 1, max: 255 },
                "The VRRP virtual router id (keepalived's C(virtual_router_id)) meant for the VIP; RV(vrrp.router_id_in_use) says whether another host advertises it.",
            ),
            OptionSpec::new(
                "listen",
                Kind::Int { min: 0, max: 30 },
                "Seconds to listen for VRRP advertisements on the interface (0 - 30; 0 does not listen). A VRRP master advertises every advert interval (keepalived's default 1 s); listen for more than three.",
            )
            .default(Default::Int(3)),
            OptionSpec::new(
                "ports",
                Kind::IntList { min: 1, max: 65535 },
                "TCP ports whose listeners to report under RV(ports), with the process holding each.",
            )
            .default(Default::EmptyList),
            OptionSpec::new(
                "arp_probes",
                Kind::Int { min: 0, max: 10 },
                "ARP probes for O(address) to send, one a second (duplicate-address detection as iputils C(arping -D): sender IP 0.0.0.0); 0 sends none.",
            )
            .default(Default::Int(3)),
            OptionSpec::new(
                "arp_wait_ms",
                Kind::Int { min: 0, max: 10000 },
                "Milliseconds to wait for ARP replies after the last probe.",
            )
            .default(Default::Int(1000)),
        ],
    };
    type Plan = Findings;
    type Applied = ();

    fn from_options(o: &Options) -> Result<Self> {
        let address = parse_address(&o.string("address")?)?;
        let interface = match o.opt_string("interface")? {
            Some(name) if name.trim().is_empty() => {
                return Err(Error::option(
                    "interface",
                    "must not be empty: leave it out to use the interface whose network holds the address",
                ))
            }
            other => other.map(|n| n.trim().to_string()),
        };
        // The spec's ranges bound every integer: the conversions cannot fail.
        let router_id = o
            .opt_int("router_id")?
            .map(|id| u8::try_from(id).unwrap_or(u8::MAX));
        let listen = Duration::from_secs(u64::try_from(o.int("listen")?).unwrap_or(0));
        let ports = o
            .ints("ports")?
            .into_iter()
            .map(|p| u16::try_from(p).unwrap_or(u16::MAX))
            .collect();
        let arp_probes = u32::try_from(o.int("arp_probes")?).unwrap_or(0);
        let arp_wait = Duration::from_millis(u64::try_from(o.int("arp_wait_ms")?).unwrap_or(0));
        Ok(VipProbe {
            address,
            interface,
            router_id,
            listen,
            ports,
            arp_probes,
            arp_wait,
        })
    }

    /// The probing is the read: the interfaces, then the ARP probe and the VRRP listen at once,
    /// then the listeners.
    fn plan(&self) -> Result<Findings> {
        let interfaces = Interfaces::read()?;
        let interface = self.interface(&interfaces)?;
        let name = interface.name.as_str();
        let ifindex = nix::net::if_::if_nametoindex(name).map_err(|e| {
            Error::option(
                "interface",
                format!("{name}: no index (if_nametoindex: {e})"),
            )
        })?;
        let mac = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
            .ok()
            .and_then(|text| arp::parse_mac(&text));
        let holder = interfaces.holding(self.address).map(|i| i.name.clone());
        let mut warnings = Vec::new();

        // Both raw sockets open before anything is sent or awaited: without CAP_NET_RAW the
        // module fails here, at once.
        let arp_skip = self.arp_skip(interface, mac, holder.as_deref());
        let prober = match (&arp_skip, mac) {
            (None, Some(mac)) => Some(Prober::open(name, ifindex, mac)?),
            _ => None,
        };
        let join_with = interface.ipv4().next().map(|(a, _)| a);
        let vrrp_skip = self.vrrp_skip(name, join_with);
        let listener = match (&vrrp_skip, join_with) {
            (None, Some(with)) => Some(Listener::open(name, with)?),
            _ => None,
        };
        let (probed, heard) = std::thread::scope(|scope| {
            let probe = prober.as_ref().map(|p| {
                scope.spawn(move || {
                    p.probe(self.address, self.arp_probes, ARP_INTERVAL, self.arp_wait)
                })
            });
            let heard = listener.as_ref().map(|l| {
                let start = Instant::now();
                let heard = l.listen(self.listen);
                (heard, start.elapsed())
            });
            let probed = probe.map(|h| {
                h.join().unwrap_or_else(|_| ProbeOutcome {
                    error: Some("the ARP probe's thread panicked".into()),
                    ..ProbeOutcome::default()
                })
            });
            (probed, heard)
        });

        if let Some(ArpSkip::Cannot(reason)) = &arp_skip {
            warnings.push(format!("{reason}: {} is not proven free", self.address));
        }
        if let (Some(reason), false) = (&vrrp_skip, self.listen.is_zero()) {
            warnings.push(format!("{reason}: VRRP not listened to"));
        }
        warnings.extend(probed.as_ref().and_then(|p| p.error.clone()));
        warnings.extend(heard.as_ref().and_then(|(h, _)| h.error.clone()));
        let not_probed = ProbeOutcome::default();
        let arp_field = self.arp_field(arp_skip.as_ref(), probed.as_ref().unwrap_or(&not_probed));
        let (heard_now, listened) = heard.unwrap_or_default();
        let (vrrp_field, foreign_ids) = self.vrrp_field(
            vrrp_skip.as_deref(),
            &heard_now,
            listened,
            &interfaces.local_ipv4(),
        );
        let ports = self.ports_field(&mut warnings);
        let msg = self.summary(
            name,
            holder.as_deref(),
            probed.as_ref(),
            listener.as_ref().map(|_| {
                (
                    foreign_ids.as_slice(),
                    vrrp_field["listened_s"].as_u64().unwrap_or(0),
                )
            }),
            &ports,
        );

        let mut fields = Map::new();
        fields.insert(
            "interface".into(),
            json!({
                "name": name,
                "addresses": interface.cidrs(),
                "mac": mac.map(arp::format_mac),
            }),
        );
        fields.insert("address_local".into(), holder.is_some().into());
        fields.insert("arp".into(), arp_field);
        fields.insert("vrrp".into(), vrrp_field);
        fields.insert("ports".into(), Value::Object(ports));
        Ok(Findings {
            fields,
            msg,
            warnings,
        })
    }

    /// Nothing to carry out: the module only reads.
    fn apply(&self, _findings: &Findings, _check_mode: bool) -> Result<()> {
        Ok(())
    }

    fn report(&self, findings: Findings, _applied: (), _check_mode: bool) -> ModuleOutput {
        let mut out = ModuleOutput::new(false, findings.msg);
        out.fields = findings.fields;
        out.warnings = findings.warnings;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unicast_ipv4_and_ipv6_is_refused_by_name() {
        assert_eq!(
            parse_address(" 10.0.0.10 ").unwrap(),
            Ipv4Addr::new(10, 0, 0, 10)
        );
        for v6 in ["fd00::10", "[fd00::10]", "::1"] {
            let e = parse_address(v6).unwrap_err().to_string();
            assert!(
                e.contains("`address`") && e.contains("only IPv4 is supported"),
                "{v6}: {e}"
            );
        }
        for bad in ["0.0.0.0", "224.0.0.18", "255.255.255.255"] {
            let e = parse_address(bad).unwrap_err().to_string();
            assert!(e.contains("unicast"), "{bad}: {e}");
        }
        for bad in ["10.0.0.10/24", "vip.example", "10.0.0"] {
            let e = parse_address(bad).unwrap_err().to_string();
            assert!(e.contains("is not an IPv4 address"), "{bad}: {e}");
        }
    }

    #[test]
    fn auth_types_are_named_as_tcpdump_does() {
        assert_eq!(auth_type_name(Some(0)), json!("none"));
        assert_eq!(auth_type_name(Some(1)), json!("simple"));
        assert_eq!(auth_type_name(Some(2)), json!("ah"));
        assert_eq!(auth_type_name(Some(9)), json!("type 9"));
        assert_eq!(auth_type_name(None), Value::Null);
    }
}
