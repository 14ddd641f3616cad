SUMMARY = "kelp node agent: runs the pods of an edge node"
DESCRIPTION = "kelp-agent runs a node's pods with youki's libcontainer and cgroups: static \
               pods from /etc/kelp/manifests, and, once joined with /etc/kelp/join.json, what \
               the kelp controller assigns the node over MQTT."

require kelp.inc

KELP_CARGO_PACKAGE = "kelp-agent"
KELP_BIN = "kelp-agent"
KELP_UNIT = "kelp-agent.service"
KELP_ENV_FILE = "agent.env"

do_install:append() {
    install -d ${D}${sysconfdir}/kelp/manifests
}

SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# nft programs the pod network's masquerade and hostPorts.
RDEPENDS:${PN} = "nftables"

# The agent runs pods on the target only: no native or nativesdk variant.
BBCLASSEXTEND = ""
