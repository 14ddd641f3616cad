//! cgroup v1/v2 control and stats for pods and monitors (libcgroups).
