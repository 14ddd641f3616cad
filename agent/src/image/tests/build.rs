//! Image building: reproducible digests, what the layer holds, single-binary mode, import of
//! the result, failure atomicity, option checks.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use crate::image::build::has_interpreter;
use crate::image::{
    build_oci_index_tar, build_oci_tar, BuildError, BuildOptions, ImageConfig, ImageStore,
    Ownership, Platform,
};

const NAME: &str = "example.com/kelp/built:1.0";
const BIG: u64 = 1 << 30;

struct Env {
    _tmp: tempfile::TempDir,
    base: PathBuf,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("kelp-build-")
            .tempdir()
            .unwrap();
        Self {
            base: tmp.path().to_path_buf(),
            _tmp: tmp,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.base.join(rel)
    }

    /// A source tree with nested directories, modes, symlinks (relative, absolute, to a
    /// directory, dangling), a hard link, an empty directory and a long path.
    fn sample_tree(&self) -> PathBuf {
        let src = self.path("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::create_dir_all(src.join("etc/app")).unwrap();
        fs::create_dir_all(src.join("empty")).unwrap();
        fs::write(src.join("bin/app"), b"#!/bin/sh\necho app\n").unwrap();
        chmod(&src.join("bin/app"), 0o755);
        fs::write(src.join("etc/app/config.toml"), b"port = 80\n").unwrap();
        chmod(&src.join("etc/app/config.toml"), 0o600);
        chmod(&src.join("etc/app"), 0o750);
        fs::hard_link(src.join("bin/app"), src.join("bin/app-hardlink")).unwrap();
        std::os::unix::fs::symlink("app", src.join("bin/relative")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("bin/absolute")).unwrap();
        std::os::unix::fs::symlink("etc/app", src.join("config-dir")).unwrap();
        std::os::unix::fs::symlink("/does/not/exist", src.join("dangling")).unwrap();
        let long_dir = src.join("d".repeat(60)).join("e".repeat(60));
        fs::create_dir_all(&long_dir).unwrap();
        fs::write(long_dir.join("f".repeat(50)), b"long").unwrap();
        std::os::unix::fs::symlink("t".repeat(150), src.join("long-target")).unwrap();
        src
    }

    fn store(&self) -> ImageStore {
        ImageStore::open(self.path("store")).unwrap()
    }
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// One entry of a built layer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    path: String,
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
}

/// The documents and layer entries of a built tarball, read with the `tar` crate alone.
struct Layout {
    names: Vec<String>,
    index: serde_json::Value,
    manifest: serde_json::Value,
    config: serde_json::Value,
    layer: Vec<Entry>,
}

fn read_layout(tarball: &Path) -> Layout {
    let mut files = std::collections::BTreeMap::new();
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(fs::File::open(tarball).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        names.push(name.clone());
        files.insert(name, data);
    }
    let blob = |digest: &serde_json::Value| {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        files[&format!("blobs/sha256/{hex}")].clone()
    };
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(&index["manifests"][0]["digest"])).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&blob(&manifest["config"]["digest"])).unwrap();
    let mut layer_bytes = blob(&manifest["layers"][0]["digest"]);
    if manifest["layers"][0]["mediaType"]
        .as_str()
        .unwrap()
        .ends_with("+gzip")
    {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&layer_bytes[..])
            .read_to_end(&mut plain)
            .unwrap();
        layer_bytes = plain;
    }
    let mut layer = Vec::new();
    for e in tar::Archive::new(&layer_bytes[..]).entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        layer.push(Entry {
            path: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            link: e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap()),
        });
    }
    Layout {
        names,
        index,
        manifest,
        config,
        layer,
    }
}

fn entry<'a>(layout: &'a Layout, path: &str) -> &'a Entry {
    layout
        .layer
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no entry {path} in {:?}", layout.layer))
}

#[test]
fn same_input_gives_the_same_digests_and_bytes() {
    let env = Env::new();
    let src = env.sample_tree();
    let mut opts = BuildOptions::new(NAME);
    opts.mtime = Some(1_700_000_000);
    let a = build_oci_tar(&src, &opts, &env.path("a.tar")).unwrap();
    // New mtimes on disk and a different output name change nothing.
    for p in ["bin/app", "etc/app/config.toml", "empty"] {
        let f = fs::File::options().write(true).open(src.join(p));
        if let Ok(f) = f {
            f.set_modified(std::time::SystemTime::now()).unwrap();
        }
    }
    let b = build_oci_tar(&src, &opts, &env.path("b.tar")).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        fs::read(env.path("a.tar")).unwrap(),
        fs::read(env.path("b.tar")).unwrap()
    );
    // Plain layers too, with the diff ID equal to the layer digest.
    opts.layer_gzip = false;
    let plain = build_oci_tar(&src, &opts, &env.path("c.tar")).unwrap();
    assert_eq!(plain.diff_id, a.diff_id);
    assert_eq!(plain.layer_digest, plain.diff_id);
    assert_ne!(plain.manifest_digest, a.manifest_digest);
    // A changed byte changes everything.
    fs::write(src.join("etc/app/config.toml"), b"port = 81\n").unwrap();
    opts.layer_gzip = true;
    let changed = build_oci_tar(&src, &opts, &env.path("d.tar")).unwrap();
    assert_ne!(changed.diff_id, a.diff_id);
    assert_ne!(changed.manifest_digest, a.manifest_digest);
}

#[test]
fn layer_entries_are_sorted_with_fixed_mtimes_and_kept_modes_and_links() {
    let env = Env::new();
    let src = env.sample_tree();
    let mut opts = BuildOptions::new(NAME);
    opts.mtime = Some(42);
    let built = build_oci_tar(&src, &opts, &env.path("out.tar")).unwrap();
    let l = read_layout(&env.path("out.tar"));
    assert_eq!(built.entries, l.layer.len() as u64);
    let paths: Vec<&str> = l.layer.iter().map(|e| e.path.as_str()).collect();
    let long = format!("{}/{}/{}", "d".repeat(60), "e".repeat(60), "f".repeat(50));
    let long_dir = format!("{}/", "d".repeat(60));
    let long_dir2 = format!("{}/{}/", "d".repeat(60), "e".repeat(60));
    assert_eq!(
        paths,
        [
            "bin/",
            "bin/absolute",
            "bin/app",
            "bin/app-hardlink",
            "bin/relative",
            "config-dir",
            "dangling",
            long_dir.as_str(),
            long_dir2.as_str(),
            long.as_str(),
            "empty/",
            "etc/",
            "etc/app/",
            "etc/app/config.toml",
            "long-target",
        ]
    );
    assert!(l.layer.iter().all(|e| e.mtime == 42));
    assert_eq!(entry(&l, "bin/app").mode, 0o755);
    assert_eq!(entry(&l, "etc/app/").mode, 0o750);
    assert_eq!(entry(&l, "etc/app/config.toml").mode, 0o600);
    let hard = entry(&l, "bin/app-hardlink");
    assert_eq!(hard.kind, EntryType::Link);
    assert_eq!(hard.link.as_deref(), Some("bin/app"));
    for (path, target) in [
        ("bin/relative", "app".to_owned()),
        ("bin/absolute", "/etc/passwd".to_owned()),
        ("config-dir", "etc/app".to_owned()),
        ("dangling", "/does/not/exist".to_owned()),
        ("long-target", "t".repeat(150)),
    ] {
        let e = entry(&l, path);
        assert_eq!(e.kind, EntryType::Symlink, "{path}");
        assert_eq!(e.link.as_deref(), Some(target.as_str()), "{path}");
    }
    // The layout: oci-layout, blob directories, the blobs (layer, config, manifest), index.
    assert_eq!(l.names[0], "oci-layout");
    assert_eq!(l.names.last().unwrap(), "index.json");
    assert_eq!(
        l.index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        NAME
    );
    assert_eq!(
        l.index["manifests"][0]["digest"],
        built.manifest_digest.as_str()
    );
    assert_eq!(
        l.manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(l.config["rootfs"]["diff_ids"][0], built.diff_id.as_str());
}

#[test]
fn owners_are_kept_or_set_to_root() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let on_disk = fs::metadata(src.join("f")).unwrap();
    let (uid, gid) = if is_root() {
        std::os::unix::fs::chown(src.join("f"), Some(1234), Some(5678)).unwrap();
        (1234, 5678)
    } else {
        (on_disk.uid().into(), on_disk.gid().into())
    };
    let mut opts = BuildOptions::new(NAME);
    build_oci_tar(&src, &opts, &env.path("disk.tar")).unwrap();
    let e = entry(&read_layout(&env.path("disk.tar")), "f").clone();
    assert_eq!((e.uid, e.gid), (uid, gid));
    opts.ownership = Ownership::Root;
    build_oci_tar(&src, &opts, &env.path("root.tar")).unwrap();
    let e = entry(&read_layout(&env.path("root.tar")), "f").clone();
    assert_eq!((e.uid, e.gid), (0, 0));
}

#[test]
fn a_built_directory_imports_with_its_files_symlinks_and_config() {
    let env = Env::new();
    let src = env.sample_tree();
    let mut opts = BuildOptions::new(NAME);
    opts.entrypoint = vec!["/bin/app".into()];
    opts.cmd = vec!["--port".into(), "80".into()];
    opts.env = vec!["PATH=/bin".into(), "MODE=test".into()];
    opts.working_dir = Some("/etc/app".into());
    opts.user = Some("1000:1000".into());
    let built = build_oci_tar(&src, &opts, &env.path("out.tar")).unwrap();
    let store = env.store();
    let image = store.import_oci_tar(env.path("out.tar"), BIG).unwrap();
    assert_eq!(image.reference, NAME);
    assert_eq!(image.manifest_digest, built.manifest_digest);
    assert_eq!(image.config_digest, built.config_digest);
    assert_eq!(image.platform, Platform::host());
    assert_eq!(
        image.config,
        ImageConfig {
            entrypoint: vec!["/bin/app".into()],
            cmd: vec!["--port".into(), "80".into()],
            env: vec!["PATH=/bin".into(), "MODE=test".into()],
            working_dir: Some("/etc/app".into()),
            user: Some("1000:1000".into()),
        }
    );
    assert_eq!(image.config, built.config);
    assert_eq!(image.layers.len(), 1);
    assert_eq!(image.layers[0].diff_id, built.diff_id);
    let root = &image.layers[0].rootfs;
    assert_eq!(
        fs::read(root.join("bin/app")).unwrap(),
        b"#!/bin/sh\necho app\n"
    );
    assert_eq!(mode(&root.join("bin/app")), 0o755);
    assert_eq!(mode(&root.join("etc/app")), 0o750);
    assert_eq!(mode(&root.join("etc/app/config.toml")), 0o600);
    assert!(root.join("empty").is_dir());
    assert_eq!(
        fs::metadata(root.join("bin/app-hardlink")).unwrap().ino(),
        fs::metadata(root.join("bin/app")).unwrap().ino()
    );
    for (link, target) in [
        ("bin/relative", "app".to_owned()),
        ("bin/absolute", "/etc/passwd".to_owned()),
        ("config-dir", "etc/app".to_owned()),
        ("dangling", "/does/not/exist".to_owned()),
        ("long-target", "t".repeat(150)),
    ] {
        assert_eq!(
            fs::read_link(root.join(link)).unwrap(),
            PathBuf::from(target),
            "{link}"
        );
    }
    let long = root
        .join("d".repeat(60))
        .join("e".repeat(60))
        .join("f".repeat(50));
    assert_eq!(fs::read(long).unwrap(), b"long");
}

#[test]
fn a_single_binary_lands_at_the_root_and_is_the_entrypoint() {
    let env = Env::new();
    let bin = env.path("hello");
    fs::write(&bin, b"\x7fELF not really").unwrap();
    chmod(&bin, 0o750);
    let mut opts = BuildOptions::new(NAME);
    opts.cmd = vec!["--serve".into()];
    let built = build_oci_tar(&bin, &opts, &env.path("out.tar")).unwrap();
    assert_eq!(built.config.entrypoint, ["/hello"]);
    assert_eq!(built.entries, 1);
    let l = read_layout(&env.path("out.tar"));
    assert_eq!(l.layer.len(), 1);
    assert_eq!(entry(&l, "hello").mode, 0o750);
    assert_eq!(l.config["config"]["Entrypoint"][0], "/hello");
    assert_eq!(l.config["config"]["Cmd"][0], "--serve");

    let image = env
        .store()
        .import_oci_tar(env.path("out.tar"), BIG)
        .unwrap();
    assert_eq!(image.config.entrypoint, ["/hello"]);
    assert_eq!(image.config.cmd, ["--serve"]);
    let root = &image.layers[0].rootfs;
    assert_eq!(fs::read(root.join("hello")).unwrap(), b"\x7fELF not really");
    assert_eq!(mode(&root.join("hello")), 0o750);
    let names: Vec<_> = fs::read_dir(root).unwrap().collect();
    assert_eq!(names.len(), 1);

    // An explicit entrypoint wins; a symlink given as the source is followed.
    std::os::unix::fs::symlink("hello", env.path("via-link")).unwrap();
    opts.entrypoint = vec!["/via-link".into(), "-v".into()];
    let built = build_oci_tar(&env.path("via-link"), &opts, &env.path("2.tar")).unwrap();
    assert_eq!(built.config.entrypoint, ["/via-link", "-v"]);
    let l = read_layout(&env.path("2.tar"));
    assert_eq!(entry(&l, "via-link").kind, EntryType::Regular);
}

#[test]
fn the_platform_is_written_and_selects_the_store() {
    let env = Env::new();
    let bin = env.path("app");
    fs::write(&bin, b"arm binary").unwrap();
    let mut opts = BuildOptions::new(NAME);
    opts.platform = "linux/arm/v7".parse().unwrap();
    build_oci_tar(&bin, &opts, &env.path("arm.tar")).unwrap();
    let l = read_layout(&env.path("arm.tar"));
    assert_eq!(l.config["architecture"], "arm");
    assert_eq!(l.config["variant"], "v7");
    assert_eq!(l.index["manifests"][0]["platform"]["variant"], "v7");

    let amd64 = env
        .store()
        .with_platform(Platform::new("linux", "amd64", None));
    let err = amd64
        .import_oci_tar(env.path("arm.tar"), BIG)
        .unwrap_err()
        .to_string();
    assert!(err.contains("linux/arm/v7"), "{err}");
    let arm = env
        .store()
        .with_platform(Platform::new("linux", "arm", Some("v7")));
    let image = arm.import_oci_tar(env.path("arm.tar"), BIG).unwrap();
    assert_eq!(image.platform.to_string(), "linux/arm/v7");
}

#[test]
fn platforms_parse_and_normalize() {
    let p: Platform = "linux/aarch64".parse().unwrap();
    assert_eq!(p.to_string(), "linux/arm64/v8");
    let p: Platform = "linux/amd64".parse().unwrap();
    assert_eq!(p, Platform::new("linux", "amd64", None));
    for bad in [
        "",
        "linux",
        "linux/",
        "/amd64",
        "linux/arm/v7/x",
        "linux/a md64",
    ] {
        let err = bad.parse::<Platform>().unwrap_err().to_string();
        assert!(err.contains("os/architecture"), "{bad:?}: {err}");
    }
}

#[test]
fn a_failed_build_leaves_nothing_and_names_the_file() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("z-fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let out_dir = env.path("out");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("image.tar");
    fs::write(&out, b"previous").unwrap();
    match build_oci_tar(&src, &BuildOptions::new(NAME), &out) {
        Err(BuildError::UnsupportedFile { path, kind }) => {
            assert_eq!(path, src.join("z-fifo"));
            assert_eq!(kind, "a FIFO");
        }
        other => panic!("expected UnsupportedFile, got {other:?}"),
    }
    let left: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["image.tar"], "temporary files left behind");
    assert_eq!(fs::read(&out).unwrap(), b"previous");

    // A missing source and an output inside the source are refused up front.
    let err = build_oci_tar(&env.path("nope"), &BuildOptions::new(NAME), &out)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&env.path("nope").display().to_string()),
        "{err}"
    );
    let err = build_oci_tar(&src, &BuildOptions::new(NAME), &src.join("x.tar")).unwrap_err();
    assert!(
        matches!(err, BuildError::OutputInsideSource { .. }),
        "{err}"
    );
    assert!(!src.join("x.tar").exists());
}

#[test]
fn bad_options_are_refused_naming_the_value() {
    let env = Env::new();
    let bin = env.path("app");
    fs::write(&bin, b"x").unwrap();
    type Edit = fn(&mut BuildOptions);
    let cases: Vec<(&str, Edit)> = vec![
        ("reference", |o| o.reference = String::new()),
        ("reference", |o| o.reference = "a b".into()),
        ("env", |o| o.env = vec!["NOVALUE".into()]),
        ("env", |o| o.env = vec!["=x".into()]),
        ("working directory", |o| o.working_dir = Some("rel".into())),
        ("user", |o| o.user = Some(String::new())),
    ];
    for (option, set) in cases {
        let mut opts = BuildOptions::new(NAME);
        set(&mut opts);
        match build_oci_tar(&bin, &opts, &env.path("out.tar")) {
            Err(BuildError::InvalidOption { option: o, .. }) => assert_eq!(o, option),
            other => panic!("{option}: expected InvalidOption, got {other:?}"),
        }
        assert!(!env.path("out.tar").exists());
    }
}

#[test]
fn elf_interpreter_detection() {
    assert_eq!(has_interpreter(b"#!/bin/sh\n"), None);
    assert_eq!(has_interpreter(b"\x7fELF"), None);
    if let Ok(ls) = fs::read("/bin/ls") {
        assert_eq!(has_interpreter(&ls), Some(true), "/bin/ls is dynamic");
    }
    if let Ok(bb) = fs::read(crate::image::build::BUSYBOX_PATH) {
        assert_eq!(
            has_interpreter(&bb),
            Some(false),
            "busybox-static is static"
        );
    }
}

#[test]
fn a_multi_platform_build_is_reproducible_and_imports_per_platform() {
    let env = Env::new();
    let amd = env.path("amd");
    let arm = env.path("arm");
    for (dir, text) in [(&amd, "amd64"), (&arm, "arm")] {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("which"), text).unwrap();
    }
    let sources: Vec<(Platform, PathBuf)> = vec![
        ("linux/amd64".parse().unwrap(), amd.clone()),
        ("linux/arm/v7".parse().unwrap(), arm.clone()),
        // The same source for a second platform: its layer is stored once.
        ("linux/arm/v6".parse().unwrap(), arm),
    ];
    let mut opts = BuildOptions::new(NAME);
    opts.mtime = Some(0);
    let (a, b) = (env.path("a.tar"), env.path("b.tar"));
    let first = build_oci_index_tar(&sources, &opts, &a).unwrap();
    let second = build_oci_index_tar(&sources, &opts, &b).unwrap();
    assert_eq!(first, second);
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    assert_eq!(first.images.len(), 3);
    assert_eq!(first.images[1].layer_digest, first.images[2].layer_digest);
    assert_ne!(
        first.images[1].manifest_digest,
        first.images[2].manifest_digest
    );

    for (platform, text) in [
        ("linux/amd64", "amd64"),
        ("linux/arm/v7", "arm"),
        ("linux/arm/v6", "arm"),
    ] {
        let p: Platform = platform.parse().unwrap();
        let store = ImageStore::open(env.path(&format!("store-{}", platform.replace('/', "-"))))
            .unwrap()
            .with_platform(p.clone());
        let image = store.import_oci_tar(&a, BIG).unwrap();
        assert_eq!(image.platform, p);
        assert_eq!(image.reference, NAME);
        let built = first.images.iter().find(|i| i.platform == p).unwrap();
        assert_eq!(image.manifest_digest, built.manifest_digest);
        assert_eq!(
            fs::read_to_string(image.layers[0].rootfs.join("which")).unwrap(),
            text
        );
    }

    let twice = vec![sources[0].clone(), sources[0].clone()];
    let err = build_oci_index_tar(&twice, &opts, &env.path("c.tar")).unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
    assert!(!env.path("c.tar").exists());
}
