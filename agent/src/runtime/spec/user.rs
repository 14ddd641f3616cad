//! The process user: `runAsUser`/`runAsGroup`, the image's `User`, `/etc/passwd` and
//! `/etc/group` of the root filesystem, supplementary groups and `runAsNonRoot`.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use kelp_shared::api::core::PodSecurityContext;
use oci_spec::runtime::User;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{SpecError, SpecInput};

/// Account files larger than this are refused rather than read.
const MAX_ACCOUNT_FILE: u64 = 4 << 20;

/// One `/etc/passwd` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PasswdEntry {
    pub(super) name: String,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

/// One `/etc/group` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct GroupEntry {
    pub(super) name: String,
    pub(super) gid: u32,
    pub(super) members: Vec<String>,
}

pub(super) fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?.to_owned();
            let _password = f.next()?;
            let uid = f.next()?.parse().ok()?;
            let gid = f.next()?.parse().ok()?;
            Some(PasswdEntry { name, uid, gid })
        })
        .collect()
}

pub(super) fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?.to_owned();
            let _password = f.next()?;
            let gid = f.next()?.parse().ok()?;
            let members = f
                .next()
                .unwrap_or_default()
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
            Some(GroupEntry { name, gid, members })
        })
        .collect()
}

/// Reads `<rootfs>/etc/<name>` without following a symlink at `etc` or at the file, so a
/// root filesystem cannot point the agent at a host file. `Ok(None)` when either is missing.
pub(super) fn read_etc_file(rootfs: &Path, name: &str) -> Result<Option<String>, String> {
    let fail =
        |what: &str, e: io::Error| format!("cannot read /etc/{name} of the image: {what}: {e}");
    let root = rustix::fs::open(
        rootfs,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        format!(
            "cannot open the container's root filesystem {} to read /etc/{name}: {e} \
             (it must be mounted before the spec is built)",
            rootfs.display()
        )
    })?;
    let Some(etc) =
        open_nofollow(&root, "etc", FileType::Directory).map_err(|e| e.describe("/etc"))?
    else {
        return Ok(None);
    };
    let Some(file) = open_nofollow(&etc, name, FileType::RegularFile)
        .map_err(|e| e.describe(&format!("/etc/{name}")))?
    else {
        return Ok(None);
    };
    let mut text = String::new();
    std::fs::File::from(file)
        .take(MAX_ACCOUNT_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail("reading", e))?;
    if text.len() as u64 > MAX_ACCOUNT_FILE {
        return Err(format!(
            "/etc/{name} of the image is larger than {MAX_ACCOUNT_FILE} bytes"
        ));
    }
    Ok(Some(text))
}

enum OpenError {
    Symlink,
    WrongType,
    Io(io::Error),
}

impl OpenError {
    fn describe(&self, path: &str) -> String {
        match self {
            OpenError::Symlink => {
                format!("{path} of the image is a symlink; kelp-agent refuses to follow it")
            }
            OpenError::WrongType => format!("{path} of the image has an unexpected file type"),
            OpenError::Io(e) => format!("cannot read {path} of the image: {e}"),
        }
    }
}

/// Opens `name` in `dir` if it exists and is of type `want`; a symlink is an error.
fn open_nofollow(dir: &OwnedFd, name: &str, want: FileType) -> Result<Option<OwnedFd>, OpenError> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(OpenError::Io(e.into())),
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Symlink => return Err(OpenError::Symlink),
        t if t != want => return Err(OpenError::WrongType),
        _ => {}
    }
    let mut flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    if want == FileType::Directory {
        flags |= OFlags::DIRECTORY;
    }
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| match e {
        // Swapped for a symlink since the stat.
        Errno::LOOP => OpenError::Symlink,
        e => OpenError::Io(e.into()),
    })?;
    // Check again on the open file: it may have been swapped since the stat.
    let st = rustix::fs::fstat(&fd).map_err(|e| OpenError::Io(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != want {
        return Err(OpenError::WrongType);
    }
    Ok(Some(fd))
}

/// The account files of the root filesystem, read on first use.
struct Accounts<'a> {
    rootfs: &'a Path,
    passwd: Option<Vec<PasswdEntry>>,
    group: Option<Vec<GroupEntry>>,
}

impl Accounts<'_> {
    fn passwd(&mut self, field: &str) -> Result<&[PasswdEntry], SpecError> {
        if self.passwd.is_none() {
            let text =
                read_etc_file(self.rootfs, "passwd").map_err(|p| SpecError::new(field, p))?;
            self.passwd = Some(text.as_deref().map(parse_passwd).unwrap_or_default());
        }
        Ok(self.passwd.as_deref().unwrap_or_default())
    }

    fn group(&mut self, field: &str) -> Result<&[GroupEntry], SpecError> {
        if self.group.is_none() {
            let text = read_etc_file(self.rootfs, "group").map_err(|p| SpecError::new(field, p))?;
            self.group = Some(text.as_deref().map(parse_group).unwrap_or_default());
        }
        Ok(self.group.as_deref().unwrap_or_default())
    }
}

/// A security-context id, checked to fit a uid/gid.
fn id(value: i64, field: &str) -> Result<u32, SpecError> {
    u32::try_from(value).map_err(|_| {
        SpecError::new(
            field,
            format!(
                "{value} is not a valid id: must be between 0 and {}",
                u32::MAX
            ),
        )
    })
}

/// Resolves the process user; see the module documentation of `spec` for the rules.
pub(super) fn resolve(
    input: &SpecInput,
    pod_sc: Option<&PodSecurityContext>,
) -> Result<User, SpecError> {
    let base = input.field_path.as_str();
    let c_sc = input.container.security_context.as_ref();
    // A container setting wins over the pod's; keep the path of whichever applies.
    let pick = |c: Option<i64>, p: Option<i64>, name: &str| match (c, p) {
        (Some(v), _) => Some((v, format!("{base}.securityContext.{name}"))),
        (None, Some(v)) => Some((v, format!("spec.securityContext.{name}"))),
        _ => None,
    };
    let run_as_user = pick(
        c_sc.and_then(|s| s.run_as_user),
        pod_sc.and_then(|s| s.run_as_user),
        "runAsUser",
    );
    let run_as_group = pick(
        c_sc.and_then(|s| s.run_as_group),
        pod_sc.and_then(|s| s.run_as_group),
        "runAsGroup",
    );
    let non_root = match (
        c_sc.and_then(|s| s.run_as_non_root),
        pod_sc.and_then(|s| s.run_as_non_root),
    ) {
        (Some(v), _) => v.then(|| format!("{base}.securityContext.runAsNonRoot")),
        (None, Some(v)) => v.then(|| "spec.securityContext.runAsNonRoot".to_owned()),
        _ => None,
    };

    let image_user = input.image.user.as_deref().unwrap_or_default();
    let (image_name, image_group) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };

    // The kubelet's verifyRunAsNonRoot: an explicit uid, else the image's numeric user.
    if let Some(field) = &non_root {
        match &run_as_user {
            Some((0, _)) => {
                return Err(SpecError::new(
                    field,
                    "runAsUser 0 breaks the non-root policy",
                ));
            }
            Some(_) => {}
            None if image_name.is_empty() || image_name.parse::<u32>() == Ok(0) => {
                return Err(SpecError::new(field, "the image will run as root"));
            }
            None if image_name.parse::<u32>().is_err() => {
                return Err(SpecError::new(
                    field,
                    format!(
                        "the image's user {image_name:?} is not numeric; \
                         cannot verify that it is not root"
                    ),
                ));
            }
            None => {}
        }
    }

    let mut accounts = Accounts {
        rootfs: input.rootfs,
        passwd: None,
        group: None,
    };
    let image_field = format!("{base}.image");
    let (uid, uid_field) = match &run_as_user {
        Some((v, field)) => (id(*v, field)?, field.clone()),
        None if image_name.is_empty() => (0, image_field.clone()),
        None => match image_name.parse::<u32>() {
            Ok(uid) => (uid, image_field.clone()),
            Err(_) => {
                let entry = accounts
                    .passwd(&image_field)?
                    .iter()
                    .find(|e| e.name == image_name)
                    .ok_or_else(|| {
                        SpecError::new(
                            &image_field,
                            format!("the image's user {image_name:?} is not in its /etc/passwd"),
                        )
                    })?;
                (entry.uid, image_field.clone())
            }
        },
    };
    let account = accounts
        .passwd(&uid_field)?
        .iter()
        .find(|e| e.uid == uid)
        .cloned();

    let gid = match (&run_as_group, image_group.filter(|_| run_as_user.is_none())) {
        (Some((v, field)), _) => id(*v, field)?,
        (None, Some(g)) if !g.is_empty() => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                accounts
                    .group(&image_field)?
                    .iter()
                    .find(|e| e.name == g)
                    .ok_or_else(|| {
                        SpecError::new(
                            &image_field,
                            format!("the image's group {g:?} is not in its /etc/group"),
                        )
                    })?
                    .gid
            }
        },
        _ => account.as_ref().map_or(0, |a| a.gid),
    };

    let mut groups: Vec<u32> = Vec::new();
    let policy = pod_sc.and_then(|s| s.supplemental_groups_policy.as_deref());
    match policy {
        None | Some("Merge") => {
            if let Some(account) = &account {
                let member_of = accounts
                    .group(&uid_field)?
                    .iter()
                    .filter(|g| g.members.contains(&account.name))
                    .map(|g| g.gid);
                groups.extend(member_of);
            }
        }
        Some("Strict") => {}
        Some(other) => {
            return Err(SpecError::new(
                "spec.securityContext.supplementalGroupsPolicy",
                format!("unsupported value {other:?}: must be Merge or Strict"),
            ));
        }
    }
    for (i, g) in pod_sc
        .and_then(|s| s.supplemental_groups.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        groups.push(id(
            *g,
            &format!("spec.securityContext.supplementalGroups[{i}]"),
        )?);
    }
    if let Some(g) = pod_sc.and_then(|s| s.fs_group) {
        groups.push(id(g, "spec.securityContext.fsGroup")?);
    }
    let mut seen = std::collections::BTreeSet::new();
    groups.retain(|g| *g != gid && seen.insert(*g));

    let mut user = User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    user.set_additional_gids((!groups.is_empty()).then_some(groups));
    Ok(user)
}
