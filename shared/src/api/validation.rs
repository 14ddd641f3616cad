//! Validation: the checks Kubernetes' API server runs on create, with its error messages.
//!
//! [`validate`] takes any [`Object`] and returns a list of [`FieldError`]s; an empty list means
//! the object is valid. Each error prints exactly as Kubernetes' `field.Error` does
//! (`spec.containers[0].image: Required value`), and [`invalid_message`] formats a list the
//! way the API server's 422 response does (`Pod "x" is invalid: [err1, err2]`).
//!
//! Validation runs after [`defaults`](super::defaults), as in Kubernetes, but it also behaves
//! sensibly on objects that were not defaulted: a field that defaulting would fill in is only
//! checked when it is set. Fields that have no default (names, images, containers) are
//! required either way.
//!
//! The messages follow Kubernetes 1.33 (`k8s.io/apimachinery/pkg/util/validation`,
//! `pkg/apis/{core,apps,batch,networking,rbac}/validation`), including its rendering of bad
//! values: strings quoted as Go's `%q`, maps as Go's `%#v`, `IntOrString` and label
//! selectors through their `String()` methods. `docs/validation.md` lists every rule with an
//! example message and the test that pins it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::apps::{
    DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy, ReplicaSet, RollingUpdate,
    StatefulSet,
};
use super::batch::{CronJob, Job, JobSpec};
use super::core::{
    ConfigMap, Container, ContainerPort, DownwardApiVolumeFile, EnvFromSource, EnvVar,
    HttpGetAction, KeySelector, KeyToPath, Lifecycle, LifecycleHandler, Namespace,
    ObjectFieldSelector, Pod, PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource,
    ResourceFieldSelector, ResourceRequirements, Secret, Service, ServicePort, Toleration, Volume,
    VolumeMount,
};
use super::intstr::IntOrString;
use super::meta::{LabelSelector, Map, ObjectMeta};
use super::networking::{Ingress, IngressBackend};
use super::object::Object;
use super::rbac::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The kind of a [`FieldError`], Kubernetes' `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A value that was looked up is not there (`Not found`).
    NotFound,
    /// A required value is missing (`Required value`).
    Required,
    /// A value that must be unique is repeated (`Duplicate value`).
    Duplicate,
    /// A malformed value (`Invalid value`).
    Invalid,
    /// A value outside an enumeration (`Unsupported value`).
    NotSupported,
    /// A value that is well formed but not allowed here (`Forbidden`).
    Forbidden,
    /// A value that is too long (`Too long`).
    TooLong,
}

impl ErrorKind {
    /// The text Kubernetes prints: `Required value`, `Invalid value`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "Not found",
            ErrorKind::Required => "Required value",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::Invalid => "Invalid value",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::TooLong => "Too long",
        }
    }

    /// The machine-readable reason of a `Status` cause: `FieldValueRequired`, ...
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "FieldValueNotFound",
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::Duplicate => "FieldValueDuplicate",
            ErrorKind::Invalid => "FieldValueInvalid",
            ErrorKind::NotSupported => "FieldValueNotSupported",
            ErrorKind::Forbidden => "FieldValueForbidden",
            ErrorKind::TooLong => "FieldValueTooLong",
        }
    }

    /// Whether errors of this kind print their bad value (`Required value` and `Forbidden`
    /// never do).
    fn shows_value(self) -> bool {
        !matches!(
            self,
            ErrorKind::Required | ErrorKind::Forbidden | ErrorKind::TooLong
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One validation error: Kubernetes' `field.Error`.
///
/// It prints as `<path>: <kind>[: <value>][: <detail>]`, for example
/// `spec.containers[1].name: Duplicate value: "web"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field, in Kubernetes' notation: `spec.containers[0].ports[1].containerPort`,
    /// `metadata.labels`, `spec.containers[0].resources.limits[cpu]`.
    pub path: String,
    /// What is wrong.
    pub kind: ErrorKind,
    /// The bad value, already rendered as Kubernetes renders it (`"My_Pod"` with quotes for a
    /// string, `70000` for a number, `map[string]string{"app":"web"}` for a map). `None` for
    /// kinds that print no value.
    pub value: Option<String>,
    /// The explanation; may be empty.
    pub detail: String,
}

impl FieldError {
    /// An error with every part given; `value` must already be rendered.
    pub fn new(
        path: impl Into<String>,
        kind: ErrorKind,
        value: Option<String>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            path: path.into(),
            kind,
            value,
            detail: detail.into(),
        }
    }

    /// `<path>: Required value[: <detail>]`.
    pub fn required(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Required, None, detail)
    }

    /// `<path>: Forbidden: <detail>`.
    pub fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Forbidden, None, detail)
    }

    /// `<path>: Invalid value: "<value>": <detail>` for a string value.
    pub fn invalid(path: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Invalid, Some(go_quote(value)), detail)
    }

    /// `<path>: Invalid value: <value>: <detail>` for a number.
    pub fn invalid_int(path: impl Into<String>, value: i64, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Invalid, Some(value.to_string()), detail)
    }

    /// `<path>: Unsupported value: "<value>": supported values: "a", "b"`.
    pub fn not_supported(path: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(path, ErrorKind::NotSupported, Some(go_quote(value)), detail)
    }

    /// `<path>: Duplicate value: "<value>"`.
    pub fn duplicate(path: impl Into<String>, value: &str) -> Self {
        Self::new(path, ErrorKind::Duplicate, Some(go_quote(value)), "")
    }

    /// `<path>: Not found: "<value>"`.
    pub fn not_found(path: impl Into<String>, value: &str) -> Self {
        Self::new(path, ErrorKind::NotFound, Some(go_quote(value)), "")
    }

    /// `<path>: Too long: must have at most <max> bytes`.
    pub fn too_long(path: impl Into<String>, max: usize) -> Self {
        Self::new(
            path,
            ErrorKind::TooLong,
            None,
            format!("must have at most {max} bytes"),
        )
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind)?;
        if self.kind.shows_value() {
            if let Some(v) = &self.value {
                write!(f, ": {v}")?;
            }
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldError {}

/// The errors joined as Kubernetes' `ErrorList.ToAggregate()` prints them: duplicates dropped,
/// one error bare, several as `[err1, err2]`, none as `<nil>`.
pub fn aggregate(errs: &[FieldError]) -> String {
    let mut seen = BTreeSet::new();
    let mut msgs = Vec::new();
    for e in errs {
        let m = e.to_string();
        if seen.insert(m.clone()) {
            msgs.push(m);
        }
    }
    match msgs.len() {
        0 => "<nil>".to_string(),
        1 => msgs.remove(0),
        _ => format!("[{}]", msgs.join(", ")),
    }
}

/// The message of the API server's 422 response for `obj`: `Pod "x" is invalid: [...]`, with
/// the kind qualified by its group as Kubernetes does (`Deployment.apps "web" is invalid: ...`).
/// The name is `metadata.name`, or `generateName` when no name is set.
pub fn invalid_message(obj: &Object, errs: &[FieldError]) -> String {
    let info = obj.kind_info();
    let kind = if info.group.is_empty() {
        info.kind.to_string()
    } else {
        format!("{}.{}", info.kind, info.group)
    };
    let meta = obj.metadata();
    let name = match meta.name.as_deref() {
        Some(n) if !n.is_empty() => n,
        _ => meta.generate_name.as_deref().unwrap_or(""),
    };
    format!("{kind} {} is invalid: {}", go_quote(name), aggregate(errs))
}

// ---------------------------------------------------------------------------------------------
// Rendering values as Go prints them
// ---------------------------------------------------------------------------------------------

/// `s` quoted as Go's `strconv.Quote` (`%q`) does: `"My_Pod"`, `"a\"b"`, `"tab\t"`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A label map as Go's `%#v` prints a `map[string]string`: `map[string]string{"a":"b"}`, or
/// `map[string]string(nil)` when absent.
fn go_map(m: Option<&Map>) -> String {
    match m {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// A label selector as its generated `String()` method prints it.
fn go_selector(sel: &LabelSelector) -> String {
    let labels: String = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect();
    let exprs: String = sel
        .match_expressions
        .iter()
        .flatten()
        .map(|r| {
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                r.key,
                r.operator,
                r.values.as_deref().unwrap_or(&[]).join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},\
         MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}"
    )
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

/// A field path being built: `spec`, `spec.containers[0]`, `spec.resources.limits[cpu]`.
#[derive(Clone, Debug)]
struct P(String);

impl P {
    fn new(root: &str) -> P {
        P(root.to_string())
    }

    /// `a.b`.
    fn c(&self, name: &str) -> P {
        if self.0.is_empty() {
            P(name.to_string())
        } else {
            P(format!("{}.{name}", self.0))
        }
    }

    /// `a[3]`.
    fn i(&self, index: usize) -> P {
        P(format!("{}[{index}]", self.0))
    }

    /// `a[key]`.
    fn k(&self, key: &str) -> P {
        P(format!("{}[{key}]", self.0))
    }
}

type Errs = Vec<FieldError>;

fn required(p: &P, detail: &str) -> FieldError {
    FieldError::required(p.0.clone(), detail)
}

fn forbidden(p: &P, detail: &str) -> FieldError {
    FieldError::forbidden(p.0.clone(), detail)
}

fn invalid(p: &P, value: &str, detail: &str) -> FieldError {
    FieldError::invalid(p.0.clone(), value, detail)
}

fn invalid_int(p: &P, value: i64, detail: &str) -> FieldError {
    FieldError::invalid_int(p.0.clone(), value, detail)
}

/// An `Invalid value` whose value is rendered by the caller (maps, `IntOrString`, selectors).
fn invalid_raw(p: &P, rendered: String, detail: &str) -> FieldError {
    FieldError::new(p.0.clone(), ErrorKind::Invalid, Some(rendered), detail)
}

fn not_supported(p: &P, value: &str, supported: &[&str]) -> FieldError {
    FieldError::not_supported(p.0.clone(), value, supported)
}

fn duplicate(p: &P, value: &str) -> FieldError {
    FieldError::duplicate(p.0.clone(), value)
}

fn not_found(p: &P, value: &str) -> FieldError {
    FieldError::not_found(p.0.clone(), value)
}

// ---------------------------------------------------------------------------------------------
// String formats (k8s.io/apimachinery/pkg/util/validation)
// ---------------------------------------------------------------------------------------------

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case \
     alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric \
     characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const WILDCARD_SUBDOMAIN_FMT: &str =
    r"\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const WILDCARD_SUBDOMAIN_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', \
     followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, \
     '-' or '.' and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and \
     must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric \
     characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const ENV_VAR_NAME_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
const ENV_VAR_NAME_MSG: &str = "a valid environment variable name must consist of alphabetic \
     characters, digits, '_', '-', or '.', and must not start with a digit";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const PERCENT_FMT: &str = "[0-9]+%";
const PERCENT_MSG: &str =
    "a valid percent string must be a numeric string followed by an ending '%'";
const HTTP_HEADER_NAME_FMT: &str = "[-A-Za-z0-9]+";
const HTTP_HEADER_NAME_MSG: &str =
    "a valid HTTP header must consist of alphanumeric characters or '-'";

/// Kubernetes' `IsNegativeErrorMsg`.
const NEGATIVE_MSG: &str = "must be greater than or equal to 0";
/// Kubernetes' `fileModeErrorMsg`.
const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";
/// Total size of a ConfigMap's or Secret's data (`core.MaxSecretSize`).
pub const MAX_DATA_SIZE: usize = 1024 * 1024;
/// Total size of an object's annotations (`TotalAnnotationSizeLimitB`).
pub const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

/// Kubernetes' `RegexError`: `msg (e.g. 'a',  or 'b', regex used for validation is 'fmt')`.
/// The double space after each comma but the last is Kubernetes' own.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push_str(&format!("'{ex}', "));
    }
    s.push_str(&format!("regex used for validation is '{fmt}')"));
    s
}

/// Kubernetes' `MaxLenError`.
fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// Kubernetes' `InclusiveRangeError`.
fn range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
}

/// Labels joined by dots.
fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Kubernetes' `IsDNS1123Label`: at most 63 characters of `[a-z0-9-]`, alphanumeric at both
/// ends. Returns the messages of what is wrong (empty when valid).
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Kubernetes' `IsDNS1123Subdomain`: at most 253 characters, DNS-1123 labels joined by dots.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Kubernetes' `IsDNS1035Label`: a DNS-1123 label that starts with a letter (Service names).
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !(matches_dns1123_label(value) && value.as_bytes()[0].is_ascii_lowercase()) {
        errs.push(regex_error(
            DNS1035_LABEL_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Kubernetes' `IsWildcardDNS1123Subdomain`: `*.` followed by a DNS-1123 subdomain.
fn is_wildcard_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    let ok = value
        .strip_prefix("*.")
        .is_some_and(matches_dns1123_subdomain);
    if !ok {
        errs.push(regex_error(
            WILDCARD_SUBDOMAIN_MSG,
            WILDCARD_SUBDOMAIN_FMT,
            &["*.example.com"],
        ));
    }
    errs
}

/// Kubernetes' `IsQualifiedName`, the format of label and annotation keys: an optional
/// DNS-1123 subdomain prefix and `/`, then a name of at most 63 characters.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let examples = ["MyName", "my.name", "123-abc"];
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. \
                 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &examples)
            )]
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &examples)
        ));
    }
    errs
}

/// Kubernetes' `IsValidLabelValue`: empty, or at most 63 characters of `[-A-Za-z0-9_.]`,
/// alphanumeric at both ends.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !(value.is_empty() || matches_qualified_name_part(value)) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Kubernetes' `IsValidPortName` (an IANA_SVC_NAME): at most 15 characters of `[-a-z0-9]`,
/// at least one letter, no `--`, no `-` at either end.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    if port.is_empty() || !port.bytes().all(|c| is_lower_alnum(c) || c == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// Kubernetes' `IsValidPortNum`: 1 to 65535.
pub fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![range_error(1, 65535)]
    }
}

/// Kubernetes' `hasChDirPrefix`.
fn chdir_prefix_errors(value: &str) -> Vec<String> {
    match value {
        "." => vec!["must not be '.'".into()],
        ".." => vec!["must not be '..'".into()],
        v if v.starts_with("..") => vec!["must not start with '..'".into()],
        _ => Vec::new(),
    }
}

/// Kubernetes' classic `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`, and not `.`, `..` or
/// starting with `..`.
pub fn is_env_var_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let b = value.as_bytes();
    let ok = !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !ok {
        errs.push(regex_error(
            ENV_VAR_NAME_MSG,
            ENV_VAR_NAME_FMT,
            &["my.env-name", "MY_ENV.NAME", "MyEnvName1"],
        ));
    }
    errs.extend(chdir_prefix_errors(value));
    errs
}

/// Kubernetes' `IsConfigMapKey`, for ConfigMap and Secret keys: at most 253 characters of
/// `[-._a-zA-Z0-9]`, and not `.`, `..` or starting with `..`.
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !ok {
        errs.push(regex_error(
            CONFIG_MAP_KEY_MSG,
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    errs.extend(chdir_prefix_errors(value));
    errs
}

/// Kubernetes' `IsValidPercent`: `[0-9]+%`.
fn is_valid_percent(value: &str) -> Vec<String> {
    let ok = value
        .strip_suffix('%')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
    if ok {
        Vec::new()
    } else {
        vec![regex_error(PERCENT_MSG, PERCENT_FMT, &["1%", "93%"])]
    }
}

/// Kubernetes' `IsHTTPHeaderName`.
fn is_http_header_name(value: &str) -> Vec<String> {
    if !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-')
    {
        Vec::new()
    } else {
        vec![regex_error(
            HTTP_HEADER_NAME_MSG,
            HTTP_HEADER_NAME_FMT,
            &["X-Header-Name"],
        )]
    }
}

/// Kubernetes' `IsValidPathSegmentName` (RBAC object names): not `.` or `..`, no `/` or `%`.
fn is_valid_path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    if !prefix {
        for bad in [".", ".."] {
            if name == bad {
                return vec![format!("may not be '{bad}'")];
            }
        }
    }
    ["/", "%"]
        .iter()
        .filter(|bad| name.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Object names
// ---------------------------------------------------------------------------------------------

/// Which format an object's `metadata.name` must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain (most kinds).
    Dns1123Subdomain,
    /// A DNS-1123 label (Namespace).
    Dns1123Label,
    /// A DNS-1035 label: a DNS-1123 label starting with a letter (Service).
    Dns1035Label,
    /// A URL path segment: not `.` or `..`, no `/` or `%` (RBAC kinds, whose names such as
    /// `system:controller:foo` contain colons).
    PathSegment,
}

impl NameRule {
    /// The rule Kubernetes applies to names of `kind`.
    pub fn for_kind(kind: &str) -> NameRule {
        match kind {
            "Namespace" => NameRule::Dns1123Label,
            "Service" => NameRule::Dns1035Label,
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => NameRule::PathSegment,
            _ => NameRule::Dns1123Subdomain,
        }
    }

    /// What is wrong with `name` (empty when valid). With `prefix`, `name` is a
    /// `generateName` and may end in `-`.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        // Kubernetes' maskTrailingDash: a generateName may end in '-'.
        let masked;
        let name = if prefix && name.len() > 1 && name.ends_with('-') {
            masked = format!("{}a", &name[..name.len() - 1]);
            masked.as_str()
        } else {
            name
        };
        match self {
            NameRule::Dns1123Subdomain => is_dns1123_subdomain(name),
            NameRule::Dns1123Label => is_dns1123_label(name),
            NameRule::Dns1035Label => is_dns1035_label(name),
            NameRule::PathSegment => is_valid_path_segment_name(name, prefix),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

/// Validates any object; an empty list means it is valid.
pub fn validate(obj: &Object) -> Vec<FieldError> {
    match obj {
        Object::Pod(o) => validate_pod(o),
        Object::Namespace(o) => validate_namespace(o),
        Object::ConfigMap(o) => validate_config_map(o),
        Object::Secret(o) => validate_secret(o),
        Object::Service(o) => validate_service(o),
        Object::ReplicaSet(o) => validate_replica_set(o),
        Object::Deployment(o) => validate_deployment(o),
        Object::DaemonSet(o) => validate_daemon_set(o),
        Object::StatefulSet(o) => validate_stateful_set(o),
        Object::Job(o) => validate_job(o),
        Object::CronJob(o) => validate_cron_job(o),
        Object::Ingress(o) => validate_ingress(o),
        Object::Role(o) => validate_role(o),
        Object::ClusterRole(o) => validate_cluster_role(o),
        Object::RoleBinding(o) => validate_role_binding(o),
        Object::ClusterRoleBinding(o) => validate_cluster_role_binding(o),
        Object::Node(_)
        | Object::ServiceAccount(_)
        | Object::PersistentVolume(_)
        | Object::PersistentVolumeClaim(_)
        | Object::ResourceQuota(_)
        | Object::LimitRange(_)
        | Object::Event(_) => {
            let info = obj.kind_info();
            validate_object_meta(
                obj.metadata(),
                NameRule::for_kind(info.kind),
                info.namespaced,
            )
        }
    }
}

/// `metadata`: the name (or `generateName`) in the kind's format, the namespace as a DNS-1123
/// label when set on a namespaced kind, labels and annotations.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    rule: NameRule,
    namespaced: bool,
) -> Vec<FieldError> {
    let mut e = Errs::new();
    let p = P::new("metadata");
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        for m in rule.check(generate_name, true) {
            e.push(invalid(&p.c("generateName"), generate_name, &m));
        }
    }
    let name = meta.name();
    if name.is_empty() {
        if generate_name.is_empty() {
            e.push(required(&p.c("name"), "name or generateName is required"));
        }
    } else {
        for m in rule.check(name, false) {
            e.push(invalid(&p.c("name"), name, &m));
        }
    }
    let ns = meta.namespace();
    if namespaced && !ns.is_empty() {
        for m in is_dns1123_label(ns) {
            e.push(invalid(&p.c("namespace"), ns, &m));
        }
    }
    labels(&mut e, meta.labels.as_ref(), &p.c("labels"));
    annotations(&mut e, meta.annotations.as_ref(), &p.c("annotations"));
    e
}

/// Labels: keys are qualified names, values valid label values. Errors name the map's path.
pub fn validate_labels(labels_map: &Map, path: &str) -> Vec<FieldError> {
    let mut e = Errs::new();
    labels(&mut e, Some(labels_map), &P::new(path));
    e
}

fn labels(e: &mut Errs, m: Option<&Map>, p: &P) {
    for (k, v) in m.into_iter().flatten() {
        label_key(e, k, p);
        for msg in is_valid_label_value(v) {
            e.push(invalid(p, v, &msg));
        }
    }
}

fn label_key(e: &mut Errs, k: &str, p: &P) {
    for msg in is_qualified_name(k) {
        e.push(invalid(p, k, &msg));
    }
}

/// Annotations: keys are qualified names (in any case), and keys plus values total at most
/// 256 KiB.
pub fn validate_annotations(annotations_map: &Map, path: &str) -> Vec<FieldError> {
    let mut e = Errs::new();
    annotations(&mut e, Some(annotations_map), &P::new(path));
    e
}

fn annotations(e: &mut Errs, m: Option<&Map>, p: &P) {
    let Some(m) = m else { return };
    let mut total = 0usize;
    for (k, v) in m {
        for msg in is_qualified_name(&k.to_ascii_lowercase()) {
            e.push(invalid(p, k, &msg));
        }
        total += k.len() + v.len();
    }
    if total > MAX_ANNOTATIONS_SIZE {
        e.push(FieldError::too_long(p.0.clone(), MAX_ANNOTATIONS_SIZE));
    }
}

/// A `LabelSelector`: valid `matchLabels`, and per expression a known operator with values
/// given exactly when it needs them.
pub fn validate_label_selector(sel: &LabelSelector, path: &str) -> Vec<FieldError> {
    let mut e = Errs::new();
    label_selector(&mut e, sel, &P::new(path));
    e
}

fn label_selector(e: &mut Errs, sel: &LabelSelector, p: &P) {
    labels(e, sel.match_labels.as_ref(), &p.c("matchLabels"));
    for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
        let rp = p.c("matchExpressions").i(i);
        let values = req.values.as_deref().unwrap_or(&[]);
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    e.push(required(
                        &rp.c("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    e.push(forbidden(
                        &rp.c("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => e.push(invalid(
                &rp.c("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        label_key(e, &req.key, &rp.c("key"));
        for (j, v) in values.iter().enumerate() {
            for msg in is_valid_label_value(v) {
                e.push(invalid(&rp.c("values").i(j), v, &msg));
            }
        }
    }
}

fn non_negative(e: &mut Errs, v: Option<i64>, p: &P) {
    if let Some(v) = v.filter(|v| *v < 0) {
        e.push(invalid_int(p, v, NEGATIVE_MSG));
    }
}

// ---------------------------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------------------------

/// A Pod: metadata, the pod spec at `spec`, and the checks Kubernetes makes only for pods
/// (no whitespace around images; image volumes need a reference).
pub fn validate_pod(pod: &Pod) -> Vec<FieldError> {
    let mut e = validate_object_meta(&pod.metadata, NameRule::Dns1123Subdomain, true);
    let default = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default);
    let p = P::new("spec");
    pod_spec(
        &mut e,
        spec,
        &p,
        &PodCtx {
            is_pod: true,
            extra_volumes: &[],
        },
    );
    for (list, containers) in [
        ("containers", spec.containers.as_slice()),
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or(&[]),
        ),
    ] {
        for (i, c) in containers.iter().enumerate() {
            let image = c.image.as_deref().unwrap_or("");
            if image.trim() != image {
                e.push(invalid(
                    &p.c(list).i(i).c("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    e
}

/// A pod spec, with errors under `path` (`spec`, `spec.template.spec`, ...).
pub fn validate_pod_spec(spec: &PodSpec, path: &str) -> Vec<FieldError> {
    let mut e = Errs::new();
    pod_spec(
        &mut e,
        spec,
        &P::new(path),
        &PodCtx {
            is_pod: false,
            extra_volumes: &[],
        },
    );
    e
}

/// A pod template (`spec.template` of a workload), with errors under `path`: its labels
/// and annotations (at `<path>.labels`, as Kubernetes reports them) and its pod spec.
pub fn validate_pod_template(t: &PodTemplateSpec, path: &str) -> Vec<FieldError> {
    let mut e = Errs::new();
    pod_template(&mut e, t, &P::new(path), &[]);
    e
}

fn pod_template(e: &mut Errs, t: &PodTemplateSpec, p: &P, extra_volumes: &[String]) {
    let meta = t.metadata.as_ref();
    labels(e, meta.and_then(|m| m.labels.as_ref()), &p.c("labels"));
    annotations(
        e,
        meta.and_then(|m| m.annotations.as_ref()),
        &p.c("annotations"),
    );
    let default = PodSpec::default();
    let spec = t.spec.as_ref().unwrap_or(&default);
    pod_spec(
        e,
        spec,
        &p.c("spec"),
        &PodCtx {
            is_pod: false,
            extra_volumes,
        },
    );
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|v| !v.is_empty())
    {
        e.push(forbidden(
            &p.c("spec").c("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

struct PodCtx<'a> {
    /// A Pod itself rather than a template.
    is_pod: bool,
    /// Volume names mounts may use besides `spec.volumes` (a StatefulSet's claim templates).
    extra_volumes: &'a [String],
}

fn pod_spec(e: &mut Errs, spec: &PodSpec, p: &P, ctx: &PodCtx) {
    non_negative(
        e,
        spec.termination_grace_period_seconds,
        &p.c("terminationGracePeriodSeconds"),
    );
    let grace = spec.termination_grace_period_seconds;

    let mut vols = volumes(
        e,
        spec.volumes.as_deref().unwrap_or(&[]),
        &p.c("volumes"),
        ctx,
    );
    vols.extend(ctx.extra_volumes.iter().cloned());

    // Regular containers.
    let cp = p.c("containers");
    if spec.containers.is_empty() {
        e.push(required(&cp, ""));
    }
    let mut names = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let ip = cp.i(i);
        container_common(e, c, &vols, &ip);
        if !names.insert(c.name.as_str()) {
            e.push(duplicate(&ip.c("name"), &c.name));
        }
        if let Some(l) = &c.lifecycle {
            lifecycle(e, l, grace, &ip.c("lifecycle"));
        }
        probes(e, c, grace, &ip);
        if c.restart_policy.is_some() {
            e.push(forbidden(
                &ip.c("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    host_port_conflicts(e, &spec.containers, &cp);

    // Init containers: names unique across both lists.
    let icp = p.c("initContainers");
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let ip = icp.i(i);
        container_common(e, c, &vols, &ip);
        let restart_always = match c.restart_policy.as_deref() {
            None => false,
            Some("Always") => true,
            Some(other) => {
                e.push(not_supported(&ip.c("restartPolicy"), other, &["Always"]));
                false
            }
        };
        if names.contains(c.name.as_str()) {
            e.push(duplicate(&ip.c("name"), &c.name));
        } else if !c.name.is_empty() {
            names.insert(c.name.as_str());
        }
        host_port_conflicts(e, std::slice::from_ref(c), &icp);
        if restart_always {
            if let Some(l) = &c.lifecycle {
                lifecycle(e, l, grace, &ip.c("lifecycle"));
            }
            probes(e, c, grace, &ip);
        } else {
            let msg = "may not be set for init containers without restartPolicy=Always";
            for (field, set) in [
                ("lifecycle", c.lifecycle.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ] {
                if set {
                    e.push(forbidden(&ip.c(field), msg));
                }
            }
        }
    }

    // hostNetwork: a host port must be the container port.
    if spec.host_network == Some(true) {
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, port) in c.ports.iter().flatten().enumerate() {
                let Some(hp) = port.host_port else { continue };
                if (ctx.is_pod || hp != 0) && hp != port.container_port {
                    e.push(invalid_int(
                        &cp.i(i).c("ports").i(j).c("hostPort"),
                        hp.into(),
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }

    if let Some(rp) = spec.restart_policy.as_deref() {
        match rp {
            "Always" | "OnFailure" | "Never" => {}
            "" => e.push(required(&p.c("restartPolicy"), "")),
            other => e.push(not_supported(
                &p.c("restartPolicy"),
                other,
                &["Always", "OnFailure", "Never"],
            )),
        }
    }
    if let Some(dp) = spec.dns_policy.as_deref() {
        match dp {
            "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
            "" => e.push(required(&p.c("dnsPolicy"), "")),
            other => e.push(not_supported(
                &p.c("dnsPolicy"),
                other,
                &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
            )),
        }
    }
    labels(e, spec.node_selector.as_ref(), &p.c("nodeSelector"));
    if spec.dns_policy.as_deref() == Some("None") {
        match &spec.dns_config {
            None => e.push(required(
                &p.c("dnsConfig"),
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )),
            Some(c) if c.nameservers.as_ref().is_none_or(|n| n.is_empty()) => e.push(required(
                &p.c("dnsConfig").c("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            )),
            Some(_) => {}
        }
    }
    for (field, value) in [
        ("serviceAccountName", spec.service_account_name.as_deref()),
        ("nodeName", spec.node_name.as_deref()),
    ] {
        let v = value.unwrap_or("");
        if !v.is_empty() {
            for m in is_dns1123_subdomain(v) {
                e.push(invalid(&p.c(field), v, &m));
            }
        }
    }
    if let Some(ads) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&ads) {
            e.push(invalid_int(
                &p.c("activeDeadlineSeconds"),
                ads,
                &range_error(1, i32::MAX.into()),
            ));
        }
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        let v = value.as_deref().unwrap_or("");
        if !v.is_empty() {
            for m in is_dns1123_label(v) {
                e.push(invalid(&p.c(field), v, &m));
            }
        }
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        toleration(e, t, &p.c("tolerations").i(i));
    }
    let pcn = spec.priority_class_name.as_deref().unwrap_or("");
    if !pcn.is_empty() {
        for m in is_dns1123_subdomain(pcn) {
            e.push(invalid(&p.c("priorityClassName"), pcn, &m));
        }
    }
}

/// `spec.volumes`; returns the names of the volumes without errors, which mounts may use.
fn volumes(e: &mut Errs, vols: &[Volume], p: &P, ctx: &PodCtx) -> BTreeSet<String> {
    let mut good = BTreeSet::new();
    let mut all = BTreeSet::new();
    for (i, v) in vols.iter().enumerate() {
        let ip = p.i(i);
        let mut el = Errs::new();
        volume_source(&mut el, v, &ip, ctx);
        if v.name.is_empty() {
            el.push(required(&ip.c("name"), ""));
        } else {
            for m in is_dns1123_label(&v.name) {
                el.push(invalid(&ip.c("name"), &v.name, &m));
            }
        }
        if all.contains(&v.name) {
            el.push(duplicate(&ip.c("name"), &v.name));
        }
        if el.is_empty() {
            all.insert(v.name.clone());
            good.insert(v.name.clone());
        } else {
            e.extend(el);
        }
    }
    good
}

fn volume_source(e: &mut Errs, v: &Volume, p: &P, ctx: &PodCtx) {
    // Kubernetes checks the sources in this order and reports every one after the first.
    // (Its path for a second downwardAPI source really is spelled "downwarAPI".)
    let sources: [(&str, bool); 11] = [
        ("emptyDir", v.empty_dir.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("downwarAPI", v.downward_api.is_some()),
        ("configMap", v.config_map.is_some()),
        ("projected", v.projected.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ];
    let mut first: Option<&str> = None;
    for (name, set) in sources {
        if !set {
            continue;
        }
        if first.is_some() {
            e.push(forbidden(
                &p.c(name),
                "may not specify more than 1 volume type",
            ));
        } else {
            first = Some(name);
        }
    }
    let Some(first) = first else {
        e.push(required(p, "must specify a volume type"));
        return;
    };
    match first {
        "emptyDir" => {
            if let Some(q) = v.empty_dir.as_ref().and_then(|d| d.size_limit.as_ref()) {
                if q.signum() < 0 {
                    e.push(forbidden(
                        &p.c("emptyDir").c("sizeLimit"),
                        "SizeLimit field must be a valid resource quantity",
                    ));
                }
            }
        }
        "hostPath" => {
            let Some(h) = &v.host_path else { return };
            let hp = p.c("hostPath");
            if h.path.is_empty() {
                e.push(required(&hp.c("path"), ""));
                return;
            }
            no_backsteps(e, &h.path, &hp.c("path"));
            if let Some(t) = h.type_.as_deref() {
                let types = [
                    "",
                    "BlockDevice",
                    "CharDevice",
                    "Directory",
                    "DirectoryOrCreate",
                    "File",
                    "FileOrCreate",
                    "Socket",
                ];
                if !types.contains(&t) {
                    e.push(not_supported(&hp.c("type"), t, &types));
                }
            }
        }
        "secret" => {
            let Some(s) = &v.secret else { return };
            let sp = p.c("secret");
            if s.secret_name.as_deref().unwrap_or("").is_empty() {
                e.push(required(&sp.c("secretName"), ""));
            }
            file_mode(e, s.default_mode, &sp.c("defaultMode"));
            for (i, kp) in s.items.iter().flatten().enumerate() {
                key_to_path(e, kp, &sp.c("items").i(i));
            }
        }
        "nfs" => {
            let Some(n) = &v.nfs else { return };
            let np = p.c("nfs");
            if n.server.is_empty() {
                e.push(required(&np.c("server"), ""));
            }
            if n.path.is_empty() {
                e.push(required(&np.c("path"), ""));
            }
            if !n.path.starts_with('/') {
                e.push(invalid(&np.c("path"), &n.path, "must be an absolute path"));
            }
        }
        "persistentVolumeClaim"
            if v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name.is_empty()) =>
        {
            e.push(required(&p.c("persistentVolumeClaim").c("claimName"), ""));
        }
        "downwarAPI" => {
            let Some(d) = &v.downward_api else { return };
            let dp = p.c("downwardAPI");
            file_mode(e, d.default_mode, &dp.c("defaultMode"));
            for f in d.items.iter().flatten() {
                downward_api_file(e, f, &dp);
            }
        }
        "configMap" => {
            let Some(c) = &v.config_map else { return };
            let mp = p.c("configMap");
            if c.name.as_deref().unwrap_or("").is_empty() {
                e.push(required(&mp.c("name"), ""));
            }
            file_mode(e, c.default_mode, &mp.c("defaultMode"));
            for (i, kp) in c.items.iter().flatten().enumerate() {
                key_to_path(e, kp, &mp.c("items").i(i));
            }
        }
        "projected" => {
            if let Some(pr) = &v.projected {
                projected(e, pr, &p.c("projected"));
            }
        }
        "image" => {
            let Some(img) = &v.image else { return };
            let ip = p.c("image");
            if ctx.is_pod && img.reference.as_deref().unwrap_or("").is_empty() {
                e.push(required(&ip.c("reference"), ""));
            }
            pull_policy(e, img.pull_policy.as_deref(), &ip.c("pullPolicy"));
        }
        _ => {}
    }
}

fn file_mode(e: &mut Errs, mode: Option<i32>, p: &P) {
    if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
        e.push(invalid_int(p, m.into(), FILE_MODE_MSG));
    }
}

/// Kubernetes' `validatePathNoBacksteps`.
fn no_backsteps(e: &mut Errs, path: &str, p: &P) {
    if path.split('/').any(|part| part == "..") {
        e.push(invalid(p, path, "must not contain '..'"));
    }
}

/// Kubernetes' `validateLocalDescendingPath`.
fn local_descending_path(e: &mut Errs, path: &str, p: &P) -> bool {
    let before = e.len();
    if path.starts_with('/') {
        e.push(invalid(p, path, "must be a relative path"));
    }
    no_backsteps(e, path, p);
    e.len() != before
}

/// Kubernetes' `ValidateLocalNonReservedPath`.
fn local_non_reserved_path(e: &mut Errs, path: &str, p: &P) {
    let failed = local_descending_path(e, path, p);
    let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if !failed && base.starts_with("..") {
        e.push(invalid(p, path, "must not start with '..'"));
    }
}

fn key_to_path(e: &mut Errs, kp: &KeyToPath, p: &P) {
    if kp.key.is_empty() {
        e.push(required(&p.c("key"), ""));
    }
    if kp.path.is_empty() {
        e.push(required(&p.c("path"), ""));
    }
    local_non_reserved_path(e, &kp.path, &p.c("path"));
    file_mode(e, kp.mode, &p.c("mode"));
}

const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn downward_api_file(e: &mut Errs, f: &DownwardApiVolumeFile, p: &P) {
    if f.path.is_empty() {
        e.push(required(&p.c("path"), ""));
    }
    local_non_reserved_path(e, &f.path, &p.c("path"));
    match (&f.field_ref, &f.resource_field_ref) {
        (Some(fr), rfr) => {
            object_field_selector(e, fr, VOLUME_FIELD_PATHS, &p.c("fieldRef"));
            if rfr.is_some() {
                e.push(invalid(
                    p,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                ));
            }
        }
        (None, Some(rfr)) => resource_field_selector(e, rfr, true, &p.c("resourceFieldRef")),
        (None, None) => e.push(required(
            p,
            "one of fieldRef and resourceFieldRef is required",
        )),
    }
    file_mode(e, f.mode, &p.c("mode"));
}

/// Kubernetes' `SplitMaybeSubscriptedPath`: `metadata.labels['app']` → (`metadata.labels`, `app`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let s = path.strip_suffix("']")?;
    let (head, sub) = s.split_once("['")?;
    (!head.is_empty()).then_some((head, sub))
}

fn object_field_selector(e: &mut Errs, fs: &ObjectFieldSelector, allowed: &[&str], p: &P) {
    let version = fs.api_version.as_deref().unwrap_or("v1");
    if version.is_empty() {
        e.push(required(&p.c("apiVersion"), ""));
        return;
    }
    if fs.field_path.is_empty() {
        e.push(required(&p.c("fieldPath"), ""));
        return;
    }
    let conversion_error = if version != "v1" {
        Some(format!("unsupported pod version: {version}"))
    } else if let Some((head, _)) = split_subscript(&fs.field_path) {
        (!matches!(head, "metadata.annotations" | "metadata.labels"))
            .then(|| format!("field label does not support subscript: {}", fs.field_path))
    } else {
        let known = [
            "metadata.annotations",
            "metadata.labels",
            "metadata.name",
            "metadata.namespace",
            "metadata.uid",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.serviceAccountName",
            "spec.schedulerName",
            "status.phase",
            "status.hostIP",
            "status.hostIPs",
            "status.podIP",
            "status.podIPs",
            "spec.host",
        ];
        (!known.contains(&fs.field_path.as_str()))
            .then(|| format!("field label not supported: {}", fs.field_path))
    };
    if let Some(err) = conversion_error {
        e.push(invalid(
            &p.c("fieldPath"),
            &fs.field_path,
            &format!("error converting fieldPath: {err}"),
        ));
        return;
    }
    if let Some((head, sub)) = split_subscript(&fs.field_path) {
        let key = if head == "metadata.annotations" {
            sub.to_ascii_lowercase()
        } else {
            sub.to_string()
        };
        for m in is_qualified_name(&key) {
            e.push(invalid(p, &key, &m));
        }
        return;
    }
    let path = if fs.field_path == "spec.host" {
        "spec.nodeName"
    } else {
        fs.field_path.as_str()
    };
    if !allowed.contains(&path) {
        e.push(not_supported(&p.c("fieldPath"), path, allowed));
    }
}

fn resource_field_selector(e: &mut Errs, rs: &ResourceFieldSelector, volume: bool, p: &P) {
    if volume && rs.container_name.as_deref().unwrap_or("").is_empty() {
        e.push(required(&p.c("containerName"), ""));
    } else if rs.resource.is_empty() {
        e.push(required(&p.c("resource"), ""));
    } else if !RESOURCE_FIELD_PATHS.contains(&rs.resource.as_str())
        && !rs.resource.starts_with("requests.hugepages-")
        && !rs.resource.starts_with("limits.hugepages-")
    {
        e.push(not_supported(
            &p.c("resource"),
            &rs.resource,
            RESOURCE_FIELD_PATHS,
        ));
    }
}

fn projected(e: &mut Errs, pr: &ProjectedVolumeSource, p: &P) {
    file_mode(e, pr.default_mode, &p.c("defaultMode"));
    let mut paths = BTreeSet::new();
    let mut note_path = |e: &mut Errs, path: &str, owner: &str| {
        if !path.is_empty() && !paths.insert(path.to_string()) {
            e.push(invalid(p, owner, "conflicting duplicate paths"));
        }
    };
    for (i, src) in pr.sources.iter().flatten().enumerate() {
        let sp = p.c("sources").i(i);
        let mut n = 0;
        if let Some(s) = &src.secret {
            n += 1;
            let name = s.name.as_deref().unwrap_or("");
            if name.is_empty() {
                e.push(required(&sp.c("secret").c("name"), ""));
            }
            for (j, kp) in s.items.iter().flatten().enumerate() {
                key_to_path(e, kp, &sp.c("secret").c("items").i(j));
                note_path(e, &kp.path, name);
            }
        }
        if let Some(c) = &src.config_map {
            n += 1;
            let name = c.name.as_deref().unwrap_or("");
            if name.is_empty() {
                e.push(required(&sp.c("configMap").c("name"), ""));
            }
            for (j, kp) in c.items.iter().flatten().enumerate() {
                key_to_path(e, kp, &sp.c("configMap").c("items").i(j));
                note_path(e, &kp.path, name);
            }
        }
        if let Some(d) = &src.downward_api {
            n += 1;
            for f in d.items.iter().flatten() {
                downward_api_file(e, f, &sp.c("downwardAPI"));
                note_path(e, &f.path, &f.path);
            }
        }
        if let Some(t) = &src.service_account_token {
            n += 1;
            let tp = sp.c("serviceAccountToken");
            if let Some(secs) = t.expiration_seconds {
                if secs < 600 {
                    e.push(invalid_int(
                        &tp.c("expirationSeconds"),
                        secs,
                        "may not specify a duration less than 10 minutes",
                    ));
                }
                if secs > 1 << 32 {
                    e.push(invalid_int(
                        &tp.c("expirationSeconds"),
                        secs,
                        "may not specify a duration larger than 2^32 seconds",
                    ));
                }
            }
            if t.path.is_empty() {
                e.push(required(&p.c("path"), ""));
            } else {
                local_non_reserved_path(e, &t.path, &p.c("path"));
            }
        }
        n += usize::from(src.cluster_trust_bundle.is_some());
        n += usize::from(src.pod_certificate.is_some());
        if n > 1 {
            e.push(forbidden(
                &sp,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
}

fn container_common(e: &mut Errs, c: &Container, vols: &BTreeSet<String>, p: &P) {
    if c.name.is_empty() {
        e.push(required(&p.c("name"), ""));
    } else {
        for m in is_dns1123_label(&c.name) {
            e.push(invalid(&p.c("name"), &c.name, &m));
        }
    }
    if c.image.as_deref().unwrap_or("").is_empty() {
        e.push(required(&p.c("image"), ""));
    }
    if let Some(tmp) = c.termination_message_policy.as_deref() {
        match tmp {
            "File" | "FallbackToLogsOnError" => {}
            "" => e.push(required(&p.c("terminationMessagePolicy"), "")),
            other => e.push(not_supported(
                &p.c("terminationMessagePolicy"),
                other,
                &["File", "FallbackToLogsOnError"],
            )),
        }
    }
    container_ports(e, c.ports.as_deref().unwrap_or(&[]), &p.c("ports"));
    env(e, c.env.as_deref().unwrap_or(&[]), &p.c("env"));
    env_from(e, c.env_from.as_deref().unwrap_or(&[]), &p.c("envFrom"));
    volume_mounts(
        e,
        c.volume_mounts.as_deref().unwrap_or(&[]),
        vols,
        &p.c("volumeMounts"),
    );
    pull_policy(e, c.image_pull_policy.as_deref(), &p.c("imagePullPolicy"));
    if let Some(r) = &c.resources {
        resources(e, r, &p.c("resources"));
    }
}

fn pull_policy(e: &mut Errs, policy: Option<&str>, p: &P) {
    match policy {
        None | Some("Always" | "IfNotPresent" | "Never") => {}
        Some("") => e.push(required(p, "")),
        Some(other) => e.push(not_supported(
            p,
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
}

fn protocol(e: &mut Errs, proto: Option<&str>, p: &P) {
    match proto {
        None | Some("TCP" | "UDP" | "SCTP") => {}
        Some("") => e.push(required(p, "")),
        Some(other) => e.push(not_supported(p, other, &["SCTP", "TCP", "UDP"])),
    }
}

fn container_ports(e: &mut Errs, ports: &[ContainerPort], p: &P) {
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let ip = p.i(i);
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    e.push(invalid(&ip.c("name"), name, &m));
                }
            } else if !names.insert(name) {
                e.push(duplicate(&ip.c("name"), name));
            }
        }
        if port.container_port == 0 {
            e.push(required(&ip.c("containerPort"), ""));
        } else {
            for m in is_valid_port_num(port.container_port.into()) {
                e.push(invalid_int(
                    &ip.c("containerPort"),
                    port.container_port.into(),
                    &m,
                ));
            }
        }
        if let Some(hp) = port.host_port.filter(|hp| *hp != 0) {
            for m in is_valid_port_num(hp.into()) {
                e.push(invalid_int(&ip.c("hostPort"), hp.into(), &m));
            }
        }
        protocol(e, port.protocol.as_deref(), &ip.c("protocol"));
    }
}

/// Kubernetes' `checkHostPortConflicts`: one host port per protocol and host IP.
fn host_port_conflicts(e: &mut Errs, containers: &[Container], p: &P) {
    let mut seen = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        for (j, port) in c.ports.iter().flatten().enumerate() {
            let Some(hp) = port.host_port.filter(|hp| *hp != 0) else {
                continue;
            };
            let key = format!(
                "{}/{}/{hp}",
                port.protocol.as_deref().unwrap_or("TCP"),
                port.host_ip.as_deref().unwrap_or("")
            );
            if !seen.insert(key.clone()) {
                e.push(duplicate(&p.i(i).c("ports").i(j).c("hostPort"), &key));
            }
        }
    }
}

fn env(e: &mut Errs, vars: &[EnvVar], p: &P) {
    for (i, ev) in vars.iter().enumerate() {
        let ip = p.i(i);
        if ev.name.is_empty() {
            e.push(required(&ip.c("name"), ""));
        } else {
            for m in is_env_var_name(&ev.name) {
                e.push(invalid(&ip.c("name"), &ev.name, &m));
            }
        }
        let Some(from) = &ev.value_from else { continue };
        let vp = ip.c("valueFrom");
        let mut n = 0;
        if let Some(fr) = &from.field_ref {
            n += 1;
            object_field_selector(e, fr, ENV_FIELD_PATHS, &vp.c("fieldRef"));
        }
        if let Some(rfr) = &from.resource_field_ref {
            n += 1;
            resource_field_selector(e, rfr, false, &vp.c("resourceFieldRef"));
        }
        if let Some(k) = &from.config_map_key_ref {
            n += 1;
            key_selector(e, k, &vp.c("configMapKeyRef"));
        }
        if let Some(k) = &from.secret_key_ref {
            n += 1;
            key_selector(e, k, &vp.c("secretKeyRef"));
        }
        n += usize::from(from.file_key_ref.is_some());
        if n == 0 {
            e.push(invalid(
                &vp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or \
                 `secretKeyRef`",
            ));
        } else if !ev.value.as_deref().unwrap_or("").is_empty() {
            e.push(invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if n > 1 {
            e.push(invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn key_selector(e: &mut Errs, k: &KeySelector, p: &P) {
    let name = k.name.as_deref().unwrap_or("");
    for m in is_dns1123_subdomain(name) {
        e.push(invalid(&p.c("name"), name, &m));
    }
    if k.key.is_empty() {
        e.push(required(&p.c("key"), ""));
    } else {
        for m in is_config_map_key(&k.key) {
            e.push(invalid(&p.c("key"), &k.key, &m));
        }
    }
}

fn env_from(e: &mut Errs, sources: &[EnvFromSource], p: &P) {
    for (i, ef) in sources.iter().enumerate() {
        let ip = p.i(i);
        let prefix = ef.prefix.as_deref().unwrap_or("");
        if !prefix.is_empty() {
            for m in is_env_var_name(prefix) {
                e.push(invalid(&ip.c("prefix"), prefix, &m));
            }
        }
        let mut n = 0;
        for (field, r) in [
            ("configMapRef", &ef.config_map_ref),
            ("secretRef", &ef.secret_ref),
        ] {
            let Some(r) = r else { continue };
            n += 1;
            let name = r.name.as_deref().unwrap_or("");
            if name.is_empty() {
                e.push(required(&ip.c(field).c("name"), ""));
            } else {
                for m in NameRule::Dns1123Subdomain.check(name, true) {
                    e.push(invalid(&ip.c(field).c("name"), name, &m));
                }
            }
        }
        if n == 0 {
            e.push(invalid(
                p,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if n > 1 {
            e.push(invalid(
                p,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn volume_mounts(e: &mut Errs, mounts: &[VolumeMount], vols: &BTreeSet<String>, p: &P) {
    let mut paths = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let ip = p.i(i);
        if m.name.is_empty() {
            e.push(required(&ip.c("name"), ""));
        }
        if !vols.contains(&m.name) {
            e.push(not_found(&ip.c("name"), &m.name));
        }
        if m.mount_path.is_empty() {
            e.push(required(&ip.c("mountPath"), ""));
        }
        if !paths.insert(m.mount_path.as_str()) {
            e.push(invalid(&ip.c("mountPath"), &m.mount_path, "must be unique"));
        }
        // Kubernetes reports subPath problems at the list's path, not the item's.
        let sub_path = m.sub_path.as_deref().unwrap_or("");
        if !sub_path.is_empty() {
            local_descending_path(e, sub_path, &p.c("subPath"));
        }
        let expr = m.sub_path_expr.as_deref().unwrap_or("");
        if !expr.is_empty() {
            if !sub_path.is_empty() {
                e.push(invalid(
                    &ip.c("subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            local_descending_path(e, expr, &p.c("subPathExpr"));
        }
    }
}

/// Kubernetes' `IsOvercommitAllowed`: false for huge pages and extended resources
/// (`example.com/gpu`), whose requests must equal their limits.
fn overcommit_allowed(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    let extended = !native
        && !name.starts_with("requests.")
        && is_qualified_name(&format!("requests.{name}")).is_empty();
    !name.starts_with("hugepages-") && !extended
}

fn resources(e: &mut Errs, r: &ResourceRequirements, p: &P) {
    let lp = p.c("limits");
    let rp = p.c("requests");
    for (name, q) in r.limits.iter().flatten() {
        if q.signum() < 0 {
            e.push(invalid(&lp.k(name), &q.to_string(), NEGATIVE_MSG));
        }
    }
    let limits = r.limits.as_ref();
    for (name, q) in r.requests.iter().flatten() {
        if q.signum() < 0 {
            e.push(invalid(&rp.k(name), &q.to_string(), NEGATIVE_MSG));
        }
        match limits.and_then(|l| l.get(name)) {
            Some(limit) if q != limit && !overcommit_allowed(name) => e.push(invalid(
                &rp,
                &q.to_string(),
                &format!("must be equal to {name} limit of {limit}"),
            )),
            Some(limit) if q > limit => e.push(invalid(
                &rp,
                &q.to_string(),
                &format!("must be less than or equal to {name} limit of {limit}"),
            )),
            Some(_) => {}
            None if !overcommit_allowed(name) => e.push(required(
                &lp,
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
    }
}

fn probes(e: &mut Errs, c: &Container, grace: Option<i64>, p: &P) {
    for (field, probe_opt) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        let Some(pr) = probe_opt else { continue };
        let pp = p.c(field);
        probe(e, pr, grace, &pp);
        if field == "readinessProbe" {
            if let Some(t) = pr.termination_grace_period_seconds {
                e.push(invalid_int(
                    &pp.c("terminationGracePeriodSeconds"),
                    t,
                    "must not be set for readinessProbes",
                ));
            }
        } else if let Some(s) = pr.success_threshold.filter(|s| *s != 1) {
            e.push(invalid_int(
                &pp.c("successThreshold"),
                s.into(),
                "must be 1",
            ));
        }
    }
}

fn probe(e: &mut Errs, pr: &Probe, grace: Option<i64>, p: &P) {
    let handlers = Handlers {
        exec: pr
            .exec
            .as_ref()
            .map(|x| x.command.as_deref().unwrap_or(&[]).is_empty()),
        http_get: pr.http_get.as_ref(),
        tcp_port: pr.tcp_socket.as_ref().map(|t| &t.port),
        grpc_port: pr.grpc.as_ref().map(|g| g.port),
        sleep: None,
    };
    handler(e, &handlers, grace, p);
    for (field, v) in [
        ("initialDelaySeconds", pr.initial_delay_seconds),
        ("timeoutSeconds", pr.timeout_seconds),
        ("periodSeconds", pr.period_seconds),
        ("successThreshold", pr.success_threshold),
        ("failureThreshold", pr.failure_threshold),
    ] {
        non_negative(e, v.map(i64::from), &p.c(field));
    }
    if let Some(t) = pr.termination_grace_period_seconds.filter(|t| *t <= 0) {
        e.push(invalid_int(
            &p.c("terminationGracePeriodSeconds"),
            t,
            "must be greater than 0",
        ));
    }
}

/// The handler fields of a probe or lifecycle hook; `exec` holds whether its command is empty.
struct Handlers<'a> {
    exec: Option<bool>,
    http_get: Option<&'a HttpGetAction>,
    tcp_port: Option<&'a IntOrString>,
    grpc_port: Option<i32>,
    sleep: Option<i64>,
}

fn handler(e: &mut Errs, h: &Handlers, grace: Option<i64>, p: &P) {
    let mut n = 0;
    let mut one = |e: &mut Errs, field: &str| -> bool {
        n += 1;
        if n > 1 {
            e.push(forbidden(
                &p.c(field),
                "may not specify more than 1 handler type",
            ));
            false
        } else {
            true
        }
    };
    if let Some(empty) = h.exec {
        if one(e, "exec") && empty {
            e.push(required(&p.c("exec").c("command"), ""));
        }
    }
    if let Some(http) = h.http_get {
        if one(e, "httpGet") {
            let hp = p.c("httpGet");
            if http.path.as_deref() == Some("") {
                e.push(required(&hp.c("path"), ""));
            }
            port_num_or_name(e, &http.port, &hp.c("port"));
            if let Some(s) = http
                .scheme
                .as_deref()
                .filter(|s| !matches!(*s, "HTTP" | "HTTPS"))
            {
                e.push(not_supported(&hp.c("scheme"), s, &["HTTP", "HTTPS"]));
            }
            for hdr in http.http_headers.iter().flatten() {
                for m in is_http_header_name(&hdr.name) {
                    e.push(invalid(&hp.c("httpHeaders"), &hdr.name, &m));
                }
            }
        }
    }
    if let Some(port) = h.tcp_port {
        if one(e, "tcpSocket") {
            port_num_or_name(e, port, &p.c("tcpSocket").c("port"));
        }
    }
    if let Some(port) = h.grpc_port {
        if one(e, "grpc") {
            port_num_or_name(e, &IntOrString::Int(port), &p.c("grpc").c("port"));
        }
    }
    if let Some(secs) = h.sleep {
        if one(e, "sleep") {
            if let Some(g) = grace.filter(|g| secs < 0 || secs > *g) {
                e.push(invalid_int(
                    &p.c("sleep"),
                    secs,
                    &format!(
                        "must be non-negative and less than terminationGracePeriodSeconds ({g})"
                    ),
                ));
            }
        }
    }
    if n == 0 {
        e.push(required(p, "must specify a handler type"));
    }
}

fn lifecycle(e: &mut Errs, l: &Lifecycle, grace: Option<i64>, p: &P) {
    for (field, hook) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
        let Some(hook): &Option<LifecycleHandler> = hook else {
            continue;
        };
        let handlers = Handlers {
            exec: hook
                .exec
                .as_ref()
                .map(|x| x.command.as_deref().unwrap_or(&[]).is_empty()),
            http_get: hook.http_get.as_ref(),
            tcp_port: hook.tcp_socket.as_ref().map(|t| &t.port),
            grpc_port: None,
            sleep: hook.sleep.as_ref().map(|s| s.seconds),
        };
        handler(e, &handlers, grace, &p.c(field));
    }
}

/// Kubernetes' `ValidatePortNumOrName`: 1 to 65535, or an IANA service name.
fn port_num_or_name(e: &mut Errs, port: &IntOrString, p: &P) {
    match port {
        IntOrString::Int(n) => {
            for m in is_valid_port_num((*n).into()) {
                e.push(invalid_int(p, (*n).into(), &m));
            }
        }
        IntOrString::String(s) => {
            for m in is_valid_port_name(s) {
                e.push(invalid(p, s, &m));
            }
        }
    }
}

fn toleration(e: &mut Errs, t: &Toleration, p: &P) {
    let key = t.key.as_deref().unwrap_or("");
    let op = t.operator.as_deref().unwrap_or("");
    let effect = t.effect.as_deref().unwrap_or("");
    let value = t.value.as_deref().unwrap_or("");
    if !key.is_empty() {
        label_key(e, key, &p.c("key"));
    }
    if key.is_empty() && op != "Exists" {
        e.push(invalid(
            &p.c("operator"),
            op,
            "operator must be Exists when `key` is empty, which means \"match all values and all \
             keys\"",
        ));
    }
    if t.toleration_seconds.is_some() && effect != "NoExecute" {
        e.push(invalid(
            &p.c("effect"),
            effect,
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
    match op {
        "Equal" | "" => {
            let msgs = is_valid_label_value(value);
            if !msgs.is_empty() {
                e.push(invalid(&p.c("operator"), value, &msgs.join(";")));
            }
        }
        "Exists" => {
            if !value.is_empty() {
                e.push(invalid(
                    &p.c("operator"),
                    value,
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        other => e.push(not_supported(&p.c("operator"), other, &["Equal", "Exists"])),
    }
    if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        e.push(not_supported(
            &p.c("effect"),
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads (apps/v1, batch/v1)
// ---------------------------------------------------------------------------------------------

/// What a workload's selector selects, as `LabelSelectorAsSelector` sees it.
enum Selects<'a> {
    /// No selector: matches nothing.
    Nothing,
    /// An empty selector: matches everything.
    Everything,
    /// A valid, non-empty selector.
    Some(&'a LabelSelector),
    /// A selector with errors: Kubernetes cannot convert it.
    Invalid,
}

/// Validates `spec.selector` and says what it selects.
fn workload_selector<'a>(
    e: &mut Errs,
    sel: Option<&'a LabelSelector>,
    p: &P,
    require: bool,
    empty_msg: Option<&str>,
) -> Selects<'a> {
    let Some(sel) = sel else {
        if require {
            e.push(required(&p.c("selector"), ""));
        }
        return Selects::Nothing;
    };
    let mut se = Errs::new();
    label_selector(&mut se, sel, &p.c("selector"));
    let failed = !se.is_empty();
    e.extend(se);
    let empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty());
    if let (true, Some(msg)) = (empty, empty_msg) {
        e.push(invalid_raw(&p.c("selector"), go_selector(sel), msg));
    }
    match (failed, empty) {
        (true, _) => Selects::Invalid,
        (false, true) => Selects::Everything,
        (false, false) => Selects::Some(sel),
    }
}

/// `` spec.template.metadata.labels: Invalid value: map[...]: `selector` does not match
/// template `labels` ``.
fn template_labels_match(e: &mut Errs, selects: &Selects, t: &PodTemplateSpec, p: &P) {
    let tl = t.metadata.as_ref().and_then(|m| m.labels.as_ref());
    let matches = match selects {
        Selects::Nothing => false,
        Selects::Everything | Selects::Invalid => true,
        Selects::Some(sel) => sel.matches(tl),
    };
    if !matches {
        e.push(invalid_raw(
            &p.c("template").c("metadata").c("labels"),
            go_map(tl),
            "`selector` does not match template `labels`",
        ));
    }
}

/// `spec.template.spec.restartPolicy` must be `Always` (or unset, which defaults to it).
fn restart_always(e: &mut Errs, t: &PodTemplateSpec, p: &P) {
    let rp = t.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
    if let Some(rp) = rp.filter(|rp| *rp != "Always") {
        e.push(not_supported(
            &p.c("template").c("spec").c("restartPolicy"),
            rp,
            &["Always"],
        ));
    }
}

fn no_active_deadline(e: &mut Errs, t: &PodTemplateSpec, p: &P, msg: &str) {
    if let Some(ads) = t.spec.as_ref().and_then(|s| s.active_deadline_seconds) {
        e.push(invalid_int(
            &p.c("template").c("spec").c("activeDeadlineSeconds"),
            ads,
            msg,
        ));
    }
}

/// `IntOrString` as its `String()` method prints it: unquoted.
fn ios(v: &IntOrString) -> String {
    v.to_string()
}

/// Kubernetes' `getIntOrPercentValue`.
fn int_or_percent_value(v: &IntOrString) -> i64 {
    match v {
        IntOrString::Int(i) => (*i).into(),
        IntOrString::String(s) => {
            let digits = s.strip_suffix('%').unwrap_or(s);
            digits.parse().unwrap_or(0)
        }
    }
}

fn positive_int_or_percent(e: &mut Errs, v: &IntOrString, p: &P) {
    match v {
        IntOrString::String(s) => {
            for m in is_valid_percent(s) {
                e.push(invalid_raw(p, ios(v), &m));
            }
        }
        IntOrString::Int(i) => non_negative(e, Some((*i).into()), p),
    }
}

fn not_more_than_100_percent(e: &mut Errs, v: &IntOrString, p: &P) {
    if let IntOrString::String(s) = v {
        if is_valid_percent(s).is_empty() && int_or_percent_value(v) > 100 {
            e.push(invalid_raw(p, ios(v), "must not be greater than 100%"));
        }
    }
}

/// A ReplicaSet: replicas, selector (required, non-empty, matching the template), the pod
/// template with `restartPolicy: Always`.
pub fn validate_replica_set(rs: &ReplicaSet) -> Vec<FieldError> {
    let mut e = validate_object_meta(&rs.metadata, NameRule::Dns1123Subdomain, true);
    let spec = rs.spec.clone().unwrap_or_default();
    let p = P::new("spec");
    non_negative(&mut e, spec.replicas.map(i64::from), &p.c("replicas"));
    non_negative(
        &mut e,
        spec.min_ready_seconds.map(i64::from),
        &p.c("minReadySeconds"),
    );
    let sel = workload_selector(
        &mut e,
        spec.selector.as_ref(),
        &p,
        true,
        Some("empty selector is invalid for deployment"),
    );
    invalid_selector_error(
        &mut e,
        &sel,
        spec.selector.as_ref(),
        &p,
        "invalid label selector",
    );
    replica_set_template(&mut e, &sel, spec.template.as_ref(), &p);
    e
}

/// Kubernetes' `ValidatePodTemplateSpecForReplicaSet`, shared by ReplicaSet and Deployment.
fn replica_set_template(e: &mut Errs, sel: &Selects, t: Option<&PodTemplateSpec>, p: &P) {
    if let Selects::Invalid = sel {
        // The selector could not be converted: Kubernetes reports that and skips the template.
        return;
    }
    let default = PodTemplateSpec::default();
    let t = t.unwrap_or(&default);
    template_labels_match(e, sel, t, p);
    pod_template(e, t, &p.c("template"), &[]);
    restart_always(e, t, p);
    no_active_deadline(
        e,
        t,
        p,
        "activeDeadlineSeconds in ReplicaSet is not Supported",
    );
}

/// The `invalid label selector` error Deployments and ReplicaSets add when the selector has
/// errors.
fn invalid_selector_error(
    e: &mut Errs,
    sel: &Selects,
    spec_sel: Option<&LabelSelector>,
    p: &P,
    detail: &str,
) {
    if let (Selects::Invalid, Some(s)) = (sel, spec_sel) {
        e.push(invalid_raw(&p.c("selector"), go_selector(s), detail));
    }
}

/// A Deployment: as a ReplicaSet, plus the strategy (`Recreate` without `rollingUpdate`;
/// `maxUnavailable` and `maxSurge` not both 0) and the progress deadline.
pub fn validate_deployment(d: &Deployment) -> Vec<FieldError> {
    let mut e = validate_object_meta(&d.metadata, NameRule::Dns1123Subdomain, true);
    let spec = d.spec.clone().unwrap_or_default();
    let p = P::new("spec");
    non_negative(&mut e, spec.replicas.map(i64::from), &p.c("replicas"));
    let sel = workload_selector(
        &mut e,
        spec.selector.as_ref(),
        &p,
        true,
        Some("empty selector is invalid for deployment"),
    );
    invalid_selector_error(
        &mut e,
        &sel,
        spec.selector.as_ref(),
        &p,
        "invalid label selector",
    );
    replica_set_template(&mut e, &sel, spec.template.as_ref(), &p);
    if let Some(st) = &spec.strategy {
        deployment_strategy(&mut e, st, &p.c("strategy"));
    }
    non_negative(
        &mut e,
        spec.min_ready_seconds.map(i64::from),
        &p.c("minReadySeconds"),
    );
    non_negative(
        &mut e,
        spec.revision_history_limit.map(i64::from),
        &p.c("revisionHistoryLimit"),
    );
    if let Some(pds) = spec.progress_deadline_seconds {
        non_negative(&mut e, Some(pds.into()), &p.c("progressDeadlineSeconds"));
        if pds <= spec.min_ready_seconds.unwrap_or(0) {
            e.push(invalid_int(
                &p.c("progressDeadlineSeconds"),
                pds.into(),
                "must be greater than minReadySeconds",
            ));
        }
    }
    e
}

fn deployment_strategy(e: &mut Errs, st: &DeploymentStrategy, p: &P) {
    match st.type_.as_deref() {
        Some("Recreate") => {
            if st.rolling_update.is_some() {
                e.push(forbidden(
                    &p.c("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        // Unset defaults to RollingUpdate.
        Some("RollingUpdate") | None => {
            if let Some(ru) = &st.rolling_update {
                rolling_update_deployment(e, ru, &p.c("rollingUpdate"));
            }
        }
        Some(other) => e.push(not_supported(
            &p.c("type"),
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
}

fn rolling_update_deployment(e: &mut Errs, ru: &RollingUpdate, p: &P) {
    if let Some(mu) = &ru.max_unavailable {
        positive_int_or_percent(e, mu, &p.c("maxUnavailable"));
    }
    if let Some(ms) = &ru.max_surge {
        positive_int_or_percent(e, ms, &p.c("maxSurge"));
    }
    if let (Some(mu), Some(ms)) = (&ru.max_unavailable, &ru.max_surge) {
        if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
            e.push(invalid_raw(
                &p.c("maxUnavailable"),
                ios(mu),
                "may not be 0 when `maxSurge` is 0",
            ));
        }
    }
    if let Some(mu) = &ru.max_unavailable {
        not_more_than_100_percent(e, mu, &p.c("maxUnavailable"));
    }
}

/// A DaemonSet: the selector must match the template (a missing one matches nothing), the
/// template's `restartPolicy` is `Always`, and the update strategy is valid.
pub fn validate_daemon_set(ds: &DaemonSet) -> Vec<FieldError> {
    let mut e = validate_object_meta(&ds.metadata, NameRule::Dns1123Subdomain, true);
    let spec = ds.spec.clone().unwrap_or_default();
    let p = P::new("spec");
    let t = spec.template.clone().unwrap_or_default();
    // Kubernetes does not require the selector here, but a missing one matches no labels.
    let sel = workload_selector(&mut e, spec.selector.as_ref(), &p, false, None);
    let empty = matches!(sel, Selects::Everything);
    template_labels_match(&mut e, &sel, &t, &p);
    if let (true, Some(s)) = (empty, spec.selector.as_ref()) {
        e.push(invalid_raw(
            &p.c("selector"),
            go_selector(s),
            "empty selector is invalid for daemonset",
        ));
    }
    pod_template(&mut e, &t, &p.c("template"), &[]);
    restart_always(&mut e, &t, &p);
    no_active_deadline(
        &mut e,
        &t,
        &p,
        "activeDeadlineSeconds in DaemonSet is not Supported",
    );
    if let Some(us) = &spec.update_strategy {
        daemon_set_update_strategy(&mut e, us, &p.c("updateStrategy"));
    }
    non_negative(
        &mut e,
        spec.min_ready_seconds.map(i64::from),
        &p.c("minReadySeconds"),
    );
    non_negative(
        &mut e,
        spec.revision_history_limit.map(i64::from),
        &p.c("revisionHistoryLimit"),
    );
    e
}

fn daemon_set_update_strategy(e: &mut Errs, st: &DaemonSetUpdateStrategy, p: &P) {
    match st.type_.as_deref() {
        Some("OnDelete") => {}
        Some("RollingUpdate") | None => {
            let Some(ru) = &st.rolling_update else { return };
            let rp = p.c("rollingUpdate");
            if let Some(mu) = &ru.max_unavailable {
                positive_int_or_percent(e, mu, &rp.c("maxUnavailable"));
                not_more_than_100_percent(e, mu, &rp.c("maxUnavailable"));
            }
            if let Some(ms) = &ru.max_surge {
                positive_int_or_percent(e, ms, &rp.c("maxSurge"));
                not_more_than_100_percent(e, ms, &rp.c("maxSurge"));
            }
            if let (Some(mu), Some(ms)) = (&ru.max_unavailable, &ru.max_surge) {
                let has_unavailable = int_or_percent_value(mu) != 0;
                let has_surge = int_or_percent_value(ms) != 0;
                if has_unavailable && has_surge {
                    e.push(invalid_raw(
                        &rp.c("maxSurge"),
                        ios(ms),
                        "may not be set when maxUnavailable is non-zero",
                    ));
                } else if !has_unavailable && !has_surge {
                    e.push(required(
                        &rp.c("maxUnavailable"),
                        "cannot be 0 when maxSurge is 0",
                    ));
                }
            }
        }
        Some(other) => e.push(not_supported(
            &p.c("type"),
            other,
            &["RollingUpdate", "OnDelete"],
        )),
    }
}

/// A StatefulSet: pod management policy, update strategy, replicas, selector (required,
/// non-empty, matching the template), `restartPolicy: Always`. The pod spec is validated
/// with the claim templates' names counting as volumes. `serviceName` is optional.
pub fn validate_stateful_set(sts: &StatefulSet) -> Vec<FieldError> {
    let mut e = validate_object_meta(&sts.metadata, NameRule::Dns1123Subdomain, true);
    let spec = sts.spec.clone().unwrap_or_default();
    let p = P::new("spec");
    if let Some(pmp) = spec.pod_management_policy.as_deref() {
        match pmp {
            "OrderedReady" | "Parallel" => {}
            "" => e.push(required(&p.c("podManagementPolicy"), "")),
            other => e.push(invalid(
                &p.c("podManagementPolicy"),
                other,
                "must be 'OrderedReady' or 'Parallel'",
            )),
        }
    }
    if let Some(us) = &spec.update_strategy {
        match us.type_.as_deref() {
            None | Some("OnDelete") => {}
            Some("RollingUpdate") => {
                let partition = us.rolling_update.as_ref().and_then(|r| r.partition);
                non_negative(
                    &mut e,
                    partition.map(i64::from),
                    &p.c("updateStrategy").c("rollingUpdate").c("partition"),
                );
            }
            Some(other) => e.push(invalid(
                &p.c("updateStrategy").c("type"),
                other,
                "must be 'RollingUpdate' or 'OnDelete'",
            )),
        }
    }
    non_negative(&mut e, spec.replicas.map(i64::from), &p.c("replicas"));
    let sel = workload_selector(
        &mut e,
        spec.selector.as_ref(),
        &p,
        true,
        Some("empty selector is invalid for statefulset"),
    );
    invalid_selector_error(&mut e, &sel, spec.selector.as_ref(), &p, "");
    let t = spec.template.clone().unwrap_or_default();
    if !matches!(sel, Selects::Invalid) {
        template_labels_match(&mut e, &sel, &t, &p);
        let claims: Vec<String> = spec
            .volume_claim_templates
            .iter()
            .flatten()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        pod_template(&mut e, &t, &p.c("template"), &claims);
    }
    restart_always(&mut e, &t, &p);
    no_active_deadline(&mut e, &t, &p, "must not be specified");
    e
}

/// A Job: counts are non-negative, the selector is checked only with `manualSelector: true`
/// (otherwise Kubernetes generates it), and the template's `restartPolicy` is `OnFailure`
/// or `Never`.
pub fn validate_job(job: &Job) -> Vec<FieldError> {
    let mut e = validate_object_meta(&job.metadata, NameRule::Dns1123Subdomain, true);
    let spec = job.spec.clone().unwrap_or_default();
    job_spec(&mut e, &spec, &P::new("spec"));
    e
}

fn job_spec(e: &mut Errs, spec: &JobSpec, p: &P) {
    for (field, v) in [
        ("parallelism", spec.parallelism),
        ("completions", spec.completions),
        ("backoffLimit", spec.backoff_limit),
    ] {
        non_negative(e, v.map(i64::from), &p.c(field));
    }
    non_negative(
        e,
        spec.active_deadline_seconds,
        &p.c("activeDeadlineSeconds"),
    );
    let t = spec.template.clone().unwrap_or_default();
    if spec.manual_selector == Some(true) {
        let sel = workload_selector(e, spec.selector.as_ref(), p, true, None);
        template_labels_match(e, &sel, &t, p);
    }
    pod_template(e, &t, &p.c("template"), &[]);
    let rp_path = p.c("template").c("spec").c("restartPolicy");
    match t.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
        None | Some("Always" | "") => {
            e.push(required(&rp_path, "valid values: \"OnFailure\", \"Never\""));
        }
        Some("OnFailure" | "Never") => {}
        Some(other) => e.push(not_supported(&rp_path, other, &["OnFailure", "Never"])),
    }
}

/// A CronJob: a name of at most 52 characters, a schedule (five fields or an `@` keyword,
/// no `TZ=`), the concurrency policy, and the job template as a Job.
pub fn validate_cron_job(cj: &CronJob) -> Vec<FieldError> {
    let mut e = validate_object_meta(&cj.metadata, NameRule::Dns1123Subdomain, true);
    let name = cj.metadata.name();
    if name.len() > 52 {
        e.push(invalid(
            &P::new("metadata").c("name"),
            name,
            "must be no more than 52 characters",
        ));
    }
    let spec = cj.spec.clone().unwrap_or_default();
    let p = P::new("spec");
    if spec.schedule.is_empty() {
        e.push(required(&p.c("schedule"), ""));
    } else if let Some(msg) = schedule_error(&spec.schedule) {
        e.push(invalid(&p.c("schedule"), &spec.schedule, &msg));
    }
    if let Some(cp) = spec.concurrency_policy.as_deref() {
        match cp {
            "Allow" | "Forbid" | "Replace" => {}
            "" => e.push(required(&p.c("concurrencyPolicy"), "")),
            other => e.push(not_supported(
                &p.c("concurrencyPolicy"),
                other,
                &["Allow", "Forbid", "Replace"],
            )),
        }
    }
    non_negative(
        &mut e,
        spec.starting_deadline_seconds,
        &p.c("startingDeadlineSeconds"),
    );
    for (field, v) in [
        (
            "successfulJobsHistoryLimit",
            spec.successful_jobs_history_limit,
        ),
        ("failedJobsHistoryLimit", spec.failed_jobs_history_limit),
    ] {
        non_negative(&mut e, v.map(i64::from), &p.c(field));
    }
    let js = spec.job_template.spec.clone().unwrap_or_default();
    job_spec(&mut e, &js, &p.c("jobTemplate").c("spec"));
    e
}

/// What is wrong with a cron schedule, as robfig/cron's standard parser (which Kubernetes
/// uses) words it; only the shape is checked, not the value ranges.
fn schedule_error(schedule: &str) -> Option<String> {
    if schedule.contains("TZ") {
        return Some("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    if let Some(desc) = schedule.strip_prefix('@') {
        let known = [
            "yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly",
        ];
        if known.contains(&desc)
            || desc
                .strip_prefix("every ")
                .is_some_and(|d| !d.trim().is_empty())
        {
            return None;
        }
        return Some(format!("unrecognized descriptor: {schedule}"));
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Some(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Core kinds
// ---------------------------------------------------------------------------------------------

/// A Namespace: a DNS-1123 label name.
pub fn validate_namespace(ns: &Namespace) -> Vec<FieldError> {
    validate_object_meta(&ns.metadata, NameRule::Dns1123Label, false)
}

/// A ConfigMap: keys in `[-._a-zA-Z0-9]+`, at most 253 characters, not in both `data` and
/// `binaryData`; at most 1 MiB of values in all.
pub fn validate_config_map(cm: &ConfigMap) -> Vec<FieldError> {
    let mut e = validate_object_meta(&cm.metadata, NameRule::Dns1123Subdomain, true);
    let empty_s = BTreeMap::new();
    let empty_b = BTreeMap::new();
    let data = cm.data.as_ref().unwrap_or(&empty_s);
    let binary = cm.binary_data.as_ref().unwrap_or(&empty_b);
    let mut total = 0;
    for (k, v) in data {
        let kp = P::new("data").k(k);
        for m in is_config_map_key(k) {
            e.push(invalid(&kp, k, &m));
        }
        if binary.contains_key(k) {
            e.push(invalid(&kp, k, "duplicate of key present in binaryData"));
        }
        total += v.len();
    }
    for (k, v) in binary {
        let kp = P::new("binaryData").k(k);
        for m in is_config_map_key(k) {
            e.push(invalid(&kp, k, &m));
        }
        if data.contains_key(k) {
            e.push(invalid(&kp, k, "duplicate of key present in data"));
        }
        total += v.0.len();
    }
    if total > MAX_DATA_SIZE {
        // Kubernetes reports this on the root path, which prints as "[]".
        e.push(FieldError::too_long("[]", MAX_DATA_SIZE));
    }
    e
}

/// A Secret: keys of `data` and `stringData` as ConfigMap keys, at most 1 MiB in all.
pub fn validate_secret(s: &Secret) -> Vec<FieldError> {
    let mut e = validate_object_meta(&s.metadata, NameRule::Dns1123Subdomain, true);
    let mut total = 0;
    for (k, v) in s.data.iter().flatten() {
        for m in is_config_map_key(k) {
            e.push(invalid(&P::new("data").k(k), k, &m));
        }
        total += v.0.len();
    }
    for (k, v) in s.string_data.iter().flatten() {
        for m in is_config_map_key(k) {
            e.push(invalid(&P::new("stringData").k(k), k, &m));
        }
        total += v.len();
    }
    if total > MAX_DATA_SIZE {
        e.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    e
}

/// A Service: a DNS-1035 name; ports (required unless headless or `ExternalName`, named when
/// more than one, unique names, numbers 1-65535, known protocols, valid target ports); the
/// type; `nodePort` only when the type allows it.
pub fn validate_service(svc: &Service) -> Vec<FieldError> {
    let mut e = validate_object_meta(&svc.metadata, NameRule::Dns1035Label, true);
    let spec = svc.spec.clone().unwrap_or_default();
    let p = P::new("spec");
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        e.push(required(&p.c("ports"), ""));
    }
    if ty == "ExternalName" {
        let ext = spec.external_name.as_deref().unwrap_or("");
        let cname = ext.strip_suffix('.').unwrap_or(ext);
        if cname.is_empty() {
            e.push(required(&p.c("externalName"), ""));
        } else {
            for m in is_dns1123_subdomain(cname) {
                e.push(invalid(&p.c("externalName"), cname, &m));
            }
        }
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        service_port(
            &mut e,
            port,
            ports.len() > 1,
            &mut names,
            &p.c("ports").i(i),
        );
    }
    labels(&mut e, spec.selector.as_ref(), &p.c("selector"));
    if let Some(sa) = spec.session_affinity.as_deref() {
        match sa {
            "ClientIP" | "None" => {}
            "" => e.push(required(&p.c("sessionAffinity"), "")),
            other => e.push(not_supported(
                &p.c("sessionAffinity"),
                other,
                &["ClientIP", "None"],
            )),
        }
    }
    match spec.type_.as_deref() {
        None | Some("ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort") => {}
        Some("") => e.push(required(&p.c("type"), "")),
        Some(other) => e.push(not_supported(
            &p.c("type"),
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    if ty == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if port.node_port.is_some_and(|n| n != 0) {
                e.push(forbidden(
                    &p.c("ports").i(i).c("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let Some(np) = port.node_port.filter(|n| *n != 0) else {
            continue;
        };
        if !node_ports.insert((port.protocol.clone().unwrap_or_else(|| "TCP".into()), np)) {
            e.push(FieldError::new(
                p.c("ports").i(i).c("nodePort").0,
                ErrorKind::Duplicate,
                Some(np.to_string()),
                "",
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let proto = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        if !seen.insert((proto.clone(), port.port)) {
            // Kubernetes prints the (protocol, port) key as a Go struct.
            let key = format!(
                "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{}, \
                 TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                go_quote(&proto),
                port.port
            );
            e.push(FieldError::new(
                p.c("ports").i(i).0,
                ErrorKind::Duplicate,
                Some(key),
                "",
            ));
        }
    }
    e
}

fn service_port(
    e: &mut Errs,
    sp: &ServicePort,
    require_name: bool,
    names: &mut BTreeSet<String>,
    p: &P,
) {
    let name = sp.name.as_deref().unwrap_or("");
    if require_name && name.is_empty() {
        e.push(required(&p.c("name"), ""));
    } else if !name.is_empty() {
        for m in is_dns1123_label(name) {
            e.push(invalid(&p.c("name"), name, &m));
        }
        if !names.insert(name.to_string()) {
            e.push(duplicate(&p.c("name"), name));
        }
    }
    for m in is_valid_port_num(sp.port.into()) {
        e.push(invalid_int(&p.c("port"), sp.port.into(), &m));
    }
    protocol(e, sp.protocol.as_deref(), &p.c("protocol"));
    if let Some(tp) = &sp.target_port {
        port_num_or_name(e, tp, &p.c("targetPort"));
    }
    if let Some(ap) = &sp.app_protocol {
        for m in is_qualified_name(ap) {
            e.push(invalid(&p.c("appProtocol"), ap, &m));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ingress
// ---------------------------------------------------------------------------------------------

/// An Ingress: rules or a default backend; hosts are DNS names (wildcards allowed), not IPs;
/// each path has a `pathType` (`Exact`, `Prefix`, `ImplementationSpecific`) and a backend with
/// a service name and exactly one of port name and number.
pub fn validate_ingress(ing: &Ingress) -> Vec<FieldError> {
    let mut e = validate_object_meta(&ing.metadata, NameRule::Dns1123Subdomain, true);
    let spec = ing.spec.clone().unwrap_or_default();
    let p = P::new("spec");
    let rules = spec.rules.as_deref().unwrap_or(&[]);
    if rules.is_empty() && spec.default_backend.is_none() {
        let rendered = if spec.rules.is_some() {
            "[]networking.IngressRule{}"
        } else {
            "[]networking.IngressRule(nil)"
        };
        e.push(invalid_raw(
            &p,
            rendered.to_string(),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = &spec.default_backend {
        ingress_backend(&mut e, b, &p.c("defaultBackend"));
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = p.c("rules").i(i);
        let host = rule.host.as_deref().unwrap_or("");
        if !host.is_empty() {
            if host.parse::<std::net::IpAddr>().is_ok() {
                e.push(invalid(
                    &rp.c("host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            let msgs = if host.contains('*') {
                is_wildcard_dns1123_subdomain(host)
            } else {
                is_dns1123_subdomain(host)
            };
            for m in msgs {
                e.push(invalid(&rp.c("host"), host, &m));
            }
        }
        let Some(http) = &rule.http else { continue };
        let hp = rp.c("http");
        if http.paths.is_empty() {
            e.push(required(&hp.c("paths"), ""));
        }
        for (j, path) in http.paths.iter().enumerate() {
            let pp = hp.c("paths").i(j);
            let value = path.path.as_deref().unwrap_or("");
            match path.path_type.as_deref() {
                None => {
                    e.push(required(&pp.c("pathType"), "pathType must be specified"));
                    continue;
                }
                Some("Exact" | "Prefix") => {
                    if !value.starts_with('/') {
                        e.push(invalid(&pp.c("path"), value, "must be an absolute path"));
                    }
                    for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                        if value.contains(seq) {
                            e.push(invalid(
                                &pp.c("path"),
                                value,
                                &format!("must not contain '{seq}'"),
                            ));
                        }
                    }
                    for suffix in ["/..", "/."] {
                        if value.ends_with(suffix) {
                            e.push(invalid(
                                &pp.c("path"),
                                value,
                                &format!("cannot end with '{suffix}'"),
                            ));
                        }
                    }
                }
                Some("ImplementationSpecific") => {
                    if !value.is_empty() && !value.starts_with('/') {
                        e.push(invalid(&pp.c("path"), value, "must be an absolute path"));
                    }
                }
                Some(other) => e.push(not_supported(
                    &pp.c("pathType"),
                    other,
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            ingress_backend(&mut e, &path.backend, &pp.c("backend"));
        }
    }
    let class = spec.ingress_class_name.as_deref().unwrap_or("");
    if !class.is_empty() {
        for m in is_dns1123_subdomain(class) {
            e.push(invalid(&p.c("ingressClassName"), class, &m));
        }
    }
    e
}

fn ingress_backend(e: &mut Errs, b: &IngressBackend, p: &P) {
    match (&b.resource, &b.service) {
        (Some(_), Some(_)) => e.push(invalid(
            p,
            "",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => {
            let rp = p.c("resource");
            if r.kind.is_empty() {
                e.push(required(&rp.c("kind"), ""));
            }
            if r.name.is_empty() {
                e.push(required(&rp.c("name"), ""));
            }
        }
        (None, Some(s)) => {
            let sp = p.c("service");
            if s.name.is_empty() {
                e.push(required(&sp.c("name"), ""));
            } else {
                for m in is_dns1035_label(&s.name) {
                    e.push(invalid(&sp.c("name"), &s.name, &m));
                }
            }
            let port = s.port.clone().unwrap_or_default();
            let name = port.name.as_deref().unwrap_or("");
            let number = port.number.unwrap_or(0);
            match (!name.is_empty(), number != 0) {
                (true, true) => e.push(invalid(p, "", "cannot set both port name & port number")),
                (true, false) => {
                    for m in is_valid_port_name(name) {
                        e.push(invalid(&sp.c("port").c("name"), name, &m));
                    }
                }
                (false, true) => {
                    for m in is_valid_port_num(number.into()) {
                        e.push(invalid_int(&sp.c("port").c("number"), number.into(), &m));
                    }
                }
                (false, false) => e.push(required(p, "port name or number is required")),
            }
        }
        (None, None) => e.push(invalid(p, "", "resource or service backend is required")),
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------------

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn policy_rules(e: &mut Errs, rules: &[PolicyRule], namespaced: bool) {
    for (i, r) in rules.iter().enumerate() {
        let p = P::new("rules").i(i);
        if r.verbs.is_empty() {
            e.push(required(
                &p.c("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = r.non_resource_urls.as_deref().unwrap_or(&[]);
        if !urls.is_empty() {
            let rendered = format!(
                "[]string{{{}}}",
                urls.iter()
                    .map(|u| go_quote(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if namespaced {
                e.push(invalid_raw(
                    &p.c("nonResourceURLs"),
                    rendered.clone(),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            let has_resources = [&r.api_groups, &r.resources, &r.resource_names]
                .iter()
                .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()));
            if has_resources {
                e.push(invalid_raw(
                    &p.c("nonResourceURLs"),
                    rendered,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if r.api_groups.as_ref().is_none_or(|v| v.is_empty()) {
            e.push(required(
                &p.c("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if r.resources.as_ref().is_none_or(|v| v.is_empty()) {
            e.push(required(
                &p.c("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

/// A Role: a path-segment name, and every rule has verbs, API groups and resources.
pub fn validate_role(r: &Role) -> Vec<FieldError> {
    let mut e = validate_object_meta(&r.metadata, NameRule::PathSegment, true);
    policy_rules(&mut e, r.rules.as_deref().unwrap_or(&[]), true);
    e
}

/// A ClusterRole: as a Role (non-resource URLs allowed); an aggregation rule needs
/// selectors.
pub fn validate_cluster_role(r: &ClusterRole) -> Vec<FieldError> {
    let mut e = validate_object_meta(&r.metadata, NameRule::PathSegment, false);
    policy_rules(&mut e, r.rules.as_deref().unwrap_or(&[]), false);
    if let Some(agg) = &r.aggregation_rule {
        let p = P::new("aggregationRule").c("clusterRoleSelectors");
        let sels = agg.cluster_role_selectors.as_deref().unwrap_or(&[]);
        if sels.is_empty() {
            e.push(required(
                &p,
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for (i, s) in sels.iter().enumerate() {
            label_selector(&mut e, s, &p.i(i));
        }
    }
    e
}

/// A RoleBinding: `roleRef` names a Role or ClusterRole; subjects are ServiceAccounts, Users
/// or Groups.
pub fn validate_role_binding(b: &RoleBinding) -> Vec<FieldError> {
    let mut e = validate_object_meta(&b.metadata, NameRule::PathSegment, true);
    role_ref(&mut e, &b.role_ref, &["Role", "ClusterRole"]);
    for (i, s) in b.subjects.iter().flatten().enumerate() {
        subject(&mut e, s, true, &P::new("subjects").i(i));
    }
    e
}

/// A ClusterRoleBinding: `roleRef` names a ClusterRole; ServiceAccount subjects need a
/// namespace.
pub fn validate_cluster_role_binding(b: &ClusterRoleBinding) -> Vec<FieldError> {
    let mut e = validate_object_meta(&b.metadata, NameRule::PathSegment, false);
    role_ref(&mut e, &b.role_ref, &["ClusterRole"]);
    for (i, s) in b.subjects.iter().flatten().enumerate() {
        subject(&mut e, s, false, &P::new("subjects").i(i));
    }
    e
}

fn role_ref(e: &mut Errs, r: &RoleRef, kinds: &[&str]) {
    let p = P::new("roleRef");
    // An empty apiGroup is what defaulting fills in.
    if !r.api_group.is_empty() && r.api_group != RBAC_GROUP {
        e.push(not_supported(&p.c("apiGroup"), &r.api_group, &[RBAC_GROUP]));
    }
    if !kinds.contains(&r.kind.as_str()) {
        e.push(not_supported(&p.c("kind"), &r.kind, kinds));
    }
    if r.name.is_empty() {
        e.push(required(&p.c("name"), ""));
    } else {
        for m in is_valid_path_segment_name(&r.name, false) {
            e.push(invalid(&p.c("name"), &r.name, &m));
        }
    }
}

fn subject(e: &mut Errs, s: &Subject, namespaced: bool, p: &P) {
    if s.name.is_empty() {
        e.push(required(&p.c("name"), ""));
    }
    let group = s.api_group.as_deref().unwrap_or("");
    match s.kind.as_str() {
        "ServiceAccount" => {
            if !s.name.is_empty() {
                for m in is_dns1123_subdomain(&s.name) {
                    e.push(invalid(&p.c("name"), &s.name, &m));
                }
            }
            if !group.is_empty() {
                e.push(not_supported(&p.c("apiGroup"), group, &[""]));
            }
            if !namespaced && s.namespace.as_deref().unwrap_or("").is_empty() {
                e.push(required(&p.c("namespace"), ""));
            }
        }
        "User" | "Group" => {
            if !group.is_empty() && group != RBAC_GROUP {
                e.push(not_supported(&p.c("apiGroup"), group, &[RBAC_GROUP]));
            }
        }
        other => e.push(not_supported(
            &p.c("kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::defaults;
    use serde_json::json;

    /// `kind` from YAML, validated as is (not defaulted), as error strings.
    fn check(kind: &str, yaml: &str) -> Vec<String> {
        let v: serde_json::Value = serde_yaml_ng::from_str(yaml).expect("test YAML parses");
        let obj = Object::from_json(kind, v).expect("test object deserializes");
        validate(&obj).iter().map(ToString::to_string).collect()
    }

    /// `kind` from YAML, defaulted then validated, as error strings.
    fn check_defaulted(kind: &str, yaml: &str) -> Vec<String> {
        let v: serde_json::Value = serde_yaml_ng::from_str(yaml).expect("test YAML parses");
        let mut obj = Object::from_json(kind, v).expect("test object deserializes");
        defaults::apply(&mut obj);
        validate(&obj).iter().map(ToString::to_string).collect()
    }

    /// One table row: a name, a kind, a manifest and the exact errors it must produce.
    type Case<'a> = (&'a str, &'a str, &'a str, &'a [&'a str]);

    /// Checks each case as written, then defaulted: defaulting may add errors that follow
    /// from copied values (limits into requests, `port` into `targetPort`) but never hides
    /// one. Cases where defaulting repairs the input have their own tests.
    fn run(cases: &[Case]) {
        for (name, kind, yaml, want) in cases {
            let got = check(kind, yaml);
            assert_eq!(got, *want, "case {name:?}");
            let got = check_defaulted(kind, yaml);
            for w in *want {
                assert!(
                    got.iter().any(|g| g == w),
                    "case {name:?} (defaulted): {w:?} not in {got:#?}"
                );
            }
            if want.is_empty() {
                assert_eq!(got, Vec::<String>::new(), "case {name:?} (defaulted)");
            }
        }
    }

    const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
        alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
        character (e.g. 'example.com', regex used for validation is \
        '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric \
        characters or '-', and must start and end with an alphanumeric character (e.g. \
        'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const DNS1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters \
        or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. \
        'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    const NAME_PART: &str = "name part must consist of alphanumeric characters, '-', '_' or \
        '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or \
        'my.name',  or '123-abc', regex used for validation is \
        '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE: &str = "a valid label must be an empty string or consist of \
        alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
        character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
        '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    const CM_KEY: &str = "a valid config key must consist of alphanumeric characters, '-', '_' \
        or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
        '[-._a-zA-Z0-9]+')";
    const ENV_NAME: &str = "a valid environment variable name must consist of alphabetic \
        characters, digits, '_', '-', or '.', and must not start with a digit (e.g. \
        'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is \
        '[-._a-zA-Z][-._a-zA-Z0-9]*')";

    /// The seed's Pod (myblog + mysql sharing a network namespace).
    const SEED_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: myblog, namespace: luffy, labels: {component: myblog}}
spec:
  containers:
  - {name: myblog, image: 192.168.136.10:5000/myblog:v1, env: [{name: MYSQL_HOST, value: "127.0.0.1"}, {name: MYSQL_PASSWD, value: "123456"}], ports: [{containerPort: 8002}]}
  - {name: mysql, image: 192.168.136.10:5000/mysql:5.7-utf8, ports: [{containerPort: 3306}], env: [{name: MYSQL_ROOT_PASSWORD, value: "123456"}, {name: MYSQL_DATABASE, value: "myblog"}]}
"#;

    #[test]
    fn seed_pod_is_valid() {
        assert_eq!(check("Pod", SEED_POD), Vec::<String>::new());
        assert_eq!(check_defaulted("Pod", SEED_POD), Vec::<String>::new());
    }

    #[test]
    fn field_error_prints_like_kubernetes() {
        let cases = [
            (FieldError::required("spec.containers[0].image", ""), "spec.containers[0].image: Required value"),
            (
                FieldError::required("spec.template.spec.restartPolicy", "valid values: \"OnFailure\", \"Never\""),
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            ),
            (FieldError::duplicate("spec.containers[1].name", "web"), "spec.containers[1].name: Duplicate value: \"web\""),
            (
                FieldError::not_supported("spec.restartPolicy", "Sometimes", &["Always", "OnFailure", "Never"]),
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ),
            (
                FieldError::not_found("spec.containers[0].volumeMounts[0].name", "data"),
                "spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
            ),
            (FieldError::forbidden("spec.x", "not allowed"), "spec.x: Forbidden: not allowed"),
            (FieldError::too_long("metadata.annotations", 262144), "metadata.annotations: Too long: must have at most 262144 bytes"),
            (FieldError::invalid_int("spec.replicas", -1, NEGATIVE_MSG), "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
            (FieldError::invalid("a", "q\"uo\\te\n", "x"), "a: Invalid value: \"q\\\"uo\\\\te\\n\": x"),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
        assert_eq!(ErrorKind::NotSupported.reason(), "FieldValueNotSupported");
    }

    #[test]
    fn invalid_message_is_the_api_servers() {
        let pod = Object::from_json("Pod", json!({"metadata": {"name": "x"}})).unwrap();
        let one = [FieldError::required("spec.containers", "")];
        assert_eq!(
            invalid_message(&pod, &one),
            "Pod \"x\" is invalid: spec.containers: Required value"
        );
        let two = [
            FieldError::required("spec.containers", ""),
            FieldError::required("spec.containers", ""),
            FieldError::invalid("metadata.name", "x", "y"),
        ];
        assert_eq!(
            invalid_message(&pod, &two),
            "Pod \"x\" is invalid: [spec.containers: Required value, metadata.name: Invalid value: \"x\": y]"
        );
        let d =
            Object::from_json("Deployment", json!({"metadata": {"generateName": "web-"}})).unwrap();
        assert_eq!(
            invalid_message(&d, &one),
            "Deployment.apps \"web-\" is invalid: spec.containers: Required value"
        );
        let errs = validate(&d);
        assert!(invalid_message(&d, &errs)
            .starts_with("Deployment.apps \"web-\" is invalid: [spec.selector: Required value, "));
    }

    /// One of the `is_*` format checks.
    type Check = fn(&str) -> Vec<String>;

    #[test]
    fn string_formats_table() {
        let ok: &[(&str, Check)] = &[
            ("a", is_dns1123_label),
            ("my-name-1", is_dns1123_label),
            ("example.com", is_dns1123_subdomain),
            ("web", is_dns1035_label),
            ("app", is_qualified_name),
            ("app.kubernetes.io/name", is_qualified_name),
            ("My_Name.1", is_qualified_name),
            ("", is_valid_label_value),
            ("v1.2_x", is_valid_label_value),
            ("http", is_valid_port_name),
            ("web-8080", is_valid_port_name),
            ("MYSQL_HOST", is_env_var_name),
            ("my.env-name", is_env_var_name),
            ("game.properties", is_config_map_key),
            (".dockerconfigjson", is_config_map_key),
        ];
        for (v, f) in ok {
            assert_eq!(f(v), Vec::<String>::new(), "{v:?} should be valid");
        }
        let bad: &[(&str, Check, &[&str])] = &[
            ("-a", is_dns1123_label, &[LABEL]),
            ("a.b", is_dns1123_label, &["must not contain dots"]),
            (&"a".repeat(64), is_dns1123_label, &["must be no more than 63 characters"]),
            ("Example.com", is_dns1123_subdomain, &[SUBDOMAIN]),
            ("a..b", is_dns1123_subdomain, &[SUBDOMAIN]),
            ("1web", is_dns1035_label, &[DNS1035]),
            ("-app", is_qualified_name, &[NAME_PART]),
            ("/app", is_qualified_name, &["prefix part must be non-empty"]),
            ("a/b/c", is_qualified_name, &["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]),
            ("x/", is_qualified_name, &["name part must be non-empty", NAME_PART]),
            ("v-", is_valid_label_value, &[LABEL_VALUE]),
            ("8080", is_valid_port_name, &["must contain at least one letter (a-z)"]),
            ("a--b", is_valid_port_name, &["must not contain consecutive hyphens"]),
            ("-ab", is_valid_port_name, &["must not begin or end with a hyphen"]),
            ("Web", is_valid_port_name, &["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]),
            ("abcdefghijklmnop", is_valid_port_name, &["must be no more than 15 characters"]),
            ("1BAD", is_env_var_name, &[ENV_NAME]),
            ("..a", is_env_var_name, &["must not start with '..'"]),
            ("a b", is_config_map_key, &[CM_KEY]),
            ("..", is_config_map_key, &["must not be '..'"]),
        ];
        for (v, f, want) in bad {
            assert_eq!(f(v), *want, "{v:?}");
        }
        assert_eq!(
            is_valid_port_num(0),
            ["must be between 1 and 65535, inclusive"]
        );
        assert!(is_valid_port_num(65535).is_empty());
    }

    #[test]
    fn metadata_names() {
        let name_253 = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert!(is_dns1123_subdomain(&name_253).is_empty());
        let long = format!("{name_253}x");
        let long_pod = format!(
            "{{metadata: {{name: {long}}}, spec: {{containers: [{{name: c, image: i}}]}}}}"
        );
        let long_err = format!(
            "metadata.name: Invalid value: \"{long}\": must be no more than 253 characters"
        );
        let ns_err = format!("metadata.name: Invalid value: \"-team\": {LABEL}");
        let my_pod = format!("metadata.name: Invalid value: \"My_Pod\": {SUBDOMAIN}");
        let svc = format!("metadata.name: Invalid value: \"1svc\": {DNS1035}");
        let luffy = format!("metadata.namespace: Invalid value: \"Luffy\": {LABEL}");
        let gen = format!("metadata.generateName: Invalid value: \"Web-\": {SUBDOMAIN}");
        let cases: &[Case] = &[
            ("pod name", "Pod", "{metadata: {name: My_Pod}, spec: {containers: [{name: c, image: i}]}}", &[&my_pod]),
            ("pod name too long", "Pod", &long_pod, &[&long_err]),
            ("name required", "Pod", "{metadata: {}, spec: {containers: [{name: c, image: i}]}}", &["metadata.name: Required value: name or generateName is required"]),
            ("generateName suffices", "Pod", "{metadata: {generateName: web-}, spec: {containers: [{name: c, image: i}]}}", &[]),
            ("bad generateName", "ConfigMap", "{metadata: {generateName: Web-}}", &[&gen]),
            ("namespace is a label", "ConfigMap", "{metadata: {name: c, namespace: Luffy}}", &[&luffy]),
            ("namespace name is a label", "Namespace", "{metadata: {name: -team}}", &[&ns_err]),
            ("namespace name has no dots", "Namespace", "{metadata: {name: a.b}}", &["metadata.name: Invalid value: \"a.b\": must not contain dots"]),
            ("service name is DNS-1035", "Service", "{metadata: {name: 1svc}, spec: {ports: [{port: 80}]}}", &[&svc]),
            ("dotted names are fine for most kinds", "ConfigMap", "{metadata: {name: app.config}}", &[]),
            ("RBAC names may have colons", "ClusterRole", "{metadata: {name: 'system:controller:x'}}", &[]),
            ("RBAC names have no slash", "Role", "{metadata: {name: a/b}}", &["metadata.name: Invalid value: \"a/b\": may not contain '/'"]),
            ("RBAC names are not ..", "Role", "{metadata: {name: '..'}}", &["metadata.name: Invalid value: \"..\": may not be '..'"]),
            ("container name", "Pod", "{metadata: {name: p}, spec: {containers: [{name: Web, image: i}]}}", &[&format!("spec.containers[0].name: Invalid value: \"Web\": {LABEL}")]),
            ("volume name", "Pod", "{metadata: {name: p}, spec: {containers: [{name: c, image: i}], volumes: [{name: my_vol, emptyDir: {}}]}}", &[&format!("spec.volumes[0].name: Invalid value: \"my_vol\": {LABEL}")]),
            ("container port name", "Pod", "{metadata: {name: p}, spec: {containers: [{name: c, image: i, ports: [{name: http--x, containerPort: 80}]}]}}", &["spec.containers[0].ports[0].name: Invalid value: \"http--x\": must not contain consecutive hyphens"]),
        ];
        run(cases);
    }

    #[test]
    fn labels_and_annotations() {
        let big = "x".repeat(MAX_ANNOTATIONS_SIZE);
        let obj = Object::from_json(
            "ConfigMap",
            json!({"metadata": {"name": "c", "annotations": {"k": big}}}),
        )
        .unwrap();
        let errs: Vec<String> = validate(&obj).iter().map(ToString::to_string).collect();
        assert_eq!(
            errs,
            ["metadata.annotations: Too long: must have at most 262144 bytes"]
        );
        let long_value = "v".repeat(64);
        let long_yaml = format!("{{metadata: {{name: c, labels: {{app: {long_value}}}}}}}");
        let long_err = format!(
            "metadata.labels: Invalid value: \"{long_value}\": must be no more than 63 characters"
        );
        let cases: &[Case] = &[
            ("good labels", "ConfigMap", "{metadata: {name: c, labels: {app.kubernetes.io/name: web, tier: '', v: 1.0_x}}}", &[]),
            ("bad key", "ConfigMap", "{metadata: {name: c, labels: {-app: web}}}", &[&format!("metadata.labels: Invalid value: \"-app\": {NAME_PART}")]),
            ("bad prefix", "ConfigMap", "{metadata: {name: c, labels: {Example.com/app: web}}}", &[&format!("metadata.labels: Invalid value: \"Example.com/app\": prefix part {SUBDOMAIN}")]),
            ("bad value", "ConfigMap", "{metadata: {name: c, labels: {app: web!}}}", &[&format!("metadata.labels: Invalid value: \"web!\": {LABEL_VALUE}")]),
            ("long value", "ConfigMap", &long_yaml, &[&long_err]),
            ("annotation keys may be upper case", "ConfigMap", "{metadata: {name: c, annotations: {Example.COM/Key: 'any value: at all'}}}", &[]),
            ("bad annotation key", "ConfigMap", "{metadata: {name: c, annotations: {'a b': x}}}", &[&format!("metadata.annotations: Invalid value: \"a b\": {NAME_PART}")]),
            ("nodeSelector", "Pod", "{metadata: {name: p}, spec: {containers: [{name: c, image: i}], nodeSelector: {disk: 'ssd drive'}}}", &[&format!("spec.nodeSelector: Invalid value: \"ssd drive\": {LABEL_VALUE}")]),
        ];
        run(cases);
    }

    const TEMPLATE: &str =
        "{metadata: {labels: {app: web}}, spec: {containers: [{name: c, image: i}]}}";

    fn deployment(selector: &str) -> String {
        format!("{{metadata: {{name: d}}, spec: {{{selector} template: {TEMPLATE}}}}}")
    }

    #[test]
    fn label_selectors() {
        let no_selector = deployment("");
        let mismatch = deployment("selector: {matchLabels: {app: db}},");
        let empty = deployment("selector: {},");
        let in_no_values = deployment("selector: {matchExpressions: [{key: app, operator: In}]},");
        let exists_values = deployment(
            "selector: {matchExpressions: [{key: app, operator: Exists, values: [web]}]},",
        );
        let bad_op = deployment(
            "selector: {matchExpressions: [{key: app, operator: Equals, values: [web]}]},",
        );
        let exprs_ok = deployment("selector: {matchExpressions: [{key: app, operator: In, values: [web, api]}, {key: tier, operator: DoesNotExist}]},");
        let cases: &[Case] = &[
            ("matching", "Deployment", &deployment("selector: {matchLabels: {app: web}},"), &[]),
            ("expressions", "Deployment", &exprs_ok, &[]),
            ("required", "Deployment", &no_selector, &[
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ]),
            ("mismatch", "Deployment", &mismatch, &[
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ]),
            ("empty", "Deployment", &empty, &[
                "spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}: empty selector is invalid for deployment",
            ]),
            ("In needs values", "Deployment", &in_no_values, &[
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:app,Operator:In,Values:[],},},}: invalid label selector",
            ]),
            ("Exists takes no values", "Deployment", &exists_values, &[
                "spec.selector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                "spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:app,Operator:Exists,Values:[web],},},}: invalid label selector",
            ]),
            ("unknown operator", "Deployment", &bad_op, &[
                "spec.selector.matchExpressions[0].operator: Invalid value: \"Equals\": not a valid selector operator",
                "spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:app,Operator:Equals,Values:[web],},},}: invalid label selector",
            ]),
            ("replicaset", "ReplicaSet", "{metadata: {name: r}, spec: {selector: {matchLabels: {app: x}}, template: {metadata: {labels: {app: web, tier: fe}}, spec: {containers: [{name: c, image: i}]}}}}", &[
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\", \"tier\":\"fe\"}: `selector` does not match template `labels`",
            ]),
            ("statefulset with an invalid selector", "StatefulSet", "{metadata: {name: s}, spec: {selector: {matchExpressions: [{key: app, operator: in, values: [a]}]}, template: {spec: {containers: [{name: c}]}}}}", &[
                "spec.selector.matchExpressions[0].operator: Invalid value: \"in\": not a valid selector operator",
                "spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:app,Operator:in,Values:[a],},},}",
            ]),
            ("statefulset", "StatefulSet", "{metadata: {name: s}, spec: {template: {spec: {containers: [{name: c, image: i}]}}}}", &[
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template `labels`",
            ]),
            ("daemonset without selector matches nothing", "DaemonSet", &format!("{{metadata: {{name: d}}, spec: {{template: {TEMPLATE}}}}}"), &[
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ]),
            ("daemonset empty selector", "DaemonSet", &format!("{{metadata: {{name: d}}, spec: {{selector: {{}}, template: {TEMPLATE}}}}}"), &[
                "spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}: empty selector is invalid for daemonset",
            ]),
            ("job selector is generated", "Job", "{metadata: {name: j}, spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: i}]}}}}", &[]),
            ("manual job selector must match", "Job", "{metadata: {name: j}, spec: {manualSelector: true, selector: {matchLabels: {a: b}}, template: {spec: {restartPolicy: Never, containers: [{name: c, image: i}]}}}}", &[
                "spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template `labels`",
            ]),
        ];
        run(cases);
    }

    fn pod(spec: &str) -> String {
        format!("{{metadata: {{name: p}}, spec: {spec}}}")
    }

    #[test]
    fn pod_containers() {
        let cases: &[Case] = &[
            ("containers required", "Pod", &pod("{}"), &["spec.containers: Required value"]),
            ("no spec at all", "Pod", "{metadata: {name: p}}", &["spec.containers: Required value"]),
            ("duplicate names", "Pod", &pod("{containers: [{name: web, image: a}, {name: web, image: b}]}"), &["spec.containers[1].name: Duplicate value: \"web\""]),
            ("init and regular share names", "Pod", &pod("{initContainers: [{name: web, image: a}], containers: [{name: web, image: b}]}"), &["spec.initContainers[0].name: Duplicate value: \"web\""]),
            ("name required", "Pod", &pod("{containers: [{image: a}]}"), &["spec.containers[0].name: Required value"]),
            ("image required", "Pod", &pod("{containers: [{name: c}]}"), &["spec.containers[0].image: Required value"]),
            ("image required in templates", "Deployment", "{metadata: {name: d}, spec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c}]}}}}", &["spec.template.spec.containers[0].image: Required value"]),
            ("image whitespace", "Pod", &pod("{containers: [{name: c, image: 'nginx '}]}"), &["spec.containers[0].image: Invalid value: \"nginx \": must not have leading or trailing whitespace"]),
            ("restartPolicy on a regular container", "Pod", &pod("{containers: [{name: c, image: i, restartPolicy: Always}]}"), &["spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"]),
            ("sidecar init container", "Pod", &pod("{initContainers: [{name: s, image: i, restartPolicy: Always, readinessProbe: {exec: {command: [cat, /tmp/ready]}}}], containers: [{name: c, image: i}]}"), &[]),
            ("probe on a plain init container", "Pod", &pod("{initContainers: [{name: s, image: i, livenessProbe: {exec: {command: [cat, /tmp/ready]}}}], containers: [{name: c, image: i}]}"), &["spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"]),
            ("ephemeral containers in a template", "ReplicaSet", "{metadata: {name: r}, spec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}], ephemeralContainers: [{name: e, image: i}]}}}}", &["spec.template.spec.ephemeralContainers: Forbidden: ephemeral containers not allowed in pod template"]),
        ];
        run(cases);
    }

    #[test]
    fn container_ports() {
        let c = |ports: &str| {
            pod(&format!(
                "{{containers: [{{name: c, image: i, ports: {ports}}}]}}"
            ))
        };
        let cases: &[Case] = &[
            ("good", "Pod", &c("[{name: http, containerPort: 80, protocol: TCP}, {name: dns, containerPort: 53, protocol: UDP, hostPort: 53}]"), &[]),
            ("containerPort required", "Pod", &c("[{name: http}]"), &["spec.containers[0].ports[0].containerPort: Required value"]),
            ("containerPort range", "Pod", &c("[{containerPort: 70000}]"), &["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]),
            ("hostPort range", "Pod", &c("[{containerPort: 80, hostPort: -1}]"), &["spec.containers[0].ports[0].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive"]),
            ("protocol", "Pod", &c("[{containerPort: 80, protocol: HTTP}]"), &["spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""]),
            ("duplicate port names", "Pod", &c("[{name: web, containerPort: 80}, {name: web, containerPort: 81}]"), &["spec.containers[0].ports[1].name: Duplicate value: \"web\""]),
            ("IANA name", "Pod", &c("[{name: web_1, containerPort: 80}]"), &["spec.containers[0].ports[0].name: Invalid value: \"web_1\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]),
            ("hostNetwork needs hostPort == containerPort", "Pod", &pod("{hostNetwork: true, containers: [{name: c, image: i, ports: [{containerPort: 80, hostPort: 8080}]}]}"), &["spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"]),
            ("hostNetwork with defaulted hostPort", "Pod", &pod("{hostNetwork: true, containers: [{name: c, image: i, ports: [{containerPort: 80, hostPort: 80}]}]}"), &[]),
            ("host port conflict", "Pod", &pod("{containers: [{name: a, image: i, ports: [{containerPort: 80, hostPort: 8080}]}, {name: b, image: i, ports: [{containerPort: 81, hostPort: 8080}]}]}"), &["spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//8080\""]),
        ];
        run(cases);
        // An undefaulted pod on the host network with no hostPort is fine: defaulting sets it.
        let yaml = pod(
            "{hostNetwork: true, containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}",
        );
        assert!(check("Pod", &yaml).is_empty());
        assert!(check_defaulted("Pod", &yaml).is_empty());
    }

    #[test]
    fn volumes_and_mounts() {
        let v = |vols: &str, mounts: &str| {
            pod(&format!(
                "{{volumes: {vols}, containers: [{{name: c, image: i, volumeMounts: {mounts}}}]}}"
            ))
        };
        let cases: &[Case] = &[
            ("good", "Pod", &v("[{name: data, emptyDir: {}}, {name: cfg, configMap: {name: app}}]", "[{name: data, mountPath: /data}, {name: cfg, mountPath: /etc/app, subPath: app.conf}]"), &[]),
            ("mount of a missing volume", "Pod", &v("[]", "[{name: data, mountPath: /data}]"), &["spec.containers[0].volumeMounts[0].name: Not found: \"data\""]),
            ("duplicate volume names", "Pod", &v("[{name: data, emptyDir: {}}, {name: data, emptyDir: {}}]", "[]"), &["spec.volumes[1].name: Duplicate value: \"data\""]),
            ("two sources", "Pod", &v("[{name: data, emptyDir: {}, hostPath: {path: /x}}]", "[]"), &["spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"]),
            ("mountPath required", "Pod", &v("[{name: data, emptyDir: {}}]", "[{name: data, mountPath: ''}]"), &["spec.containers[0].volumeMounts[0].mountPath: Required value"]),
            ("mountPath unique", "Pod", &v("[{name: a, emptyDir: {}}, {name: b, emptyDir: {}}]", "[{name: a, mountPath: /x}, {name: b, mountPath: /x}]"), &["spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/x\": must be unique"]),
            ("a mount of an invalid volume is not found", "Pod", &v("[{name: data, configMap: {}}]", "[{name: data, mountPath: /d}]"), &[
                "spec.volumes[0].configMap.name: Required value",
                "spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
            ]),
            ("secret needs a name", "Pod", &v("[{name: s, secret: {}}]", "[]"), &["spec.volumes[0].secret.secretName: Required value"]),
            ("pvc needs a claim", "Pod", &v("[{name: s, persistentVolumeClaim: {claimName: ''}}]", "[]"), &["spec.volumes[0].persistentVolumeClaim.claimName: Required value"]),
            ("hostPath type", "Pod", &v("[{name: h, hostPath: {path: /x, type: Dir}}]", "[]"), &["spec.volumes[0].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\""]),
            ("items paths", "Pod", &v("[{name: c, configMap: {name: x, items: [{key: k, path: ../etc}, {key: '', path: /abs, mode: 1000}]}}]", "[]"), &[
                "spec.volumes[0].configMap.items[0].path: Invalid value: \"../etc\": must not contain '..'",
                "spec.volumes[0].configMap.items[1].key: Required value",
                "spec.volumes[0].configMap.items[1].path: Invalid value: \"/abs\": must be a relative path",
                "spec.volumes[0].configMap.items[1].mode: Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive",
            ]),
            ("projected token", "Pod", &v("[{name: t, projected: {sources: [{serviceAccountToken: {path: token, expirationSeconds: 60}}]}}]", "[]"), &["spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"]),
            ("subPath escapes", "Pod", &v("[{name: a, emptyDir: {}}]", "[{name: a, mountPath: /x, subPath: ../y}]"), &["spec.containers[0].volumeMounts.subPath: Invalid value: \"../y\": must not contain '..'"]),
            ("nfs path is absolute", "Pod", &v("[{name: n, nfs: {server: nas, path: exports}}]", "[]"), &["spec.volumes[0].nfs.path: Invalid value: \"exports\": must be an absolute path"]),
            ("image volumes need a reference", "Pod", &v("[{name: m, image: {pullPolicy: IfNotPresent}}]", "[]"), &["spec.volumes[0].image.reference: Required value"]),
            ("projected: one kind per source, unique paths", "Pod", &v("[{name: p, projected: {sources: [{secret: {name: s, items: [{key: a, path: x}]}, configMap: {name: c, items: [{key: b, path: x}]}}]}}]", "[]"), &["spec.volumes[0].projected: Invalid value: \"c\": conflicting duplicate paths", "spec.volumes[0].projected.sources[0]: Forbidden: may not specify more than 1 volume type per source"]),
        ];
        run(cases);
        // A volume without a source is an error until defaulting makes it an emptyDir.
        let yaml = v("[{name: scratch}]", "[{name: scratch, mountPath: /s}]");
        assert_eq!(
            check("Pod", &yaml),
            [
                "spec.volumes[0]: Required value: must specify a volume type",
                "spec.containers[0].volumeMounts[0].name: Not found: \"scratch\"",
            ]
        );
        assert!(check_defaulted("Pod", &yaml).is_empty());
    }

    #[test]
    fn pod_enums() {
        let cases: &[Case] = &[
            ("restartPolicy", "Pod", &pod("{restartPolicy: Sometimes, containers: [{name: c, image: i}]}"), &["spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""]),
            ("dnsPolicy", "Pod", &pod("{dnsPolicy: Cluster, containers: [{name: c, image: i}]}"), &["spec.dnsPolicy: Unsupported value: \"Cluster\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\""]),
            ("dnsPolicy None needs dnsConfig", "Pod", &pod("{dnsPolicy: None, containers: [{name: c, image: i}]}"), &["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]),
            ("imagePullPolicy", "Pod", &pod("{containers: [{name: c, image: i, imagePullPolicy: Sometimes}]}"), &["spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""]),
            ("terminationMessagePolicy", "Pod", &pod("{containers: [{name: c, image: i, terminationMessagePolicy: Log}]}"), &["spec.containers[0].terminationMessagePolicy: Unsupported value: \"Log\": supported values: \"File\", \"FallbackToLogsOnError\""]),
        ];
        run(cases);
    }

    #[test]
    fn probes() {
        let c = |probe: &str| pod(&format!("{{containers: [{{name: c, image: i, {probe}}}]}}"));
        let cases: &[Case] = &[
            ("good", "Pod", &c("livenessProbe: {httpGet: {path: /healthz, port: 8080}}, readinessProbe: {tcpSocket: {port: http}}, startupProbe: {exec: {command: [cat, /tmp/ok]}, failureThreshold: 30, periodSeconds: 10}"), &[]),
            ("no handler", "Pod", &c("livenessProbe: {periodSeconds: 5}"), &["spec.containers[0].livenessProbe: Required value: must specify a handler type"]),
            ("two handlers", "Pod", &c("readinessProbe: {exec: {command: [x]}, tcpSocket: {port: 80}}"), &["spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"]),
            ("exec needs a command", "Pod", &c("livenessProbe: {exec: {}}"), &["spec.containers[0].livenessProbe.exec.command: Required value"]),
            ("port number", "Pod", &c("livenessProbe: {httpGet: {port: 0}}"), &["spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive"]),
            ("port name", "Pod", &c("livenessProbe: {tcpSocket: {port: HTTP}}"), &["spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)", "spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: \"HTTP\": must contain at least one letter (a-z)"]),
            ("scheme", "Pod", &c("livenessProbe: {httpGet: {port: 80, scheme: FTP}}"), &["spec.containers[0].livenessProbe.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\""]),
            ("negative period", "Pod", &c("readinessProbe: {tcpSocket: {port: 80}, periodSeconds: -1}"), &["spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0"]),
            ("liveness successThreshold", "Pod", &c("livenessProbe: {tcpSocket: {port: 80}, successThreshold: 2}"), &["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"]),
            ("readiness grace period", "Pod", &c("readinessProbe: {tcpSocket: {port: 80}, terminationGracePeriodSeconds: 5}"), &["spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set for readinessProbes"]),
            ("lifecycle hook", "Pod", &c("lifecycle: {preStop: {}}"), &["spec.containers[0].lifecycle.preStop: Required value: must specify a handler type"]),
            ("probe grace period", "Pod", &c("livenessProbe: {tcpSocket: {port: 80}, terminationGracePeriodSeconds: 0}"), &["spec.containers[0].livenessProbe.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0"]),
            ("sleep hook within the grace period", "Pod", &pod("{terminationGracePeriodSeconds: 30, containers: [{name: c, image: i, lifecycle: {preStop: {sleep: {seconds: 60}}}}]}"), &["spec.containers[0].lifecycle.preStop.sleep: Invalid value: 60: must be non-negative and less than terminationGracePeriodSeconds (30)"]),
        ];
        run(cases);
    }

    #[test]
    fn env_vars() {
        let c = |env: &str| {
            pod(&format!(
                "{{containers: [{{name: c, image: i, env: {env}}}]}}"
            ))
        };
        let cases: &[Case] = &[
            ("good", "Pod", &c("[{name: A, value: x}, {name: my.var-1}, {name: N, valueFrom: {fieldRef: {fieldPath: metadata.name}}}, {name: L, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}, {name: K, valueFrom: {secretKeyRef: {name: s, key: password}}}, {name: M, valueFrom: {resourceFieldRef: {resource: limits.memory}}}]"), &[]),
            ("name required", "Pod", &c("[{name: '', value: x}]"), &["spec.containers[0].env[0].name: Required value"]),
            ("name format", "Pod", &c("[{name: 1BAD}]"), &[&format!("spec.containers[0].env[0].name: Invalid value: \"1BAD\": {ENV_NAME}")]),
            ("valueFrom needs a source", "Pod", &c("[{name: A, valueFrom: {}}]"), &["spec.containers[0].env[0].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"]),
            ("value and valueFrom", "Pod", &c("[{name: A, value: x, valueFrom: {configMapKeyRef: {name: c, key: k}}}]"), &["spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty"]),
            ("two sources", "Pod", &c("[{name: A, valueFrom: {configMapKeyRef: {name: c, key: k}, secretKeyRef: {name: s, key: k}}}]"), &["spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not have more than one field specified at a time"]),
            ("key required", "Pod", &c("[{name: A, valueFrom: {configMapKeyRef: {name: c, key: ''}}}]"), &["spec.containers[0].env[0].valueFrom.configMapKeyRef.key: Required value"]),
            ("key format", "Pod", &c("[{name: A, valueFrom: {secretKeyRef: {name: s, key: 'a b'}}}]"), &[&format!("spec.containers[0].env[0].valueFrom.secretKeyRef.key: Invalid value: \"a b\": {CM_KEY}")]),
            ("fieldPath", "Pod", &c("[{name: A, valueFrom: {fieldRef: {fieldPath: status.phase}}}]"), &["spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"status.phase\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\""]),
            ("unknown fieldPath", "Pod", &c("[{name: A, valueFrom: {fieldRef: {fieldPath: spec.foo}}}]"), &["spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Invalid value: \"spec.foo\": error converting fieldPath: field label not supported: spec.foo"]),
            ("envFrom needs a source", "Pod", &pod("{containers: [{name: c, image: i, envFrom: [{prefix: X_}]}]}"), &["spec.containers[0].envFrom: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`"]),
            ("envFrom prefix and name", "Pod", &pod("{containers: [{name: c, image: i, envFrom: [{prefix: 1X, configMapRef: {name: Cfg}}]}]}"), &[&format!("spec.containers[0].envFrom[0].prefix: Invalid value: \"1X\": {ENV_NAME}"), &format!("spec.containers[0].envFrom[0].configMapRef.name: Invalid value: \"Cfg\": {SUBDOMAIN}")]),
            ("key refs need a name", "Pod", &c("[{name: A, valueFrom: {configMapKeyRef: {key: k}}}]"), &[&format!("spec.containers[0].env[0].valueFrom.configMapKeyRef.name: Invalid value: \"\": {SUBDOMAIN}")]),
        ];
        run(cases);
    }

    #[test]
    fn resources() {
        let c = |res: &str| {
            pod(&format!(
                "{{containers: [{{name: c, image: i, resources: {res}}}]}}"
            ))
        };
        let cases: &[Case] = &[
            ("good", "Pod", &c("{requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: '1', memory: 128Mi}}"), &[]),
            ("requests over limits", "Pod", &c("{requests: {cpu: '2'}, limits: {cpu: '1'}}"), &["spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"]),
            ("by value, not text", "Pod", &c("{requests: {memory: 1Gi}, limits: {memory: 1000Mi}}"), &["spec.containers[0].resources.requests: Invalid value: \"1Gi\": must be less than or equal to memory limit of 1000Mi"]),
            ("equal in another unit", "Pod", &c("{requests: {cpu: 500m}, limits: {cpu: '0.5'}}"), &[]),
            ("negative", "Pod", &c("{limits: {memory: -1Mi}}"), &["spec.containers[0].resources.limits[memory]: Invalid value: \"-1Mi\": must be greater than or equal to 0"]),
            ("extended resources need equal limits", "Pod", &c("{requests: {example.com/gpu: '1'}, limits: {example.com/gpu: '2'}}"), &["spec.containers[0].resources.requests: Invalid value: \"1\": must be equal to example.com/gpu limit of 2"]),
            ("extended resources need limits", "Pod", &c("{requests: {example.com/gpu: '1'}}"), &["spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"]),
        ];
        run(cases);
    }

    #[test]
    fn pod_spec_fields() {
        let c = "containers: [{name: c, image: i}]";
        let cases: &[Case] = &[
            ("grace period", "Pod", &pod(&format!("{{terminationGracePeriodSeconds: -1, {c}}}")), &["spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"]),
            ("active deadline", "Pod", &pod(&format!("{{activeDeadlineSeconds: 0, {c}}}")), &["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"]),
            ("hostname", "Pod", &pod(&format!("{{hostname: My.Host, {c}}}")), &[&format!("spec.hostname: Invalid value: \"My.Host\": {LABEL}")]),
            ("good tolerations", "Pod", &pod(&format!("{{tolerations: [{{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}}, {{operator: Exists}}, {{key: k, value: v, effect: NoExecute, tolerationSeconds: 30}}], {c}}}")), &[]),
            ("toleration operator", "Pod", &pod(&format!("{{tolerations: [{{key: k, operator: In}}], {c}}}")), &["spec.tolerations[0].operator: Unsupported value: \"In\": supported values: \"Equal\", \"Exists\""]),
            ("toleration effect", "Pod", &pod(&format!("{{tolerations: [{{key: k, operator: Exists, effect: NoRun}}], {c}}}")), &["spec.tolerations[0].effect: Unsupported value: \"NoRun\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""]),
            ("empty key needs Exists", "Pod", &pod(&format!("{{tolerations: [{{operator: Equal, value: v}}], {c}}}")), &["spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\""]),
            ("Exists takes no value", "Pod", &pod(&format!("{{tolerations: [{{key: k, operator: Exists, value: v}}], {c}}}")), &["spec.tolerations[0].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'"]),
            ("name fields", "Pod", &pod(&format!("{{serviceAccountName: Default, nodeName: node_1, priorityClassName: High, {c}}}")), &[&format!("spec.serviceAccountName: Invalid value: \"Default\": {SUBDOMAIN}"), &format!("spec.nodeName: Invalid value: \"node_1\": {SUBDOMAIN}"), &format!("spec.priorityClassName: Invalid value: \"High\": {SUBDOMAIN}")]),
            ("tolerationSeconds needs NoExecute", "Pod", &pod(&format!("{{tolerations: [{{key: k, operator: Exists, effect: NoSchedule, tolerationSeconds: 5}}], {c}}}")), &["spec.tolerations[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set"]),
        ];
        run(cases);
    }

    #[test]
    fn services() {
        let svc = |spec: &str| format!("{{metadata: {{name: web}}, spec: {spec}}}");
        let cases: &[Case] = &[
            ("good", "Service", &svc("{selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}, {name: metrics, port: 9090, targetPort: metrics, protocol: TCP}]}"), &[]),
            ("ports required", "Service", &svc("{selector: {app: web}}"), &["spec.ports: Required value"]),
            ("headless needs no ports", "Service", &svc("{clusterIP: None}"), &[]),
            ("names required with several ports", "Service", &svc("{ports: [{port: 80}, {name: b, port: 81}]}"), &["spec.ports[0].name: Required value"]),
            ("duplicate names", "Service", &svc("{ports: [{name: a, port: 80}, {name: a, port: 81}]}"), &["spec.ports[1].name: Duplicate value: \"a\""]),
            ("port name is a DNS label", "Service", &svc("{ports: [{name: Http, port: 80}]}"), &[&format!("spec.ports[0].name: Invalid value: \"Http\": {LABEL}")]),
            ("port range", "Service", &svc("{ports: [{port: 0}]}"), &["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"]),
            ("protocol", "Service", &svc("{ports: [{port: 80, protocol: ICMP}]}"), &["spec.ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""]),
            ("targetPort number", "Service", &svc("{ports: [{port: 80, targetPort: 70000}]}"), &["spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]),
            ("targetPort name", "Service", &svc("{ports: [{port: 80, targetPort: web_http}]}"), &["spec.ports[0].targetPort: Invalid value: \"web_http\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]),
            ("type", "Service", &svc("{type: Internal, ports: [{port: 80}]}"), &["spec.type: Unsupported value: \"Internal\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]),
            ("nodePort on ClusterIP", "Service", &svc("{ports: [{port: 80, nodePort: 30080}]}"), &["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]),
            ("nodePort on NodePort", "Service", &svc("{type: NodePort, ports: [{port: 80, nodePort: 30080}]}"), &[]),
            ("ExternalName", "Service", &svc("{type: ExternalName}"), &["spec.externalName: Required value"]),
            ("same port twice", "Service", &svc("{ports: [{name: a, port: 80}, {name: b, port: 80}]}"), &["spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"]),
        ];
        run(cases);
    }

    #[test]
    fn config_maps_and_secrets() {
        let cases: &[Case] = &[
            ("good", "ConfigMap", "{metadata: {name: c}, data: {game.properties: x, UI_COLOR: y, .hidden: z}, binaryData: {blob: AAEC}}", &[]),
            ("bad key", "ConfigMap", "{metadata: {name: c}, data: {'a/b': x}}", &[&format!("data[a/b]: Invalid value: \"a/b\": {CM_KEY}")]),
            ("key in both", "ConfigMap", "{metadata: {name: c}, data: {k: x}, binaryData: {k: AAEC}}", &[
                "data[k]: Invalid value: \"k\": duplicate of key present in binaryData",
                "binaryData[k]: Invalid value: \"k\": duplicate of key present in data",
            ]),
            ("secret keys", "Secret", "{metadata: {name: s}, data: {'..x': YQ==}, stringData: {'a b': c}}", &[
                "data[..x]: Invalid value: \"..x\": must not start with '..'",
                &format!("stringData[a b]: Invalid value: \"a b\": {CM_KEY}"),
            ]),
        ];
        run(cases);
        let big = "x".repeat(MAX_DATA_SIZE);
        let cm = Object::from_json(
            "ConfigMap",
            json!({"metadata": {"name": "c"}, "data": {"a": big, "b": "y"}}),
        )
        .unwrap();
        let errs: Vec<String> = validate(&cm).iter().map(ToString::to_string).collect();
        assert_eq!(errs, ["[]: Too long: must have at most 1048576 bytes"]);
        let s = Object::from_json(
            "Secret",
            json!({"metadata": {"name": "s"}, "stringData": {"a": big, "b": "y"}}),
        )
        .unwrap();
        let errs: Vec<String> = validate(&s).iter().map(ToString::to_string).collect();
        assert_eq!(errs, ["data: Too long: must have at most 1048576 bytes"]);
        let ok = Object::from_json(
            "ConfigMap",
            json!({"metadata": {"name": "c"}, "data": {"a": "x".repeat(MAX_DATA_SIZE)}}),
        )
        .unwrap();
        assert!(validate(&ok).is_empty());
    }

    #[test]
    fn deployments() {
        let d = |spec: &str| {
            format!("{{metadata: {{name: d}}, spec: {{selector: {{matchLabels: {{app: web}}}}, template: {TEMPLATE}, {spec}}}}}")
        };
        let never = "{metadata: {name: d}, spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {restartPolicy: Never, containers: [{name: c, image: i}]}}}}";
        let cases: &[Case] = &[
            ("good", "Deployment", &d("replicas: 3, strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 25%}}"), &[]),
            ("replicas", "Deployment", &d("replicas: -1"), &["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]),
            ("strategy type", "Deployment", &d("strategy: {type: BlueGreen}"), &["spec.strategy.type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\""]),
            ("Recreate has no rollingUpdate", "Deployment", &d("strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}"), &["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]),
            ("not both zero", "Deployment", &d("strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0%}}"), &["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0%: may not be 0 when `maxSurge` is 0"]),
            ("percent format", "Deployment", &d("strategy: {rollingUpdate: {maxSurge: 20Percent, maxUnavailable: 1}}"), &["spec.strategy.rollingUpdate.maxSurge: Invalid value: 20Percent: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"]),
            ("at most 100%", "Deployment", &d("strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 110%}}"), &["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 110%: must not be greater than 100%"]),
            ("progress deadline", "Deployment", &d("minReadySeconds: 10, progressDeadlineSeconds: 10"), &["spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"]),
            ("template restartPolicy", "Deployment", never, &["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]),
            ("template labels", "Deployment", "{metadata: {name: d}, spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web, -x: y}}, spec: {containers: [{name: c, image: i}]}}}}", &[&format!("spec.template.labels: Invalid value: \"-x\": {NAME_PART}")]),
            ("template activeDeadlineSeconds", "Deployment", "{metadata: {name: d}, spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {activeDeadlineSeconds: 60, containers: [{name: c, image: i}]}}}}", &["spec.template.spec.activeDeadlineSeconds: Invalid value: 60: activeDeadlineSeconds in ReplicaSet is not Supported"]),
        ];
        run(cases);
    }

    #[test]
    fn other_workloads() {
        let tpl_never = "{metadata: {labels: {app: web}}, spec: {restartPolicy: OnFailure, containers: [{name: c, image: i}]}}";
        let rs = format!("{{metadata: {{name: r}}, spec: {{selector: {{matchLabels: {{app: web}}}}, template: {tpl_never}}}}}");
        let ds = format!("{{metadata: {{name: d}}, spec: {{selector: {{matchLabels: {{app: web}}}}, template: {tpl_never}}}}}");
        let sts = format!("{{metadata: {{name: s}}, spec: {{selector: {{matchLabels: {{app: web}}}}, template: {tpl_never}}}}}");
        let ds_zero = format!("{{metadata: {{name: d}}, spec: {{selector: {{matchLabels: {{app: web}}}}, template: {TEMPLATE}, updateStrategy: {{rollingUpdate: {{maxUnavailable: 0, maxSurge: 0}}}}}}}}");
        let ds_type = format!("{{metadata: {{name: d}}, spec: {{selector: {{matchLabels: {{app: web}}}}, template: {TEMPLATE}, updateStrategy: {{type: Always}}}}}}");
        let sts_claims = "{metadata: {name: db}, spec: {selector: {matchLabels: {app: db}}, template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: i, volumeMounts: [{name: data, mountPath: /var/lib/db}]}]}}, volumeClaimTemplates: [{metadata: {name: data}, spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}]}}";
        let sts_policy = format!("{{metadata: {{name: s}}, spec: {{podManagementPolicy: Random, selector: {{matchLabels: {{app: web}}}}, template: {TEMPLATE}}}}}");
        let cases: &[Case] = &[
            ("replicaset restartPolicy", "ReplicaSet", &rs, &["spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\""]),
            ("daemonset restartPolicy", "DaemonSet", &ds, &["spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\""]),
            ("statefulset restartPolicy", "StatefulSet", &sts, &["spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\""]),
            ("statefulset needs no serviceName; claims are volumes", "StatefulSet", sts_claims, &[]),
            ("statefulset podManagementPolicy", "StatefulSet", &sts_policy, &["spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"]),
            ("daemonset rolling update", "DaemonSet", &ds_zero, &["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"]),
            ("daemonset strategy type", "DaemonSet", &ds_type, &["spec.updateStrategy.type: Unsupported value: \"Always\": supported values: \"RollingUpdate\", \"OnDelete\""]),
        ];
        run(cases);
    }

    #[test]
    fn jobs_and_cron_jobs() {
        let job = |rp: &str| {
            format!("{{metadata: {{name: pi}}, spec: {{backoffLimit: 4, template: {{spec: {{{rp} containers: [{{name: pi, image: perl}}]}}}}}}}}")
        };
        let cron = |spec: &str| {
            format!("{{metadata: {{name: hello}}, spec: {{{spec} jobTemplate: {{spec: {{template: {{spec: {{restartPolicy: OnFailure, containers: [{{name: c, image: busybox}}]}}}}}}}}}}}}")
        };
        let long_name = "c".repeat(53);
        let long_cron = format!("{{metadata: {{name: {long_name}}}, spec: {{schedule: '@daily', jobTemplate: {{spec: {{template: {{spec: {{restartPolicy: Never, containers: [{{name: c, image: i}}]}}}}}}}}}}}}");
        let long_err = format!(
            "metadata.name: Invalid value: \"{long_name}\": must be no more than 52 characters"
        );
        let cases: &[Case] = &[
            ("good job", "Job", &job("restartPolicy: Never,"), &[]),
            ("Always", "Job", &job("restartPolicy: Always,"), &["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]),
            ("unset", "Job", &job(""), &["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]),
            ("unknown", "Job", &job("restartPolicy: Sometimes,"), &[
                "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\"",
            ]),
            ("negative counts", "Job", "{metadata: {name: j}, spec: {parallelism: -1, template: {spec: {restartPolicy: Never, containers: [{name: c, image: i}]}}}}", &["spec.parallelism: Invalid value: -1: must be greater than or equal to 0"]),
            ("good cron job", "CronJob", &cron("schedule: '*/1 * * * *', concurrencyPolicy: Forbid,"), &[]),
            ("keyword schedule", "CronJob", &cron("schedule: '@hourly',"), &[]),
            ("schedule required", "CronJob", &cron(""), &["spec.schedule: Required value"]),
            ("schedule fields", "CronJob", &cron("schedule: '* * *',"), &["spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields, found 3: [* * *]"]),
            ("schedule keyword", "CronJob", &cron("schedule: '@often',"), &["spec.schedule: Invalid value: \"@often\": unrecognized descriptor: @often"]),
            ("schedule time zone", "CronJob", &cron("schedule: 'TZ=UTC 0 * * * *',"), &["spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"]),
            ("concurrencyPolicy", "CronJob", &cron("schedule: '@daily', concurrencyPolicy: Never,"), &["spec.concurrencyPolicy: Unsupported value: \"Never\": supported values: \"Allow\", \"Forbid\", \"Replace\""]),
            ("job template restartPolicy", "CronJob", "{metadata: {name: c}, spec: {schedule: '@daily', jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: i}]}}}}}}", &["spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]),
            ("cron job name", "CronJob", &long_cron, &[&long_err]),
        ];
        run(cases);
    }

    #[test]
    fn rbac() {
        let rb = |role_ref: &str, subjects: &str| {
            format!("{{metadata: {{name: b, namespace: dev}}, roleRef: {role_ref}, subjects: {subjects}}}")
        };
        let good_ref = "{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}";
        let cases: &[Case] = &[
            ("good role", "Role", "{metadata: {name: pod-reader}, rules: [{apiGroups: [''], resources: [pods], verbs: [get, watch, list]}]}", &[]),
            ("verbs required", "Role", "{metadata: {name: r}, rules: [{apiGroups: [''], resources: [pods]}]}", &["rules[0].verbs: Required value: verbs must contain at least one value"]),
            ("resources required", "Role", "{metadata: {name: r}, rules: [{verbs: [get]}]}", &[
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[0].resources: Required value: resource rules must supply at least one resource",
            ]),
            ("non-resource URLs in a ClusterRole", "ClusterRole", "{metadata: {name: r}, rules: [{nonResourceURLs: [/healthz], verbs: [get]}]}", &[]),
            ("non-resource URLs in a Role", "Role", "{metadata: {name: r}, rules: [{nonResourceURLs: [/healthz], verbs: [get]}]}", &["rules[0].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs"]),
            ("non-resource URLs with resources", "ClusterRole", "{metadata: {name: r}, rules: [{nonResourceURLs: [/healthz, /livez], resources: [pods], verbs: [get]}]}", &["rules[0].nonResourceURLs: Invalid value: []string{\"/healthz\", \"/livez\"}: rules cannot apply to both regular resources and non-resource URLs"]),
            ("good binding", "RoleBinding", &rb(good_ref, "[{kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}, {kind: ServiceAccount, name: default}, {kind: Group, name: 'system:authenticated'}]"), &[]),
            ("roleRef kind", "RoleBinding", &rb("{kind: User, name: x}", "[]"), &["roleRef.kind: Unsupported value: \"User\": supported values: \"Role\", \"ClusterRole\""]),
            ("roleRef name", "RoleBinding", &rb("{kind: Role}", "[]"), &["roleRef.name: Required value"]),
            ("roleRef group", "RoleBinding", &rb("{apiGroup: apps, kind: Role, name: r}", "[]"), &["roleRef.apiGroup: Unsupported value: \"apps\": supported values: \"rbac.authorization.k8s.io\""]),
            ("subject kind", "RoleBinding", &rb(good_ref, "[{kind: Robot, name: r2}]"), &["subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\""]),
            ("subject name", "RoleBinding", &rb(good_ref, "[{kind: User, name: ''}]"), &["subjects[0].name: Required value"]),
            ("cluster binding refs a ClusterRole", "ClusterRoleBinding", "{metadata: {name: b}, roleRef: {kind: Role, name: r}, subjects: [{kind: ServiceAccount, name: default}]}", &[
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[0].namespace: Required value",
            ]),
        ];
        run(cases);
    }

    #[test]
    fn ingresses() {
        let ing = |paths: &str| {
            format!("{{metadata: {{name: i}}, spec: {{rules: [{{host: foo.example.com, http: {{paths: {paths}}}}}]}}}}")
        };
        let backend = "backend: {service: {name: web, port: {number: 80}}}";
        let cases: &[Case] = &[
            ("good", "Ingress", &ing(&format!("[{{path: /, pathType: Prefix, {backend}}}, {{path: /api, pathType: Exact, backend: {{service: {{name: api, port: {{name: http}}}}}}}}]")), &[]),
            ("pathType required", "Ingress", &ing(&format!("[{{path: /, {backend}}}]")), &["spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"]),
            ("pathType enum", "Ingress", &ing(&format!("[{{path: /, pathType: Regex, {backend}}}]")), &["spec.rules[0].http.paths[0].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\""]),
            ("absolute path", "Ingress", &ing(&format!("[{{path: api, pathType: Prefix, {backend}}}]")), &["spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path"]),
            ("service name", "Ingress", &ing("[{path: /, pathType: Prefix, backend: {service: {name: '', port: {number: 80}}}}]"), &["spec.rules[0].http.paths[0].backend.service.name: Required value"]),
            ("port name and number", "Ingress", &ing("[{path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http, number: 80}}}}]"), &["spec.rules[0].http.paths[0].backend: Invalid value: \"\": cannot set both port name & port number"]),
            ("port name or number", "Ingress", &ing("[{path: /, pathType: Prefix, backend: {service: {name: web}}}]"), &["spec.rules[0].http.paths[0].backend: Required value: port name or number is required"]),
            ("host is not an IP", "Ingress", "{metadata: {name: i}, spec: {rules: [{host: 10.0.0.1}]}}", &["spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address"]),
            ("wildcard host", "Ingress", "{metadata: {name: i}, spec: {rules: [{host: '*.example.com'}]}}", &[]),
            ("bad wildcard host", "Ingress", "{metadata: {name: i}, spec: {rules: [{host: 'foo.*.com'}]}}", &["spec.rules[0].host: Invalid value: \"foo.*.com\": a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
            ("rules or default backend", "Ingress", "{metadata: {name: i}, spec: {}}", &["spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"]),
        ];
        run(cases);
    }

    #[test]
    fn undefaulted_objects_are_judged_on_what_is_set() {
        // No protocols, pull policies, probe timings or strategy: all filled in by defaulting,
        // none reported missing before it.
        let d = "{metadata: {name: web}, spec: {selector: {matchLabels: {app: web}}, strategy: {rollingUpdate: {maxSurge: 0}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}], livenessProbe: {httpGet: {port: 80}}}]}}}}";
        assert!(check("Deployment", d).is_empty());
        assert!(check_defaulted("Deployment", d).is_empty());
        let svc = "{metadata: {name: web}, spec: {ports: [{port: 80}]}}";
        assert!(check("Service", svc).is_empty());
        assert!(check_defaulted("Service", svc).is_empty());
    }
}
