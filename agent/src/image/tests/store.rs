//! Image store: OCI layout import, platform choice, digest checks, failure atomicity, removal.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::util::{named, snapshot, BuiltImage, Oci, TarBuilder};
use crate::image::{Digest, ImageError, ImageStore, Platform, UnpackError};

const NAME: &str = "example.com/kelp/app:1.0";
const BIG: u64 = 1 << 30;

struct Env {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    dir: PathBuf,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("kelp-store-")
            .tempdir()
            .unwrap();
        let base = tmp.path().to_path_buf();
        Self {
            dir: base.join("images"),
            base,
            _tmp: tmp,
        }
    }

    fn store(&self, arch: &str) -> ImageStore {
        let p = match arch {
            "arm" => Platform::new("linux", "arm", Some("v7")),
            a => Platform::new("linux", a, None),
        };
        ImageStore::open(&self.dir).unwrap().with_platform(p)
    }

    /// Writes a tarball next to the store and returns its path.
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.base.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    /// Every path of the store with the content of its files (directory mtimes excluded).
    fn state(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        snapshot(&self.dir)
            .into_keys()
            .map(|rel| {
                let p = self.dir.join(&rel);
                let content = fs::symlink_metadata(&p)
                    .unwrap()
                    .is_file()
                    .then(|| fs::read(&p).unwrap());
                (rel, content)
            })
            .collect()
    }

    fn assert_empty(&self) {
        for sub in ["blobs/sha256", "layers/sha256", "tmp"] {
            let n = fs::read_dir(self.dir.join(sub)).unwrap().count();
            assert_eq!(n, 0, "{sub} is not empty");
        }
    }
}

fn base_layer() -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.dir("bin", 0o755)
        .file("bin/app", 0o755, b"#!/bin/sh\necho app\n")
        .file("etc/os-release", 0o644, b"ID=kelp\n")
        .dir("srv", 0o755);
    t.finish()
}

fn arch_layer(arch: &str) -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.file("arch", 0o644, arch.as_bytes())
        .file("etc/.wh.os-release", 0o644, b"");
    t.finish()
}

/// Two platforms behind a nested index named [`NAME`]; the base layer is gzipped for amd64
/// and plain for arm64 (different blobs, same diff ID).
fn multi_arch() -> (Oci, BuiltImage, BuiltImage, serde_json::Value) {
    let mut oci = Oci::new();
    let amd = oci.image("amd64", &[base_layer(), arch_layer("amd64")], true);
    let arm = oci.image("arm64", &[base_layer(), arch_layer("arm64")], false);
    let idx = oci.index(
        &[amd.descriptor.clone(), arm.descriptor.clone()],
        Some(NAME),
    );
    (oci, amd, arm, idx)
}

fn no_tamper(_: &str, _: &mut Vec<u8>) {}

#[test]
fn imports_the_node_platform_from_a_multi_arch_index() {
    let env = Env::new();
    let (oci, amd, arm, idx) = multi_arch();
    let tar = env.write("multi.tar", &oci.tarball(&[idx], no_tamper));
    let store = env.store("arm64");
    let rec = store.import_oci_tar(&tar, BIG).unwrap();

    assert_eq!(rec.reference, NAME);
    assert_eq!(rec.manifest_digest.as_str(), arm.manifest_digest);
    assert_eq!(rec.config_digest.as_str(), arm.config_digest);
    assert_eq!(rec.platform.to_string(), "linux/arm64/v8");
    assert_eq!(rec.config.entrypoint, ["/bin/app"]);
    assert_eq!(rec.config.cmd, ["--arch", "arm64"]);
    assert_eq!(rec.config.env, ["PATH=/usr/bin:/bin", "ARCH=arm64"]);
    assert_eq!(rec.config.working_dir.as_deref(), Some("/srv"));
    assert_eq!(rec.config.user.as_deref(), Some("1000:1000"));
    let diff_ids: Vec<_> = rec.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(diff_ids, arm.diff_ids);
    let digests: Vec<_> = rec.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(digests, arm.layer_digests);
    assert_eq!(
        fs::read(rec.layers[0].rootfs.join("bin/app")).unwrap(),
        b"#!/bin/sh\necho app\n"
    );
    assert_eq!(
        fs::read(rec.layers[1].rootfs.join("arch")).unwrap(),
        b"arm64"
    );
    let lower = rec.lower_dirs();
    assert_eq!(
        lower,
        [
            rec.layers[1].rootfs.as_path(),
            rec.layers[0].rootfs.as_path()
        ]
    );
    assert!(rec.layers[0]
        .rootfs
        .starts_with(env.dir.join("layers/sha256")));

    // Only the chosen platform's blobs are kept.
    let mut blobs: Vec<String> = fs::read_dir(env.dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    blobs.sort();
    let mut want = vec![arm.manifest_digest.clone(), arm.config_digest.clone()];
    want.extend(arm.layer_digests.iter().cloned());
    want.sort();
    assert_eq!(blobs, want);
    assert!(!store
        .blob_path(&Digest::parse(&amd.manifest_digest).unwrap())
        .exists());
    assert_eq!(
        fs::read_dir(env.dir.join("layers/sha256")).unwrap().count(),
        2
    );
    assert_eq!(fs::read_dir(env.dir.join("tmp")).unwrap().count(), 0);

    assert_eq!(store.get(NAME).unwrap().as_ref(), Some(&rec));
    assert_eq!(
        store.get(&arm.manifest_digest).unwrap().as_ref(),
        Some(&rec)
    );
    assert_eq!(store.get("example.com/kelp/app:2.0").unwrap(), None);
    assert_eq!(store.list().unwrap(), std::slice::from_ref(&rec));
    // A store opened again sees the same thing.
    assert_eq!(env.store("arm64").get(NAME).unwrap(), Some(rec));
}

#[test]
fn amd64_node_gets_the_amd64_image_with_gzip_layers() {
    let env = Env::new();
    let (oci, amd, _, idx) = multi_arch();
    let tar = env.write("multi.tar", &oci.tarball(&[idx], no_tamper));
    let rec = env.store("amd64").import_oci_tar(&tar, BIG).unwrap();
    assert_eq!(rec.manifest_digest.as_str(), amd.manifest_digest);
    assert_eq!(
        rec.layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        fs::read(rec.layers[1].rootfs.join("arch")).unwrap(),
        b"amd64"
    );
    // The whiteout of the upper layer is in overlayfs form.
    let wh = fs::symlink_metadata(rec.layers[1].rootfs.join("etc/os-release")).unwrap();
    assert_eq!((wh.mode() & 0o170000, wh.rdev()), (0o020000, 0));
}

/// Runs a failing import and checks the store did not change at all.
fn assert_fails_cleanly(env: &Env, store: &ImageStore, tar: &Path, budget: u64) -> ImageError {
    let before = env.state();
    let outside = snapshot(&env.base);
    let err = store.import_oci_tar(tar, budget).unwrap_err();
    assert_eq!(
        env.state(),
        before,
        "a failed import changed the store ({err})"
    );
    assert_eq!(
        snapshot(&env.base).keys().collect::<Vec<_>>(),
        outside.keys().collect::<Vec<_>>(),
        "a failed import created files outside the store ({err})"
    );
    err
}

#[test]
fn no_image_for_the_platform_leaves_nothing() {
    let env = Env::new();
    let (oci, _, _, idx) = multi_arch();
    let tar = env.write("multi.tar", &oci.tarball(&[idx], no_tamper));
    let store = env.store("arm");
    let err = assert_fails_cleanly(&env, &store, &tar, BIG);
    match err {
        ImageError::NoMatchingPlatform { wanted, available } => {
            assert_eq!(wanted, "linux/arm/v7");
            assert_eq!(available, "linux/amd64, linux/arm64/v8");
        }
        other => panic!("expected NoMatchingPlatform, got {other:?}"),
    }
    env.assert_empty();
}

#[test]
fn corrupted_blobs_are_refused_and_leave_nothing() {
    let (oci, _, arm, idx) = multi_arch();
    for target in [arm.layer_digests[1].clone(), arm.config_digest.clone()] {
        let env = Env::new();
        let tar = oci.tarball(std::slice::from_ref(&idx), |d, bytes| {
            if d == target {
                let last = bytes.len() - 1;
                bytes[last] ^= 0x20;
            }
        });
        let tar = env.write("bad.tar", &tar);
        let store = env.store("arm64");
        match assert_fails_cleanly(&env, &store, &tar, BIG) {
            ImageError::DigestMismatch { what, expected, .. } => {
                assert_eq!((what, expected.as_str()), ("blob", target.as_str()));
            }
            other => panic!("expected DigestMismatch, got {other:?}"),
        }
        env.assert_empty();
    }
}

#[test]
fn a_layer_whose_content_does_not_match_its_diff_id_is_refused() {
    let env = Env::new();
    let mut oci = Oci::new();
    let fake = format!("sha256:{}", "ab".repeat(32));
    oci.override_diff_ids = Some(vec![fake.clone()]);
    let img = oci.image("arm64", &[base_layer()], true);
    let tar = env.write(
        "x.tar",
        &oci.tarball(&[named(img.descriptor, NAME)], no_tamper),
    );
    let store = env.store("arm64");
    match assert_fails_cleanly(&env, &store, &tar, BIG) {
        ImageError::DigestMismatch { what, expected, .. } => {
            assert_eq!((what, expected.as_str()), ("layer diff ID", fake.as_str()));
        }
        other => panic!("expected a diff ID mismatch, got {other:?}"),
    }
    env.assert_empty();
}

#[test]
fn an_escaping_layer_fails_the_import_and_leaves_nothing() {
    let env = Env::new();
    let mut evil = TarBuilder::new();
    evil.file("ok", 0o644, b"fine")
        .file("../../evil", 0o644, b"pwned");
    let mut oci = Oci::new();
    let img = oci.image("arm64", &[base_layer(), evil.finish()], false);
    let tar = env.write(
        "evil.tar",
        &oci.tarball(&[named(img.descriptor, NAME)], no_tamper),
    );
    let store = env.store("arm64");
    match assert_fails_cleanly(&env, &store, &tar, BIG) {
        ImageError::Unpack {
            layer,
            source: UnpackError::DotDot { entry },
        } => {
            assert_eq!(layer.as_str(), img.layer_digests[1]);
            assert_eq!(entry, "../../evil");
        }
        other => panic!("expected an unpack error, got {other:?}"),
    }
    env.assert_empty();
}

#[test]
fn over_budget_imports_leave_nothing() {
    let env = Env::new();
    let mut big = TarBuilder::new();
    big.file("data", 0o644, &vec![b'k'; 100_000]);
    let mut oci = Oci::new();
    let img = oci.image("arm64", &[base_layer(), big.finish()], true);
    let blob_bytes: u64 = oci.blobs.iter().map(|(_, b)| b.len() as u64).sum();
    let tar = env.write(
        "big.tar",
        &oci.tarball(&[named(img.descriptor, NAME)], no_tamper),
    );
    let store = env.store("arm64");
    // Too small for the blobs themselves.
    let err = assert_fails_cleanly(&env, &store, &tar, blob_bytes - 1);
    assert!(matches!(err, ImageError::BudgetExceeded { .. }), "{err:?}");
    // Enough for the blobs, not for the unpacked layer.
    let err = assert_fails_cleanly(&env, &store, &tar, blob_bytes + 1000);
    assert!(
        matches!(
            err,
            ImageError::Unpack {
                source: UnpackError::BudgetExceeded { .. },
                ..
            }
        ),
        "{err:?}"
    );
    env.assert_empty();
    // Enough for both.
    store.import_oci_tar(&tar, blob_bytes + 200_000).unwrap();
}

#[test]
fn truncated_tarballs_leave_nothing() {
    let env = Env::new();
    let (oci, _, _, idx) = multi_arch();
    let full = oci.tarball(&[idx], no_tamper);
    let store = env.store("arm64");
    for cut in [full.len() / 2, full.len() - 1024, 700] {
        let tar = env.write("cut.tar", &full[..cut]);
        let err = assert_fails_cleanly(&env, &store, &tar, BIG);
        assert!(
            matches!(
                err,
                ImageError::Truncated { .. } | ImageError::DigestMismatch { .. }
            ),
            "cut at {cut}: {err:?}"
        );
    }
    env.assert_empty();
}

#[test]
fn layers_are_shared_and_removal_collects_only_unused_content() {
    let env = Env::new();
    let store = env.store("arm64");
    let (oci, _, _, idx) = multi_arch();
    let t1 = env.write("one.tar", &oci.tarball(&[idx], no_tamper));
    let one = store.import_oci_tar(&t1, BIG).unwrap();
    let base_ino = fs::metadata(one.layers[0].rootfs.join("bin/app"))
        .unwrap()
        .ino();

    // A second image on the same base, gzipped this time: same diff ID, another blob.
    let mut oci2 = Oci::new();
    let mut top = TarBuilder::new();
    top.file("version", 0o644, b"2");
    let img2 = oci2.image("arm64", &[base_layer(), top.finish()], true);
    let t2 = env.write(
        "two.tar",
        &oci2.tarball(
            &[named(img2.descriptor, "example.com/kelp/app:2.0")],
            no_tamper,
        ),
    );
    let two = store.import_oci_tar(&t2, BIG).unwrap();
    assert_eq!(
        two.layers[0].rootfs, one.layers[0].rootfs,
        "base unpacked once"
    );
    let ino = fs::metadata(two.layers[0].rootfs.join("bin/app"))
        .unwrap()
        .ino();
    assert_eq!(ino, base_ino, "the base layer was not unpacked again");
    assert_eq!(store.list().unwrap().len(), 2);

    // Importing a single-platform tarball again needs no budget: everything is there.
    assert_eq!(store.import_oci_tar(&t2, 0).unwrap(), two);

    assert!(store.remove(NAME).unwrap());
    assert!(!store.remove(NAME).unwrap());
    assert_eq!(store.get(NAME).unwrap(), None);
    assert!(!one.layers[1].rootfs.exists(), "unused layer collected");
    assert!(
        two.layers[0].rootfs.join("bin/app").exists(),
        "shared layer kept"
    );
    assert_eq!(
        store.get("example.com/kelp/app:2.0").unwrap(),
        Some(two.clone())
    );

    assert!(store.remove("example.com/kelp/app:2.0").unwrap());
    env.assert_empty();
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn several_images_in_one_tarball() {
    let env = Env::new();
    let mut oci = Oci::new();
    let a = oci.image("arm64", &[base_layer()], false);
    let b = oci.image("arm64", &[arch_layer("b")], false);
    let tar = oci.tarball(
        &[
            named(a.descriptor, "reg.local/a:1"),
            named(b.descriptor, "reg.local/b:1"),
        ],
        no_tamper,
    );
    let tar = env.write("two.tar", &tar);
    let store = env.store("arm64");
    match assert_fails_cleanly(&env, &store, &tar, BIG) {
        ImageError::MultipleImages(names) => assert_eq!(names, ["reg.local/a:1", "reg.local/b:1"]),
        other => panic!("expected MultipleImages, got {other:?}"),
    }
    let recs = store.import_oci_tar_all(&tar, BIG).unwrap();
    let names: Vec<_> = recs.iter().map(|r| r.reference.as_str()).collect();
    assert_eq!(names, ["reg.local/a:1", "reg.local/b:1"]);
    assert_eq!(store.list().unwrap(), recs);
}

#[test]
fn names_digests_and_short_references() {
    let env = Env::new();
    let store = env.store("arm64");
    // An unnamed single manifest without a platform: known by its digest.
    let mut oci = Oci::new();
    let img = oci.image("arm64", &[base_layer()], false);
    let mut desc = img.descriptor.clone();
    desc.as_object_mut().unwrap().remove("platform");
    let tar = env.write("anon.tar", &oci.tarball(&[desc.clone()], no_tamper));
    let rec = store.import_oci_tar(&tar, BIG).unwrap();
    assert_eq!(rec.reference, img.manifest_digest);
    assert_eq!(store.get(&img.manifest_digest).unwrap(), Some(rec));

    // Its config says arm64: an amd64 node refuses it even without an index platform.
    let env2 = Env::new();
    let err = assert_fails_cleanly(
        &env2,
        &env2.store("amd64"),
        &env2.write("a.tar", &oci.tarball(&[desc], no_tamper)),
        BIG,
    );
    assert!(
        matches!(err, ImageError::NoMatchingPlatform { .. }),
        "{err:?}"
    );

    // containerd's full name wins over the bare tag of ref.name; short names find it.
    let mut d = img.descriptor.clone();
    d["annotations"] = serde_json::json!({
        "io.containerd.image.name": "docker.io/library/busybox:1.36",
        "org.opencontainers.image.ref.name": "1.36",
    });
    let tar = env.write("docker.tar", &oci.tarball(&[d], no_tamper));
    let rec = store.import_oci_tar(&tar, BIG).unwrap();
    assert_eq!(rec.reference, "docker.io/library/busybox:1.36");
    assert_eq!(
        store.get("busybox:1.36").unwrap().unwrap().reference,
        rec.reference
    );
    assert_eq!(
        store
            .get("index.docker.io/library/busybox:1.36")
            .unwrap()
            .unwrap()
            .reference,
        rec.reference
    );
    assert_eq!(
        store.get("busybox").unwrap(),
        None,
        "busybox means busybox:latest"
    );
}

#[test]
fn open_removes_stale_staging_directories() {
    let env = Env::new();
    drop(env.store("arm64"));
    let stale = env.dir.join("tmp/import-1-0/layers/x/rootfs");
    fs::create_dir_all(&stale).unwrap();
    fs::write(stale.join("f"), b"").unwrap();
    drop(env.store("arm64"));
    assert_eq!(fs::read_dir(env.dir.join("tmp")).unwrap().count(), 0);
}

#[test]
fn missing_layout_files_and_blobs_are_reported() {
    let env = Env::new();
    let store = env.store("arm64");
    // A plain tar without an OCI layout.
    let mut t = TarBuilder::new();
    t.file("manifest.json", 0o644, b"[]");
    let tar = env.write("docker-legacy.tar", &t.finish());
    let err = assert_fails_cleanly(&env, &store, &tar, BIG);
    assert!(matches!(err, ImageError::InvalidLayout(_)), "{err:?}");
    // An index pointing at a manifest that is not in the tarball.
    let mut oci = Oci::new();
    let img = oci.image("arm64", &[base_layer()], false);
    oci.blobs.retain(|(d, _)| *d != img.layer_digests[0]);
    let tar = env.write(
        "partial.tar",
        &oci.tarball(&[named(img.descriptor, NAME)], no_tamper),
    );
    match assert_fails_cleanly(&env, &store, &tar, BIG) {
        ImageError::MissingBlob(d) => assert_eq!(d.as_str(), img.layer_digests[0]),
        other => panic!("expected MissingBlob, got {other:?}"),
    }
    env.assert_empty();
}
