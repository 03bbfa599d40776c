//! Which processes listen on given TCP ports: the kernel's socket tables `/proc/net/tcp` and
//! `/proc/net/tcp6` (sockets in state LISTEN, `0A`), each socket's owner found by its inode among
//! the `socket:[<inode>]` links of `/proc/<pid>/fd/`, named by `/proc/<pid>/comm`. Best effort:
//! a process whose fds cannot be read (another user's, without root) is `unknown`.
//!
//! Pure: [`parse_tcp_table`] reads the text of either table (addresses as the kernel prints
//! them: each 32-bit word in host byte order), skipping any line it cannot read.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// The `st` of a listening socket.
pub const TCP_LISTEN: u8 = 0x0a;

/// One row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    pub address: IpAddr,
    pub port: u16,
    pub state: u8,
    pub inode: u64,
}

/// One listening socket and the process holding it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    pub port: u16,
    pub address: IpAddr,
    /// `/proc/<pid>/comm`, or `unknown`.
    pub process: String,
}

/// Four bytes as the kernel prints a `__be32` with `%08X`: the word in host byte order.
fn word(hex: &str) -> Option<[u8; 4]> {
    if hex.len() != 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes)
}

/// `0100007F` (127.0.0.1 on a little-endian host).
pub fn parse_ipv4(hex: &str) -> Option<Ipv4Addr> {
    word(hex).map(Ipv4Addr::from)
}

/// `00000000000000000000000001000000` (::1 on a little-endian host): four words.
pub fn parse_ipv6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut octets = [0u8; 16];
    for (i, chunk) in octets.chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&word(&hex[i * 8..i * 8 + 8])?);
    }
    Some(Ipv6Addr::from(octets))
}

/// The rows of a `/proc/net/tcp` (`ipv6` false) or `/proc/net/tcp6` (`ipv6` true) text; the
/// header and unreadable lines are skipped.
pub fn parse_tcp_table(text: &str, ipv6: bool) -> Vec<TcpSocket> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            if fields.len() < 10 || !fields[0].ends_with(':') {
                return None;
            }
            let (address, port) = fields[1].split_once(':')?;
            let address = if ipv6 {
                IpAddr::V6(parse_ipv6(address)?)
            } else {
                IpAddr::V4(parse_ipv4(address)?)
            };
            if port.len() != 4 {
                return None;
            }
            Some(TcpSocket {
                address,
                port: u16::from_str_radix(port, 16).ok()?,
                state: u8::from_str_radix(fields[3], 16).ok()?,
                inode: fields[9].parse().ok()?,
            })
        })
        .collect()
}

/// `socket:[12345]` -> 12345.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The process name of each of `inodes` found under `proc` (`/proc`): the first process, by pid,
/// holding it.
fn owners(proc: &Path, inodes: &BTreeSet<u64>) -> BTreeMap<u64, String> {
    let mut found = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(proc) else {
        return found;
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let dir = proc.join(pid.to_string());
        let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Some(inode) = std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| socket_inode(&l.to_string_lossy()))
            else {
                continue;
            };
            if inodes.contains(&inode) && !found.contains_key(&inode) {
                let name = std::fs::read_to_string(dir.join("comm"))
                    .map(|c| c.trim_end_matches('\n').to_string())
                    .unwrap_or_default();
                if !name.is_empty() {
                    found.insert(inode, name);
                }
            }
        }
        if found.len() == inodes.len() {
            break;
        }
    }
    found
}

/// The TCP listeners on `ports`, sorted by port and address, with a warning per socket table that
/// could not be read (a missing `tcp6`, IPv6 disabled, is no warning).
pub fn listeners(ports: &[u16]) -> (Vec<Listener>, Vec<String>) {
    let proc = Path::new("/proc");
    let mut warnings = Vec::new();
    let mut sockets = Vec::new();
    for (file, ipv6) in [("net/tcp", false), ("net/tcp6", true)] {
        let path = proc.join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => sockets.extend(parse_tcp_table(&text, ipv6)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && ipv6 => {}
            Err(e) => warnings.push(format!("{}: cannot read it: {e}", path.display())),
        }
    }
    let listening: Vec<TcpSocket> = sockets
        .into_iter()
        .filter(|s| s.state == TCP_LISTEN && ports.contains(&s.port))
        .collect();
    let inodes: BTreeSet<u64> = listening.iter().map(|s| s.inode).collect();
    let names = if inodes.is_empty() {
        BTreeMap::new()
    } else {
        owners(proc, &inodes)
    };
    let mut out: Vec<Listener> = listening
        .iter()
        .map(|s| Listener {
            port: s.port,
            address: s.address,
            process: names
                .get(&s.inode)
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
        })
        .collect();
    out.sort();
    out.dedup();
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on x86_64 (little-endian): sshd on 0.0.0.0:22 and [::]:22, an apiserver on
    // 10.0.0.11:6443, a connection from 127.0.0.1:45678 to 127.0.0.1:2379.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21334 1 0000000000000000 100 0 0 10 0
   1: 0B00000A:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 40111 1 0000000000000000 100 0 0 10 0
   2: 0100007F:B26E 0100007F:094B 01 00000000:00000000 02:00000A6C 00000000     0        0 40222 2 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21336 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 51000 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000B00000A:192B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 51001 1 0000000000000000 100 0 0 10 0
   3: B80D0120000000000000000002000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 51002 1 0000000000000000 100 0 0 10 0
";

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv4_table_rows_parse() {
        let rows = parse_tcp_table(TCP, false);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            TcpSocket {
                address: "0.0.0.0".parse().unwrap(),
                port: 22,
                state: TCP_LISTEN,
                inode: 21334
            }
        );
        assert_eq!(rows[1].address, "10.0.0.11".parse::<IpAddr>().unwrap());
        assert_eq!(rows[1].port, 6443);
        assert_eq!(rows[2].address, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(rows[2].state, 0x01, "ESTABLISHED");
        assert_eq!(rows[2].inode, 40222);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv6_table_rows_parse() {
        let rows = parse_tcp_table(TCP6, true);
        let addresses: Vec<String> = rows.iter().map(|r| r.address.to_string()).collect();
        assert_eq!(addresses, ["::", "::1", "::ffff:10.0.0.11", "2001:db8::2"]);
        let ports: Vec<u16> = rows.iter().map(|r| r.port).collect();
        assert_eq!(ports, [22, 8080, 6443, 80]);
        assert!(rows.iter().all(|r| r.state == TCP_LISTEN));
        assert_eq!(rows[1].inode, 51000);
        // the IPv4 table's words are not IPv6 addresses
        assert!(parse_tcp_table(TCP, true).is_empty());
        assert!(parse_tcp_table(TCP6, false).is_empty());
    }

    #[test]
    fn garbage_and_truncated_lines_are_skipped() {
        let text = "garbage\n\n   0: 00000000:0016\n   1: 0000000G:0016 00000000:0000 0A 0:0 0:0 0 0 0 7 1\n   2: 00000000:16 00000000:0000 0A 0:0 0:0 0 0 0 7 1\n   3: 00000000:0016 00000000:0000 0A 0:0 0:0 0 0 0 notanumber 1\n   4: 00000000:0016 00000000:0000 0A 0:0 0:0 0 0 0 99 1\n   5: 00000000:0016 00000000:0000 0A 0:0 0:0 0 0 0 ü 1\n";
        let rows = parse_tcp_table(text, false);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].inode, 99);
        for line in TCP.lines().chain(TCP6.lines()) {
            for cut in 0..line.len() {
                if line.is_char_boundary(cut) {
                    let _ = parse_tcp_table(&line[..cut], false);
                    let _ = parse_tcp_table(&line[..cut], true);
                }
            }
        }
        assert_eq!(parse_ipv6("ü0000000000000000000000000000000"), None);
    }

    #[test]
    fn socket_links_give_their_inode() {
        assert_eq!(socket_inode("socket:[21334]"), Some(21334));
        assert_eq!(socket_inode("pipe:[21334]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn this_process_is_found_listening() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (found, warnings) = listeners(&[port]);
        assert!(warnings.is_empty(), "{warnings:?}");
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(
            found,
            vec![Listener {
                port,
                address: "127.0.0.1".parse().unwrap(),
                process: comm.trim_end().to_string(),
            }]
        );
    }
}
