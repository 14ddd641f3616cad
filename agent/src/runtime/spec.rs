//! Pod container -> OCI runtime spec (`config.json`), by Kubernetes rules.
//!
//! [`build_spec`] turns one container of a [`Pod`] into the [`Spec`] that libcontainer reads
//! from `<bundle>/config.json`. It does what the kubelet and containerd's CRI plugin do between
//! them for a Linux container, so a manifest behaves on kelp as it does on Kubernetes:
//!
//! - **Process arguments** (containerd's `WithProcessArgs`): neither `command` nor `args` runs
//!   the image's `Entrypoint` + `Cmd`; `command` alone runs `command` (the image's `Cmd` is
//!   ignored); `args` alone runs `Entrypoint` + `args`; both run `command` + `args`. An empty
//!   result is an error. `$(VAR)` references in `command` and `args` are expanded against the
//!   container's environment (not the image's), `$$` escapes a `$`, and an unknown reference
//!   stays as it is ([`expand`], Kubernetes' `third_party/forked/golang/expansion`).
//! - **Environment**: containerd's default `PATH` and `HOSTNAME`, then the image's `Env`, then
//!   the container's variables, each replacing an earlier one of the same name. The
//!   container's variables are `envFrom` (ConfigMaps and Secrets, with `prefix`; keys that are
//!   not valid variable names are skipped) then `env`, in order. An `env` value may refer to
//!   variables defined *before* it; `valueFrom` reads ConfigMap and Secret keys, the downward
//!   API (`fieldRef`) and the container's resources (`resourceFieldRef`, rounded up to the
//!   divisor). A missing ConfigMap, Secret or key is an error unless `optional: true`, in which
//!   case the variable (or the whole `envFrom` source) is skipped.
//! - **Working directory**: the container's `workingDir`, else the image's, else `/`.
//! - **User**: `runAsUser` / `runAsGroup` (container over pod), else the image's `User`
//!   (`uid`, `uid:gid`, `name`, `name:group`; names are looked up in the root filesystem's
//!   `/etc/passwd` and `/etc/group`, which are read without following symlinks). Without a
//!   group, the primary group comes from `/etc/passwd` (0 when the user has no entry). The
//!   additional groups are the user's groups in `/etc/group` (unless
//!   `supplementalGroupsPolicy: Strict`), `supplementalGroups` and `fsGroup`. `runAsNonRoot`
//!   refuses uid 0 and, as the kubelet does, an image user that is a name.
//! - **Resources** (the kubelet's CPU and memory arithmetic): a CPU limit sets a CFS quota of
//!   `milliCPU × 100` µs per 100 ms period (at least 1 ms); the CPU request (or the limit
//!   when there is no request) sets `milliCPU × 1024 / 1000` shares (at least 2); a memory
//!   limit sets the memory limit and an equal memory+swap limit (no swap); `hugepages-<size>`
//!   limits become hugetlb limits; the pids limit is the caller's.
//! - **Security**: containerd's default capability set in the bounding, effective and
//!   permitted sets, then `capabilities.add` and `drop` as containerd applies them (`ALL`
//!   first, then single names, with or without `CAP_`); `privileged` grants every capability,
//!   leaves `/proc` and `/sys` unmasked and writable and allows every device;
//!   `allowPrivilegeEscalation: false` sets `noNewPrivileges`; `readOnlyRootFilesystem` makes
//!   the root read-only. Security settings kelp cannot honour are errors, never silently
//!   dropped: seccomp `RuntimeDefault`/`Localhost` (no libseccomp in this build), AppArmor
//!   `RuntimeDefault`, SELinux options, Windows options, `procMount: Unmasked`, pod sysctls,
//!   user namespaces (`hostUsers: false`), `tty` and `stdin`.
//! - **Namespaces**: new mount and cgroup namespaces; the pod sandbox's network, IPC and UTS
//!   namespaces are joined, and its PID namespace too when the pod shares one
//!   (`shareProcessNamespace`), else the container gets its own. The hostname is the pod's
//!   `spec.hostname` or its name, cut to 63 characters as the kubelet does.
//! - **Mounts**: `/proc`, `/dev`, `/dev/pts`, `/dev/shm`, `/dev/mqueue`, `/sys` (read-only)
//!   and `/sys/fs/cgroup` (read-only), the pod's `/etc/hosts`, `/etc/resolv.conf` and
//!   `/etc/hostname` bound read-only, then the `volumeMounts`, bound from the host paths the
//!   caller prepared, sorted parents first. A volume mount replaces a default mount at the same
//!   destination, as in containerd. configMap, secret, downwardAPI and projected volumes are
//!   always read-only, and a `subPath` into them follows their symlinks within the volume.
//!
//! The function reads nothing but the two account files of the root filesystem, and only when
//! the user needs them; everything else comes from [`SpecInput`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kelp_shared::api::core::{ConfigMap, Container, Pod, PodSecurityContext, ResourceList, Secret};
use oci_spec::runtime::{
    Linux, LinuxNamespace, LinuxNamespaceType, PosixRlimitBuilder, PosixRlimitType, Process, Root,
    Spec,
};

use crate::image::ImageConfig;

mod env;
mod mounts;
mod resources;
mod security;
mod user;

#[cfg(test)]
mod tests;

pub use env::expand;
pub(crate) use env::resource_field_value;

/// The OCI runtime spec version written into `ociVersion`.
pub const OCI_VERSION: &str = "1.0.2-dev";

/// The `PATH` a container gets when its image sets none (containerd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `RLIMIT_NOFILE` soft and hard limit of every container (containerd's default), unless
/// the agent's own hard limit is lower (see [`nofile_limit`]).
pub const NOFILE_LIMIT: u64 = 1_048_576;

/// The `RLIMIT_NOFILE` a container gets: [`NOFILE_LIMIT`], capped at the agent's own hard limit,
/// which the monitor inherits and cannot raise without `CAP_SYS_RESOURCE` (systemd units and
/// sandboxes often set it lower).
pub fn nofile_limit() -> u64 {
    let own = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    own.maximum
        .map_or(NOFILE_LIMIT, |hard| hard.min(NOFILE_LIMIT))
}

/// Everything [`build_spec`] needs to know about one container of a pod.
pub struct SpecInput<'a> {
    /// The pod the container belongs to.
    pub pod: &'a Pod,
    /// An app or init container of `pod`.
    pub container: &'a Container,
    /// Where `container` sits in the pod, `spec.containers[1]` or `spec.initContainers[0]`:
    /// the prefix of the field paths in error messages.
    pub field_path: String,
    /// The image's defaults (entrypoint, cmd, env, working directory, user).
    pub image: &'a ImageConfig,
    /// The container's root filesystem on the host (its overlay's merged directory).
    pub rootfs: &'a Path,
    /// The pod sandbox's namespaces, joined by the container.
    pub namespaces: &'a SandboxNamespaces,
    /// `linux.cgroupsPath`, e.g. `/kelp/pod-<uid>/<name>`.
    pub cgroups_path: String,
    /// The pod's `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` on the host.
    pub etc_files: &'a EtcFiles,
    /// The host path prepared for each pod volume, by volume name.
    pub volumes: &'a BTreeMap<String, PathBuf>,
    /// The ConfigMaps and Secrets of the pod's namespace.
    pub lookup: &'a dyn EnvLookup,
    /// The node's name (`spec.nodeName` when the pod has none yet).
    pub node_name: &'a str,
    /// The node's allocatable resources: what `resourceFieldRef` reports for a limit the
    /// container does not set, as the kubelet does. `None` makes such a reference an error.
    pub node_allocatable: Option<&'a ResourceList>,
    /// The pod's IP (`status.podIP`, `status.podIPs`); `None` reads as an empty string.
    pub pod_ip: Option<&'a str>,
    /// The node's IP (`status.hostIP`, `status.hostIPs`).
    pub host_ip: Option<&'a str>,
    /// The container's pids limit, if any.
    pub pids_limit: Option<i64>,
}

/// Paths of the pod sandbox's namespaces (`/proc/<pid>/ns/net`, or bind-mounted files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxNamespaces {
    /// The network namespace.
    pub network: PathBuf,
    /// The IPC namespace.
    pub ipc: PathBuf,
    /// The UTS namespace.
    pub uts: PathBuf,
    /// The PID namespace, when the pod's containers share one (`shareProcessNamespace`).
    pub pid: Option<PathBuf>,
}

/// Host paths of the pod's generated `/etc` files, bound read-only into every container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcFiles {
    /// Bound at `/etc/hosts`.
    pub hosts: PathBuf,
    /// Bound at `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// Bound at `/etc/hostname`.
    pub hostname: PathBuf,
}

/// The ConfigMaps and Secrets of the pod's namespace, as environment variables see them.
pub trait EnvLookup {
    /// The ConfigMap `name`, if it exists.
    fn config_map(&self, name: &str) -> Option<&ConfigMap>;
    /// The Secret `name`, if it exists.
    fn secret(&self, name: &str) -> Option<&Secret>;
}

/// Why a container cannot be turned into a spec: a field of the pod and what is wrong with it,
/// printed as `spec.containers[0].env[2].valueFrom.configMapKeyRef: configmap "app-cfg" not
/// found`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    /// The field path, e.g. `spec.containers[0].securityContext.seccompProfile`.
    pub field: String,
    /// What is wrong, e.g. `configmap "app-cfg" not found`.
    pub problem: String,
}

impl SpecError {
    pub(crate) fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Builds the OCI runtime spec of `input.container`; see the [module documentation](self) for
/// the rules.
pub fn build_spec(input: &SpecInput) -> Result<Spec, SpecError> {
    let c = input.container;
    let base = input.field_path.as_str();
    let pod_sc = input
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref());
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|sc| sc.privileged)
        .unwrap_or(false);

    refuse_unsupported(input, pod_sc)?;

    let hostname = pod_hostname(input.pod);
    let container_env = env::container_env(input)?;
    let args = env::process_args(c, input.image, &container_env, base)?;
    let process_env = env::process_env(&hostname, input.image, &container_env);
    let cwd = c
        .working_dir
        .as_deref()
        .filter(|d| !d.is_empty())
        .or(input.image.working_dir.as_deref())
        .unwrap_or("/");
    if !cwd.starts_with('/') {
        return Err(SpecError::new(
            format!("{base}.workingDir"),
            format!("{cwd:?} is not an absolute path"),
        ));
    }

    let user = user::resolve(input, pod_sc)?;
    let sec = security::resolve(input, pod_sc, privileged)?;

    let mut process = Process::default();
    process.set_terminal(Some(false));
    process.set_args(Some(args));
    process.set_env(Some(process_env));
    process.set_cwd(PathBuf::from(cwd));
    process.set_user(user);
    process.set_capabilities(Some(sec.capabilities));
    process.set_no_new_privileges(Some(sec.no_new_privileges));
    process.set_apparmor_profile(sec.apparmor_profile);
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(nofile_limit())
        .hard(nofile_limit())
        .build()
        .map_err(|e| SpecError::new(base, format!("cannot build the NOFILE rlimit: {e}")))?;
    process.set_rlimits(Some(vec![nofile]));

    let mut root = Root::default();
    root.set_path(input.rootfs.to_path_buf());
    root.set_readonly(Some(sec.readonly_root));

    let mounts = mounts::build(input, &container_env, privileged)?;

    let mut linux = Linux::default();
    linux.set_namespaces(Some(namespaces(input.namespaces)));
    linux.set_cgroups_path(Some(PathBuf::from(&input.cgroups_path)));
    linux.set_resources(Some(resources::build(input, privileged)?));
    linux.set_devices(Some(resources::default_devices()));
    linux.set_masked_paths(Some(sec.masked_paths));
    linux.set_readonly_paths(Some(sec.readonly_paths));
    linux.set_rootfs_propagation(mounts.rootfs_propagation);
    linux.set_seccomp(None);
    linux.set_sysctl(None);

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_owned());
    spec.set_hostname(Some(hostname));
    spec.set_process(Some(process));
    spec.set_root(Some(root));
    spec.set_mounts(Some(mounts.mounts));
    spec.set_linux(Some(linux));
    spec.set_annotations(None);
    Ok(spec)
}

/// Errors for container and pod fields that kelp cannot honour and that have no home in a
/// more specific module.
fn refuse_unsupported(
    input: &SpecInput,
    pod_sc: Option<&PodSecurityContext>,
) -> Result<(), SpecError> {
    let c = input.container;
    let base = input.field_path.as_str();
    if c.tty == Some(true) {
        return Err(SpecError::new(
            format!("{base}.tty"),
            "terminals are not supported by kelp-agent",
        ));
    }
    if c.stdin == Some(true) {
        return Err(SpecError::new(
            format!("{base}.stdin"),
            "attaching to a container's stdin is not supported by kelp-agent",
        ));
    }
    if let Some(spec) = input.pod.spec.as_ref() {
        if spec.host_users == Some(false) {
            return Err(SpecError::new(
                "spec.hostUsers",
                "user namespaces are not supported by kelp-agent",
            ));
        }
        if spec.set_hostname_as_fqdn == Some(true)
            && spec.subdomain.as_deref().is_some_and(|s| !s.is_empty())
        {
            return Err(SpecError::new(
                "spec.setHostnameAsFQDN",
                "kelp-agent does not know the cluster domain; remove setHostnameAsFQDN",
            ));
        }
    }
    if let Some(sysctls) = pod_sc.and_then(|sc| sc.sysctls.as_ref()) {
        if !sysctls.is_empty() {
            return Err(SpecError::new(
                "spec.securityContext.sysctls",
                "pod sysctls are not supported by kelp-agent",
            ));
        }
    }
    Ok(())
}

/// The pod's hostname: `spec.hostname`, else its name, cut to 63 characters with trailing
/// `-` and `.` removed (the kubelet's `truncatePodHostnameIfNeeded`).
fn pod_hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
        .or(pod.metadata.name.as_deref())
        .unwrap_or_default();
    if name.len() <= 63 {
        return name.to_owned();
    }
    // Hostnames are DNS labels: ASCII, so byte 63 is a character boundary.
    let cut = name.get(..63).unwrap_or(name);
    cut.trim_end_matches(['-', '.']).to_owned()
}

fn namespaces(ns: &SandboxNamespaces) -> Vec<LinuxNamespace> {
    let make = |typ, path: Option<&PathBuf>| {
        let mut n = LinuxNamespace::default();
        n.set_typ(typ);
        n.set_path(path.cloned());
        n
    };
    vec![
        make(LinuxNamespaceType::Pid, ns.pid.as_ref()),
        make(LinuxNamespaceType::Network, Some(&ns.network)),
        make(LinuxNamespaceType::Ipc, Some(&ns.ipc)),
        make(LinuxNamespaceType::Uts, Some(&ns.uts)),
        make(LinuxNamespaceType::Mount, None),
        make(LinuxNamespaceType::Cgroup, None),
    ]
}
