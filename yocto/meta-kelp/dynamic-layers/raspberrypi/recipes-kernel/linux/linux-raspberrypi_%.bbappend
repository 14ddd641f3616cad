# The container options kelp-agent needs, on meta-raspberrypi's kernel (it merges config
# fragments as linux-yocto does), in the kelp distro. The fragment lives in the layer's
# recipes-kernel/linux/files.
FILESEXTRAPATHS:prepend:kelp := "${THISDIR}/../../../../recipes-kernel/linux/files:"
SRC_URI:append:kelp = " file://kelp-containers.cfg"
