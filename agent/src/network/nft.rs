//! The node's nftables table: masquerade for pods' traffic leaving the pod CIDR, DNAT for
//! `hostPort`s. The whole table is rendered from the pods on the node and replaced in one
//! `nft -f` transaction, so a crash between two pods' changes can never leave half a rule set,
//! and rendering again after a restart yields exactly one set of rules per pod.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::Cidr;

/// One `hostPort` of a pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Only traffic to this address of the node (`hostIP`), else every local address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub pod_ip: Ipv4Addr,
    pub container_port: u16,
}

/// The `nft -f` script that replaces table `table` with the rules for `pod_cidr` and `ports`.
pub fn render(table: &str, pod_cidr: Cidr, ports: &[HostPort]) -> String {
    let mut s = String::new();
    // Declaring the table first makes the delete succeed when it does not exist yet.
    s.push_str(&format!("table ip {table}\ndelete table ip {table}\n"));
    s.push_str(&format!("table ip {table} {{\n"));
    s.push_str(
        "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
    );
    // Pods reaching a hostPort of the node that leads back onto the bridge (hairpin).
    s.push_str(&format!(
        "\t\tip saddr {pod_cidr} ip daddr {pod_cidr} ct status dnat masquerade\n"
    ));
    s.push_str(&format!(
        "\t\tip saddr {pod_cidr} ip daddr != {pod_cidr} masquerade\n\t}}\n"
    ));
    s.push_str("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tfib daddr type local jump hostports\n\t}\n");
    s.push_str("\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tfib daddr type local jump hostports\n\t}\n");
    s.push_str("\tchain hostports {\n");
    for p in ports {
        let only = p
            .host_ip
            .map(|ip| format!("ip daddr {ip} "))
            .unwrap_or_default();
        s.push_str(&format!(
            "\t\t{only}{} dport {} dnat to {}:{}\n",
            p.protocol, p.host_port, p.pod_ip, p.container_port
        ));
    }
    s.push_str("\t}\n}\n");
    s
}

/// Runs `nft -f -` with `script`.
pub fn apply(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (the nftables package): the pod network needs it")?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())
        .context("writing the ruleset to nft")?;
    let out = child.wait_with_output().context("waiting for nft")?;
    if !out.status.success() {
        bail!(
            "nft refused the pod network's rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Deletes table `table`, if it exists.
pub fn remove(table: &str) -> Result<()> {
    apply(&format!("table ip {table}\ndelete table ip {table}\n"))
}
