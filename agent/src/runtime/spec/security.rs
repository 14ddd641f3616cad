//! Capabilities, masked paths, `noNewPrivileges`, seccomp, AppArmor and the security settings
//! kelp refuses.

use std::str::FromStr;

use kelp_shared::api::core::{PodSecurityContext, SeccompProfile, SecurityContext};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use super::{SpecError, SpecInput};

/// containerd's default capabilities for a non-privileged container.
pub(super) const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability oci-spec knows (Linux 5.9's `CAP_LAST_CAP` is `CHECKPOINT_RESTORE`).
pub(super) const ALL_CAPABILITIES: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// containerd's default masked paths.
pub(super) const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];

/// containerd's default read-only paths.
pub(super) const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The security settings of the process and the root filesystem.
pub(super) struct Security {
    pub(super) capabilities: LinuxCapabilities,
    pub(super) no_new_privileges: bool,
    pub(super) readonly_root: bool,
    pub(super) masked_paths: Vec<String>,
    pub(super) readonly_paths: Vec<String>,
    pub(super) apparmor_profile: Option<String>,
}

pub(super) fn resolve(
    input: &SpecInput,
    pod_sc: Option<&PodSecurityContext>,
    privileged: bool,
) -> Result<Security, SpecError> {
    let base = input.field_path.as_str();
    let sc = input.container.security_context.as_ref();
    let sc_field = format!("{base}.securityContext");

    refuse_present(
        sc.and_then(|s| s.se_linux_options.as_ref()),
        &format!("{sc_field}.seLinuxOptions"),
        "SELinux is not supported by kelp-agent",
    )?;
    refuse_present(
        pod_sc.and_then(|s| s.se_linux_options.as_ref()),
        "spec.securityContext.seLinuxOptions",
        "SELinux is not supported by kelp-agent",
    )?;
    refuse_present(
        sc.and_then(|s| s.windows_options.as_ref()),
        &format!("{sc_field}.windowsOptions"),
        "Windows options cannot be applied to a Linux container",
    )?;
    refuse_present(
        pod_sc.and_then(|s| s.windows_options.as_ref()),
        "spec.securityContext.windowsOptions",
        "Windows options cannot be applied to a Linux container",
    )?;
    match sc.and_then(|s| s.proc_mount.as_deref()) {
        None | Some("Default") => {}
        Some(other) => {
            return Err(SpecError::new(
                format!("{sc_field}.procMount"),
                format!(
                    "procMount {other} needs user namespaces, which kelp-agent does not support"
                ),
            ));
        }
    }

    if !privileged {
        check_seccomp(sc, pod_sc, &sc_field)?;
    }
    let apparmor_profile = apparmor(sc, pod_sc, &sc_field, privileged)?;

    let capabilities = if privileged {
        ALL_CAPABILITIES.into_iter().collect()
    } else {
        capabilities(sc, &sc_field)?
    };
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(capabilities.clone()));
    caps.set_effective(Some(capabilities.clone()));
    caps.set_permitted(Some(capabilities));
    caps.set_inheritable(Some(Capabilities::new()));
    caps.set_ambient(Some(Capabilities::new()));

    let (masked_paths, readonly_paths) = if privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            MASKED_PATHS.iter().map(|p| (*p).to_owned()).collect(),
            READONLY_PATHS.iter().map(|p| (*p).to_owned()).collect(),
        )
    };

    Ok(Security {
        capabilities: caps,
        no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        readonly_root: sc.and_then(|s| s.read_only_root_filesystem) == Some(true),
        masked_paths,
        readonly_paths,
        apparmor_profile,
    })
}

/// An error if `value` is set to anything but `null` or an empty object.
fn refuse_present(
    value: Option<&serde_json::Value>,
    field: &str,
    problem: &str,
) -> Result<(), SpecError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(serde_json::Value::Object(m)) if m.is_empty() => Ok(()),
        Some(_) => Err(SpecError::new(field, problem)),
    }
}

/// The effective seccomp profile (container over pod) must be `Unconfined` or unset: this
/// build has no libseccomp.
fn check_seccomp(
    sc: Option<&SecurityContext>,
    pod_sc: Option<&PodSecurityContext>,
    sc_field: &str,
) -> Result<(), SpecError> {
    let (profile, field): (&SeccompProfile, String) = match (
        sc.and_then(|s| s.seccomp_profile.as_ref()),
        pod_sc.and_then(|s| s.seccomp_profile.as_ref()),
    ) {
        (Some(p), _) => (p, format!("{sc_field}.seccompProfile")),
        (None, Some(p)) => (p, "spec.securityContext.seccompProfile".to_owned()),
        (None, None) => return Ok(()),
    };
    match profile.type_.as_str() {
        "Unconfined" => Ok(()),
        other => Err(SpecError::new(
            field,
            format!(
                "type {other} cannot be applied: kelp-agent is built without libseccomp; \
                 use Unconfined"
            ),
        )),
    }
}

/// The AppArmor profile to apply: none for `Unconfined` or unset, the named profile for
/// `Localhost`; `RuntimeDefault` is an error (kelp ships no default profile) except for a
/// privileged container, which runs unconfined as in containerd.
fn apparmor(
    sc: Option<&SecurityContext>,
    pod_sc: Option<&PodSecurityContext>,
    sc_field: &str,
    privileged: bool,
) -> Result<Option<String>, SpecError> {
    let (value, field) = match (
        sc.and_then(|s| s.app_armor_profile.as_ref()),
        pod_sc.and_then(|s| s.app_armor_profile.as_ref()),
    ) {
        (Some(v), _) => (v, format!("{sc_field}.appArmorProfile")),
        (None, Some(v)) => (v, "spec.securityContext.appArmorProfile".to_owned()),
        (None, None) => return Ok(None),
    };
    let typ = value
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    match typ {
        "Unconfined" => Ok(None),
        "RuntimeDefault" if privileged => Ok(None),
        "Localhost" => match value.get("localhostProfile").and_then(|p| p.as_str()) {
            Some(p) if !p.is_empty() => Ok(Some(p.to_owned())),
            _ => Err(SpecError::new(
                format!("{field}.localhostProfile"),
                "a profile name is required for type Localhost",
            )),
        },
        "RuntimeDefault" => Err(SpecError::new(
            field,
            "type RuntimeDefault cannot be applied: kelp-agent has no default AppArmor \
             profile; use Unconfined or Localhost",
        )),
        other => Err(SpecError::new(
            format!("{field}.type"),
            format!("unsupported type {other:?}"),
        )),
    }
}

/// Parses a Kubernetes capability name: `NET_ADMIN`, `CAP_NET_ADMIN`, any case.
pub(super) fn parse_capability(name: &str) -> Option<Capability> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare).ok()
}

/// containerd's defaults, then `add: [ALL]`, `drop: [ALL]`, the single additions and the
/// single drops, in that order (containerd's `setOCICapabilities`).
fn capabilities(sc: Option<&SecurityContext>, sc_field: &str) -> Result<Capabilities, SpecError> {
    let mut caps: Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
    let Some(spec) = sc.and_then(|s| s.capabilities.as_ref()) else {
        return Ok(caps);
    };
    let add = spec.add.as_deref().unwrap_or_default();
    let drop = spec.drop.as_deref().unwrap_or_default();
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    if add.iter().any(is_all) {
        caps.extend(ALL_CAPABILITIES);
    }
    if drop.iter().any(is_all) {
        caps.clear();
    }
    let parse = |list: &str, i: usize, name: &str| {
        parse_capability(name).ok_or_else(|| {
            SpecError::new(
                format!("{sc_field}.capabilities.{list}[{i}]"),
                format!("unknown capability {name:?}"),
            )
        })
    };
    for (i, name) in add.iter().enumerate().filter(|(_, n)| !is_all(n)) {
        caps.insert(parse("add", i, name)?);
    }
    for (i, name) in drop.iter().enumerate().filter(|(_, n)| !is_all(n)) {
        caps.remove(&parse("drop", i, name)?);
    }
    Ok(caps)
}
