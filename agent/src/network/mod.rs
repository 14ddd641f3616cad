//! The pod network on one node, as the CNI bridge plugin with host-local IPAM and portmap
//! would make it, without plugins:
//! - one bridge (`kelp0`) holding the gateway address, the first of the node's pod CIDR;
//! - per pod, a veth pair: `veth<hash>` on the bridge, `eth0` in the pod's namespace with the
//!   pod's address and a default route via the gateway. The monitor creates it while it sets
//!   the sandbox up ([`attach_pod`]); it dies with the pod's namespace, and the agent deletes
//!   it when it removes the pod;
//! - one nftables table per bridge, rewritten whole and atomically whenever the set of pods
//!   changes: masquerade for traffic leaving the pod CIDR, DNAT for `hostPort`s.
//!
//! Addresses are recorded only in each pod's `sandbox.json` on the tmpfs run dir: after a
//! reboot no pod runs, so nothing needs to be remembered on disk.

pub mod netlink;
pub mod nft;

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::runtime::state::PodNetwork;
use netlink::Netlink;

/// An IPv4 network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl Cidr {
    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// Host number `n` of the network (1 is the gateway).
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.prefix_len));
        // The network and broadcast addresses are not hosts.
        (u64::from(n) >= 1 && u64::from(n) + 1 < size)
            .then(|| Ipv4Addr::from(u32::from(self.network) + n))
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.host(1).expect("a pod CIDR has room for a gateway")
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (ip, len) = s.split_once('/').ok_or_else(|| {
            format!("{s:?} is not a CIDR: expected ADDRESS/PREFIX, e.g. 10.42.0.0/24")
        })?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|e| format!("{s:?}: address {ip:?}: {e}"))?;
        let prefix_len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("{s:?}: prefix length {len:?} is not 0 to 32"))?;
        if !(8..=30).contains(&prefix_len) {
            return Err(format!(
                "{s:?}: a pod CIDR needs a prefix length from /8 to /30"
            ));
        }
        let cidr = Cidr {
            network: ip,
            prefix_len,
        };
        if u32::from(ip) & !cidr.mask() != 0 {
            return Err(format!(
                "{s:?}: host bits are set; the network is {}/{prefix_len}",
                Ipv4Addr::from(u32::from(ip) & cidr.mask())
            ));
        }
        Ok(cidr)
    }
}

/// The node's pod network settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    pub bridge: String,
    pub pod_cidr: Cidr,
}

impl NetworkConfig {
    pub fn new(bridge: &str, pod_cidr: Cidr) -> Result<Self> {
        if bridge.is_empty() || bridge.len() > 15 || bridge.contains(['/', ' ', ':']) {
            bail!(
                "--bridge {bridge:?}: a link name is 1 to 15 characters without '/', ':' or spaces"
            );
        }
        Ok(Self {
            bridge: bridge.to_string(),
            pod_cidr,
        })
    }

    /// The nftables table of this bridge (`kelp_<bridge>`, in the `ip` family).
    pub fn nft_table(&self) -> String {
        format!(
            "kelp_{}",
            self.bridge
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        )
    }

    /// The host end of pod `uid`'s veth pair: `veth` + 8 hex digits of a hash of the bridge
    /// and the UID, so two agents on one host (tests) never pick the same name.
    pub fn host_veth(&self, uid: &str) -> String {
        let digest = Sha256::digest(format!("{}/{uid}", self.bridge).as_bytes());
        let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("veth{hex}")
    }

    /// The network of a new pod: the first free address after `last` (wrapping), so a freed
    /// address is not handed out again at once.
    pub fn allocate(
        &self,
        uid: &str,
        used: &BTreeSet<Ipv4Addr>,
        last: Option<Ipv4Addr>,
        host_ip: Option<Ipv4Addr>,
    ) -> Result<PodNetwork> {
        let size = 1u32 << (32 - u32::from(self.pod_cidr.prefix_len));
        // Hosts 2 ..= size-2: 1 is the gateway, the last is the broadcast address.
        let (first, last_host) = (2, size - 2);
        let after = last
            .filter(|ip| self.pod_cidr.contains(*ip))
            .map(|ip| u32::from(ip) - u32::from(self.pod_cidr.network))
            .filter(|n| (first..=last_host).contains(n))
            .unwrap_or(first - 1);
        let ip = (after + 1..=last_host)
            .chain(first..=after)
            .filter_map(|n| self.pod_cidr.host(n))
            .find(|ip| !used.contains(ip))
            .with_context(|| {
                format!(
                    "no free address in the pod CIDR {} ({} in use)",
                    self.pod_cidr,
                    used.len()
                )
            })?;
        Ok(PodNetwork {
            host_network: false,
            pod_ip: Some(ip),
            host_ip,
            gateway: Some(self.pod_cidr.gateway()),
            prefix_len: self.pod_cidr.prefix_len,
            bridge: self.bridge.clone(),
            host_veth: self.host_veth(uid),
        })
    }

    /// Creates the bridge with the gateway address, sets it up, and turns IPv4 forwarding on.
    pub fn setup_host(&self) -> Result<()> {
        let nft = std::process::Command::new("nft").arg("--version").output();
        if !nft.is_ok_and(|o| o.status.success()) {
            bail!(
                "the pod network needs nftables' `nft` command (apt-get install nftables), \
                 or run with --pod-cidr none to give pods only a loopback interface"
            );
        }
        let mut nl = Netlink::open().context("opening a netlink socket")?;
        let index = nl
            .ensure_bridge(&self.bridge)
            .with_context(|| format!("creating bridge {}", self.bridge))?;
        nl.add_address(index, self.pod_cidr.gateway(), self.pod_cidr.prefix_len)
            .with_context(|| format!("giving bridge {} its gateway address", self.bridge))?;
        nl.set_up(index)
            .with_context(|| format!("setting bridge {} up", self.bridge))?;
        let forward = "/proc/sys/net/ipv4/ip_forward";
        if std::fs::read_to_string(forward)
            .map(|s| s.trim() != "1")
            .unwrap_or(true)
        {
            std::fs::write(forward, "1")
                .with_context(|| format!("turning IPv4 forwarding on ({forward})"))?;
        }
        Ok(())
    }

    /// Deletes the veths on the bridge that belong to no pod in `keep` (left by pods whose
    /// namespace went away while the agent was down). Returns the names deleted.
    pub fn remove_stray_veths(&self, keep: &BTreeSet<String>) -> Result<Vec<String>> {
        let mut nl = Netlink::open().context("opening a netlink socket")?;
        let Some(bridge) = nl.link_index(&self.bridge)? else {
            return Ok(Vec::new());
        };
        let mut removed = Vec::new();
        for link in nl.links()? {
            if link.controller == Some(bridge)
                && link.name.starts_with("veth")
                && !keep.contains(&link.name)
            {
                nl.delete_link(&link.name)
                    .with_context(|| format!("deleting stray veth {}", link.name))?;
                removed.push(link.name);
            }
        }
        Ok(removed)
    }
}

/// Deletes the host end of a pod's veth pair (and so the pair), if it is still there.
pub fn delete_veth(name: &str) -> Result<()> {
    if name.is_empty() {
        return Ok(());
    }
    let mut nl = Netlink::open().context("opening a netlink socket")?;
    nl.delete_link(name)
        .with_context(|| format!("deleting veth {name}"))?;
    Ok(())
}

/// Run by the monitor: `host` was opened in the host's network namespace before the monitor
/// unshared its own, which is current now. Creates the pod's veth pair across the two, puts
/// the host end on the bridge, and gives `eth0` the pod's address and default route.
pub fn attach_pod(host: &mut Netlink, network: &PodNetwork) -> Result<()> {
    let (Some(ip), Some(gateway)) = (network.pod_ip, network.gateway) else {
        return Ok(());
    };
    let bridge = host
        .link_index(&network.bridge)?
        .with_context(|| format!("the node's bridge {} does not exist", network.bridge))?;
    // A pair left by an earlier sandbox of this pod whose namespace is not gone yet.
    host.delete_link(&network.host_veth)?;
    let own_ns = std::fs::File::open("/proc/self/ns/net").context("opening the pod's netns")?;
    let veth = host.create_veth(
        &network.host_veth,
        "eth0",
        std::os::fd::AsRawFd::as_raw_fd(&own_ns),
    )?;
    host.set_controller(veth, bridge)?;
    host.set_up(veth)?;

    let mut pod = Netlink::open().context("opening a netlink socket in the pod's netns")?;
    let eth0 = pod
        .link_index("eth0")?
        .context("eth0 did not arrive in the pod's namespace")?;
    pod.add_address(eth0, ip, network.prefix_len)?;
    pod.set_up(eth0)?;
    pod.add_default_route(gateway)?;
    Ok(())
}

/// The node's address: `--node-ip`, else the source address the kernel picks for the default
/// route, else the first global address of a link that is not a bridge or veth.
pub fn detect_node_ip(pod_cidr: Option<Cidr>) -> Option<Ipv4Addr> {
    let via_route = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            // Connecting a UDP socket sends nothing; it only selects the route and source.
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .ok()
        .and_then(|a| match a.ip() {
            std::net::IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
            _ => None,
        });
    if via_route.is_some() {
        return via_route;
    }
    let mut nl = Netlink::open().ok()?;
    let links = nl.links().ok()?;
    let ordinary: BTreeSet<u32> = links
        .iter()
        .filter(|l| !matches!(l.kind.as_deref(), Some("bridge" | "veth")))
        .map(|l| l.index)
        .collect();
    nl.addresses()
        .ok()?
        .into_iter()
        .filter(|(index, ip, _)| {
            ordinary.contains(index)
                && !ip.is_loopback()
                && !ip.is_link_local()
                && !pod_cidr.is_some_and(|c| c.contains(*ip))
        })
        .map(|(_, ip, _)| ip)
        .next()
}

#[cfg(test)]
mod tests;
