//! A node as the kubelet keeps it: its heartbeat (the Lease `kube-node-lease/<node>`, whose
//! `spec.renewTime` the kubelet sets from its own clock each time it renews it) and its `Ready`
//! condition. Read-only; the kubelet's own credentials may read both (the Node authorizer allows
//! a node its own Node and Lease).

use super::client::{get_json, Transport};
use crate::error::{Error, Result};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the API says about one node's heartbeat and readiness.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    /// `spec.renewTime` of its Lease as written, and parsed.
    pub renew_time: Option<(String, SystemTime)>,
    /// `status.conditions[type=Ready].status == "True"`.
    pub ready: bool,
}

/// GET the node's Lease and Node.
pub fn state(t: &dyn Transport, node: &str) -> Result<NodeState> {
    let lease = get_json(
        t,
        &format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"),
    )?;
    let renew_time = match lease["spec"]["renewTime"].as_str() {
        None => None,
        Some(text) => Some((
            text.to_string(),
            parse_rfc3339(text).ok_or_else(|| {
                Error::remote(
                    t.server(),
                    format!(
                        "Lease kube-node-lease/{node}: renewTime {text:?} is not an RFC 3339 time"
                    ),
                )
            })?,
        )),
    };
    let node_object = get_json(t, &format!("/api/v1/nodes/{node}"))?;
    Ok(NodeState {
        renew_time,
        ready: is_ready(&node_object),
    })
}

/// Whether a Node object's `Ready` condition is `True`.
pub fn is_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .map(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .unwrap_or(false)
}

/// An RFC 3339 time as Kubernetes writes them (`2026-12-04T21:50:01.123456Z`, or with an offset
/// such as `+01:00`); `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let s = text.get(from..to)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // fraction, then Z or +hh:mm / -hh:mm
    let mut rest = &text[19..];
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let padded = format!("{:0<9}", &frac[..digits]);
        nanos = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_seconds: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let o = rest.as_bytes();
            if o.len() != 6 || o[3] != b':' || !matches!(o[0], b'+' | b'-') {
                return None;
            }
            let hh: i64 = rest.get(1..3)?.parse().ok()?;
            let mm: i64 = rest.get(4..6)?.parse().ok()?;
            let sign = if o[0] == b'-' { -1 } else { 1 };
            sign * (hh * 3600 + mm * 60)
        }
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds;
    let since_epoch = u64::try_from(seconds).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(since_epoch, nanos))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secs(t: SystemTime) -> f64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
    }

    #[test]
    fn kubernetes_micro_times_and_offsets_parse() {
        // date -u -d 2026-12-04T21:50:01Z +%s
        assert_eq!(
            secs(parse_rfc3339("2026-12-04T21:50:01Z").unwrap()),
            1_796_421_001.0
        );
        let micro = parse_rfc3339("2026-12-04T21:50:01.123456Z").unwrap();
        assert!((secs(micro) - 1_796_421_001.123456).abs() < 1e-6);
        assert_eq!(
            parse_rfc3339("2026-12-04T22:50:01+01:00"),
            parse_rfc3339("2026-12-04T21:50:01Z")
        );
        assert_eq!(secs(parse_rfc3339("1970-01-01T00:00:00Z").unwrap()), 0.0);
        assert_eq!(
            secs(parse_rfc3339("2000-03-01T00:00:00Z").unwrap()),
            951_868_800.0
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "2026-12-04",
            "2026-12-04 21:50:01Z",
            "2026-13-04T21:50:01Z",
            "2026-12-04T21:50:01",
            "2026-12-04T21:50:01.Z",
            "2026-12-04T21:50:01+0100",
            "1969-12-31T23:59:59Z",
            "２026-12-04T21:50:01Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ready_only_when_the_ready_condition_is_true() {
        let node = |status: &str| {
            json!({"status": {"conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": status}]}})
        };
        assert!(is_ready(&node("True")));
        assert!(!is_ready(&node("False")));
        assert!(!is_ready(&node("Unknown")));
        assert!(!is_ready(&json!({"status": {}})));
    }
}
