use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::nft::{render, HostPort};
use super::{Cidr, NetworkConfig};

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

#[test]
fn cidr_parsing_names_the_problem() {
    assert_eq!(cidr("10.42.0.0/24").to_string(), "10.42.0.0/24");
    for (bad, says) in [
        ("10.42.0.0", "expected ADDRESS/PREFIX"),
        (
            "10.42.0.1/24",
            "host bits are set; the network is 10.42.0.0/24",
        ),
        ("10.42.0.0/33", "prefix length \"33\" is not 0 to 32"),
        ("10.42.0.0/31", "from /8 to /30"),
        ("10.420.0.0/16", "address \"10.420.0.0\""),
    ] {
        let e = bad.parse::<Cidr>().unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn cidr_hosts_and_membership() {
    let c = cidr("10.42.3.0/24");
    assert_eq!(c.gateway(), Ipv4Addr::new(10, 42, 3, 1));
    assert_eq!(c.host(254), Some(Ipv4Addr::new(10, 42, 3, 254)));
    assert_eq!(c.host(255), None, "broadcast");
    assert_eq!(c.host(0), None, "network address");
    assert!(c.contains(Ipv4Addr::new(10, 42, 3, 77)));
    assert!(!c.contains(Ipv4Addr::new(10, 42, 4, 1)));
}

fn config() -> NetworkConfig {
    NetworkConfig::new("kelp0", cidr("10.42.0.0/29")).unwrap()
}

#[test]
fn allocation_skips_gateway_and_used_and_moves_on() {
    let c = config();
    let mut used = BTreeSet::new();
    let a = c.allocate("a", &used, None, None).unwrap();
    assert_eq!(a.pod_ip, Some(Ipv4Addr::new(10, 42, 0, 2)));
    assert_eq!(a.gateway, Some(Ipv4Addr::new(10, 42, 0, 1)));
    assert_eq!(a.prefix_len, 29);
    used.insert(a.pod_ip.unwrap());
    // After .2 comes .3, even though .2 is freed again: no immediate reuse.
    used.clear();
    let b = c.allocate("b", &used, a.pod_ip, None).unwrap();
    assert_eq!(b.pod_ip, Some(Ipv4Addr::new(10, 42, 0, 3)));
    // Wraps around after the last host (.6 in a /29).
    let w = c
        .allocate("w", &used, Some(Ipv4Addr::new(10, 42, 0, 6)), None)
        .unwrap();
    assert_eq!(w.pod_ip, Some(Ipv4Addr::new(10, 42, 0, 2)));
}

#[test]
fn allocation_fails_clearly_when_full() {
    let c = config();
    let used: BTreeSet<Ipv4Addr> = (2..=6).map(|n| Ipv4Addr::new(10, 42, 0, n)).collect();
    let e = c.allocate("x", &used, None, None).unwrap_err().to_string();
    assert!(
        e.contains("no free address in the pod CIDR 10.42.0.0/29 (5 in use)"),
        "{e}"
    );
}

#[test]
fn veth_names_fit_and_differ_per_bridge() {
    let a = NetworkConfig::new("kelp0", cidr("10.42.0.0/24")).unwrap();
    let b = NetworkConfig::new("kb-other", cidr("10.43.0.0/24")).unwrap();
    let name = a.host_veth("0f4e-uid");
    assert_eq!(name.len(), 12);
    assert!(name.starts_with("veth"));
    assert_eq!(name, a.host_veth("0f4e-uid"), "stable");
    assert_ne!(name, b.host_veth("0f4e-uid"));
    assert_ne!(name, a.host_veth("other-uid"));
    assert_eq!(b.nft_table(), "kelp_kb_other");
}

#[test]
fn bridge_names_are_checked() {
    for bad in ["", "a-name-longer-than-15", "a/b"] {
        assert!(
            NetworkConfig::new(bad, cidr("10.42.0.0/24")).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn ruleset_masquerades_and_maps_host_ports() {
    let script = render(
        "kelp_kelp0",
        cidr("10.42.0.0/24"),
        &[
            HostPort {
                protocol: "tcp".into(),
                host_ip: None,
                host_port: 8080,
                pod_ip: Ipv4Addr::new(10, 42, 0, 5),
                container_port: 80,
            },
            HostPort {
                protocol: "udp".into(),
                host_ip: Some(Ipv4Addr::new(192, 168, 1, 20)),
                host_port: 5353,
                pod_ip: Ipv4Addr::new(10, 42, 0, 6),
                container_port: 53,
            },
        ],
    );
    assert!(script.starts_with("table ip kelp_kelp0\ndelete table ip kelp_kelp0\n"));
    assert!(script.contains("ip saddr 10.42.0.0/24 ip daddr != 10.42.0.0/24 masquerade"));
    assert!(script.contains("\t\ttcp dport 8080 dnat to 10.42.0.5:80\n"));
    assert!(script.contains("\t\tip daddr 192.168.1.20 udp dport 5353 dnat to 10.42.0.6:53\n"));
    assert_eq!(
        script
            .matches("fib daddr type local jump hostports")
            .count(),
        2
    );
}
