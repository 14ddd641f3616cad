//! Preflight checks of the node: cgroups, memory controller, overlayfs, namespaces.
