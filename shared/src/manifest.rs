//! Loading Kubernetes manifests: multi-document YAML or JSON files, `kind: List`,
//! directories and stdin, in block or flow style.
//!
//! Every document is read twice: once as a generic value to learn its `apiVersion` and
//! `kind`, then typed, straight from the YAML parser, so an error carries the line and the
//! field path (`spec.containers[0].ports[0].containerPort`). Unknown fields are warnings that
//! name the field, as Kubernetes' default "Warn" field validation does. No defaults are
//! applied here.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::Deserializer;

use crate::api::kinds;
use crate::api::legacy;
use crate::api::object::Object;

/// Where a document came from: a file path, or `-` for stdin.
pub type Origin = String;

/// One object loaded from a manifest.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The file it came from.
    pub origin: Origin,
    /// 1-based document number within the file.
    pub document: usize,
    /// For an item of a `kind: List`, its index.
    pub item: Option<usize>,
    /// The object, at the version kelp stores.
    pub object: Object,
    /// Warnings: unknown fields, deprecated versions.
    pub warnings: Vec<String>,
}

/// Why a document was not loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The file.
    pub origin: Origin,
    /// 1-based document number, when known.
    pub document: Option<u32>,
    /// For an item of a `kind: List`, its index.
    pub item: Option<u32>,
    /// 1-based line in the file, when known.
    pub line: Option<u32>,
    /// The field path, when known (`spec.containers[0].image`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// Whether the document was well-formed but of a kind kelp does not support.
    pub unsupported: bool,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        let mut place = Vec::new();
        if let Some(doc) = self.document {
            place.push(format!("document {doc}"));
        }
        if let Some(item) = self.item {
            place.push(format!("items[{item}]"));
        }
        if let Some(line) = self.line {
            place.push(format!("line {line}"));
        }
        if !place.is_empty() {
            write!(f, " ({})", place.join(", "))?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    fn new(origin: &str, document: Option<u32>, message: impl Into<String>) -> Self {
        LoadError {
            origin: origin.to_string(),
            document,
            item: None,
            line: None,
            field: None,
            message: message.into(),
            unsupported: false,
        }
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The outcome of loading one document (or one `List` item).
pub type DocResult = Result<Loaded, LoadError>;

/// An object typed from a legacy version, with the warnings its conversion gave.
pub type Converted = (Object, Vec<String>);

/// Which kinds a loader types. [`AllKinds`] reads every kind kelp serves, at its current and
/// legacy versions (the API, the CLI). A loader for fewer kinds, such as the agent's static
/// pods, compiles only their deserializers: the loader's code is generic, so every kind costs
/// its deserializers once per deserializer the loader uses, and the agent binary stays small.
pub trait Kinds {
    /// `Err(why)` for a kind this loader does not read; asked before anything is typed.
    fn accept(&self, kind: &str) -> Result<(), String>;
    /// The object of an accepted `kind`, at its current version; `Ok(None)` for a kind the
    /// loader does not type after all.
    fn current<'de, D: Deserializer<'de>>(
        &self,
        kind: &str,
        de: D,
    ) -> Result<Option<Object>, D::Error>;
    /// The object of a legacy version of an accepted kind, with its warnings; `None` where the
    /// loader reads no legacy versions.
    fn legacy<'de, D: Deserializer<'de>>(
        &self,
        legacy: &'static kinds::LegacyVersion,
        de: D,
    ) -> Option<Result<Converted, D::Error>>;
}

/// Every kind kelp serves, at its current and legacy versions.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllKinds;

impl Kinds for AllKinds {
    fn accept(&self, _kind: &str) -> Result<(), String> {
        Ok(())
    }

    fn current<'de, D: Deserializer<'de>>(
        &self,
        kind: &str,
        de: D,
    ) -> Result<Option<Object>, D::Error> {
        Object::deserialize_current(kind, de)
    }

    fn legacy<'de, D: Deserializer<'de>>(
        &self,
        l: &'static kinds::LegacyVersion,
        de: D,
    ) -> Option<Result<Converted, D::Error>> {
        Some(legacy::deserialize_legacy(l, de))
    }
}

/// Loads every document of `text`, read from `origin`.
pub fn load_str(text: &str, origin: &str) -> Vec<DocResult> {
    load_str_kinds(text, origin, &AllKinds)
}

/// [`load_str`] for the kinds `kinds` reads; other kinds are errors.
pub fn load_str_kinds<K: Kinds>(text: &str, origin: &str, kinds: &K) -> Vec<DocResult> {
    // Pass one: generic values, to learn each document's kind (and catch syntax errors with
    // their line).
    let mut heads = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        match <serde_yaml_ng::Value as serde::Deserialize>::deserialize(de) {
            Ok(v) => heads.push(v),
            Err(e) => {
                let mut out: Vec<DocResult> = Vec::new();
                let doc = heads.len() + 1;
                let mut err = LoadError::new(
                    origin,
                    Some(to_u32(doc)),
                    clean_message(&e.to_string(), None),
                );
                err.line = e.location().map(|l| to_u32(l.line()));
                // Documents before the broken one still count.
                out.extend(load_values(text, origin, &heads, kinds));
                out.push(Err(err));
                return out;
            }
        }
    }
    load_values(text, origin, &heads, kinds)
}

fn load_values<K: Kinds>(
    text: &str,
    origin: &str,
    heads: &[serde_yaml_ng::Value],
    kinds: &K,
) -> Vec<DocResult> {
    let mut out = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let Some(head) = heads.get(i) else { break };
        let document = i + 1;
        if head.is_null() {
            continue; // an empty document: `---` alone, or only comments
        }
        let Some(map) = head.as_mapping() else {
            out.push(Err(LoadError::new(
                origin,
                Some(to_u32(document)),
                "a manifest must be a mapping with apiVersion and kind",
            )));
            continue;
        };
        let get = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let (api_version, kind) = (get("apiVersion"), get("kind"));
        if kind.as_deref() == Some("List") {
            out.extend(load_list(origin, document, head, kinds));
            continue;
        }
        let mut result = load_one(de, api_version.as_deref(), kind.as_deref(), kinds, |e| {
            let mut e = e;
            e.origin = origin.to_string();
            e.document = Some(to_u32(document));
            e
        });
        if let Ok(ok) = &mut result {
            ok.origin = origin.to_string();
            ok.document = document;
        }
        out.push(result);
    }
    out
}

fn load_list<K: Kinds>(
    origin: &str,
    document: usize,
    head: &serde_yaml_ng::Value,
    kinds: &K,
) -> Vec<DocResult> {
    let Some(items) = head.get("items") else {
        let mut e = LoadError::new(origin, Some(to_u32(document)), "Required value");
        e.field = Some("items".into());
        return vec![Err(e)];
    };
    let Some(items) = items.as_sequence() else {
        let mut e = LoadError::new(origin, Some(to_u32(document)), "must be a list");
        e.field = Some("items".into());
        return vec![Err(e)];
    };
    items
        .iter()
        .enumerate()
        .map(|(idx, item)| {
            let get = |k: &str| item.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let (api_version, kind) = (get("apiVersion"), get("kind"));
            let mut r = load_one(
                item.clone(),
                api_version.as_deref(),
                kind.as_deref(),
                kinds,
                |e| {
                    let mut e = e;
                    e.origin = origin.to_string();
                    e.document = Some(to_u32(document));
                    e.item = Some(to_u32(idx));
                    e
                },
            );
            if let Ok(ok) = &mut r {
                ok.origin = origin.to_string();
                ok.document = document;
                ok.item = Some(idx);
            }
            r
        })
        .collect()
}

/// Types and dispatches one document (or list item) from a deserializer.
fn load_one<'de, D, K: Kinds>(
    de: D,
    api_version: Option<&str>,
    kind: Option<&str>,
    kinds: &K,
    place: impl Fn(LoadError) -> LoadError,
) -> DocResult
where
    D: Deserializer<'de>,
    D::Error: ErrorLocation,
{
    let blank = |msg: String, field: &str| {
        let mut e = LoadError::new("", None, msg);
        e.field = Some(field.to_string());
        place(e)
    };
    let Some(kind) = kind.filter(|k| !k.is_empty()) else {
        return Err(blank(
            "Required value: every manifest names its kind".into(),
            "kind",
        ));
    };
    let Some(api_version) = api_version.filter(|v| !v.is_empty()) else {
        let hint = kinds::by_kind(kind)
            .map(|k| format!(" (for {kind}: {})", k.api_version()))
            .unwrap_or_default();
        return Err(blank(
            format!("Required value: set apiVersion{hint}"),
            "apiVersion",
        ));
    };

    if let Err(why) = kinds.accept(kind) {
        let mut e = place(LoadError::new("", None, why));
        e.unsupported = true;
        return Err(e);
    }

    enum Target {
        Current(&'static kinds::KindInfo),
        Legacy(&'static kinds::LegacyVersion),
    }
    let target = match (kinds::by_kind(kind), kinds::legacy(api_version, kind)) {
        (_, Some(l)) => Target::Legacy(l),
        (Some(info), None) if info.api_version() == api_version => Target::Current(info),
        (Some(info), None) => {
            let mut e = blank(
                format!(
                    "no kind {kind:?} is registered for version {api_version:?}; use {}",
                    info.api_version()
                ),
                "apiVersion",
            );
            e.field = None;
            return Err(e);
        }
        (None, None) => {
            let mut e = place(LoadError::new(
                "",
                None,
                format!("unsupported kind {kind:?} ({api_version}): kelp does not serve it"),
            ));
            e.unsupported = true;
            return Err(e);
        }
    };

    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result = {
        let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let ignored = serde_ignored::Deserializer::new(de, &mut on_unknown);
        let tracked = serde_path_to_error::Deserializer::new(ignored, &mut track);
        match target {
            Target::Current(info) => kinds.current(info.kind, tracked).and_then(|o| {
                o.map(|o| (o, Vec::new())).ok_or_else(|| {
                    serde::de::Error::custom(format!("unsupported kind {:?}", info.kind))
                })
            }),
            Target::Legacy(l) => kinds.legacy(l, tracked).unwrap_or_else(|| {
                Err(serde::de::Error::custom(format!(
                    "{} {} (removed in Kubernetes {}) is not read here",
                    l.api_version, l.kind, l.removed_in
                )))
            }),
        }
    };
    match result {
        Ok((mut object, mut warnings)) => {
            object.set_type_meta();
            warnings.extend(
                unknown
                    .into_iter()
                    .map(|p: String| format!("unknown field {:?}", k8s_path(&p))),
            );
            Ok(Loaded {
                origin: String::new(),
                document: 0,
                item: None,
                object,
                warnings,
            })
        }
        Err(e) => {
            let path = track.path().to_string();
            let field = (path != "." && !path.is_empty()).then_some(path);
            let mut err = LoadError::new("", None, clean_message(&e.to_string(), field.as_deref()));
            err.line = e.line().map(to_u32);
            err.field = field;
            Err(place(err))
        }
    }
}

/// Types one object already parsed as JSON (an API request body), with the same checks and
/// warnings as a manifest file: `origin` names it in errors.
pub fn load_json_value(value: serde_json::Value, origin: &str) -> DocResult {
    let get = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let (api_version, kind) = (get("apiVersion"), get("kind"));
    let mut r = load_one(
        value,
        api_version.as_deref(),
        kind.as_deref(),
        &AllKinds,
        |mut e| {
            e.origin = origin.to_string();
            e
        },
    );
    if let Ok(ok) = &mut r {
        ok.origin = origin.to_string();
        ok.document = 1;
    }
    r
}

/// The line an error points at, for the deserializers the loader uses.
pub trait ErrorLocation {
    /// 1-based line, when the error knows it.
    fn line(&self) -> Option<usize>;
}

impl ErrorLocation for serde_json::Error {
    fn line(&self) -> Option<usize> {
        // A JSON value (not text) has no lines.
        (self.line() > 0).then(|| self.line())
    }
}

impl ErrorLocation for serde_yaml_ng::Error {
    fn line(&self) -> Option<usize> {
        self.location().map(|l| l.line())
    }
}

/// serde_yaml_ng puts " at line L column C" and its own field path into messages; the
/// loader reports both on its own, so they are dropped from the text.
fn clean_message(msg: &str, field: Option<&str>) -> String {
    let mut msg = msg.to_string();
    if let Some(i) = msg.find(" at line ") {
        let rest = &msg[i + " at line ".len()..];
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let n = digits(rest);
        if n > 0 && rest[n..].starts_with(" column ") {
            let after = &rest[n + " column ".len()..];
            let m = digits(after);
            let tail = after[m..].to_string();
            msg.truncate(i);
            msg.push_str(&tail);
        }
    }
    if let Some(field) = field {
        if let Some(stripped) = msg.strip_prefix(&format!("{field}: ")) {
            return stripped.to_string();
        }
    }
    msg
}

/// serde_ignored prints `spec.containers.0.foo`; Kubernetes prints `spec.containers[0].foo`.
fn k8s_path(p: &str) -> String {
    let mut out = String::new();
    for part in p.split('.').filter(|part| *part != "?") {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// Errors reading files and directories, before any YAML is parsed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The path could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not UTF-8.
    #[error("{path}: not UTF-8 text")]
    NotText {
        /// The file.
        path: PathBuf,
    },
}

/// Loads a file, or every `.yaml`, `.yml` and `.json` file under a directory (sorted, as
/// kubectl does), or stdin for `-`.
pub fn load_path(path: &Path) -> Result<Vec<DocResult>, SourceError> {
    load_path_kinds(path, &AllKinds)
}

/// [`load_path`] for the kinds `kinds` reads; other kinds are errors.
pub fn load_path_kinds<K: Kinds>(path: &Path, kinds: &K) -> Result<Vec<DocResult>, SourceError> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| SourceError::Io {
                path: path.into(),
                source,
            })?;
        return Ok(load_str_kinds(&text, "-", kinds));
    }
    let meta = std::fs::metadata(path).map_err(|source| SourceError::Io {
        path: path.into(),
        source,
    })?;
    if !meta.is_dir() {
        return load_file(path, kinds);
    }
    let mut files = Vec::new();
    collect_manifests(path, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(load_file(&f, kinds)?);
    }
    Ok(out)
}

fn load_file<K: Kinds>(path: &Path, kinds: &K) -> Result<Vec<DocResult>, SourceError> {
    let bytes = std::fs::read(path).map_err(|source| SourceError::Io {
        path: path.into(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| SourceError::NotText { path: path.into() })?;
    Ok(load_str_kinds(&text, &path.display().to_string(), kinds))
}

fn collect_manifests(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SourceError::Io {
        path: dir.into(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SourceError::Io {
            path: dir.into(),
            source,
        })?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|source| SourceError::Io {
            path: path.clone(),
            source,
        })?;
        if ft.is_dir() {
            collect_manifests(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(yaml: &str) -> DocResult {
        let mut docs = load_str(yaml, "t.yaml");
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.remove(0)
    }

    fn err(yaml: &str) -> String {
        one(yaml).unwrap_err().to_string()
    }

    #[test]
    fn multi_document_block_and_flow_styles() {
        let docs = load_str(
            "---\n# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n{apiVersion: v1, kind: ConfigMap, metadata: {name: b}, data: {k: v}}\n---\n",
            "f.yaml",
        );
        let kinds: Vec<_> = docs
            .iter()
            .map(|d| d.as_ref().unwrap().object.kind())
            .collect();
        assert_eq!(kinds, ["Namespace", "ConfigMap"]);
        assert_eq!(docs[1].as_ref().unwrap().document, 3);
    }

    #[test]
    fn json_manifests_load() {
        let d = one(
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}"#,
        );
        assert_eq!(d.unwrap().object.kind(), "Pod");
    }

    #[test]
    fn list_items_are_loaded_one_by_one() {
        let docs = load_str(
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: Secret, metadata: {name: b}, data: {k: '!!'}}\n- {apiVersion: v9, kind: Widget}\n",
            "l.yaml",
        );
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].as_ref().unwrap().item, Some(0));
        let e = docs[1].as_ref().unwrap_err();
        assert_eq!(e.item, Some(1));
        assert_eq!(e.field.as_deref(), Some("data.k"));
        assert!(e.to_string().contains("items[1]"), "{e}");
        assert!(e.to_string().contains("illegal base64"), "{e}");
        assert!(docs[2].as_ref().unwrap_err().unsupported);
    }

    #[test]
    fn errors_name_file_document_line_and_field() {
        let e = one("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: i\n    ports:\n    - containerPort: eighty\n").unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("spec.containers[0].ports[0].containerPort")
        );
        assert_eq!(e.line, Some(10));
        let text = e.to_string();
        assert!(text.starts_with("t.yaml (document 1, line 10): spec.containers[0].ports[0].containerPort: invalid type"), "{text}");
    }

    #[test]
    fn unknown_fields_warn_with_their_path() {
        let d = one("apiVersion: v1\nkind: Pod\nmetadata: {name: p, colour: red}\nspec:\n  containers:\n  - {name: c, image: i, imagePullPolicyy: Always}\n").unwrap();
        assert_eq!(
            d.warnings,
            [
                r#"unknown field "metadata.colour""#,
                r#"unknown field "spec.containers[0].imagePullPolicyy""#
            ]
        );
    }

    #[test]
    fn kind_and_version_problems_are_clear() {
        assert_eq!(
            err("apiVersion: v1\nkind: Deployment\nmetadata: {name: d}\n"),
            r#"t.yaml (document 1): no kind "Deployment" is registered for version "v1"; use apps/v1"#
        );
        assert!(err("kind: Pod\nmetadata: {name: p}\n").contains("apiVersion: Required value"));
        assert!(err("apiVersion: v1\nmetadata: {name: p}\n").contains("kind: Required value"));
        let e = one("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n").unwrap_err();
        assert!(e.unsupported);
        assert!(e
            .to_string()
            .contains(r#"unsupported kind "HorizontalPodAutoscaler""#));
        assert!(err("- a\n- b\n").contains("must be a mapping"));
    }

    #[test]
    fn legacy_versions_load_with_a_deprecation_warning() {
        let d = one("apiVersion: extensions/v1beta1\nkind: DaemonSet\nmetadata: {name: d}\nspec:\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n").unwrap();
        assert_eq!(d.object.kind_info().api_version(), "apps/v1");
        assert_eq!(d.object.to_json()["apiVersion"], "apps/v1");
        assert!(d.warnings[0].contains("deprecated"), "{:?}", d.warnings);
    }

    #[test]
    fn syntax_errors_keep_the_documents_before_them() {
        let docs = load_str(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkey: [unclosed\n",
            "s.yaml",
        );
        assert_eq!(docs.len(), 2);
        assert!(docs[0].is_ok());
        let e = docs[1].as_ref().unwrap_err();
        assert_eq!(e.document, Some(2));
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn directories_are_walked_in_order() {
        let dir = std::env::temp_dir().join(format!("kelp-manifest-test-{}", std::process::id()));
        let sub = dir.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            dir.join("b.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
        )
        .unwrap();
        std::fs::write(
            sub.join("a.yml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
        let docs = load_path(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<_> = docs
            .iter()
            .map(|d| d.as_ref().unwrap().object.metadata().name().to_string())
            .collect();
        assert_eq!(names, ["b", "a"], "b.yaml sorts before sub/a.yml");
        let missing = load_path(Path::new("/nonexistent/kelp.yaml")).unwrap_err();
        assert!(
            missing.to_string().starts_with("/nonexistent/kelp.yaml: "),
            "{missing}"
        );
    }
}
