# The container options kelp-agent needs (namespaces, cgroups, overlayfs, veth, bridge,
# nftables with NAT) on oe-core's kernels, in the kelp distro.
FILESEXTRAPATHS:prepend:kelp := "${THISDIR}/files:"
SRC_URI:append:kelp = " file://kelp-containers.cfg"
