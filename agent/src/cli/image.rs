//! `kelp-agent image`: import, list, remove and build OCI images.
//!
//! The commands work on the node's image store directly (they take its lock), so they can be
//! run while the agent is running or before it was ever started, for example to preload
//! images on an air-gapped node. `build` does not touch the store.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use crate::image::{build_oci_tar, BuildOptions, ImageRecord, ImageStore, Ownership, Platform};

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
    /// static binary (which lands at /NAME and is the default entrypoint).
    Build(Box<BuildArgs>),
}

/// Arguments of `kelp-agent image build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The directory or file to pack.
    pub path: PathBuf,
    /// The tarball to write (replaced if it exists).
    #[arg(short, long, value_name = "OUT.tar")]
    pub output: PathBuf,
    /// The image reference, such as example.com/kelp/app:1.0.
    #[arg(long, value_name = "REF")]
    pub reference: String,
    /// The image platform, os/arch[/variant]. Default: the host's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<Platform>,
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
            if let Some(p) = platform {
                opts.platform = p;
            }
            opts.entrypoint = entrypoint;
            opts.cmd = cmd;
            opts.env = env;
            opts.working_dir = workdir;
            opts.user = user;
            opts.layer_gzip = !no_gzip;
            if root_owned {
                opts.ownership = Ownership::Root;
            }
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
    }
    Ok(())
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
