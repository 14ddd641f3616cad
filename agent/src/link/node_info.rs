//! What a node says about itself in its birth: platform, capacity, addresses, labels.

use std::fs;
use std::net::Ipv4Addr;

use kelp_shared::wire::{AddressKind, Birth, BootId, NodeAddress, Resources, WIRE_VERSION};

/// Kubernetes' name of the machine's architecture (`kubernetes.io/arch`).
pub fn kube_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        other => other,
    }
}

/// A fresh random boot id (one per agent start), from the kernel's random UUIDs.
pub fn new_boot_id() -> BootId {
    let uuid = fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap_or_default();
    let hex: String = uuid.chars().filter(char::is_ascii_hexdigit).collect();
    hex.parse().unwrap_or_else(|_| {
        // No procfs: the start time in nanoseconds is unique enough for ordering.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        BootId(nanos.to_be_bytes())
    })
}

fn memory_bytes() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The board's model from the device tree (`Raspberry Pi 4 Model B Rev 1.4`), if any.
pub fn board_model() -> Option<String> {
    let raw = fs::read("/proc/device-tree/model").ok()?;
    let text = String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .trim()
        .to_string();
    (!text.is_empty()).then_some(text)
}

/// The node's birth for session `seq`.
pub struct NodeInfo {
    pub node: String,
    pub boot_id: BootId,
    pub start_unix_ms: u64,
    pub node_ip: Option<Ipv4Addr>,
    pub max_pods: u32,
    pub cgroup_version: u8,
}

impl NodeInfo {
    pub fn birth(&self, seq: u64) -> Birth {
        let hostname = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let mut addresses = vec![NodeAddress {
            kind: AddressKind::Hostname,
            address: hostname.clone(),
        }];
        if let Some(ip) = self.node_ip {
            addresses.insert(
                0,
                NodeAddress {
                    kind: AddressKind::InternalIp,
                    address: ip.to_string(),
                },
            );
        }
        let mut labels = vec![
            ("kubernetes.io/arch".to_string(), kube_arch().to_string()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/hostname".to_string(), self.node.clone()),
        ];
        if let Some(model) = board_model() {
            // Label values are at most 63 characters of [A-Za-z0-9._-].
            let value: String = model
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .take(63)
                .collect();
            labels.push((
                "kelp.io/board".to_string(),
                value.trim_matches('_').to_string(),
            ));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        Birth {
            node: self.node.clone(),
            boot_id: self.boot_id,
            agent_start_unix_ms: self.start_unix_ms,
            seq,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            wire_versions: vec![WIRE_VERSION],
            os: "linux".to_string(),
            arch: kube_arch().to_string(),
            kernel: kernel(),
            capacity: Resources {
                cpu_millis: cpus * 1000,
                memory_bytes: memory_bytes(),
                pods: self.max_pods,
            },
            cgroup_version: self.cgroup_version,
            addresses,
            labels,
        }
    }
}
