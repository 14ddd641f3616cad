SUMMARY = "kelp node image: systemd, kelp-agent and what pods need"
DESCRIPTION = "A console image for a kelp node: kelp-agent enabled at boot (static pods \
               from /etc/kelp/manifests; join with /etc/kelp/join.json and KELP_AGENT_ARGS \
               in /etc/kelp/agent.env), nftables, ssh, and a kernel with kelp's container \
               options."
HOMEPAGE = "https://example.invalid/kelp"
BUGTRACKER = "https://example.invalid/kelp/issues"
SECTION = "images"
LICENSE = "MIT"
# An image has no CVE product of its own; its packages have theirs.
CVE_PRODUCT = ""

inherit core-image features_check

REQUIRED_DISTRO_FEATURES = "systemd"

IMAGE_FEATURES += "ssh-server-openssh"

# The controller too, disabled (systemctl enable --now kelp-server on the one that runs it).
IMAGE_INSTALL:append = " \
    kelp-agent \
    kelp \
    nftables \
    kernel-modules \
    ca-certificates \
    tzdata \
"
