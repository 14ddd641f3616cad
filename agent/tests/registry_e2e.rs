//! Images through a real registry, end to end: Debian's `docker-registry` on a loopback port,
//! busybox images built from Debian's `busybox-static` (amd64, arm64, armhf), pushed and pulled
//! by `kelp-agent`'s own client. Covers platform resolution including the ARM variant, basic
//! auth from a pull secret, a tampered blob, pulls broken or killed mid-layer, warm pulls that
//! download nothing, and HTTPS with a test CA.
//!
//! Prerequisites (the tests fail, naming them, when absent): `apt-get install docker-registry
//! busybox-static`, and the arm64/armhf `busybox-static` packages in `/var/cache/kelp-test-debs`
//! (`dpkg --add-architecture arm64 && dpkg --add-architecture armhf && apt-get update && cd
//! /var/cache/kelp-test-debs && apt-get download busybox-static:arm64 busybox-static:armhf`).

mod registry;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kelp_agent::image::build::busybox_rootfs_from;
use kelp_agent::image::{
    build_oci_index_tar, build_oci_tar, busybox_rootfs, push_oci_tar, BuildOptions, ImageError,
    ImageStore, Platform, PullOptions, RegistriesConfig, RegistryError,
};
use registry::*;

/// Builds the amd64 busybox image tarball (`sh` as its command) in `scratch`.
fn busybox_tar(scratch: &Scratch, reference: &str) -> PathBuf {
    let rootfs = scratch.path("rootfs-amd64");
    busybox_rootfs(&rootfs).expect("busybox rootfs (apt-get install busybox-static)");
    let tar = scratch.path("busybox.tar");
    let mut opts = BuildOptions::new(reference);
    opts.platform = "linux/amd64".parse().unwrap();
    opts.cmd = vec!["sh".into()];
    build_oci_tar(&rootfs, &opts, &tar).unwrap();
    tar
}

/// A tiny one-file image, to give a store some prior content.
fn tiny_tar(scratch: &Scratch, reference: &str) -> PathBuf {
    let dir = scratch.path("tiny");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("hello.txt"), "hello\n").unwrap();
    let tar = scratch.path("tiny.tar");
    let mut opts = BuildOptions::new(reference);
    opts.platform = Platform::host();
    build_oci_tar(&dir, &opts, &tar).unwrap();
    tar
}

fn unpacked(store: &ImageStore, reference: &str, file: &str) -> PathBuf {
    let image = store.get(reference).unwrap().expect("image in the store");
    image
        .layers
        .iter()
        .rev()
        .map(|l| l.rootfs.join(file))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{file} not in any layer of {reference}"))
}

#[test]
fn busybox_pushed_then_pulled_cold_and_warm() {
    let reg = Registry::start(Auth::None);
    let scratch = Scratch::new();
    let reference = reg.reference("kelp/busybox:1");
    let tar = busybox_tar(&scratch, &reference);
    let opts = options(reg.registries(), vec![]);

    let pushed = push_oci_tar(&tar, &reference, &opts).unwrap();
    assert_eq!(pushed.blobs_uploaded, 2, "{pushed:?}");
    assert_eq!(pushed.manifests, 1);
    // A second push finds every blob in place.
    let again = push_oci_tar(&tar, &reference, &opts).unwrap();
    assert_eq!((again.blobs_uploaded, again.blobs_present), (0, 2));
    assert_eq!(again.digest, pushed.digest);

    let store = scratch
        .store()
        .with_platform("linux/amd64".parse().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut pull = pull_options(opts.clone());
    pull.progress = Some(Arc::new(move |p| sink.lock().unwrap().push(p.clone())));
    let cold = store.pull_report(&reference, &pull).unwrap();
    assert_eq!(cold.image.reference, reference);
    assert_eq!(cold.image.manifest_digest, pushed.digest);
    assert_eq!(cold.blobs_fetched, 2);
    assert!(cold.downloaded > 500_000, "{cold:?}");
    let seen = seen.lock().unwrap();
    let last = seen.last().expect("progress reported");
    assert_eq!((last.done, last.total), (cold.downloaded, cold.downloaded));
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert!(cold.message().starts_with("Successfully pulled image"));

    let busybox = unpacked(&store, &reference, "bin/busybox");
    assert_eq!(
        fs::read(&busybox).unwrap(),
        fs::read("/usr/bin/busybox").unwrap()
    );
    assert_eq!(elf_machine(&busybox), EM_X86_64);
    let sh = unpacked(&store, &reference, "bin/sh");
    assert_eq!(fs::read_link(sh).unwrap(), Path::new("busybox"));
    let record = store.get(&reference).unwrap().unwrap();
    assert_eq!(record.config.cmd, ["sh"]);

    // Warm: the manifest is asked for again, no blob is downloaded.
    let warm = store
        .pull_report(&reference, &pull_options(opts.clone()))
        .unwrap();
    assert_eq!((warm.downloaded, warm.blobs_fetched), (0, 0), "{warm:?}");
    assert_eq!(warm.image, cold.image);
    // By digest, too.
    let pinned = format!("{}/kelp/busybox@{}", reg.host, pushed.digest);
    let by_digest = store.pull_report(&pinned, &pull_options(opts)).unwrap();
    assert_eq!(by_digest.downloaded, 0);
    assert_eq!(store.list().unwrap().len(), 2);

    println!(
        "benchmark: busybox pull cold {:.3}s {} bytes, warm {:.3}s {} bytes",
        cold.elapsed.as_secs_f64(),
        cold.downloaded,
        warm.elapsed.as_secs_f64(),
        warm.downloaded
    );
}

#[test]
fn multi_platform_index_resolves_each_platform_including_the_arm_variant() {
    let reg = Registry::start(Auth::None);
    let scratch = Scratch::new();
    let mut sources = Vec::new();
    for (deb_arch, platform) in [
        ("amd64", "linux/amd64"),
        ("arm64", "linux/arm64/v8"),
        ("armhf", "linux/arm/v7"),
    ] {
        let bin = busybox_binary(deb_arch, scratch.dir.path());
        let rootfs = scratch.path(&format!("rootfs-{deb_arch}"));
        busybox_rootfs_from(&rootfs, &bin).unwrap();
        sources.push((platform.parse::<Platform>().unwrap(), rootfs));
    }
    // An armv6 image beside the armv7 one, to prove the variant decides (a small payload).
    let v6 = scratch.path("rootfs-armv6");
    fs::create_dir_all(&v6).unwrap();
    fs::write(v6.join("armv6.txt"), "v6\n").unwrap();
    sources.push(("linux/arm/v6".parse().unwrap(), v6));

    let reference = reg.reference("kelp/busybox-multi:1");
    let tar = scratch.path("multi.tar");
    let built = build_oci_index_tar(&sources, &BuildOptions::new(&reference), &tar).unwrap();
    assert_eq!(built.images.len(), 4);
    let opts = options(reg.registries(), vec![]);
    let pushed = push_oci_tar(&tar, &reference, &opts).unwrap();
    assert_eq!(pushed.digest, built.index_digest);
    assert_eq!(pushed.manifests, 5, "4 manifests and the index: {pushed:?}");

    // The tarball imports too, resolved by the same rules.
    let imported = scratch
        .store()
        .with_platform("linux/arm/v7".parse().unwrap())
        .import_oci_tar(&tar, u64::MAX)
        .unwrap();
    assert_eq!(imported.platform.to_string(), "linux/arm/v7");

    for (platform, machine) in [
        ("linux/amd64", Some(EM_X86_64)),
        ("linux/arm64", Some(EM_AARCH64)),
        ("linux/arm/v7", Some(EM_ARM)),
        ("linux/arm/v6", None),
    ] {
        let p: Platform = platform.parse().unwrap();
        let dir = scratch.path(&format!("store-{}", platform.replace('/', "-")));
        let store = ImageStore::open(&dir).unwrap().with_platform(p.clone());
        let image = store.pull(&reference, &pull_options(opts.clone())).unwrap();
        assert_eq!(image.platform, p, "{platform}");
        let expected = built.images.iter().find(|i| i.platform == p).unwrap();
        assert_eq!(
            image.manifest_digest, expected.manifest_digest,
            "{platform}"
        );
        match machine {
            Some(m) => {
                let busybox = unpacked(&store, &reference, "bin/busybox");
                assert_eq!(elf_machine(&busybox), m, "{platform}");
            }
            None => {
                unpacked(&store, &reference, "armv6.txt");
            }
        }
    }

    // No image for linux/riscv64: the error lists what there is.
    let store = scratch
        .store()
        .with_platform("linux/riscv64".parse().unwrap());
    let err = store
        .pull(&reference, &pull_options(opts))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("linux/riscv64")
            && err.contains("linux/arm/v7")
            && err.contains("linux/arm/v6"),
        "{err}"
    );
}

#[test]
fn basic_auth_from_a_pull_secret_and_401_without_it() {
    let reg = Registry::start(Auth::Htpasswd);
    let scratch = Scratch::new();
    let reference = reg.reference("kelp/private:1");
    let tar = tiny_tar(&scratch, &reference);
    let secret = pull_secret(&reg.host, USER, PASSWORD);

    let anonymous = options(reg.registries(), vec![]);
    let err = push_oci_tar(&tar, &reference, &anonymous).unwrap_err();
    assert!(
        matches!(
            &err,
            ImageError::Registry(RegistryError::Unauthorized { .. })
        ),
        "{err:?}"
    );
    push_oci_tar(
        &tar,
        &reference,
        &options(reg.registries(), vec![secret.clone()]),
    )
    .unwrap();

    let store = scratch.store();
    let err = store
        .pull(&reference, &pull_options(anonymous))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&reg.host)
            && msg.contains("unauthorized")
            && msg.contains("without credentials"),
        "{msg}"
    );
    let wrong = pull_secret(&reg.host, USER, "wrong");
    let msg = store
        .pull(
            &reference,
            &pull_options(options(reg.registries(), vec![wrong])),
        )
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&reg.host) && msg.contains("unauthorized"),
        "{msg}"
    );
    assert!(store.list().unwrap().is_empty());

    let image = store
        .pull(
            &reference,
            &pull_options(options(reg.registries(), vec![secret])),
        )
        .unwrap();
    assert_eq!(image.reference, reference);

    // Credentials from the node's registries file work as well.
    let registries = RegistriesConfig::parse(
        &format!(
            "mirrors:\n  \"{h}\":\n    endpoint: [\"http://{h}\"]\nconfigs:\n  \"{h}\":\n    auth:\n      username: {USER}\n      password: {PASSWORD}\n",
            h = reg.host
        ),
        "registries.yaml",
    )
    .unwrap();
    let other = ImageStore::open(scratch.path("store2")).unwrap();
    other
        .pull(&reference, &pull_options(options(registries, vec![])))
        .unwrap();
}

#[test]
fn a_tampered_blob_is_rejected_naming_it() {
    let reg = Registry::start(Auth::None);
    let scratch = Scratch::new();
    let reference = reg.reference("kelp/busybox:tampered");
    let tar = busybox_tar(&scratch, &reference);
    let opts = options(reg.registries(), vec![]);
    push_oci_tar(&tar, &reference, &opts).unwrap();
    let built = ImageStore::open(scratch.path("probe"))
        .unwrap()
        .with_platform("linux/amd64".parse().unwrap())
        .import_oci_tar(&tar, u64::MAX)
        .unwrap();
    let layer = built.layers[0].digest.clone();
    let data = reg.blob_data(layer.as_str());
    let mut bytes = fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&data, bytes).unwrap();

    let store = scratch
        .store()
        .with_platform("linux/amd64".parse().unwrap());
    let before = state(&store);
    let err = store.pull(&reference, &pull_options(opts)).unwrap_err();
    match &err {
        ImageError::DigestMismatch { what, expected, .. } => {
            assert_eq!((*what, expected), ("blob", &layer));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(err.to_string().contains(layer.as_str()), "{err}");
    assert_eq!(state(&store), before);
}

#[test]
fn a_pull_cut_mid_layer_leaves_the_store_unchanged() {
    let reg = Registry::start(Auth::None);
    let scratch = Scratch::new();
    let opts = options(reg.registries(), vec![]);
    let tiny = reg.reference("kelp/tiny:1");
    push_oci_tar(&tiny_tar(&scratch, &tiny), &tiny, &opts).unwrap();
    let big = reg.reference("kelp/busybox:1");
    push_oci_tar(&busybox_tar(&scratch, &big), &big, &opts).unwrap();

    let store = scratch
        .store()
        .with_platform("linux/amd64".parse().unwrap());
    store.pull(&tiny, &pull_options(opts.clone())).unwrap();
    let before = state(&store);
    assert_eq!(before.refs, std::slice::from_ref(&tiny));

    // Every connection through the proxy is cut after 100 kB: manifests and the config
    // pass, the 1 MB layer never does, whatever the retries.
    let proxy = Proxy::start(reg.port, 100_000, Break::Cut);
    let via_proxy = format!("{}/kelp/busybox:1", proxy.host);
    let err = store
        .pull(
            &via_proxy,
            &pull_options(options(plain_http(&proxy.host), vec![])),
        )
        .unwrap_err();
    assert!(proxy.broke.load(Ordering::SeqCst));
    let msg = err.to_string();
    assert!(msg.contains(&proxy.host) && msg.contains("blob"), "{msg}");
    assert_eq!(state(&store), before);
}

#[test]
fn a_pull_killed_mid_layer_leaves_no_record_and_no_blob() {
    let reg = Registry::start(Auth::None);
    let scratch = Scratch::new();
    let opts = options(reg.registries(), vec![]);
    let big = reg.reference("kelp/busybox:1");
    push_oci_tar(&busybox_tar(&scratch, &big), &big, &opts).unwrap();
    let store_dir = scratch.path("state/images");
    let before = state(&ImageStore::open(&store_dir).unwrap());

    // The proxy stalls after 300 kB; `kelp-agent image pull` is killed (SIGKILL) while it
    // waits for the rest of the layer.
    let proxy = Proxy::start(reg.port, 300_000, Break::Stall);
    let registries = scratch.path("registries.yaml");
    fs::write(
        &registries,
        format!(
            "mirrors:\n  \"{h}\":\n    endpoint: [\"http://{h}\"]\n",
            h = proxy.host
        ),
    )
    .unwrap();
    let mut child = Command::new(AGENT)
        .arg("--state-dir")
        .arg(scratch.path("state"))
        .args(["image", "pull", "--quiet", "--platform", "linux/amd64"])
        .arg(format!("{}/kelp/busybox:1", proxy.host))
        .arg("--registries")
        .arg(&registries)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !proxy.broke.load(Ordering::SeqCst) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the pull ended before the stall"
        );
        assert!(Instant::now() < deadline, "the pull never reached 300 kB");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let staged: u64 = fs::read_dir(store_dir.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| dir_size(&e.path()))
        .sum();
    assert!(staged > 0, "the pull had staged nothing when killed");
    child.kill().unwrap();
    child.wait().unwrap();

    // The next open removes the dead pull's staging directory; nothing else changed.
    let store = ImageStore::open(&store_dir).unwrap();
    assert_eq!(state(&store), before);
    assert!(store.get(&big).unwrap().is_none());
}

fn dir_size(p: &Path) -> u64 {
    let meta = fs::symlink_metadata(p).unwrap();
    if meta.is_dir() {
        fs::read_dir(p)
            .unwrap()
            .flatten()
            .map(|e| dir_size(&e.path()))
            .sum()
    } else {
        meta.len()
    }
}

#[test]
fn cli_builds_a_multi_platform_index_pushes_and_pulls_it() {
    let reg = Registry::start(Auth::None);
    let scratch = Scratch::new();
    let amd = scratch.path("amd");
    busybox_rootfs(&amd).unwrap();
    let arm = scratch.path("arm");
    fs::create_dir_all(&arm).unwrap();
    fs::write(arm.join("arm.txt"), "arm64\n").unwrap();
    let registries = scratch.path("registries.yaml");
    fs::write(
        &registries,
        format!(
            "mirrors:\n  \"{h}\":\n    endpoint: [\"http://{h}\"]\n",
            h = reg.host
        ),
    )
    .unwrap();
    let reference = reg.reference("kelp/cli:1");
    let tar = scratch.path("cli.tar");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(AGENT)
            .arg("--state-dir")
            .arg(scratch.path("state"))
            .arg("image")
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kelp-agent image {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let out = run(&[
        &os("build"),
        &os("-o"),
        tar.as_os_str(),
        &os("--reference"),
        &os(&reference),
        &os(&format!("--platform=linux/amd64={}", amd.display())),
        &os(&format!("--platform=linux/arm64={}", arm.display())),
    ]);
    assert!(out.contains("built index sha256:"), "{out}");
    let out = run(&[
        &os("push"),
        tar.as_os_str(),
        &os(&reference),
        &os("--registries"),
        registries.as_os_str(),
    ]);
    assert!(out.contains("pushed"), "{out}");
    let out = run(&[
        &os("pull"),
        &os(&reference),
        &os("--platform"),
        &os("linux/arm64"),
        &os("--registries"),
        registries.as_os_str(),
    ]);
    assert!(out.contains("linux/arm64"), "{out}");
    let out = run(&[&os("list")]);
    assert!(
        out.contains(&reference) && out.contains("linux/arm64"),
        "{out}"
    );
}

#[test]
fn https_with_a_test_ca() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kelp test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let reg = Registry::start_with(Auth::Htpasswd, Some((&cert.pem(), &key.serialize_pem())));

    let scratch = Scratch::new();
    let ca_file = scratch.path("ca.pem");
    fs::write(&ca_file, ca.pem()).unwrap();
    let registries = RegistriesConfig::parse(
        &format!(
            "configs:\n  \"{}\":\n    tls:\n      ca_file: {}\n",
            reg.host,
            ca_file.display()
        ),
        "registries.yaml",
    )
    .unwrap();
    let secret = pull_secret(&reg.host, USER, PASSWORD);
    let reference = reg.reference("kelp/tls:1");
    let tar = tiny_tar(&scratch, &reference);
    push_oci_tar(
        &tar,
        &reference,
        &options(registries.clone(), vec![secret.clone()]),
    )
    .unwrap();
    let store = scratch.store();
    let image = store
        .pull(
            &reference,
            &pull_options(options(registries, vec![secret.clone()])),
        )
        .unwrap();
    assert_eq!(image.reference, reference);

    // Without the CA the server is not trusted, and the error says which registry.
    let other = ImageStore::open(scratch.path("store2")).unwrap();
    let err = other
        .pull(
            &reference,
            &pull_options(options(RegistriesConfig::default(), vec![secret])),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&reg.host), "{msg}");
    assert!(other.list().unwrap().is_empty());
}

#[test]
fn a_missing_image_and_a_stopped_registry_fail_clearly() {
    let scratch = Scratch::new();
    let reference;
    let opts;
    {
        let reg = Registry::start(Auth::None);
        opts = options(reg.registries(), vec![]);
        let store = scratch.store();
        let err = store
            .pull(
                &reg.reference("kelp/nothing:1"),
                &pull_options(opts.clone()),
            )
            .unwrap_err();
        assert!(
            matches!(&err, ImageError::Registry(RegistryError::NotFound { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("kelp/nothing:1"), "{err}");
        reference = reg.reference("kelp/tiny:1");
        push_oci_tar(&tiny_tar(&scratch, &reference), &reference, &opts).unwrap();
        store.pull(&reference, &pull_options(opts.clone())).unwrap();
    }
    // The registry is gone: a pull fails after its retries, the stored image is still there.
    let store = scratch.store();
    let start = Instant::now();
    let err = store
        .pull(
            &reference,
            &PullOptions {
                ..pull_options(opts)
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, ImageError::Registry(e) if e.is_transient()),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(store.get(&reference).unwrap().is_some());
}

#[test]
fn bearer_tokens_from_the_registry_token_service() {
    let tokens = TokenServer::start();
    let reg = Registry::start(Auth::Token(&tokens));
    let scratch = Scratch::new();
    let reference = reg.reference("kelp/token:1");
    let tar = tiny_tar(&scratch, &reference);
    let secret = pull_secret(&reg.host, USER, PASSWORD);

    let anonymous = options(reg.registries(), vec![]);
    let err = push_oci_tar(&tar, &reference, &anonymous).unwrap_err();
    assert!(
        matches!(
            &err,
            ImageError::Registry(RegistryError::Unauthorized { .. })
        ),
        "{err:?}"
    );
    let pushed = push_oci_tar(
        &tar,
        &reference,
        &options(reg.registries(), vec![secret.clone()]),
    )
    .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", reg.log()));
    assert_eq!(pushed.blobs_uploaded, 2);

    let store = scratch.store();
    let msg = store
        .pull(&reference, &pull_options(anonymous))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&reg.host) && msg.contains("unauthorized"),
        "{msg}"
    );
    let issued = tokens.issued.load(Ordering::SeqCst);
    let image = store
        .pull(
            &reference,
            &pull_options(options(reg.registries(), vec![secret])),
        )
        .unwrap();
    assert_eq!(image.manifest_digest, pushed.digest);
    // One token for the whole pull: it is kept for the manifest and every blob.
    assert_eq!(tokens.issued.load(Ordering::SeqCst), issued + 1);
    assert!(tokens.refused.load(Ordering::SeqCst) >= 2);
}

#[test]
fn a_cut_download_resumes_where_it_stopped() {
    let reg = Registry::start(Auth::None);
    let scratch = Scratch::new();
    let opts = options(reg.registries(), vec![]);
    let big = reg.reference("kelp/busybox:1");
    push_oci_tar(&busybox_tar(&scratch, &big), &big, &opts).unwrap();

    // 400 kB per connection: the 1 MB layer needs three connections, each resuming with a
    // Range request where the last one was cut, so about 1 MB crosses the proxy in all.
    let proxy = Proxy::start(reg.port, 400_000, Break::Cut);
    let mut via = options(plain_http(&proxy.host), vec![]);
    via.retry.attempts = 6;
    let store = scratch
        .store()
        .with_platform("linux/amd64".parse().unwrap());
    let report = store
        .pull_report(
            &format!("{}/kelp/busybox:1", proxy.host),
            &pull_options(via),
        )
        .unwrap();
    assert!(proxy.broke.load(Ordering::SeqCst));
    let layer = report.image.layers[0].size;
    assert!(
        layer > 800_000,
        "the layer should need 3 connections: {layer}"
    );
    assert_eq!(
        report.downloaded,
        report.image_size + {
            let config = store
                .get(&report.image.reference)
                .unwrap()
                .unwrap()
                .config_digest;
            fs::metadata(store.blob_path(&config)).unwrap().len()
        }
    );
    let forwarded = proxy.forwarded.load(Ordering::SeqCst);
    assert!(
        forwarded < layer + 100_000,
        "{forwarded} bytes crossed the proxy for a {layer}-byte layer: the download restarted"
    );
    unpacked(&store, &report.image.reference, "bin/busybox");
    assert!(names(&store.root().join("tmp")).is_empty());
}
