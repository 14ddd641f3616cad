//! Pod CIDR allocation: each node gets one /24 of the cluster CIDR (`--cluster-cidr`,
//! default 10.42.0.0/16), kept in its `spec.podCIDR` and never given to another node while
//! it exists.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The prefix length of a node's pod CIDR.
pub const NODE_PREFIX: u8 = 24;

/// An IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    /// The network address (host bits zero).
    pub addr: Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Ipv4Cidr, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR {s:?}: expected ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("invalid CIDR {s:?}: {addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("invalid CIDR {s:?}: prefix must be 0 to 32"))?;
        let mask = mask(prefix);
        if u32::from(addr) & !mask != 0 {
            return Err(format!("invalid CIDR {s:?}: host bits are set"));
        }
        Ok(Ipv4Cidr { addr, prefix })
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl Ipv4Cidr {
    /// Whether `other` lies inside this network.
    pub fn contains(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix
            && u32::from(other.addr) & mask(self.prefix) == u32::from(self.addr)
    }

    /// How many node CIDRs the cluster CIDR holds.
    pub fn node_slots(&self) -> u64 {
        if self.prefix > NODE_PREFIX {
            0
        } else {
            1u64 << (NODE_PREFIX - self.prefix)
        }
    }
}

/// The cluster CIDR, checked to hold at least one node CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterCidr(Ipv4Cidr);

impl FromStr for ClusterCidr {
    type Err = String;

    fn from_str(s: &str) -> Result<ClusterCidr, String> {
        let cidr: Ipv4Cidr = s.parse()?;
        if cidr.prefix > NODE_PREFIX {
            return Err(format!(
                "cluster CIDR {s} is smaller than one node's /{NODE_PREFIX}"
            ));
        }
        Ok(ClusterCidr(cidr))
    }
}

impl fmt::Display for ClusterCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ClusterCidr {
    /// The lowest /24 of the cluster CIDR that no string in `used` names (other nodes'
    /// `spec.podCIDR`, unparsable ones ignored); `None` when all are taken.
    pub fn allocate<'a>(&self, used: impl IntoIterator<Item = &'a str>) -> Option<Ipv4Cidr> {
        let taken: BTreeSet<u32> = used
            .into_iter()
            .filter_map(|s| s.parse::<Ipv4Cidr>().ok())
            .filter(|c| self.0.contains(c))
            .map(|c| (u32::from(c.addr) - u32::from(self.0.addr)) >> (32 - u32::from(NODE_PREFIX)))
            .collect();
        (0..self.0.node_slots())
            .map(|i| i as u32)
            .find(|i| !taken.contains(i))
            .map(|i| Ipv4Cidr {
                addr: Ipv4Addr::from(u32::from(self.0.addr) + (i << (32 - u32::from(NODE_PREFIX)))),
                prefix: NODE_PREFIX,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            "10.42.0.0/16".parse::<ClusterCidr>().unwrap().to_string(),
            "10.42.0.0/16"
        );
        for bad in [
            "10.42.0.0",
            "10.42.0.1/16",
            "10.42.0.0/33",
            "x/16",
            "10.42.0.0/25",
        ] {
            assert!(bad.parse::<ClusterCidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allocates_the_lowest_free_slot_and_never_a_used_one() {
        let cluster: ClusterCidr = "10.42.0.0/16".parse().unwrap();
        assert_eq!(cluster.allocate([]).unwrap().to_string(), "10.42.0.0/24");
        let used = [
            "10.42.0.0/24",
            "10.42.1.0/24",
            "10.42.3.0/24",
            "garbage",
            "10.9.0.0/24",
        ];
        assert_eq!(cluster.allocate(used).unwrap().to_string(), "10.42.2.0/24");
        let mut taken: Vec<String> = Vec::new();
        for _ in 0..256 {
            let next = cluster.allocate(taken.iter().map(String::as_str)).unwrap();
            assert!(!taken.contains(&next.to_string()));
            taken.push(next.to_string());
        }
        assert_eq!(taken.last().unwrap(), "10.42.255.0/24");
        assert_eq!(cluster.allocate(taken.iter().map(String::as_str)), None);
        // A freed slot (its node deleted) is given out again, lowest first.
        taken.retain(|c| c != "10.42.7.0/24");
        assert_eq!(
            cluster
                .allocate(taken.iter().map(String::as_str))
                .unwrap()
                .to_string(),
            "10.42.7.0/24"
        );
    }

    #[test]
    fn a_single_slot_cluster() {
        let cluster: ClusterCidr = "192.168.5.0/24".parse().unwrap();
        assert_eq!(cluster.allocate([]).unwrap().to_string(), "192.168.5.0/24");
        assert_eq!(cluster.allocate(["192.168.5.0/24"]), None);
    }
}
