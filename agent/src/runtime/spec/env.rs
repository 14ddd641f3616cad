//! Process arguments and environment: `command`/`args`, `envFrom`, `env`, `$(VAR)` expansion
//! and the downward API.

use kelp_shared::api::core::{
    Container, KeySelector, ObjectFieldSelector, Pod, ResourceFieldSelector, ResourceList, Secret,
};
use kelp_shared::api::quantity::Quantity;

use kelp_shared::api::validation::go_quote;

use super::{SpecError, SpecInput, DEFAULT_PATH};
use crate::image::ImageConfig;

/// Expands `$(NAME)` references in `input` the way Kubernetes does
/// (`third_party/forked/golang/expansion`): `mapping` gives a name's value, or `None` to keep
/// the reference as written; `$$` is an escaped `$`; a `$` followed by anything else, or an
/// unterminated `$(`, is kept literally.
///
/// ```
/// use kelp_agent::runtime::spec::expand;
/// let env = |name: &str| (name == "HOME").then(|| "/root".to_owned());
/// assert_eq!(expand("$(HOME)/bin $(NOPE) $$(HOME) $1", env), "/root/bin $(NOPE) $(HOME) $1");
/// ```
pub fn expand(input: &str, mut mapping: impl FnMut(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    // `$`, `(` and `)` are ASCII, so every index sliced at below is a character boundary.
    while cursor < bytes.len() {
        if bytes[cursor] != b'$' || cursor + 1 == bytes.len() {
            cursor += 1;
            continue;
        }
        out.push_str(&input[checkpoint..cursor]);
        let rest = &input[cursor + 1..];
        match bytes[cursor + 1] {
            b'$' => {
                out.push('$');
                cursor += 2;
            }
            b'(' => match rest.find(')') {
                Some(end) => {
                    let name = &rest[1..end];
                    match mapping(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    cursor += end + 2;
                }
                None => {
                    out.push_str("$(");
                    cursor += 2;
                }
            },
            _ => {
                out.push('$');
                cursor += 1;
            }
        }
        checkpoint = cursor;
    }
    out.push_str(&input[checkpoint..]);
    out
}

/// The container's own variables (`envFrom`, then `env`), in first-definition order; a later
/// definition of a name replaces the value in place.
#[derive(Debug, Default)]
pub(super) struct ContainerEnv {
    vars: Vec<(String, String)>,
}

impl ContainerEnv {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, name: String, value: String) {
        match self.vars.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
    }

    /// `$(NAME)` expansion against these variables.
    pub(super) fn expand(&self, input: &str) -> String {
        expand(input, |name| self.get(name).map(str::to_owned))
    }
}

/// Whether `name` is a valid environment variable name for `envFrom`: `[-._a-zA-Z][-._a-zA-Z0-9]*`
/// (Kubernetes' `IsEnvVarName`).
pub(super) fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    let ok = |c: char| c == '-' || c == '.' || c == '_' || c.is_ascii_alphabetic();
    chars.next().is_some_and(ok) && chars.all(|c| ok(c) || c.is_ascii_digit())
}

/// Resolves `envFrom` and `env` as the kubelet's `makeEnvironmentVariables` does.
pub(super) fn container_env(input: &SpecInput) -> Result<ContainerEnv, SpecError> {
    let c = input.container;
    let base = input.field_path.as_str();
    let mut env = ContainerEnv::default();

    for (i, source) in c.env_from.iter().flatten().enumerate() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        if let Some(r) = &source.config_map_ref {
            let field = format!("{base}.envFrom[{i}].configMapRef");
            let name = required_name(r.name.as_deref(), &field)?;
            let Some(cm) = input.lookup.config_map(name) else {
                skip_if_optional(r.optional, &field, format!("configmap {name:?} not found"))?;
                continue;
            };
            for (key, value) in cm.data.iter().flatten() {
                let key = format!("{prefix}{key}");
                if is_env_var_name(&key) {
                    env.set(key, value.clone());
                }
            }
        } else if let Some(r) = &source.secret_ref {
            let field = format!("{base}.envFrom[{i}].secretRef");
            let name = required_name(r.name.as_deref(), &field)?;
            let Some(secret) = input.lookup.secret(name) else {
                skip_if_optional(r.optional, &field, format!("secret {name:?} not found"))?;
                continue;
            };
            for (key, value) in secret_entries(secret, name, &field)? {
                let key = format!("{prefix}{key}");
                if is_env_var_name(&key) {
                    env.set(key, value);
                }
            }
        } else {
            return Err(SpecError::new(
                format!("{base}.envFrom[{i}]"),
                "one of configMapRef or secretRef is required",
            ));
        }
    }

    for (i, var) in c.env.iter().flatten().enumerate() {
        let field = format!("{base}.env[{i}]");
        let value = match (var.value.as_deref(), var.value_from.as_ref()) {
            (Some(v), _) if !v.is_empty() => Some(env.expand(v)),
            (_, None) => Some(String::new()),
            (_, Some(from)) => {
                let field = format!("{field}.valueFrom");
                if let Some(sel) = &from.field_ref {
                    Some(field_ref(input, sel, &format!("{field}.fieldRef"))?)
                } else if let Some(sel) = &from.resource_field_ref {
                    Some(resource_field_ref(
                        input,
                        sel,
                        &format!("{field}.resourceFieldRef"),
                    )?)
                } else if let Some(sel) = &from.config_map_key_ref {
                    config_map_key(input, sel, &format!("{field}.configMapKeyRef"))?
                } else if let Some(sel) = &from.secret_key_ref {
                    secret_key(input, sel, &format!("{field}.secretKeyRef"))?
                } else if from.file_key_ref.is_some() {
                    return Err(SpecError::new(
                        format!("{field}.fileKeyRef"),
                        "fileKeyRef is not supported by kelp-agent",
                    ));
                } else {
                    return Err(SpecError::new(field, "a value source is required"));
                }
            }
        };
        if let Some(value) = value {
            env.set(var.name.clone(), value);
        }
    }
    Ok(env)
}

fn required_name<'n>(name: Option<&'n str>, field: &str) -> Result<&'n str, SpecError> {
    name.filter(|n| !n.is_empty())
        .ok_or_else(|| SpecError::new(format!("{field}.name"), "name is required"))
}

/// `Ok` (skip the source) when `optional`, else the error `problem` naming `field`.
fn skip_if_optional(optional: Option<bool>, field: &str, problem: String) -> Result<(), SpecError> {
    if optional == Some(true) {
        Ok(())
    } else {
        Err(SpecError::new(field, problem))
    }
}

/// A Secret's entries as strings: `data`, overridden by `stringData` (as the API server merges
/// them). A value that is not UTF-8 cannot be an environment variable.
fn secret_entries(
    secret: &Secret,
    name: &str,
    field: &str,
) -> Result<Vec<(String, String)>, SpecError> {
    let mut out = std::collections::BTreeMap::new();
    for (key, value) in secret.data.iter().flatten() {
        let value = String::from_utf8(value.0.clone()).map_err(|_| {
            SpecError::new(
                field,
                format!("key {key:?} of secret {name:?} is not UTF-8 text"),
            )
        })?;
        out.insert(key.clone(), value);
    }
    for (key, value) in secret.string_data.iter().flatten() {
        out.insert(key.clone(), value.clone());
    }
    Ok(out.into_iter().collect())
}

/// A reference that found nothing: skipped when `optional`, else an error naming `field`.
fn missing_ref(
    sel: &KeySelector,
    field: &str,
    problem: String,
) -> Result<Option<String>, SpecError> {
    skip_if_optional(sel.optional, field, problem).map(|()| None)
}

/// The value of a `configMapKeyRef`; `None` when it is optional and missing.
fn config_map_key(
    input: &SpecInput,
    sel: &KeySelector,
    field: &str,
) -> Result<Option<String>, SpecError> {
    let name = required_name(sel.name.as_deref(), field)?;
    let missing = |problem: String| missing_ref(sel, field, problem);
    let Some(cm) = input.lookup.config_map(name) else {
        return missing(format!("configmap {name:?} not found"));
    };
    match cm.data.as_ref().and_then(|d| d.get(&sel.key)) {
        Some(v) => Ok(Some(v.clone())),
        None => missing(format!("key {:?} not found in configmap {name:?}", sel.key)),
    }
}

/// The value of a `secretKeyRef`; `None` when it is optional and missing.
fn secret_key(
    input: &SpecInput,
    sel: &KeySelector,
    field: &str,
) -> Result<Option<String>, SpecError> {
    let name = required_name(sel.name.as_deref(), field)?;
    let missing = |problem: String| missing_ref(sel, field, problem);
    let Some(secret) = input.lookup.secret(name) else {
        return missing(format!("secret {name:?} not found"));
    };
    match secret_entries(secret, name, field)?
        .into_iter()
        .find(|(k, _)| *k == sel.key)
    {
        Some((_, v)) => Ok(Some(v)),
        None => missing(format!("key {:?} not found in secret {name:?}", sel.key)),
    }
}

/// The downward API for pod fields (the kubelet's `podFieldSelectorRuntimeValue` and
/// `fieldpath.ExtractFieldPathAsString`). Only the pod's one IP is known, so `status.podIPs`
/// is that IP, and `status.hostIPs` the node's.
fn field_ref(
    input: &SpecInput,
    sel: &ObjectFieldSelector,
    field: &str,
) -> Result<String, SpecError> {
    if let Some(v) = sel.api_version.as_deref() {
        if !v.is_empty() && v != "v1" {
            return Err(SpecError::new(
                format!("{field}.apiVersion"),
                format!("unsupported apiVersion {v:?}; only \"v1\" is supported"),
            ));
        }
    }
    let pod: &Pod = input.pod;
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let path = sel.field_path.as_str();
    let host_ip = || {
        input.host_ip.map(str::to_owned).ok_or_else(|| {
            SpecError::new(
                format!("{field}.fieldPath"),
                format!("{path}: the node's IP address is not known"),
            )
        })
    };
    if let Some((map, key)) = subscript(path) {
        let values = match map {
            "metadata.labels" => meta.labels.as_ref(),
            "metadata.annotations" => meta.annotations.as_ref(),
            _ => {
                return Err(SpecError::new(
                    format!("{field}.fieldPath"),
                    format!("unsupported fieldPath {path:?}"),
                ));
            }
        };
        return Ok(values.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.iter().flatten()),
        "metadata.annotations" => format_map(meta.annotations.iter().flatten()),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| input.node_name.to_owned()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone().or(s.service_account.clone()))
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => input.pod_ip.unwrap_or_default().to_owned(),
        "status.hostIP" | "status.hostIPs" => host_ip()?,
        _ => {
            return Err(SpecError::new(
                format!("{field}.fieldPath"),
                format!("unsupported fieldPath {path:?}"),
            ));
        }
    })
}

/// Splits `metadata.labels['key']` into `("metadata.labels", "key")`.
fn subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (map, key) = inner.split_once("['")?;
    (!map.is_empty()).then_some((map, key))
}

/// A map as the downward API prints it: sorted `key="value"` lines (Go's `%q` quoting).
fn format_map<'m>(entries: impl Iterator<Item = (&'m String, &'m String)>) -> String {
    let mut entries: Vec<_> = entries.collect();
    entries.sort();
    entries
        .into_iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The downward API for container resources (the kubelet's `ExtractContainerResourceValue`):
/// CPU in units of the divisor's millicores, everything else in units of its value, rounded
/// up. A limit the container does not set reads as the node's allocatable amount.
fn resource_field_ref(
    input: &SpecInput,
    sel: &ResourceFieldSelector,
    field: &str,
) -> Result<String, SpecError> {
    resource_field_value(
        input.pod,
        Some(input.container),
        input.node_allocatable,
        sel,
        field,
    )
}

/// [`resource_field_ref`] without a [`SpecInput`], for downward API volumes: `default` is the
/// container a selector without `containerName` reads (`None` makes the name required).
pub(crate) fn resource_field_value(
    pod: &Pod,
    default: Option<&Container>,
    node_allocatable: Option<&ResourceList>,
    sel: &ResourceFieldSelector,
    field: &str,
) -> Result<String, SpecError> {
    let container = match sel.container_name.as_deref() {
        None | Some("") => default.ok_or_else(|| {
            SpecError::new(
                format!("{field}.containerName"),
                "containerName is required",
            )
        })?,
        Some(name) => find_container(pod, name).ok_or_else(|| {
            SpecError::new(
                format!("{field}.containerName"),
                format!("container {name:?} not found in the pod"),
            )
        })?,
    };
    let resource = sel.resource.as_str();
    let unsupported = || {
        SpecError::new(
            format!("{field}.resource"),
            format!("unsupported resource {resource:?}"),
        )
    };
    let (kind, name) = resource.split_once('.').ok_or_else(unsupported)?;
    if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !name.starts_with("hugepages-") {
        return Err(unsupported());
    }
    let res = container.resources.as_ref();
    let limits = res.and_then(|r| r.limits.as_ref());
    let requests = res.and_then(|r| r.requests.as_ref());
    let zero = Quantity::zero();
    let value = match kind {
        "limits" => match limits.and_then(|l| l.get(name)) {
            Some(q) => q.clone(),
            None if name.starts_with("hugepages-") => zero,
            None => node_allocatable
                .ok_or_else(|| {
                    SpecError::new(
                        format!("{field}.resource"),
                        format!(
                            "{resource} is not set and the node's allocatable {name} is not known"
                        ),
                    )
                })?
                .get(name)
                .cloned()
                .unwrap_or(zero),
        },
        // API defaulting makes a missing request equal to the limit.
        "requests" => requests
            .and_then(|r| r.get(name))
            .or_else(|| limits.and_then(|l| l.get(name)))
            .cloned()
            .unwrap_or(zero),
        _ => return Err(unsupported()),
    };
    let divisor = sel
        .divisor
        .clone()
        .filter(|d| !d.is_zero())
        .unwrap_or_else(|| Quantity::new(1, Default::default()));
    let (n, d) = if name == "cpu" {
        (value.milli_value(), divisor.milli_value())
    } else {
        (value.value(), divisor.value())
    };
    Ok(ceil_div(n, d.max(1)).to_string())
}

fn ceil_div(n: i64, d: i64) -> i64 {
    let q = n / d;
    if n % d != 0 && (n > 0) == (d > 0) {
        q + 1
    } else {
        q
    }
}

fn find_container<'p>(pod: &'p Pod, name: &str) -> Option<&'p Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// The process arguments, by containerd's rules for `command`, `args` and the image's
/// `Entrypoint` and `Cmd`; `command` and `args` are expanded first, as the kubelet does.
pub(super) fn process_args(
    c: &Container,
    image: &ImageConfig,
    env: &ContainerEnv,
    base: &str,
) -> Result<Vec<String>, SpecError> {
    let expand_all = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter().flatten().map(|s| env.expand(s)).collect()
    };
    let command = expand_all(&c.command);
    let args = expand_all(&c.args);
    let argv: Vec<String> = match (command.is_empty(), args.is_empty()) {
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
        (true, false) => image.entrypoint.iter().cloned().chain(args).collect(),
        (false, _) => command.into_iter().chain(args).collect(),
    };
    if argv.is_empty() {
        return Err(SpecError::new(
            format!("{base}.command"),
            "no command specified: neither the container nor its image sets one",
        ));
    }
    Ok(argv)
}

/// The process environment: default `PATH` and `HOSTNAME`, then the image's `Env`, then the
/// container's variables, each replacing an earlier one of the same name (containerd's
/// `WithEnv`).
pub(super) fn process_env(hostname: &str, image: &ImageConfig, env: &ContainerEnv) -> Vec<String> {
    let mut out: Vec<String> = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    let mut put = |entry: String| {
        let name = entry.split('=').next().unwrap_or_default().to_owned();
        match out
            .iter_mut()
            .find(|e| e.split('=').next() == Some(name.as_str()))
        {
            Some(slot) => *slot = entry,
            None => out.push(entry),
        }
    };
    for entry in &image.env {
        put(entry.clone());
    }
    for (name, value) in &env.vars {
        put(format!("{name}={value}"));
    }
    out
}
