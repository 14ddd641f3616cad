//! Image store acceptance, end to end: crafted hostile layers through
//! `ImageStore::import_oci_tar` and `kelp-agent image import`, and the `kelp-agent image`
//! commands on a busybox image built from the host's `busybox-static`.
//!
//! The hostile layers try to write outside the layer root four ways: a `..` entry, an
//! absolute path, a write through a symlink to `/tmp`, and a hard link to a host file followed
//! by a write through it. Each import must be refused, or confined to the layer root, and
//! nothing outside may change: the host file keeps its content and link count, and no file
//! named by the test appears in `/tmp`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kelp_agent::image::{build_oci_tar, busybox_rootfs, BuildOptions, ImageStore};
use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

const BIG: u64 = 1 << 30;
const REF: &str = "example.com/kelp/hostile:1";

// ---------------------------------------------------------------------------------------------
// Helpers

/// A scratch directory holding the store, the tarballs and an `outside` directory with a host
/// file that no import may touch.
struct Scratch {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    secret: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("kelp-image-cli-")
            .tempdir()
            .unwrap();
        let base = tmp.path().to_path_buf();
        fs::create_dir(base.join("outside")).unwrap();
        let secret = base.join("outside/secret");
        fs::write(&secret, b"host data").unwrap();
        Self {
            _tmp: tmp,
            base,
            secret,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.base.join("state")
    }

    fn store(&self) -> ImageStore {
        ImageStore::open(self.state_dir().join("images")).unwrap()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.base.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    /// Everything outside the store, with file contents.
    fn outside(&self) -> BTreeMap<PathBuf, (u32, u64, Option<Vec<u8>>)> {
        let mut out = BTreeMap::new();
        walk(&self.base.join("outside"), &mut out);
        out
    }

    /// Runs `kelp-agent --state-dir <state> image ARGS…`.
    fn cli(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_kelp-agent"))
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("image")
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .output()
            .unwrap();
        eprintln!(
            "kelp-agent image {args:?}: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Asserts the store holds no image and no leftover of a failed import.
    fn assert_store_empty(&self) {
        let images = self.state_dir().join("images");
        assert!(self.store().list().unwrap().is_empty());
        for sub in ["blobs/sha256", "layers/sha256", "tmp"] {
            let n = fs::read_dir(images.join(sub)).unwrap().count();
            assert_eq!(n, 0, "{sub} is not empty after a refused import");
        }
    }
}

fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (u32, u64, Option<Vec<u8>>)>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let md = fs::symlink_metadata(&p).unwrap();
        let content = md.is_file().then(|| fs::read(&p).unwrap());
        out.insert(p.clone(), (md.mode(), md.nlink(), content));
        if md.is_dir() {
            walk(&p, out);
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sha256(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// A layer written header by header, with names and link targets as raw bytes so that `..`
/// and absolute paths get through unchanged.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn raw(mut self, path: &str, kind: EntryType, link: &str, data: &[u8]) -> Self {
        let mut h = Header::new_gnu();
        let name = path.as_bytes();
        assert!(name.len() <= 100, "test paths must fit the old header");
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.set_link_name_literal(link).unwrap();
        }
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(self, path: &str, data: &[u8]) -> Self {
        self.raw(path, EntryType::Regular, "", data)
    }

    fn symlink(self, path: &str, target: &str) -> Self {
        self.raw(path, EntryType::Symlink, target, b"")
    }

    fn hardlink(self, path: &str, target: &str) -> Self {
        self.raw(path, EntryType::Link, target, b"")
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// An OCI image-layout tarball of one image with `layer` as its only (uncompressed) layer.
/// No platform is given, so any node accepts it.
fn layout_tarball(layer: &[u8]) -> Vec<u8> {
    let config = serde_json::to_vec(&serde_json::json!({
        "config": {"Entrypoint": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha256(layer),
            "size": layer.len(),
        }],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": REF},
        }],
    }))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: String, data: &[u8]| {
        let mut h = Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);
    for blob in [layer, &config[..], &manifest[..]] {
        add(format!("blobs/sha256/{}", &sha256(blob)[7..]), blob);
    }
    add("index.json".into(), &index);
    b.into_inner().unwrap()
}

/// A file name in `/tmp` that only this test uses; it must not exist before or after.
struct HostTmpName {
    name: String,
}

impl HostTmpName {
    fn new(case: &str) -> Self {
        let name = format!("kelp-escape-{}-{case}", std::process::id());
        let me = Self { name };
        me.assert_absent();
        me
    }

    fn path(&self) -> PathBuf {
        Path::new("/tmp").join(&self.name)
    }

    fn assert_absent(&self) {
        assert!(
            fs::symlink_metadata(self.path()).is_err(),
            "{} exists on the host",
            self.path().display()
        );
    }
}

impl Drop for HostTmpName {
    fn drop(&mut self) {
        // Only ever reached with a file there if an assertion already failed.
        let _ = fs::remove_file(self.path());
    }
}

/// The hostile layers, by name.
const HOSTILE: [&str; 5] = [
    "dotdot-deep",
    "dotdot-short",
    "hardlink-absolute",
    "hardlink-dotdot",
    "hardlink-via-symlink",
];

/// A hostile layer aimed at the scratch directory's host file or at `/tmp`: the layer, the
/// `/tmp` name it aims at, and what its refusal must mention.
fn hostile_layer(s: &Scratch, case: &str, tag: &str) -> (Vec<u8>, HostTmpName, &'static str) {
    let secret = s.secret.to_str().unwrap();
    let host = HostTmpName::new(&format!("{tag}-{case}"));
    let (layer, why) = match case {
        // (a) `..` entries: deep enough to reach /tmp from any store location, and short.
        "dotdot-deep" => {
            let deep = format!("{}tmp/{}", "../".repeat(20), host.name);
            let layer = Layer::new().file("ok", b"fine").file(&deep, b"escaped");
            (layer, "`..`")
        }
        "dotdot-short" => (Layer::new().file("../escape", b"escaped"), "`..`"),
        // (d) a hard link to the host file, then a write through the link name: by absolute
        // path, through `..`, and through a symlink to the host directory.
        "hardlink-absolute" => (
            Layer::new()
                .hardlink("pwn", secret)
                .file("pwn", b"overwritten"),
            "hard link",
        ),
        "hardlink-dotdot" => (
            Layer::new()
                .hardlink("pwn", &format!("{}{}", "../".repeat(20), &secret[1..]))
                .file("pwn", b"overwritten"),
            "`..`",
        ),
        "hardlink-via-symlink" => (
            Layer::new()
                .symlink("host", s.base.join("outside").to_str().unwrap())
                .hardlink("pwn", "host/secret")
                .file("pwn", b"overwritten"),
            "hard link",
        ),
        other => panic!("unknown case {other}"),
    };
    (layer.finish(), host, why)
}

/// Layers that unpack, confined to the layer root: (name, layer, host name, path of the file
/// inside the root).
fn confined_cases(tag: &str) -> Vec<(&'static str, Vec<u8>, HostTmpName, String)> {
    let mut cases = Vec::new();
    // (b) an absolute path.
    let t = HostTmpName::new(&format!("{tag}-absolute"));
    let layer = Layer::new()
        .file(&format!("/tmp/{}", t.name), b"confined")
        .finish();
    let inside = format!("tmp/{}", t.name);
    cases.push(("absolute", layer, t, inside));
    // (c) a symlink to /tmp, then a file written through it.
    let t = HostTmpName::new(&format!("{tag}-symlink"));
    let layer = Layer::new()
        .symlink("evil", "/tmp")
        .file(&format!("evil/{}", t.name), b"confined")
        .finish();
    let inside = format!("tmp/{}", t.name);
    cases.push(("symlink", layer, t, inside));
    cases
}

// ---------------------------------------------------------------------------------------------
// Hostile layers through the library

#[test]
fn hostile_layers_are_refused_and_change_nothing_outside() {
    let host_nlink = fs::metadata("/etc/passwd").unwrap().nlink();
    for case in HOSTILE {
        let s = Scratch::new();
        let (layer, host, why) = hostile_layer(&s, case, "lib");
        let before = s.outside();
        let tarball = s.write("hostile.tar", &layout_tarball(&layer));
        let err = s
            .store()
            .import_oci_tar(&tarball, BIG)
            .expect_err(case)
            .to_string();
        assert!(err.contains(why), "{case}: {err}");
        host.assert_absent();
        assert_eq!(s.outside(), before, "{case}: the host directory changed");
        assert_eq!(fs::read(&s.secret).unwrap(), b"host data");
        assert_eq!(fs::metadata(&s.secret).unwrap().nlink(), 1, "{case}");
        s.assert_store_empty();
    }
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), host_nlink);
}

#[test]
fn absolute_paths_and_symlinks_to_tmp_stay_in_the_layer() {
    for (case, layer, host, inside) in confined_cases("lib") {
        let s = Scratch::new();
        let before = s.outside();
        let tarball = s.write("confined.tar", &layout_tarball(&layer));
        let image = s.store().import_oci_tar(&tarball, BIG).expect(case);
        let root = &image.layers[0].rootfs;
        assert_eq!(fs::read(root.join(&inside)).unwrap(), b"confined", "{case}");
        host.assert_absent();
        assert_eq!(s.outside(), before, "{case}");
        if case == "symlink" {
            assert_eq!(fs::read_link(root.join("evil")).unwrap(), Path::new("/tmp"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The same through `kelp-agent image import`

#[test]
fn cli_import_refuses_hostile_layers() {
    for case in HOSTILE {
        let s = Scratch::new();
        let (layer, host, why) = hostile_layer(&s, case, "cli");
        let before = s.outside();
        let tarball = s.write("hostile.tar", &layout_tarball(&layer));
        let out = s.cli(&["import", tarball.to_str().unwrap()]);
        assert!(!out.status.success(), "{case}: import succeeded");
        let err = stderr(&out);
        assert!(err.contains(tarball.to_str().unwrap()), "{case}: {err}");
        assert!(err.contains(why), "{case}: {err}");
        host.assert_absent();
        assert_eq!(s.outside(), before, "{case}");
        assert_eq!(fs::read(&s.secret).unwrap(), b"host data");
        s.assert_store_empty();
    }
}

#[test]
fn cli_import_confines_absolute_paths_and_symlinks() {
    for (case, layer, host, inside) in confined_cases("cli") {
        let s = Scratch::new();
        let tarball = s.write("confined.tar", &layout_tarball(&layer));
        let out = s.cli(&["import", tarball.to_str().unwrap()]);
        assert!(out.status.success(), "{case}");
        assert!(stdout(&out).starts_with(&format!("imported {REF} (sha256:")));
        host.assert_absent();
        let image = s.store().get(REF).unwrap().unwrap();
        assert_eq!(
            fs::read(image.layers[0].rootfs.join(&inside)).unwrap(),
            b"confined"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Busybox, and the commands

#[test]
fn busybox_image_builds_imports_and_runs_from_its_rootfs() {
    let s = Scratch::new();
    let rootfs = s.base.join("busybox");
    busybox_rootfs(&rootfs).expect("busybox_rootfs");
    let mut opts = BuildOptions::new("example.com/kelp/busybox:test");
    opts.entrypoint = vec!["/bin/sh".into()];
    let built = build_oci_tar(&rootfs, &opts, &s.base.join("busybox.tar")).unwrap();
    let image = s
        .store()
        .import_oci_tar(s.base.join("busybox.tar"), BIG)
        .unwrap();
    assert_eq!(image.config_digest, built.config_digest);
    let root = &image.layers[0].rootfs;
    for applet in [
        "sh", "sleep", "nc", "httpd", "wget", "cat", "echo", "id", "touch", "ls",
    ] {
        assert_eq!(
            fs::read_link(root.join("bin").join(applet)).unwrap(),
            Path::new("busybox"),
            "{applet}"
        );
    }
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    for line in ["root:x:0:0:", "app:x:1000:1000:", "nobody:x:65534:65534:"] {
        assert!(passwd.contains(line), "{line} in {passwd}");
    }
    let group = fs::read_to_string(root.join("etc/group")).unwrap();
    for line in ["root:x:0:", "app:x:1000:", "nobody:x:65534:"] {
        assert!(group.contains(line), "{line} in {group}");
    }
    // The unpacked busybox is intact: run its shell (through the applet symlink) on the host.
    let out = Command::new(root.join("bin/sh"))
        .args(["-c", "echo hello from busybox"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out), "hello from busybox\n");
}

#[test]
fn cli_build_import_list_rm() {
    let s = Scratch::new();
    let rootfs = s.base.join("busybox");
    busybox_rootfs(&rootfs).expect("busybox_rootfs");
    let tarball = s.base.join("busybox.tar");
    let reference = "example.com/kelp/busybox:cli";
    let out = s.cli(&[
        "build",
        rootfs.to_str().unwrap(),
        "-o",
        tarball.to_str().unwrap(),
        "--reference",
        reference,
        "--entrypoint",
        "/bin/sh",
        "--cmd",
        "-c",
        "--cmd",
        "sleep 1",
        "--env",
        "PATH=/bin",
        "--workdir",
        "/tmp",
        "--user",
        "1000:1000",
    ]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with(&format!("built {reference} (sha256:")));

    // A budget too small for the image is refused, naming the tarball; the store stays empty.
    let small = s.cli(&["import", tarball.to_str().unwrap(), "--budget", "1K"]);
    assert!(!small.status.success());
    let err = stderr(&small);
    assert!(
        err.contains("budget") && err.contains(tarball.to_str().unwrap()),
        "{err}"
    );
    s.assert_store_empty();

    let out = s.cli(&["import", tarball.to_str().unwrap(), "--budget", "64M"]);
    assert!(out.status.success());
    let line = stdout(&out);
    assert!(
        line.starts_with(&format!("imported {reference} (sha256:")),
        "{line}"
    );
    assert!(line.contains(", 1 layer, "), "{line}");
    let image = s.store().get(reference).unwrap().unwrap();
    assert_eq!(image.config.entrypoint, ["/bin/sh"]);
    assert_eq!(image.config.cmd, ["-c", "sleep 1"]);
    assert_eq!(image.config.env, ["PATH=/bin"]);
    assert_eq!(image.config.working_dir.as_deref(), Some("/tmp"));
    assert_eq!(image.config.user.as_deref(), Some("1000:1000"));

    let out = s.cli(&["list"]);
    assert!(out.status.success());
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    let header: Vec<&str> = lines[0]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header, ["REFERENCE", "IMAGE ID", "PLATFORM", "SIZE"]);
    assert!(lines[1].starts_with(reference));
    assert!(lines[1].contains(&image.config_digest.hex()[..12]));
    assert!(lines[1].contains(&image.platform.to_string()));

    let out = s.cli(&["rm", reference, "example.com/kelp/missing:1"]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains(&format!("removed {reference}")));
    assert!(stderr(&out).contains("example.com/kelp/missing:1"));
    let out = s.cli(&["list"]);
    assert_eq!(stdout(&out).lines().count(), 1);
    assert!(s.store().list().unwrap().is_empty());
}

#[test]
fn cli_errors_name_the_file_and_what_is_wrong() {
    let s = Scratch::new();
    let missing = s.base.join("missing.tar");
    let out = s.cli(&["import", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    assert!(err.contains("No such file"), "{err}");

    let garbage = s.write("garbage.tar", b"not a tarball at all");
    let out = s.cli(&["import", garbage.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(garbage.to_str().unwrap()));

    let bin = s.write("app", b"binary");
    let output = s.base.join("out.tar");
    let out = s.cli(&[
        "build",
        bin.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--reference",
        "x:1",
        "--env",
        "NOVALUE",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("NOVALUE") && err.contains("NAME=value"),
        "{err}"
    );
    assert!(!output.exists());

    let out = s.cli(&[
        "build",
        bin.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--reference",
        "x:1",
        "--platform",
        "amd64",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("os/architecture"), "{}", stderr(&out));

    let out = s.cli(&["import", "x.tar", "--budget", "lots"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("lots"), "{}", stderr(&out));

    let out = s.cli(&["rm"]);
    assert!(!out.status.success());
}
