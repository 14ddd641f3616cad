//! What configMap, secret, downwardAPI and projected volumes hold: the files, their content
//! and modes, computed from the pod and the objects it names (the kubelet's `MakePayload` of
//! each volume plugin). Pure: nothing here touches the file system.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use kelp_shared::api::core::{
    ConfigMapVolumeSource, DownwardApiVolumeFile, DownwardApiVolumeSource, KeyToPath, Pod,
    ProjectedVolumeSource, ResourceList, SecretProjection, SecretVolumeSource,
};
use kelp_shared::api::validation::go_quote;

use crate::runtime::spec::EnvLookup;

/// The mode of a projected file when neither the item nor the volume sets one.
pub const DEFAULT_MODE: i32 = 0o644;

/// One file of a volume: its content and permission bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileData {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// The files of a volume by path relative to the volume.
pub type Payload = BTreeMap<PathBuf, FileData>;

/// A field of the pod and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub problem: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// What a payload is computed from besides the volume source.
pub struct Sources<'a> {
    pub pod: &'a Pod,
    pub lookup: &'a dyn EnvLookup,
    /// The node's allocatable resources, for a `resourceFieldRef` limit the container does
    /// not set (`None` makes that an error).
    pub node_allocatable: Option<&'a ResourceList>,
}

/// Checks a file path of a volume as the kubelet's atomic writer does: relative, no `..`
/// element, not starting with `..` (the writer's own `..data` and timestamped directories live
/// there). `.` elements are dropped.
pub fn item_path(path: &str, field: &str) -> Result<PathBuf, Invalid> {
    if path.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    let p = Path::new(path);
    if p.is_absolute() {
        return Err(Invalid::new(
            field,
            format!("{path:?} must be a relative path"),
        ));
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(Invalid::new(
                    field,
                    format!("{path:?} must not contain '..'"),
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(Invalid::new(
                    field,
                    format!("{path:?} must be a relative path"),
                ))
            }
        }
    }
    let first = out
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy());
    match first {
        None => Err(Invalid::new(field, format!("{path:?} names no file"))),
        Some(first) if first.starts_with("..") => Err(Invalid::new(
            field,
            format!("{path:?} must not start with '..'"),
        )),
        Some(_) => Ok(out),
    }
}

/// A file mode from the API (`0` to `0777`).
pub fn file_mode(mode: Option<i32>, default: i32, field: &str) -> Result<u32, Invalid> {
    let m = mode.unwrap_or(default);
    if !(0..=0o777).contains(&m) {
        return Err(Invalid::new(
            field,
            format!("{m} must be a number between 0 and 0777 (octal), both inclusive"),
        ));
    }
    Ok(m as u32)
}

/// Adds `file` at `path`, refusing a path given twice or one that is both a file and a
/// directory of another file.
fn add(payload: &mut Payload, path: PathBuf, file: FileData, field: &str) -> Result<(), Invalid> {
    let clash = payload
        .keys()
        .find(|p| **p == path || p.starts_with(&path) || path.starts_with(p));
    if let Some(other) = clash {
        return Err(Invalid::new(
            field,
            format!(
                "{:?} conflicts with {:?}, already in the volume",
                path.display().to_string(),
                other.display().to_string()
            ),
        ));
    }
    payload.insert(path, file);
    Ok(())
}

/// Which keys of a ConfigMap or Secret become files, and how.
struct Selection<'a> {
    /// `None`: every key, as a file named after it.
    items: Option<&'a [KeyToPath]>,
    /// A missing key is skipped rather than an error.
    optional: bool,
    /// The mode of a file whose item sets none.
    default_mode: u32,
}

/// The entries of one object (ConfigMap or Secret) as files. `kind` is `configmap` or
/// `secret` in messages.
fn key_files(
    payload: &mut Payload,
    entries: &BTreeMap<String, Vec<u8>>,
    sel: &Selection,
    kind: &str,
    field: &str,
) -> Result<(), Invalid> {
    let Some(items) = sel.items else {
        for (key, data) in entries {
            let path = item_path(key, &format!("{field}: key {key:?}"))?;
            let file = FileData {
                data: data.clone(),
                mode: sel.default_mode,
            };
            add(payload, path, file, field)?;
        }
        return Ok(());
    };
    for (i, item) in items.iter().enumerate() {
        let at = format!("{field}.items[{i}]");
        let path = item_path(&item.path, &format!("{at}.path"))?;
        let mode = file_mode(item.mode, sel.default_mode as i32, &format!("{at}.mode"))?;
        let Some(data) = entries.get(&item.key) else {
            if sel.optional {
                continue;
            }
            return Err(Invalid::new(
                format!("{at}.key"),
                format!("{kind} references non-existent {kind} key: {}", item.key),
            ));
        };
        let file = FileData {
            data: data.clone(),
            mode,
        };
        add(payload, path, file, &format!("{at}.path"))?;
    }
    Ok(())
}

fn required_name<'n>(name: Option<&'n str>, field: &str) -> Result<&'n str, Invalid> {
    name.filter(|n| !n.is_empty())
        .ok_or_else(|| Invalid::new(field, "name is required"))
}

/// A ConfigMap source into `payload`; `default_mode` is the volume's (or projection's),
/// already checked.
fn config_map_into(
    payload: &mut Payload,
    s: &Sources,
    src: &ConfigMapVolumeSource,
    default_mode: u32,
    field: &str,
) -> Result<(), Invalid> {
    let name = required_name(src.name.as_deref(), &format!("{field}.name"))?;
    let optional = src.optional == Some(true);
    let Some(cm) = s.lookup.config_map(name) else {
        if optional {
            return Ok(());
        }
        return Err(Invalid::new(field, format!("configmap {name:?} not found")));
    };
    let mut entries: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        entries.insert(k.clone(), v.0.clone());
    }
    let sel = Selection {
        items: src.items.as_deref(),
        optional,
        default_mode,
    };
    key_files(payload, &entries, &sel, "configmap", field)
}

/// A Secret source into `payload`: `data`, overridden by `stringData`. `name_field` is where
/// the name sits (`secretName` in a volume, `name` in a projection).
fn secret_into(
    payload: &mut Payload,
    s: &Sources,
    (name, name_field): (Option<&str>, &str),
    sel: &Selection,
    field: &str,
) -> Result<(), Invalid> {
    let name = required_name(name, &format!("{field}.{name_field}"))?;
    let Some(secret) = s.lookup.secret(name) else {
        if sel.optional {
            return Ok(());
        }
        return Err(Invalid::new(field, format!("secret {name:?} not found")));
    };
    let mut entries: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        entries.insert(k.clone(), v.clone().into_bytes());
    }
    key_files(payload, &entries, sel, "secret", field)
}

/// A map as the downward API writes it: sorted `key="value"` lines, Go quoting, no final
/// newline (the kubelet's `fieldpath.FormatMap`).
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The content of one downward API file.
pub fn downward_value(
    s: &Sources,
    item: &DownwardApiVolumeFile,
    field: &str,
) -> Result<String, Invalid> {
    let meta = &s.pod.metadata;
    match (&item.field_ref, &item.resource_field_ref) {
        (Some(_), Some(_)) => Err(Invalid::new(
            field,
            "fieldRef and resourceFieldRef are mutually exclusive",
        )),
        (Some(sel), None) => {
            let at = format!("{field}.fieldRef");
            if let Some(v) = sel.api_version.as_deref().filter(|v| !v.is_empty()) {
                if v != "v1" {
                    return Err(Invalid::new(
                        format!("{at}.apiVersion"),
                        format!("unsupported apiVersion {v:?}; only \"v1\" is supported"),
                    ));
                }
            }
            let path = sel.field_path.as_str();
            let subscript = path.strip_suffix("']").and_then(|p| p.split_once("['"));
            Ok(match (path, subscript) {
                (_, Some(("metadata.labels", key))) => meta
                    .labels
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default(),
                (_, Some(("metadata.annotations", key))) => meta
                    .annotations
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default(),
                ("metadata.name", None) => meta.name.clone().unwrap_or_default(),
                ("metadata.namespace", None) => meta
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_owned()),
                ("metadata.uid", None) => meta.uid.clone().unwrap_or_default(),
                ("metadata.labels", None) => format_map(meta.labels.as_ref()),
                ("metadata.annotations", None) => format_map(meta.annotations.as_ref()),
                _ => {
                    return Err(Invalid::new(
                        format!("{at}.fieldPath"),
                        format!(
                            "unsupported fieldPath {path:?}: a volume supports metadata.name, \
                             metadata.namespace, metadata.uid, metadata.labels and \
                             metadata.annotations (also with ['key'])"
                        ),
                    ))
                }
            })
        }
        (None, Some(sel)) => {
            let at = format!("{field}.resourceFieldRef");
            crate::runtime::spec::resource_field_value(s.pod, None, s.node_allocatable, sel, &at)
                .map_err(|e| Invalid::new(e.field, e.problem))
        }
        (None, None) => Err(Invalid::new(
            field,
            "one of fieldRef or resourceFieldRef is required",
        )),
    }
}

fn downward_into(
    payload: &mut Payload,
    s: &Sources,
    src: &DownwardApiVolumeSource,
    default_mode: u32,
    field: &str,
) -> Result<(), Invalid> {
    for (i, item) in src.items.iter().flatten().enumerate() {
        let at = format!("{field}.items[{i}]");
        let path = item_path(&item.path, &format!("{at}.path"))?;
        let mode = file_mode(item.mode, default_mode as i32, &format!("{at}.mode"))?;
        let data = downward_value(s, item, &at)?.into_bytes();
        add(
            payload,
            path,
            FileData { data, mode },
            &format!("{at}.path"),
        )?;
    }
    Ok(())
}

/// The files of a `configMap` volume at `field` (`spec.volumes[0].configMap`).
pub fn config_map(
    s: &Sources,
    src: &ConfigMapVolumeSource,
    field: &str,
) -> Result<Payload, Invalid> {
    let mut payload = Payload::new();
    let mode = file_mode(
        src.default_mode,
        DEFAULT_MODE,
        &format!("{field}.defaultMode"),
    )?;
    config_map_into(&mut payload, s, src, mode, field)?;
    Ok(payload)
}

/// The files of a `secret` volume.
pub fn secret(s: &Sources, src: &SecretVolumeSource, field: &str) -> Result<Payload, Invalid> {
    let mut payload = Payload::new();
    let sel = Selection {
        items: src.items.as_deref(),
        optional: src.optional == Some(true),
        default_mode: file_mode(
            src.default_mode,
            DEFAULT_MODE,
            &format!("{field}.defaultMode"),
        )?,
    };
    secret_into(
        &mut payload,
        s,
        (src.secret_name.as_deref(), "secretName"),
        &sel,
        field,
    )?;
    Ok(payload)
}

/// The files of a `downwardAPI` volume.
pub fn downward_api(
    s: &Sources,
    src: &DownwardApiVolumeSource,
    field: &str,
) -> Result<Payload, Invalid> {
    let mut payload = Payload::new();
    let mode = file_mode(
        src.default_mode,
        DEFAULT_MODE,
        &format!("{field}.defaultMode"),
    )?;
    downward_into(&mut payload, s, src, mode, field)?;
    Ok(payload)
}

/// The files of a `projected` volume: its configMap, secret and downwardAPI sources merged.
/// Service account tokens, cluster trust bundles and pod certificates need an issuer kelp does
/// not have: refused by name.
pub fn projected(
    s: &Sources,
    src: &ProjectedVolumeSource,
    field: &str,
) -> Result<Payload, Invalid> {
    let mut payload = Payload::new();
    let mode = file_mode(
        src.default_mode,
        DEFAULT_MODE,
        &format!("{field}.defaultMode"),
    )?;
    for (i, p) in src.sources.iter().flatten().enumerate() {
        let at = format!("{field}.sources[{i}]");
        if p.service_account_token.is_some() {
            return Err(Invalid::new(
                format!("{at}.serviceAccountToken"),
                "service account tokens are not supported by kelp-agent (there is no token issuer)",
            ));
        }
        if p.cluster_trust_bundle.is_some() {
            return Err(Invalid::new(
                format!("{at}.clusterTrustBundle"),
                "cluster trust bundles are not supported by kelp-agent",
            ));
        }
        if p.pod_certificate.is_some() {
            return Err(Invalid::new(
                format!("{at}.podCertificate"),
                "pod certificates are not supported by kelp-agent",
            ));
        }
        if let Some(cm) = &p.config_map {
            config_map_into(&mut payload, s, cm, mode, &format!("{at}.configMap"))?;
        } else if let Some(SecretProjection {
            name,
            items,
            optional,
        }) = &p.secret
        {
            let sel = Selection {
                items: items.as_deref(),
                optional: *optional == Some(true),
                default_mode: mode,
            };
            let at = format!("{at}.secret");
            secret_into(&mut payload, s, (name.as_deref(), "name"), &sel, &at)?;
        } else if let Some(d) = &p.downward_api {
            downward_into(&mut payload, s, d, mode, &format!("{at}.downwardAPI"))?;
        } else {
            return Err(Invalid::new(
                at,
                "one of configMap, secret or downwardAPI is required",
            ));
        }
    }
    Ok(payload)
}

/// Bytes a tmpfs needs to hold `payload` twice (the old and the new version while the atomic
/// writer swaps them), each file rounded up to whole pages, plus room for directories.
pub fn tmpfs_bytes(payload: &Payload) -> u64 {
    const PAGE: u64 = 4096;
    let files: u64 = payload
        .values()
        .map(|f| (f.data.len() as u64).div_ceil(PAGE).max(1) * PAGE)
        .sum();
    let size = 2 * files + 64 * PAGE;
    size.max(1024 * 1024)
}
