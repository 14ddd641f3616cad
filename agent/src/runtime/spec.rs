//! Pod container -> OCI runtime spec (config.json), by Kubernetes rules.
