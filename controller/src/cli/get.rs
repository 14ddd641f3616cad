//! `kelp get`: list or fetch objects and print them as kubectl does; `-w` keeps watching.

use std::process::ExitCode;

use chrono::Utc;
use kelp_shared::api::kinds::KindInfo;
use serde_json::Value;

use super::client::{report_errors, ApiError, Client};
use super::printer::{self, list_at, str_at, TableOptions};
use super::resource::{collection_path, object_path, parse_args, Selection};
use super::tabwriter::TabWriter;
use super::{emit, exit_code, Context, GetArgs, OutputFormat};

/// `kelp get --raw PATH[?QUERY]`: the server's answer as it is (`/metrics`, the Summary API).
fn get_raw(ctx: &Context, raw: &str) -> ExitCode {
    let result = (|| {
        let client = ctx.client()?;
        let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
        let query: Vec<(&str, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k, v.to_owned())
            })
            .collect();
        let mut body = client.stream(path, &query)?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut body, &mut out)
            .map_err(|e| ApiError::Other(format!("reading the answer: {e}")))?;
        Ok::<_, ApiError>(out)
    })();
    match result {
        Ok(bytes) => {
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            emit(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_errors(&[e]);
            ExitCode::FAILURE
        }
    }
}

/// Fills in `apiVersion` and `kind`, which list items from the API leave out.
pub(crate) fn with_type_meta(info: &KindInfo, mut obj: Value) -> Value {
    if let Some(map) = obj.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(info.api_version()));
        map.entry("kind")
            .or_insert_with(|| Value::String(info.kind.to_string()));
    }
    obj
}

/// The query of a list: label and field selectors.
pub(crate) fn list_query(
    selector: Option<&str>,
    field_selector: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(s) = selector.filter(|s| !s.is_empty()) {
        q.push(("labelSelector", s.to_string()));
    }
    if let Some(s) = field_selector.filter(|s| !s.is_empty()) {
        q.push(("fieldSelector", s.to_string()));
    }
    q
}

/// Lists a collection: the items (with type meta) and the list's resourceVersion.
pub(crate) fn list(
    client: &Client,
    info: &KindInfo,
    namespace: Option<&str>,
    query: &[(&str, String)],
) -> Result<(Vec<Value>, String), ApiError> {
    let list = client.get(&collection_path(info, namespace), query)?;
    let rv = str_at(&list, "metadata.resourceVersion").to_string();
    let items = list_at(&list, "items")
        .iter()
        .cloned()
        .map(|o| with_type_meta(info, o))
        .collect();
    Ok((items, rv))
}

/// Resolves the typed resources and connects, reporting either failure as kubectl does.
pub(super) fn selection_and_client<'a>(
    ctx: &'a Context,
    resources: &[String],
) -> Result<(Selection, &'a Client), ExitCode> {
    let selection = parse_args(resources).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })?;
    let client = ctx.client().map_err(|e| {
        report_errors(&[e]);
        ExitCode::FAILURE
    })?;
    Ok((selection, client))
}

/// `kelp get`.
pub fn run(ctx: &Context, args: &GetArgs) -> ExitCode {
    if let Some(raw) = &args.raw {
        return get_raw(ctx, raw);
    }
    let (selection, client) = match selection_and_client(ctx, &args.resources) {
        Ok(sc) => sc,
        Err(code) => return code,
    };
    let watching = args.watch || args.watch_only;
    if watching && selection.groups.len() > 1 {
        eprintln!("error: you may only specify a single resource type when watching");
        return ExitCode::FAILURE;
    }
    let format = args.output;
    let namespace = (!args.all_namespaces).then(|| ctx.default_namespace().to_string());
    let query = list_query(args.selector.as_deref(), args.field_selector.as_deref());
    let mut errors = Vec::new();
    let mut tw = TabWriter::for_tables();
    let mut structured: Vec<Value> = Vec::new();
    let mut single_object = false;
    let mut printed_any = false;
    let mut tables_printed = 0usize;
    let mut watch_from = String::new();

    for (info, names) in &selection.groups {
        let ns = if info.namespaced {
            namespace.as_deref()
        } else {
            None
        };
        let mut items = Vec::new();
        if names.is_empty() {
            match list(client, info, ns, &query) {
                Ok((found, rv)) => {
                    items = found;
                    watch_from = rv;
                }
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
        } else {
            let ns = if info.namespaced {
                Some(ns.unwrap_or(ctx.default_namespace()))
            } else {
                None
            };
            for name in names {
                match client.get(&object_path(info, ns, name), &[]) {
                    Ok(obj) => {
                        watch_from = str_at(&obj, "metadata.resourceVersion").to_string();
                        items.push(with_type_meta(info, obj));
                    }
                    Err(e) => errors.push(e),
                }
            }
            single_object = selection.groups.len() == 1 && names.len() == 1;
        }
        if args.watch_only {
            continue;
        }
        let opts = table_options(args, info, selection.multiple_types());
        match format {
            None | Some(OutputFormat::Wide) => {
                if items.is_empty() {
                    continue;
                }
                if tables_printed > 0 {
                    emit("\n");
                }
                tw.forget_widths();
                emit(&printer::render_table(
                    &mut tw,
                    info,
                    &items,
                    &opts,
                    args.no_headers,
                ));
                tables_printed += 1;
                printed_any = true;
            }
            Some(OutputFormat::Name) => {
                for obj in &items {
                    emit(&format!("{}\n", printer::name_line(info, obj)));
                    printed_any = true;
                }
            }
            Some(OutputFormat::Json | OutputFormat::Yaml) => structured.extend(items),
        }
    }

    if !args.watch_only {
        let nothing_but_errors = structured.is_empty() && !errors.is_empty();
        if let (Some(f @ (OutputFormat::Json | OutputFormat::Yaml)), false) =
            (format, nothing_but_errors)
        {
            let value = if single_object && structured.len() == 1 {
                structured.pop().unwrap_or_default()
            } else {
                printer::list_of(structured)
            };
            emit(&match f {
                OutputFormat::Json => printer::to_json(&value),
                _ => printer::to_yaml(&value),
            });
            printed_any = true;
        }
        if !printed_any && errors.is_empty() && !watching {
            let all_namespaced = selection.groups.iter().all(|(k, _)| k.namespaced);
            match &namespace {
                Some(ns) if all_namespaced => {
                    eprintln!("No resources found in {ns} namespace.")
                }
                _ => eprintln!("No resources found"),
            }
        }
    }

    if watching && errors.is_empty() {
        let (info, names) = &selection.groups[0];
        if names.len() > 1 {
            errors.push(ApiError::Other(
                "watch is only supported on individual resources and resource collections, but more than one name was given".into(),
            ));
        } else {
            let ns = if info.namespaced {
                namespace.as_deref()
            } else {
                None
            };
            let mut query = query.clone();
            if let Some(name) = names.first() {
                let by_name = format!("metadata.name={name}");
                match query.iter_mut().find(|(k, _)| *k == "fieldSelector") {
                    Some((_, v)) => *v = format!("{v},{by_name}"),
                    None => query.push(("fieldSelector", by_name)),
                }
            }
            let opts = table_options(args, info, false);
            if let Err(e) = watch(
                client,
                info,
                ns,
                &query,
                watch_from,
                args,
                &opts,
                &mut tw,
                args.watch_only || tables_printed == 0,
            ) {
                errors.push(e);
            }
        }
    }

    report_errors(&errors);
    exit_code(&errors)
}

fn table_options(args: &GetArgs, info: &KindInfo, with_kind: bool) -> TableOptions {
    let mut opts = TableOptions::new(Utc::now());
    opts.wide = args.output == Some(OutputFormat::Wide);
    opts.with_namespace = args.all_namespaces && info.namespaced;
    opts.show_labels = args.show_labels;
    opts.with_kind = with_kind;
    opts
}

/// Streams changes, one row (or object) per event, until interrupted. A stream the server
/// closes is resumed from the last resourceVersion seen.
#[allow(clippy::too_many_arguments)]
fn watch(
    client: &Client,
    info: &KindInfo,
    namespace: Option<&str>,
    query: &[(&str, String)],
    mut resource_version: String,
    args: &GetArgs,
    opts: &TableOptions,
    tw: &mut TabWriter,
    headers_pending: bool,
) -> Result<(), ApiError> {
    let path = collection_path(info, namespace);
    let mut headers_pending = headers_pending && !args.no_headers;
    let mut yaml_docs = 0usize;
    loop {
        let mut q: Vec<(&str, String)> = query.to_vec();
        if !resource_version.is_empty() {
            q.push(("resourceVersion", resource_version.clone()));
        }
        q.push(("allowWatchBookmarks", "true".into()));
        let stream = client.watch(&path, &q)?;
        for event in stream {
            let event = event?;
            if event.kind == "ERROR" {
                let status = super::client::status_from_body(
                    event
                        .object
                        .get("code")
                        .and_then(Value::as_u64)
                        .unwrap_or(500) as u16,
                    &event.object.to_string(),
                );
                return Err(ApiError::from(status));
            }
            let rv = str_at(&event.object, "metadata.resourceVersion");
            if !rv.is_empty() {
                resource_version = rv.to_string();
            }
            if event.kind == "BOOKMARK" {
                continue;
            }
            let obj = with_type_meta(info, event.object);
            let mut opts = *opts;
            opts.now = Utc::now();
            let text = match args.output {
                None | Some(OutputFormat::Wide) => {
                    if headers_pending {
                        tw.write_row(&printer::headers(info, &opts));
                        headers_pending = false;
                    }
                    tw.write_row(&printer::row(info, &obj, &opts));
                    tw.flush()
                }
                Some(OutputFormat::Name) => format!("{}\n", printer::name_line(info, &obj)),
                Some(OutputFormat::Json) => printer::to_json(&obj),
                Some(OutputFormat::Yaml) => {
                    yaml_docs += 1;
                    let sep = if yaml_docs > 1 { "---\n" } else { "" };
                    format!("{sep}{}", printer::to_yaml(&obj))
                }
            };
            if !emit(&text) {
                return Ok(());
            }
        }
        tracing::debug!(%resource_version, "watch stream ended; resuming");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelp_shared::api::kinds::by_kind;
    use serde_json::json;

    #[test]
    fn list_items_get_their_type_back() {
        let d = with_type_meta(
            by_kind("Deployment").unwrap(),
            json!({"metadata": {"name": "a"}}),
        );
        assert_eq!(d["apiVersion"], "apps/v1");
        assert_eq!(d["kind"], "Deployment");
        let kept = with_type_meta(
            by_kind("Pod").unwrap(),
            json!({"kind": "Pod", "apiVersion": "v1"}),
        );
        assert_eq!(kept["apiVersion"], "v1");
    }

    #[test]
    fn selectors_become_query_parameters() {
        assert_eq!(
            list_query(Some("app=web"), Some("spec.nodeName=pi-1")),
            [
                ("labelSelector", "app=web".to_string()),
                ("fieldSelector", "spec.nodeName=pi-1".to_string())
            ]
        );
        assert!(list_query(Some(""), None).is_empty());
    }
}
