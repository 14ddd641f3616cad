SUMMARY = "kelp controller and CLI: kelp server and the kubectl-like commands"
DESCRIPTION = "kelp is Kubernetes for edge hardware. The kelp binary is the controller \
               (kelp server: HTTPS API, store, scheduler, MQTT node hub) and the \
               kubectl-like CLI."

require kelp.inc

KELP_CARGO_PACKAGE = "kelp-controller"
KELP_BIN = "kelp"
KELP_UNIT = "kelp-server.service"
KELP_ENV_FILE = "server.env"

# A node image carries the agent; the controller runs where the operator enables it
# (systemctl enable --now kelp-server).
SYSTEMD_AUTO_ENABLE:${PN} = "disable"

# kelp server runs this machine's own agent as a child (unless --disable-agent).
RRECOMMENDS:${PN} = "kelp-agent"

# Built for the target only (the units and /etc/kelp are a target's); not tried as
# native or nativesdk.
BBCLASSEXTEND = ""
