//! The pure decision of `apiserver_cert`: from the facts of the current pair and the operator's
//! wish, whether a new certificate is needed, why, and which SANs it will carry. No I/O here, so
//! check mode and the real run decide identically.

use super::san::{missing_sans, San};

/// `regenerate` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regenerate {
    /// Issue a new certificate only when a required SAN is missing (or the pair is broken).
    MissingSans,
    /// Always issue a new certificate.
    Always,
    /// Never issue one; fail when a required SAN is missing.
    Never,
}

impl Regenerate {
    pub const CHOICES: [&'static str; 3] = ["missing_sans", "always", "never"];

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "missing_sans" => Some(Regenerate::MissingSans),
            "always" => Some(Regenerate::Always),
            "never" => Some(Regenerate::Never),
            _ => None,
        }
    }
}

/// What the decision looked at.
#[derive(Debug, Clone)]
pub struct CertFacts {
    pub sans: Vec<San>,
    /// The private key file holds the key of the certificate.
    pub key_matches: bool,
}

/// The outcome: reissue or not, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Empty when nothing needs to change.
    pub reasons: Vec<String>,
    pub missing: Vec<San>,
    /// Every SAN of the current certificate, then the missing ones: always a superset.
    pub sans_after: Vec<San>,
    /// Set when `regenerate: never` forbids the change that is needed.
    pub refused: Option<String>,
}

impl Decision {
    pub fn reissue(&self) -> bool {
        !self.reasons.is_empty() && self.refused.is_none()
    }
}

/// Decide whether the serving certificate must be reissued.
pub fn decide(current: &CertFacts, required: &[San], policy: Regenerate) -> Decision {
    let missing = missing_sans(&current.sans, required);
    let mut sans_after = current.sans.clone();
    sans_after.extend(missing.iter().cloned());
    let mut reasons = Vec::new();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
        reasons.push(format!("missing SANs: {}", list.join(", ")));
    }
    if !current.key_matches {
        reasons.push("the private key does not belong to the certificate".to_string());
    }
    if policy == Regenerate::Always {
        reasons.push("regenerate: always".to_string());
    }
    let refused = if policy == Regenerate::Never && !reasons.is_empty() {
        Some(reasons.join("; "))
    } else {
        None
    };
    if policy == Regenerate::Never && refused.is_none() {
        reasons.clear();
    }
    Decision {
        reasons,
        missing,
        sans_after,
        refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sans(list: &[&str]) -> Vec<San> {
        list.iter().map(|s| San::parse(s).unwrap()).collect()
    }

    #[test]
    fn missing_sans_are_appended_after_the_old_ones() {
        let facts = CertFacts {
            sans: sans(&["kubernetes", "10.233.0.1"]),
            key_matches: true,
        };
        let d = decide(
            &facts,
            &sans(&["10.233.0.1", "lb.example", "172.30.0.10"]),
            Regenerate::MissingSans,
        );
        assert!(d.reissue());
        assert_eq!(
            d.sans_after,
            sans(&["kubernetes", "10.233.0.1", "lb.example", "172.30.0.10"])
        );
        assert_eq!(d.reasons, vec!["missing SANs: lb.example, 172.30.0.10"]);
    }

    #[test]
    fn covered_sans_mean_no_change_unless_always() {
        let facts = CertFacts {
            sans: sans(&["kubernetes", "172.30.0.10"]),
            key_matches: true,
        };
        let d = decide(&facts, &sans(&["172.30.0.10"]), Regenerate::MissingSans);
        assert!(!d.reissue());
        assert!(d.reasons.is_empty());
        let d = decide(&facts, &sans(&["172.30.0.10"]), Regenerate::Always);
        assert!(d.reissue());
        assert_eq!(d.sans_after, facts.sans);
        let d = decide(&facts, &sans(&["172.30.0.10"]), Regenerate::Never);
        assert!(!d.reissue() && d.refused.is_none());
    }

    #[test]
    fn never_refuses_when_sans_are_missing() {
        let facts = CertFacts {
            sans: sans(&["kubernetes"]),
            key_matches: true,
        };
        let d = decide(&facts, &sans(&["172.30.0.10"]), Regenerate::Never);
        assert!(!d.reissue());
        assert!(d.refused.unwrap().contains("172.30.0.10"));
    }

    #[test]
    fn a_mismatched_pair_is_a_reason() {
        let facts = CertFacts {
            sans: sans(&["kubernetes"]),
            key_matches: false,
        };
        let d = decide(&facts, &sans(&["kubernetes"]), Regenerate::MissingSans);
        assert!(d.reissue());
        assert!(d.reasons[0].contains("private key"));
    }
}
