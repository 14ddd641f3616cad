//! `kelp top nodes` and `kelp top pods [--containers]`, printed as kubectl prints them, from
//! the resource metrics API (`/apis/metrics.k8s.io/v1beta1`) the server serves from the
//! metrics nodes publish every minute.
//!
//! CPU in millicores (`250m`), memory in MiB (`64Mi`), percentages of the node's allocatable
//! (kubectl's default), truncated. A node without metrics shows `<unknown>`; with no
//! metrics at all (the first minute after nodes join), `error: metrics not available yet`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kelp_shared::api::quantity::Quantity;
use serde_json::Value;

use super::client::{report_errors, ApiError};
use super::tabwriter::TabWriter;
use super::{emit, Context};
use crate::metrics::resource::{GROUP, VERSION};

/// `kelp top ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum TopCommand {
    /// CPU and memory of nodes.
    #[command(visible_aliases = ["node", "no"])]
    Nodes(TopNodesArgs),
    /// CPU and memory of pods.
    #[command(visible_aliases = ["pod", "po"])]
    Pods(TopPodsArgs),
}

/// `kelp top nodes`.
#[derive(Debug, Clone, Args)]
pub struct TopNodesArgs {
    /// Only this node.
    pub name: Option<String>,
    /// Leave out the header row.
    #[arg(long)]
    pub no_headers: bool,
}

/// `kelp top pods`.
#[derive(Debug, Clone, Args)]
pub struct TopPodsArgs {
    /// Only this pod.
    pub name: Option<String>,
    /// Each container of the pods.
    #[arg(long)]
    pub containers: bool,
    /// Pods of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Leave out the header row.
    #[arg(long)]
    pub no_headers: bool,
}

/// The error kubectl prints when the metrics API has nothing yet.
pub const NOT_YET: &str = "metrics not available yet";

/// Runs `kelp top`.
pub fn run(ctx: &Context, command: &TopCommand) -> ExitCode {
    let result = match command {
        TopCommand::Nodes(args) => nodes(ctx, args),
        TopCommand::Pods(args) => pods(ctx, args),
    };
    match result {
        Ok(text) => {
            emit(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_errors(&[e]);
            ExitCode::FAILURE
        }
    }
}

fn base() -> String {
    format!("/apis/{GROUP}/{VERSION}")
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

fn quantity(v: &Value) -> Option<Quantity> {
    v.as_str().and_then(|s| Quantity::parse(s).ok())
}

/// Millicores and bytes of a `usage` object.
fn usage(v: &Value) -> (i64, i64) {
    (
        quantity(&v["cpu"]).map_or(0, |q| q.milli_value()),
        quantity(&v["memory"]).map_or(0, |q| q.value()),
    )
}

fn cpu_text(millis: i64) -> String {
    format!("{millis}m")
}

fn memory_text(bytes: i64) -> String {
    format!("{}Mi", bytes / (1024 * 1024))
}

/// kubectl's `float64(usage) / float64(allocatable) * 100`, truncated.
fn percent(usage: i64, allocatable: i64) -> String {
    if allocatable <= 0 {
        return "<unknown>".into();
    }
    format!("{}%", (usage as f64 / allocatable as f64 * 100.0) as i64)
}

/// The `top nodes` table: `metrics` from the API, `nodes` the Node objects (allocatable;
/// nodes without metrics are listed last with `<unknown>`, as kubectl lists them).
pub fn render_nodes(metrics: &[Value], nodes: &[Value], no_headers: bool) -> String {
    let mut w = TabWriter::for_tables();
    if !no_headers {
        w.write_row(&["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]);
    }
    let allocatable: BTreeMap<&str, (i64, i64)> = nodes
        .iter()
        .filter_map(|n| {
            let name = n["metadata"]["name"].as_str()?;
            let status = &n["status"];
            let pick = |r: &str| {
                quantity(&status["allocatable"][r]).or_else(|| quantity(&status["capacity"][r]))
            };
            Some((
                name,
                (
                    pick("cpu").map_or(0, |q| q.milli_value()),
                    pick("memory").map_or(0, |q| q.milli_value()),
                ),
            ))
        })
        .collect();
    let mut rows: Vec<(&str, i64, i64)> = metrics
        .iter()
        .filter_map(|m| {
            let (cpu, memory) = usage(&m["usage"]);
            Some((m["metadata"]["name"].as_str()?, cpu, memory))
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    for (name, cpu, memory) in &rows {
        let (cpu_alloc, memory_alloc) = allocatable.get(name).copied().unwrap_or((0, 0));
        w.write_row(&[
            name.to_string(),
            cpu_text(*cpu),
            percent(*cpu, cpu_alloc),
            memory_text(*memory),
            percent(memory.saturating_mul(1000), memory_alloc),
        ]);
    }
    for name in allocatable.keys() {
        if !rows.iter().any(|(n, _, _)| n == name) {
            w.write_row(&[name, &"<unknown>", &"<unknown>", &"<unknown>", &"<unknown>"]);
        }
    }
    w.flush()
}

/// The `top pods` table (`--containers`: a row per container; `-A`: a NAMESPACE column).
pub fn render_pods(metrics: &[Value], containers: bool, all: bool, no_headers: bool) -> String {
    let mut w = TabWriter::for_tables();
    if !no_headers {
        let mut header = Vec::new();
        if all {
            header.push("NAMESPACE");
        }
        if containers {
            header.extend(["POD", "NAME"]);
        } else {
            header.push("NAME");
        }
        header.extend(["CPU(cores)", "MEMORY(bytes)"]);
        w.write_row(&header);
    }
    let mut pods: Vec<&Value> = metrics.iter().collect();
    pods.sort_by_key(|p| {
        (
            p["metadata"]["namespace"].as_str().unwrap_or(""),
            p["metadata"]["name"].as_str().unwrap_or(""),
        )
    });
    for pod in pods {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let list = pod["containers"].as_array().cloned().unwrap_or_default();
        let mut prefix = Vec::new();
        if all {
            prefix.push(ns.to_owned());
        }
        if containers {
            for c in &list {
                let (cpu, memory) = usage(&c["usage"]);
                let mut row = prefix.clone();
                row.push(name.to_owned());
                row.push(c["name"].as_str().unwrap_or("").to_owned());
                row.push(cpu_text(cpu));
                row.push(memory_text(memory));
                w.write_row(&row);
            }
        } else {
            let (cpu, memory) = list.iter().fold((0, 0), |(c, m), x| {
                let (dc, dm) = usage(&x["usage"]);
                (c + dc, m + dm)
            });
            let mut row = prefix;
            row.push(name.to_owned());
            row.push(cpu_text(cpu));
            row.push(memory_text(memory));
            w.write_row(&row);
        }
    }
    w.flush()
}

fn nodes(ctx: &Context, args: &TopNodesArgs) -> Result<String, ApiError> {
    let client = ctx.client()?;
    let (metrics, nodes) = match &args.name {
        Some(name) => {
            let node = client.get(&format!("/api/v1/nodes/{name}"), &[])?;
            let metrics = match client.get(&format!("{}/nodes/{name}", base()), &[]) {
                Ok(m) => vec![m],
                Err(e) if e.is_not_found() => Vec::new(),
                Err(e) => return Err(e),
            };
            (metrics, vec![node])
        }
        None => (
            items(&client.get(&format!("{}/nodes", base()), &[])?),
            items(&client.get("/api/v1/nodes", &[])?),
        ),
    };
    if metrics.is_empty() {
        return Err(ApiError::Other(NOT_YET.into()));
    }
    Ok(render_nodes(&metrics, &nodes, args.no_headers))
}

fn pods(ctx: &Context, args: &TopPodsArgs) -> Result<String, ApiError> {
    let client = ctx.client()?;
    let ns = ctx.default_namespace();
    let (metrics_path, pods_path) = if args.all_namespaces {
        (format!("{}/pods", base()), "/api/v1/pods".to_owned())
    } else {
        (
            format!("{}/namespaces/{ns}/pods", base()),
            format!("/api/v1/namespaces/{ns}/pods"),
        )
    };
    let mut metrics = match &args.name {
        Some(name) if !args.all_namespaces => {
            match client.get(&format!("{metrics_path}/{name}"), &[]) {
                Ok(m) => vec![m],
                Err(e) if e.is_not_found() => Vec::new(),
                Err(e) => return Err(e),
            }
        }
        _ => items(&client.get(&metrics_path, &[])?),
    };
    if let Some(name) = &args.name {
        metrics.retain(|m| m["metadata"]["name"].as_str() == Some(name));
    }
    if metrics.is_empty() {
        // kubectl: pods without metrics yet are an error; no pods at all is not.
        let mut pods = items(&client.get(&pods_path, &[])?);
        if let Some(name) = &args.name {
            pods.retain(|p| p["metadata"]["name"].as_str() == Some(name));
        }
        if !pods.is_empty() {
            return Err(ApiError::Other(NOT_YET.into()));
        }
        if let Some(name) = &args.name {
            return Err(ApiError::Other(format!("pods \"{name}\" not found")));
        }
        if args.all_namespaces {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {ns} namespace.");
        }
        return Ok(String::new());
    }
    Ok(render_pods(
        &metrics,
        args.containers,
        args.all_namespaces,
        args.no_headers,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nodes_as_kubectl_prints_them() {
        let metrics = [
            json!({"metadata": {"name": "pi-2"}, "usage": {"cpu": "1500000000n", "memory": "2Gi"}}),
            json!({"metadata": {"name": "pi-1"}, "usage": {"cpu": "250m", "memory": "512Mi"}}),
        ];
        let nodes = [
            json!({"metadata": {"name": "pi-1"}, "status": {"allocatable": {"cpu": "4", "memory": "4Gi"}}}),
            json!({"metadata": {"name": "pi-2"}, "status": {"capacity": {"cpu": "4", "memory": "8Gi"}}}),
            json!({"metadata": {"name": "pi-3"}, "status": {"allocatable": {"cpu": "4", "memory": "4Gi"}}}),
        ];
        assert_eq!(
            render_nodes(&metrics, &nodes, false),
            "NAME   CPU(cores)   CPU%        MEMORY(bytes)   MEMORY%\n\
             pi-1   250m         6%          512Mi           12%\n\
             pi-2   1500m        37%         2048Mi          25%\n\
             pi-3   <unknown>    <unknown>   <unknown>       <unknown>\n"
        );
        assert_eq!(
            render_nodes(&metrics[1..], &nodes[..1], true),
            "pi-1   250m   6%    512Mi   12%\n"
        );
    }

    #[test]
    fn pods_and_containers_as_kubectl_prints_them() {
        let metrics = [
            json!({"metadata": {"name": "web", "namespace": "default"}, "containers": [
                {"name": "nginx", "usage": {"cpu": "1m", "memory": "3Mi"}},
                {"name": "log", "usage": {"cpu": "2500000n", "memory": "1Mi"}},
            ]}),
            json!({"metadata": {"name": "dns", "namespace": "kube-system"}, "containers": [
                {"name": "coredns", "usage": {"cpu": "0", "memory": "10Mi"}},
            ]}),
        ];
        assert_eq!(
            render_pods(&metrics[..1], false, false, false),
            "NAME   CPU(cores)   MEMORY(bytes)\nweb    4m           4Mi\n"
        );
        assert_eq!(
            render_pods(&metrics[..1], true, false, false),
            "POD   NAME    CPU(cores)   MEMORY(bytes)\n\
             web   nginx   1m           3Mi\n\
             web   log     3m           1Mi\n"
        );
        assert_eq!(
            render_pods(&metrics, false, true, false),
            "NAMESPACE     NAME   CPU(cores)   MEMORY(bytes)\n\
             default       web    4m           4Mi\n\
             kube-system   dns    0m           10Mi\n"
        );
    }
}
