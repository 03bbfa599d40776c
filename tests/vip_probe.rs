//! Integration tests of `vip_probe`, run as Ansible runs it, on this machine's own interfaces
//! (loopback, and the first other interface with an IPv4 address): bad options fail naming the
//! option; a local address is reported without an ARP probe; `ports` finds a listener this test
//! opens; a short VRRP listen answers; VRRP adverts sent over loopback by this test are heard and
//! judged; without CAP_NET_RAW the module fails saying so. Tests that open raw sockets need root
//! and are skipped, with the reason printed, without it. No ARP probe is sent to any network here.

mod common;

use common::*;
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

const M: &str = "vip_probe";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skip (printing why) unless root: raw sockets need CAP_NET_RAW.
macro_rules! needs_root {
    () => {
        if !is_root() {
            eprintln!("skipped: opens raw sockets, which need root (CAP_NET_RAW)");
            return;
        }
    };
}

/// This process's name as `/proc/<pid>/comm` shows it.
fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn bad_options_fail_naming_the_option() {
    let cases = [
        (
            json!({"address": "fd00::10"}),
            "`address`",
            "only IPv4 is supported",
        ),
        (
            json!({"address": "[2001:db8::1]"}),
            "`address`",
            "only IPv4 is supported",
        ),
        (
            json!({"address": "10.0.0.300"}),
            "`address`",
            "not an IPv4 address",
        ),
        (json!({"address": "224.0.0.18"}), "`address`", "unicast"),
        (
            json!({"address": "127.0.0.1", "interface": "kubeha-nosuch0"}),
            "`interface`",
            "no interface \"kubeha-nosuch0\" on this host; interfaces seen: ",
        ),
        (
            json!({"address": "127.0.0.1", "interface": " "}),
            "`interface`",
            "must not be empty",
        ),
        (
            json!({"address": "127.0.0.1", "router_id": 0}),
            "`router_id`",
            "from 1 to 255",
        ),
        (
            json!({"address": "127.0.0.1", "router_id": 256}),
            "`router_id`",
            "from 1 to 255",
        ),
        (
            json!({"address": "127.0.0.1", "listen": 31}),
            "`listen`",
            "from 0 to 30",
        ),
        (
            json!({"address": "127.0.0.1", "arp_probes": 11}),
            "`arp_probes`",
            "from 0 to 10",
        ),
        (
            json!({"address": "127.0.0.1", "ports": [22, 70000]}),
            "`ports`",
            "item 1",
        ),
        (
            json!({"address": "127.0.0.1", "ports": "ssh"}),
            "`ports`",
            "whole number",
        ),
        (
            json!({"address": "127.0.0.1", "routerid": 51}),
            "`routerid`",
            "did you mean `router_id`?",
        ),
        (
            json!({"address": "127.0.0.1", "vip": "x"}),
            "`vip`",
            "supported options: address, arp_probes",
        ),
    ];
    for (options, option, reason) in cases {
        let out = run_module(M, options.clone(), Mode::CHECK);
        let msg = out.fail_msg();
        assert!(
            msg.contains(option) && msg.contains(reason),
            "{options}: expected {option} and {reason:?} in {msg:?}"
        );
        assert!(!out.exit_ok, "{options}: a failure exits non-zero");
    }
    // an address in no interface's network names the address and every interface seen
    let msg = run_module(M, json!({"address": "203.0.113.77"}), Mode::NORMAL).fail_msg();
    assert!(
        msg.contains("`interface`")
            && msg.contains("203.0.113.77")
            && msg.contains("interfaces seen: ")
            && msg.contains("lo (127.0.0.1/8"),
        "{msg}"
    );
}

/// The first interface other than loopback with an IPv4 address, and that address.
fn other_interface() -> Option<(String, Ipv4Addr)> {
    let interfaces = kubeha::net::interfaces::Interfaces::read().unwrap();
    interfaces
        .0
        .iter()
        .filter(|i| !i.loopback)
        .find_map(|i| i.ipv4().next().map(|(a, _)| (i.name.clone(), a)))
}

#[test]
fn a_local_address_is_reported_without_an_arp_probe() {
    let mut cases = vec![("lo".to_string(), Ipv4Addr::LOCALHOST)];
    match other_interface() {
        Some(other) => cases.push(other),
        None => eprintln!("no interface besides loopback has an IPv4 address: only 127.0.0.1"),
    }
    for (name, address) in cases {
        let options = json!({"address": address.to_string(), "listen": 0, "arp_probes": 3});
        let normal = run_module(M, options.clone(), Mode::NORMAL).ok();
        let j = &normal.json;
        assert!(!normal.changed());
        assert_eq!(j["address_local"], json!(true), "{}", normal.stdout);
        assert_eq!(j["interface"]["name"], json!(name), "{}", normal.stdout);
        let cidrs = j["interface"]["addresses"].as_array().unwrap();
        assert!(
            cidrs
                .iter()
                .any(|c| c.as_str().unwrap().starts_with(&format!("{address}/"))),
            "{}",
            normal.stdout
        );
        assert_eq!(j["arp"]["probes"], json!(0));
        assert_eq!(j["arp"]["replies"], json!([]));
        let skipped = j["arp"]["skipped"].as_str().unwrap();
        assert!(
            skipped.contains(&format!("{address} is assigned on this host ({name})")),
            "{skipped}"
        );
        assert_eq!(j["vrrp"]["listened_s"], json!(0));
        assert_eq!(j["vrrp"]["skipped"], json!("listen is 0"));
        assert!(j.get("warnings").is_none(), "{}", normal.stdout);
        assert!(
            normal
                .msg()
                .contains(&format!("assigned on this host ({name})")),
            "{}",
            normal.msg()
        );
        // check mode is the same run
        let check = run_module(M, options, Mode::CHECK_DIFF).ok();
        assert_eq!(check.json, normal.json);
    }
}

#[test]
fn ports_report_a_listener_of_this_test_with_its_process() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free = closed.local_addr().unwrap().port();
    drop(closed);
    let out = run_module(
        M,
        json!({"address": "127.0.0.1", "listen": 0, "ports": [port, free.to_string()]}),
        Mode::NORMAL,
    )
    .ok();
    let ports = &out.json["ports"];
    assert_eq!(
        ports[port.to_string()],
        json!([{"address": "127.0.0.1", "process": own_comm()}]),
        "{}",
        out.stdout
    );
    assert_eq!(ports[free.to_string()], json!([]), "{}", out.stdout);
    assert_eq!(ports.as_object().unwrap().len(), 2);
    assert!(
        out.msg()
            .contains(&format!("port {port} held by {}", own_comm()))
            && out.msg().contains(&format!("port {free} free")),
        "{}",
        out.msg()
    );
    drop(listener);
}

#[test]
fn a_short_listen_answers_with_the_adverts_heard() {
    needs_root!();
    let out = run_module(
        M,
        json!({"address": "127.0.0.1", "listen": 1, "router_id": 51}),
        Mode::NORMAL,
    )
    .ok();
    let vrrp = &out.json["vrrp"];
    assert_eq!(vrrp["listened_s"], json!(1), "{}", out.stdout);
    assert!(vrrp["adverts"].is_array(), "{}", out.stdout);
    assert!(vrrp["malformed"].is_u64(), "{}", out.stdout);
    assert!(vrrp["router_id_in_use"].is_boolean(), "{}", out.stdout);
    assert!(vrrp.get("skipped").is_none() && vrrp.get("error").is_none());
}

/// An IPv4 packet of protocol 112 from `source` to 127.0.0.1 (sent with IP_HDRINCL).
fn ip_packet(source: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap().to_be_bytes();
    let s = source.octets();
    let mut p = vec![
        0x45, 0xc0, total[0], total[1], 0, 0, 0, 0, 255, 112, 0, 0, s[0], s[1], s[2], s[3], 127, 0,
        0, 1,
    ];
    p.extend_from_slice(payload);
    p
}

/// A VRRP v2 advert (auth PASS with password `secret12`, advert interval 1 s).
fn v2_advert(router_id: u8, priority: u8, addresses: &[Ipv4Addr]) -> Vec<u8> {
    let count = u8::try_from(addresses.len()).unwrap();
    let mut vrrp = vec![0x21, router_id, priority, count, 1, 1, 0, 0];
    for a in addresses {
        vrrp.extend_from_slice(&a.octets());
    }
    vrrp.extend_from_slice(b"secret12");
    let sum = kubeha::net::vrrp::checksum(&[&vrrp]).to_be_bytes();
    vrrp[6] = sum[0];
    vrrp[7] = sum[1];
    vrrp
}

#[test]
fn vrrp_adverts_sent_over_loopback_are_heard_and_judged() {
    needs_root!();
    use nix::sys::socket::{sendto, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol};
    use nix::sys::socket::{SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    // IPPROTO_RAW: the IP header is ours, so the source can be 127.0.0.2, an address loopback
    // accepts but no interface of this host lists (another host, as far as the module knows).
    let sender = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Raw,
    )
    .unwrap();
    let other = Ipv4Addr::new(127, 0, 0, 2);
    let vip = Ipv4Addr::new(10, 0, 0, 10);
    let packets = [
        ip_packet(other, &v2_advert(51, 100, &[vip])),
        ip_packet(Ipv4Addr::LOCALHOST, &v2_advert(52, 150, &[vip])),
        // a VRRP header cut short
        ip_packet(other, &[0x21, 51, 100]),
    ];
    let to = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let out = std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(600));
                for p in &packets {
                    sendto(sender.as_raw_fd(), p, &to, MsgFlags::empty()).unwrap();
                }
            }
        });
        run_module(
            M,
            json!({"address": "127.0.0.1", "listen": 3, "router_id": 51}),
            Mode::CHECK,
        )
        .ok()
    });
    let vrrp = &out.json["vrrp"];
    let adverts = vrrp["adverts"].as_array().unwrap();
    let find = |source: &str| {
        adverts
            .iter()
            .find(|a| a["source"] == json!(source))
            .unwrap_or_else(|| panic!("no advert from {source}: {}", out.stdout))
    };
    let theirs = find("127.0.0.2");
    assert_eq!(theirs["router_id"], json!(51));
    assert_eq!(theirs["priority"], json!(100));
    assert_eq!(theirs["version"], json!(2));
    assert_eq!(theirs["addresses"], json!(["10.0.0.10"]));
    assert_eq!(theirs["auth_type"], json!("simple"));
    assert_eq!(theirs["local"], json!(false));
    assert!(theirs["count"].as_u64().unwrap() >= 1, "{}", out.stdout);
    let ours = find("127.0.0.1");
    assert_eq!(ours["router_id"], json!(52));
    assert_eq!(ours["local"], json!(true));
    assert_eq!(adverts.len(), 2, "{}", out.stdout);
    assert!(vrrp["malformed"].as_u64().unwrap() >= 1, "{}", out.stdout);
    assert_eq!(vrrp["router_id_in_use"], json!(true), "{}", out.stdout);
    assert!(
        out.msg().contains("router id 51 is in use"),
        "{}",
        out.msg()
    );
    assert!(
        !out.stdout.contains("secret12"),
        "the v2 password is never reported"
    );

    // our own id 52 is not "in use" by another host
    let own = run_module(
        M,
        json!({"address": "127.0.0.1", "listen": 1, "router_id": 52}),
        Mode::NORMAL,
    )
    .ok();
    assert_eq!(own.json["vrrp"]["router_id_in_use"], json!(false));
}

#[test]
fn without_cap_net_raw_the_module_fails_saying_so() {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut args = serde_json::Map::new();
    args.insert("address".into(), json!("127.0.0.1"));
    args.insert("listen".into(), json!(1));
    add_ansible_keys(&mut args, Mode::NORMAL);
    let mut command = Command::new(bin_path(M));
    command
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if is_root() {
        // nobody: no capabilities left after the uid change
        command.uid(65534).gid(65534);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Object(args).to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: {stdout:?} {:?} (is {} readable by uid 65534?)",
            String::from_utf8_lossy(&output.stderr),
            bin_path(M).display()
        )
    });
    assert_eq!(result["failed"], json!(true), "{stdout}");
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.contains("CAP_NET_RAW") && msg.contains("become: true") && msg.contains("EPERM"),
        "{msg}"
    );
    assert!(!output.status.success());
}
