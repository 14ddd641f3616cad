//! Walks every manifest in `../shared/fixtures/k8s-examples/` (real Kubernetes examples that
//! nobody here wrote). Expectations come from INDEX.tsv's kinds column and kelp's kind table:
//! supported kinds load and validate, others are reported as unsupported; the files known to
//! be broken are listed by hand with a substring their error must contain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kelp_shared::api::kinds;
use kelp_shared::manifest::{load_path, DocResult};

fn fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/k8s-examples");
    assert!(
        dir.join("INDEX.tsv").is_file(),
        "missing fixtures: expected {} (the read-only shared/ folder beside the project)",
        dir.display()
    );
    dir
}

struct IndexRow {
    path: String,
    kinds: Vec<String>,
    api_versions: Vec<String>,
    notes: String,
}

fn index() -> Vec<IndexRow> {
    let text = std::fs::read_to_string(fixtures_dir().join("INDEX.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
            IndexRow {
                path: cols[0].to_string(),
                kinds: split(cols[1]),
                api_versions: split(cols[2]),
                notes: cols.get(4).unwrap_or(&"").to_string(),
            }
        })
        .collect()
}

/// Files known to be broken, with a substring their error must contain.
const BROKEN: &[(&str, &str)] = &[
    // A `\'` escape inside a double-quoted scalar: invalid YAML.
    ("pods/inject/envars-file-container.yaml", "line 9"),
    // A TAB starts line 15: invalid YAML.
    (
        "pods/inject/pod-multiple-secret-env-variable.yaml",
        "line 15",
    ),
    // `metadata.annotations` is a list, not a map.
    (
        "secret/serviceaccount/mysecretname.yaml",
        "metadata.annotations: invalid type: sequence",
    ),
];

/// Files that load with a warning about a field kelp (and Kubernetes) does not know.
const WARNED: &[(&str, &str)] = &[
    // `resourceName` should be `resourceNames`.
    (
        "access/certificate-signing-request/clusterrole-sign.yaml",
        "rules[2].resourceName",
    ),
    // emptyDir has no `mode`.
    (
        "pods/emptydir-volume-mode.yaml",
        "spec.volumes[0].emptyDir.mode",
    ),
];

fn is_supported(api_version: &str, kind: &str) -> bool {
    kinds::legacy(api_version, kind).is_some()
        || kinds::by_kind(kind).is_some_and(|k| k.api_version() == api_version)
}

#[test]
fn every_fixture_loads_or_is_rejected_clearly() {
    let dir = fixtures_dir();
    let rows = index();
    assert!(rows.len() > 100, "INDEX.tsv lists {} files", rows.len());
    let (mut accepted, mut warned, mut rejected, mut unsupported) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for row in &rows {
        let results: Vec<DocResult> =
            load_path(&dir.join(&row.path)).unwrap_or_else(|e| panic!("{}: {e}", row.path));
        let broken = BROKEN.iter().find(|(p, _)| *p == row.path);
        let warn = WARNED.iter().find(|(p, _)| *p == row.path);
        if let Some((_, needle)) = broken {
            let errs: Vec<String> = results
                .iter()
                .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
                .collect();
            rejected += errs.len();
            if !errs.iter().any(|e| e.contains(needle)) {
                failures.push(format!(
                    "{}: expected an error containing {needle:?}, got {errs:?}",
                    row.path
                ));
            }
            continue;
        }
        // What INDEX.tsv says is in the file; a List contributes its items.
        let mut expected: Vec<(String, String)> = Vec::new();
        for (kind, api_version) in row.kinds.iter().zip(&row.api_versions) {
            if kind == "List" {
                let items = row.notes.trim_start_matches("List items: ");
                expected.extend(
                    items
                        .split(',')
                        .map(|k| (k.to_string(), api_version.clone())),
                );
            } else {
                expected.push((kind.clone(), api_version.clone()));
            }
        }
        if results.len() != expected.len() {
            failures.push(format!(
                "{}: {} documents, INDEX.tsv says {}",
                row.path,
                results.len(),
                expected.len()
            ));
            continue;
        }
        for (result, (kind, api_version)) in results.iter().zip(&expected) {
            match (result, is_supported(api_version, kind)) {
                (Ok(loaded), true) => {
                    if loaded.object.kind() != kind {
                        failures.push(format!(
                            "{}: loaded {} for {kind}",
                            row.path,
                            loaded.object.kind()
                        ));
                    }
                    if loaded.warnings.is_empty() {
                        accepted += 1;
                    } else {
                        warned += 1;
                    }
                    let unknown: Vec<&String> = loaded
                        .warnings
                        .iter()
                        .filter(|w| w.starts_with("unknown field"))
                        .collect();
                    match warn {
                        Some((_, needle)) if !unknown.iter().any(|w| w.contains(needle)) => {
                            failures.push(format!(
                                "{}: expected a warning containing {needle:?}, got {:?}",
                                row.path, loaded.warnings
                            ))
                        }
                        None if !unknown.is_empty() => {
                            failures.push(format!("{}: unexpected warnings {unknown:?}", row.path))
                        }
                        _ => {}
                    }
                    // Supported kinds validate, before and after defaulting.
                    let mut defaulted = loaded.object.clone();
                    kelp_shared::api::defaults::apply(&mut defaulted);
                    for obj in [&loaded.object, &defaulted] {
                        let errs = kelp_shared::api::validation::validate(obj);
                        if !errs.is_empty() {
                            failures.push(format!(
                                "{}: {kind} is invalid: {}",
                                row.path,
                                kelp_shared::api::validation::aggregate(&errs)
                            ));
                        }
                    }
                    // Typed objects survive JSON unchanged.
                    let json = loaded.object.to_json();
                    let back = kelp_shared::api::Object::from_json(kind, json.clone()).unwrap();
                    if back != loaded.object {
                        failures.push(format!(
                            "{}: {kind} does not round-trip through JSON",
                            row.path
                        ));
                    }
                }
                (Err(e), true) => failures.push(format!("{}: {kind} should load: {e}", row.path)),
                (Ok(_), false) => failures.push(format!(
                    "{}: {kind} ({api_version}) is unsupported but loaded",
                    row.path
                )),
                (Err(e), false) => {
                    unsupported += 1;
                    if !e.unsupported
                        || !e
                            .to_string()
                            .contains(&format!("unsupported kind {kind:?}"))
                    {
                        failures.push(format!(
                            "{}: expected 'unsupported kind {kind:?}', got {e}",
                            row.path
                        ));
                    }
                }
            }
        }
    }
    println!(
        "fixtures: {} files; documents accepted {accepted}, warned {warned}, rejected {rejected}, unsupported {unsupported}",
        rows.len()
    );
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(accepted > 80, "only {accepted} documents accepted cleanly");
}

#[test]
fn the_whole_fixture_directory_loads_in_one_call() {
    // Directories are walked recursively, files sorted, every document reported.
    let results = load_path(&fixtures_dir()).unwrap();
    let docs: BTreeMap<bool, usize> = results.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.is_ok()).or_default() += 1;
        m
    });
    assert!(docs[&true] > 100, "{docs:?}");
    assert!(docs[&false] > 10, "{docs:?}");
}
