# cmdline.txt turns the memory cgroup controller on (KELP_CMDLINE_CGROUP, conf/distro/kelp.conf):
# without it kelp cannot limit or account a pod's memory (kelp-agent preflight warns).
CMDLINE:append:kelp = " ${KELP_CMDLINE_CGROUP}"
