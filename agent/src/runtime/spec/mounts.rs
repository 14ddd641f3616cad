//! Mounts: the default filesystems, the pod's `/etc` files and the container's volume mounts.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Mount;

use super::env::ContainerEnv;
use super::{SpecError, SpecInput};

/// The mounts of a container and the root propagation they need.
pub(super) struct Mounts {
    pub(super) mounts: Vec<Mount>,
    /// `rslave` / `rshared` when a volume mount asks for host-to-container or bidirectional
    /// propagation (containerd does the same), else `None`.
    pub(super) rootfs_propagation: Option<String>,
}

fn mount(destination: &str, typ: &str, source: &Path, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination));
    m.set_typ(Some(typ.to_owned()));
    m.set_source(Some(source.to_path_buf()));
    m.set_options(Some(options.iter().map(|o| (*o).to_owned()).collect()));
    m
}

/// containerd's default mounts; `/sys` and `/sys/fs/cgroup` are writable when privileged.
pub(super) fn default_mounts(privileged: bool) -> Vec<Mount> {
    let ro_or_rw = if privileged { "rw" } else { "ro" };
    vec![
        mount(
            "/proc",
            "proc",
            Path::new("proc"),
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            Path::new("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            Path::new("shm"),
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            Path::new("mqueue"),
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            Path::new("sysfs"),
            &["nosuid", "noexec", "nodev", ro_or_rw],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            Path::new("cgroup"),
            &["nosuid", "noexec", "nodev", "relatime", ro_or_rw],
        ),
    ]
}

/// Checks a `subPath`: relative, without `..`.
fn check_sub_path(sub: &str, field: &str) -> Result<(), SpecError> {
    let path = Path::new(sub);
    if path.is_absolute() {
        return Err(SpecError::new(
            field,
            format!("{sub:?} must be a relative path"),
        ));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(SpecError::new(
            field,
            format!("{sub:?} must not contain '..'"),
        ));
    }
    Ok(())
}

/// Resolves `sub` inside the volume at `root`, creating missing directories as the kubelet
/// does, and refuses a path through a symlink: a container may plant one in a shared volume to
/// make a later `subPath` mount expose a host path (CVE-2017-1002101). The check happens when
/// the container is created; a container of the same pod racing to swap a directory for a
/// symlink in between is not prevented (the kubelet's fd-based bind mounts would be).
fn resolve_sub_path(root: &Path, sub: &str, field: &str) -> Result<std::path::PathBuf, SpecError> {
    let mut path = root.to_path_buf();
    for component in Path::new(sub).components() {
        let Component::Normal(name) = component else {
            continue;
        };
        path.push(name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(SpecError::new(
                    field,
                    format!("{sub:?} passes through a symlink in the volume; refused"),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&path).map_err(|e| {
                    SpecError::new(field, format!("creating {}: {e}", path.display()))
                })?;
            }
            Err(e) => {
                return Err(SpecError::new(field, format!("{}: {e}", path.display())));
            }
        }
    }
    Ok(path)
}

/// Resolves `sub` inside a volume whose files the kubelet's atomic writer made (configMap,
/// secret, downwardAPI, projected): its names are symlinks into `..data`, which the kubelet
/// follows *within the volume*. A link is followed only while it stays inside `root`: an
/// absolute link, or one climbing out of the volume, is refused. The container mounts these
/// volumes read-only, so it cannot plant links of its own. A missing path is an error (these
/// volumes hold only what their source lists).
fn resolve_in_volume(root: &Path, sub: &str, field: &str) -> Result<PathBuf, SpecError> {
    const MAX_LINKS: usize = 40;
    let escapes = || {
        SpecError::new(
            field,
            format!("{sub:?} leads out of the volume through a symlink; refused"),
        )
    };
    let mut pending: std::collections::VecDeque<std::ffi::OsString> = Path::new(sub)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            resolved.pop().ok_or_else(escapes)?;
            continue;
        }
        let mut path = root.to_path_buf();
        path.extend(&resolved);
        path.push(&name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(SpecError::new(
                        field,
                        format!("{sub:?}: too many levels of symbolic links"),
                    ));
                }
                let target = std::fs::read_link(&path)
                    .map_err(|e| SpecError::new(field, format!("{}: {e}", path.display())))?;
                if target.is_absolute() {
                    return Err(escapes());
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push_front(n.to_owned()),
                        Component::ParentDir => pending.push_front("..".into()),
                        _ => {}
                    }
                }
            }
            Ok(_) => resolved.push(name),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SpecError::new(
                    field,
                    format!("{sub:?} does not exist in the volume"),
                ));
            }
            Err(e) => {
                return Err(SpecError::new(field, format!("{}: {e}", path.display())));
            }
        }
    }
    let mut path = root.to_path_buf();
    path.extend(&resolved);
    Ok(path)
}

/// Whether the pod's volume `name` is one the kubelet projects files into (configMap, secret,
/// downwardAPI, projected): mounted read-only, its symlinks followed within the volume.
fn is_projected(input: &SpecInput, name: &str) -> bool {
    input
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .and_then(|vs| vs.iter().find(|v| v.name == name))
        .is_some_and(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
        })
}

pub(super) fn build(
    input: &SpecInput,
    env: &ContainerEnv,
    privileged: bool,
) -> Result<Mounts, SpecError> {
    let base = input.field_path.as_str();
    let mut volume_mounts: Vec<Mount> = Vec::new();
    let mut propagation: Option<&str> = None;

    for (i, vm) in input.container.volume_mounts.iter().flatten().enumerate() {
        let field = format!("{base}.volumeMounts[{i}]");
        let host = input.volumes.get(&vm.name).ok_or_else(|| {
            SpecError::new(
                format!("{field}.name"),
                format!("volume {:?} not found in the pod's volumes", vm.name),
            )
        })?;
        if !vm.mount_path.starts_with('/') {
            return Err(SpecError::new(
                format!("{field}.mountPath"),
                format!("{:?} must be an absolute path", vm.mount_path),
            ));
        }
        let mut source = host.clone();
        let projected = is_projected(input, &vm.name);
        let resolve = |sub: &str, field: &str| {
            if projected {
                resolve_in_volume(host, sub, field)
            } else {
                resolve_sub_path(host, sub, field)
            }
        };
        match (vm.sub_path.as_deref(), vm.sub_path_expr.as_deref()) {
            (Some(sub), Some(expr)) if !sub.is_empty() && !expr.is_empty() => {
                return Err(SpecError::new(
                    format!("{field}.subPathExpr"),
                    "subPath and subPathExpr are mutually exclusive",
                ));
            }
            (Some(sub), _) if !sub.is_empty() => {
                let field = format!("{field}.subPath");
                check_sub_path(sub, &field)?;
                source = resolve(sub, &field)?;
            }
            (_, Some(expr)) if !expr.is_empty() => {
                let field = format!("{field}.subPathExpr");
                let mut missing = Vec::new();
                let sub = super::expand(expr, |name| {
                    let value = env.get(name).unwrap_or_default();
                    if value.is_empty() {
                        missing.push(name.to_owned());
                    }
                    Some(value.to_owned())
                });
                if !missing.is_empty() {
                    return Err(SpecError::new(
                        field,
                        format!("missing value for {}", missing.join(", ")),
                    ));
                }
                check_sub_path(&sub, &field)?;
                source = resolve(&sub, &field)?;
            }
            _ => {}
        }

        // As the kubelet's volume plugins say of themselves: projected files are read-only.
        let read_only = vm.read_only == Some(true) || projected;
        let mut options = vec!["rbind"];
        let prop = match vm.mount_propagation.as_deref() {
            None | Some("None") => "rprivate",
            Some("HostToContainer") => {
                propagation.get_or_insert("rslave");
                "rslave"
            }
            Some("Bidirectional") if privileged => {
                propagation = Some("rshared");
                "rshared"
            }
            Some("Bidirectional") => {
                return Err(SpecError::new(
                    format!("{field}.mountPropagation"),
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
            Some(other) => {
                return Err(SpecError::new(
                    format!("{field}.mountPropagation"),
                    format!("unsupported value {other:?}: must be None, HostToContainer or Bidirectional"),
                ));
            }
        };
        options.push(prop);
        options.push(if read_only { "ro" } else { "rw" });
        match vm.recursive_read_only.as_deref() {
            None | Some("Disabled") => {}
            Some("Enabled" | "IfPossible") if read_only && prop == "rprivate" => {
                options.push("rro")
            }
            Some("Enabled" | "IfPossible") => {
                return Err(SpecError::new(
                    format!("{field}.recursiveReadOnly"),
                    "needs readOnly: true and mountPropagation None",
                ));
            }
            Some(other) => {
                return Err(SpecError::new(
                    format!("{field}.recursiveReadOnly"),
                    format!("unsupported value {other:?}: must be Disabled, IfPossible or Enabled"),
                ));
            }
        }
        volume_mounts.push(mount(&vm.mount_path, "bind", &source, &options));
    }

    // Parents before children, so a volume inside another one is not hidden by it.
    volume_mounts.sort_by_key(|m| m.destination().components().count());
    let taken = |dest: &Path| volume_mounts.iter().any(|m| m.destination() == dest);

    let etc = input.etc_files;
    let mut mounts: Vec<Mount> = default_mounts(privileged)
        .into_iter()
        .filter(|m| !taken(m.destination()))
        .collect();
    for (dest, source) in [
        ("/etc/hosts", &etc.hosts),
        ("/etc/resolv.conf", &etc.resolv_conf),
        ("/etc/hostname", &etc.hostname),
    ] {
        if !taken(Path::new(dest)) {
            mounts.push(mount(dest, "bind", source, &["bind", "ro"]));
        }
    }
    mounts.extend(volume_mounts);
    Ok(Mounts {
        mounts,
        rootfs_propagation: propagation.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A volume as the atomic writer lays it out: `key -> ..data/key`, `..data -> ..v1`.
    fn projected_volume() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("..v1/sub")).unwrap();
        std::fs::write(d.join("..v1/key"), b"value").unwrap();
        std::fs::write(d.join("..v1/sub/inner"), b"inner").unwrap();
        std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/key", d.join("key")).unwrap();
        std::os::unix::fs::symlink("..data/sub", d.join("sub")).unwrap();
        dir
    }

    #[test]
    fn sub_path_follows_links_within_a_projected_volume() {
        let dir = projected_volume();
        let root = dir.path();
        assert_eq!(
            resolve_in_volume(root, "key", "f").unwrap(),
            root.join("..v1/key")
        );
        assert_eq!(
            resolve_in_volume(root, "sub/inner", "f").unwrap(),
            root.join("..v1/sub/inner")
        );
        let e = resolve_in_volume(root, "nope", "f.subPath").unwrap_err();
        assert_eq!(e.field, "f.subPath");
        assert!(e.problem.contains("does not exist"), "{}", e.problem);
    }

    #[test]
    fn sub_path_refuses_links_leaving_a_projected_volume() {
        let dir = projected_volume();
        let root = dir.path();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("..v1/up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        for sub in ["abs", "abs/passwd", "sub/../up", "key/../up/etc"] {
            let e = resolve_in_volume(root, sub, "f").unwrap_err();
            assert!(
                e.problem.contains("out of the volume"),
                "{sub}: {}",
                e.problem
            );
        }
        let e = resolve_in_volume(root, "loop", "f").unwrap_err();
        assert!(e.problem.contains("too many levels"), "{}", e.problem);
        // A writable volume still refuses every symlink.
        let e = resolve_sub_path(root, "key", "f").unwrap_err();
        assert!(e.problem.contains("symlink"), "{}", e.problem);
    }
}
