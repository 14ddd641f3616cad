//! `kelp-agent image`: pull, push, import, list, remove and build OCI images.
//!
//! The commands work on the node's image store directly (they take its lock), so they can be
//! run while the agent is running or before it was ever started, for example to preload
//! images on an air-gapped node. `build` and `push` do not touch the store.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use crate::image::pull::decimal_size;
use crate::image::{
    build_oci_index_tar, build_oci_tar, push_oci_tar, BuildOptions, DockerConfigJson, ImageRecord,
    ImageStore, Ownership, Platform, PullOptions, PullProgress, RegistriesConfig, RegistryOptions,
    REGISTRIES_FILE,
};

/// The `kelp-agent image` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import the image of an OCI image-layout tarball (`skopeo copy … oci-archive:FILE`,
    /// `podman save --format oci-archive`, `docker save`, `kelp-agent image build`).
    Import {
        /// The tarball (plain or gzip-compressed).
        file: PathBuf,
        /// Most bytes the import may write: blobs plus unpacked layers. Suffixes K, M, G, T
        /// (powers of 1024). Default: the free space of the store's filesystem.
        #[arg(long, value_name = "BYTES", value_parser = parse_size)]
        budget: Option<u64>,
    },
    /// List the images of the store.
    #[command(visible_alias = "ls")]
    List,
    /// Remove images, then the blobs and layers no other image uses.
    ///
    /// Do not remove an image that running containers use.
    Rm {
        /// References (short names such as `alpine` work) or manifest digests.
        #[arg(required = true, value_name = "REF")]
        references: Vec<String>,
    },
    /// Build a one-layer image tarball from a directory (its root filesystem) or a single
    /// static binary (which lands at /NAME and is the default entrypoint); with several
    /// `--platform OS/ARCH=PATH`, one image per platform under one index.
    Build(Box<BuildArgs>),
    /// Pull an image from its registry (or the mirrors of the registries file) into the store.
    Pull {
        /// The reference, such as busybox, ghcr.io/org/app:1.0 or host:5000/app@sha256:….
        reference: String,
        /// The platform to pull, os/arch[/variant]. Default: the host's.
        #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
        platform: Option<Platform>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Most bytes the pull may write: blobs plus unpacked layers (K, M, G, T suffixes).
        /// Default: the free space of the store's filesystem.
        #[arg(long, value_name = "BYTES", value_parser = parse_size)]
        budget: Option<u64>,
        /// No progress bar, even on a terminal.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Push the image (or multi-platform index) of an OCI image-layout tarball to a registry.
    Push {
        /// The tarball (`kelp-agent image build` writes one).
        file: PathBuf,
        /// Where to push it, such as registry.site.lan:5000/app:1.0.
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// How `pull` and `push` reach registries.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// The node's registries file (k3s's registries.yaml shape: mirrors, http:// endpoints
    /// for plain-HTTP registries, credentials, CA files); ignored if it does not exist.
    #[arg(long, value_name = "FILE", default_value = REGISTRIES_FILE)]
    pub registries: PathBuf,
    /// A Docker config.json / .dockerconfigjson file with registry credentials (repeatable).
    #[arg(long, value_name = "FILE")]
    pub auth_file: Vec<PathBuf>,
}

impl RegistryArgs {
    fn options(&self) -> anyhow::Result<RegistryOptions> {
        let registries = RegistriesConfig::load_if_present(&self.registries)?;
        let mut secrets = Vec::new();
        for f in &self.auth_file {
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            secrets.push(
                DockerConfigJson::parse(&bytes)
                    .with_context(|| format!("reading {}", f.display()))?,
            );
        }
        Ok(RegistryOptions {
            registries,
            secrets,
            ..RegistryOptions::default()
        })
    }
}

/// `--platform OS/ARCH[/VARIANT][=PATH]` of `image build`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSource {
    /// The platform.
    pub platform: Platform,
    /// Its source, if given (else the PATH argument).
    pub source: Option<PathBuf>,
}

impl FromStr for PlatformSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (p, source) = match s.split_once('=') {
            Some((p, src)) if !src.is_empty() => (p, Some(PathBuf::from(src))),
            Some(_) => return Err(format!("{s:?}: empty path after '='")),
            None => (s, None),
        };
        Ok(Self {
            platform: p
                .parse()
                .map_err(|e: crate::image::ParsePlatformError| e.to_string())?,
            source,
        })
    }
}

/// Arguments of `kelp-agent image build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The directory or file to pack (for the platforms given without `=PATH`).
    pub path: Option<PathBuf>,
    /// The tarball to write (replaced if it exists).
    #[arg(short, long, value_name = "OUT.tar")]
    pub output: PathBuf,
    /// The image reference, such as example.com/kelp/app:1.0.
    #[arg(long, value_name = "REF")]
    pub reference: String,
    /// The image platform, os/arch[/variant], optionally with its own source
    /// (`linux/arm64=target/aarch64-unknown-linux-musl/release/app`). Repeat it to build one
    /// image per platform under one index. Default: the host's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT][=PATH]")]
    pub platform: Vec<PlatformSource>,
    /// An entrypoint argument (repeat for each).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub entrypoint: Vec<String>,
    /// A command argument (repeat for each).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub cmd: Vec<String>,
    /// An environment variable (repeat for each).
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,
    /// The working directory (absolute).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// The user: uid, uid:gid or name.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Make every file owned by uid 0, gid 0 instead of its owner on disk.
    #[arg(long)]
    pub root_owned: bool,
    /// Store the layer as a plain tar instead of tar+gzip.
    #[arg(long)]
    pub no_gzip: bool,
}

/// Runs an image command against the store in `store_dir` (`<state-dir>/images`), printing to
/// standard output.
pub fn run(cmd: ImageCommand, store_dir: &Path) -> anyhow::Result<()> {
    let stdout = io::stdout();
    execute(cmd, store_dir, &mut stdout.lock())
}

/// [`run`], printing to `out`.
pub fn execute(cmd: ImageCommand, store_dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Import { file, budget } => {
            let store = open_store(store_dir)?;
            let budget = match budget {
                Some(b) => b,
                None => free_space(store_dir)?,
            };
            let image = store
                .import_oci_tar(&file, budget)
                .with_context(|| format!("importing {}", file.display()))?;
            writeln!(
                out,
                "imported {} ({}, {} {}, {})",
                image.reference,
                image.config_digest,
                image.layers.len(),
                if image.layers.len() == 1 {
                    "layer"
                } else {
                    "layers"
                },
                human_size(image_size(&image))
            )?;
        }
        ImageCommand::List => {
            let store = open_store(store_dir)?;
            let images = store
                .list()
                .with_context(|| format!("listing the images in {}", store_dir.display()))?;
            write_table(out, &images)?;
        }
        ImageCommand::Rm { references } => {
            let store = open_store(store_dir)?;
            let mut missing = Vec::new();
            for r in &references {
                let removed = store
                    .remove(r)
                    .with_context(|| format!("removing image {r}"))?;
                if removed {
                    writeln!(out, "removed {r}")?;
                } else {
                    missing.push(r.as_str());
                }
            }
            if !missing.is_empty() {
                bail!(
                    "no such image in {}: {}",
                    store_dir.display(),
                    missing.join(", ")
                );
            }
        }
        ImageCommand::Build(args) => {
            let BuildArgs {
                path,
                output,
                reference,
                platform,
                entrypoint,
                cmd,
                env,
                workdir,
                user,
                root_owned,
                no_gzip,
            } = *args;
            let mut opts = BuildOptions::new(reference);
            opts.entrypoint = entrypoint;
            opts.cmd = cmd;
            opts.env = env;
            opts.working_dir = workdir;
            opts.user = user;
            opts.layer_gzip = !no_gzip;
            if root_owned {
                opts.ownership = Ownership::Root;
            }
            let mut sources = Vec::new();
            for ps in platform {
                let src = match (ps.source, &path) {
                    (Some(src), _) => src,
                    (None, Some(p)) => p.clone(),
                    (None, None) => bail!(
                        "--platform {} has no source: give PATH or --platform {}=PATH",
                        ps.platform,
                        ps.platform
                    ),
                };
                sources.push((ps.platform, src));
            }
            if sources.len() > 1 {
                let built = build_oci_index_tar(&sources, &opts, &output)
                    .with_context(|| format!("building {}", output.display()))?;
                for image in &built.images {
                    writeln!(
                        out,
                        "built {} for {} ({}, {})",
                        image.reference,
                        image.platform,
                        image.config_digest,
                        human_size(image.layer_size),
                    )?;
                }
                writeln!(
                    out,
                    "built index {} ({} platforms) in {}",
                    built.index_digest,
                    built.images.len(),
                    output.display()
                )?;
                return Ok(());
            }
            let path = match sources.pop() {
                Some((p, src)) => {
                    opts.platform = p;
                    src
                }
                None => path.context("give the directory or file to pack (PATH)")?,
            };
            let built = build_oci_tar(&path, &opts, &output).with_context(|| {
                format!("building {} from {}", output.display(), path.display())
            })?;
            writeln!(
                out,
                "built {} ({}, {}, {}) in {}",
                built.reference,
                built.config_digest,
                built.platform,
                human_size(built.layer_size),
                output.display()
            )?;
        }
        ImageCommand::Pull {
            reference,
            platform,
            registry,
            budget,
            quiet,
        } => {
            let mut store = open_store(store_dir)?;
            if let Some(p) = platform {
                store = store.with_platform(p);
            }
            let budget = match budget {
                Some(b) => b,
                None => free_space(store_dir)?,
            };
            let bar = (!quiet && io::stderr().is_terminal()).then(ProgressBar::new);
            let opts = PullOptions {
                registry: registry.options()?,
                budget,
                progress: bar.as_ref().map(ProgressBar::callback),
            };
            let result = store.pull_report(&reference, &opts);
            if let Some(bar) = &bar {
                bar.finish();
            }
            let report = result.with_context(|| format!("pulling {reference}"))?;
            writeln!(
                out,
                "pulled {} ({}, {}, {}) in {:.1}s, {} downloaded",
                report.image.reference,
                report.image.config_digest,
                report.image.platform,
                human_size(report.image_size),
                report.elapsed.as_secs_f64(),
                decimal_size(report.downloaded),
            )?;
        }
        ImageCommand::Push {
            file,
            reference,
            registry,
        } => {
            let report = push_oci_tar(&file, &reference, &registry.options()?)
                .with_context(|| format!("pushing {} to {reference}", file.display()))?;
            writeln!(
                out,
                "pushed {}@{} ({} blobs uploaded, {}; {} already there; {} manifests)",
                report.reference,
                report.digest,
                report.blobs_uploaded,
                decimal_size(report.bytes_uploaded),
                report.blobs_present,
                report.manifests,
            )?;
        }
    }
    Ok(())
}

/// A one-line progress bar on standard error, redrawn at most ten times a second.
struct ProgressBar {
    state: Arc<Mutex<(Instant, Option<PullProgress>)>>,
}

impl ProgressBar {
    fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new((Instant::now(), None))),
        }
    }

    fn callback(&self) -> crate::image::pull::ProgressFn {
        let state = Arc::clone(&self.state);
        Arc::new(move |p: &PullProgress| {
            let Ok(mut s) = state.lock() else { return };
            let due =
                s.1.is_none() || s.0.elapsed() >= Duration::from_millis(100) || p.done == p.total;
            s.1 = Some(p.clone());
            if due {
                s.0 = Instant::now();
                draw(p);
            }
        })
    }

    fn finish(&self) {
        if let Ok(s) = self.state.lock() {
            if let Some(p) = &s.1 {
                draw(p);
                eprintln!();
            }
        }
    }
}

fn draw(p: &PullProgress) {
    const WIDTH: u64 = 30;
    let filled = (p.done.min(p.total) * WIDTH)
        .checked_div(p.total)
        .unwrap_or(WIDTH);
    eprint!(
        "\r{} [{}{}] {} / {}   ",
        p.reference,
        "#".repeat(filled as usize),
        " ".repeat((WIDTH - filled) as usize),
        decimal_size(p.done),
        decimal_size(p.total)
    );
}

fn open_store(dir: &Path) -> anyhow::Result<ImageStore> {
    ImageStore::open(dir).with_context(|| format!("opening the image store {}", dir.display()))
}

/// Bytes available to unprivileged users on the filesystem holding `dir`.
fn free_space(dir: &Path) -> anyhow::Result<u64> {
    let st = rustix::fs::statvfs(dir)
        .with_context(|| format!("reading the free space of {}", dir.display()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The size shown for an image: its layer blobs as stored (usually compressed).
fn image_size(image: &ImageRecord) -> u64 {
    image.layers.iter().map(|l| l.size).sum()
}

/// The `list` table: REFERENCE, IMAGE ID (12 hex digits of the config digest), PLATFORM,
/// SIZE (layer blobs).
fn write_table(out: &mut dyn Write, images: &[ImageRecord]) -> io::Result<()> {
    let mut rows = vec![[
        "REFERENCE".to_owned(),
        "IMAGE ID".to_owned(),
        "PLATFORM".to_owned(),
        "SIZE".to_owned(),
    ]];
    for i in images {
        rows.push([
            i.reference.clone(),
            i.config_digest.hex()[..12].to_owned(),
            i.platform.to_string(),
            human_size(image_size(i)),
        ]);
    }
    let mut widths = [0; 4];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   "));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `1536` → `1.5 KiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Parses a byte count: digits, optionally followed by K, M, G or T (powers of 1024; `Ki`,
/// `KiB` and `KB` are read the same way).
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 1048576, 512M, 2G)"))?;
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KI" | "KB" | "KIB" => 10,
        "M" | "MI" | "MB" | "MIB" => 20,
        "G" | "GI" | "GB" | "GIB" => 30,
        "T" | "TI" | "TB" | "TIB" => 40,
        _ => return Err(format!("{s:?}: unknown unit {suffix:?} (use K, M, G or T)")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("3k"), Ok(3 << 10));
        assert!(parse_size("").is_err());
        assert!(parse_size("12X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("99999999999999T")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
