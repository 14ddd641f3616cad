//! Layer unpacking: normal content, escape attempts, budgets, gzip, whiteouts, truncation.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::util::{gzip, sha256, snapshot, TarBuilder};
use crate::image::{unpack_layer, Budget, UnpackError, UnpackStats};

/// A scratch area: `root` is the unpack destination, `outside` a sibling that must stay as
/// it is.
struct Scratch {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("kelp-unpack-")
            .tempdir()
            .unwrap();
        let base = tmp.path().to_path_buf();
        let root = base.join("root");
        let outside = base.join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"host data").unwrap();
        Self {
            _tmp: tmp,
            base,
            root,
            outside,
        }
    }

    fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
        unpack_layer(tar, &self.root, &mut Budget::new(1 << 30))
    }

    /// Asserts nothing appeared next to the root and `outside` is untouched.
    fn assert_outside_untouched(
        &self,
        before: &std::collections::BTreeMap<PathBuf, (u32, u64, u64, i64)>,
    ) {
        let names: Vec<_> = fs::read_dir(&self.base)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(
            names,
            ["outside", "root"],
            "something was created next to the root"
        );
        assert_eq!(
            &snapshot(&self.outside),
            before,
            "the outside directory changed"
        );
        assert_eq!(fs::read(self.outside.join("secret")).unwrap(), b"host data");
    }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn normal_layer_unpacks_files_dirs_links_modes_and_owners() {
    let s = Scratch::new();
    let mut t = TarBuilder::new();
    t.dir("bin/", 0o755)
        .raw(
            "bin/busybox",
            EntryType::Regular,
            0o4755,
            1000,
            1001,
            "",
            b"#!busybox",
        )
        .symlink("bin/sh", "busybox")
        .hardlink("bin/ls", "bin/busybox")
        .dir("etc", 0o750)
        .file("etc/hostname", 0o644, b"kelp\n")
        // A file whose parents are implicit.
        .file("usr/share/doc/README", 0o600, b"doc")
        .symlink("etc/abs", "/usr/share/doc")
        // A read-only directory with content after it: modes are applied at the end.
        .dir("ro", 0o555)
        .file("ro/inside", 0o444, b"ro")
        // A later entry replaces an earlier one.
        .file("etc/hostname", 0o640, b"kelp2\n")
        // Device nodes are skipped.
        .raw("dev/null", EntryType::Char, 0o666, 0, 0, "", b"");
    let tar = t.finish();
    let stats = s.unpack(&tar).unwrap();

    let r = &s.root;
    assert_eq!(fs::read(r.join("bin/busybox")).unwrap(), b"#!busybox");
    assert_eq!(
        mode(&r.join("bin/busybox")),
        0o4755,
        "setuid kept (after chown)"
    );
    let md = fs::metadata(r.join("bin/busybox")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1000, 1001));
    assert_eq!(md.mtime(), 1_700_000_000);
    assert_eq!(
        fs::read_link(r.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_link(r.join("etc/abs")).unwrap(),
        Path::new("/usr/share/doc")
    );
    let ls = fs::metadata(r.join("bin/ls")).unwrap();
    assert_eq!(ls.ino(), md.ino(), "hard link shares the inode");
    assert_eq!(ls.nlink(), 2);
    assert_eq!(mode(&r.join("etc")), 0o750);
    assert_eq!(fs::read(r.join("etc/hostname")).unwrap(), b"kelp2\n");
    assert_eq!(mode(&r.join("etc/hostname")), 0o640);
    assert_eq!(fs::read(r.join("usr/share/doc/README")).unwrap(), b"doc");
    assert_eq!(mode(&r.join("usr")), 0o755);
    assert_eq!(mode(&r.join("ro")), 0o555);
    assert_eq!(fs::read(r.join("ro/inside")).unwrap(), b"ro");
    assert!(!r.join("dev/null").exists(), "device nodes are not created");

    assert_eq!(stats.files, 5);
    assert_eq!(stats.dirs, 3);
    assert_eq!(stats.symlinks, 2);
    assert_eq!(stats.hardlinks, 1);
    assert_eq!(stats.skipped_special, 1);
    assert_eq!(stats.bytes_written, 9 + 5 + 3 + 2 + 6);
    assert!(!stats.compressed);
    assert_eq!(
        stats.diff_id.as_str(),
        sha256(&tar),
        "diff ID hashes the whole stream"
    );
}

#[test]
fn gzip_layer_unpacks_and_reports_the_uncompressed_digest() {
    let s = Scratch::new();
    let mut t = TarBuilder::new();
    t.file("a/b.txt", 0o644, &vec![b'x'; 200_000]);
    let tar = t.finish();
    let stats = s.unpack(&gzip(&tar)).unwrap();
    assert!(stats.compressed);
    assert_eq!(stats.diff_id.as_str(), sha256(&tar));
    assert_eq!(fs::read(s.root.join("a/b.txt")).unwrap().len(), 200_000);
}

#[test]
fn dotdot_entries_are_errors_naming_the_entry() {
    for path in ["../evil", "a/../../evil", "./../outside/secret", "x/.."] {
        let s = Scratch::new();
        let before = snapshot(&s.outside);
        let mut t = TarBuilder::new();
        t.file(path, 0o644, b"pwned");
        match s.unpack(&t.finish()) {
            Err(UnpackError::DotDot { entry }) => assert_eq!(entry, path),
            other => panic!("{path}: expected DotDot, got {other:?}"),
        }
        s.assert_outside_untouched(&before);
    }
    // The error message names the entry.
    let err = UnpackError::DotDot {
        entry: "../evil".into(),
    };
    assert!(err.to_string().contains("\"../evil\""));
}

#[test]
fn absolute_paths_land_inside_the_root() {
    let s = Scratch::new();
    let host_passwd = fs::read("/etc/passwd").ok();
    let host_mtime = fs::metadata("/etc/passwd").ok().map(|m| m.mtime());
    let outside_abs = s.outside.join("secret");
    let mut t = TarBuilder::new();
    t.file("/etc/passwd", 0o644, b"root::0:0::/:/bin/sh\n")
        .file(outside_abs.to_str().unwrap(), 0o644, b"pwned");
    s.unpack(&t.finish()).unwrap();
    assert_eq!(
        fs::read(s.root.join("etc/passwd")).unwrap(),
        b"root::0:0::/:/bin/sh\n"
    );
    let inside = s.root.join(outside_abs.strip_prefix("/").unwrap());
    assert_eq!(fs::read(inside).unwrap(), b"pwned");
    assert_eq!(fs::read(&outside_abs).unwrap(), b"host data");
    assert_eq!(fs::read("/etc/passwd").ok(), host_passwd);
    assert_eq!(
        fs::metadata("/etc/passwd").ok().map(|m| m.mtime()),
        host_mtime
    );
}

#[test]
fn writing_through_a_symlink_to_an_outside_dir_stays_inside() {
    // `link -> /tmp/kelp-unpack-XXXX/outside`, then `link/pwned`; and the same through a
    // relative link climbing far above the root.
    let s = Scratch::new();
    let before = snapshot(&s.outside);
    let outside = s.outside.to_str().unwrap().to_owned();
    let climb = format!("../../../../../../../../..{outside}");
    let mut t = TarBuilder::new();
    t.symlink("link", &outside)
        .file("link/pwned", 0o644, b"x")
        .symlink("rel", &climb)
        .file("rel/pwned2", 0o644, b"y")
        .dir("link/newdir", 0o755)
        .file("link/newdir/f", 0o644, b"z");
    s.unpack(&t.finish()).unwrap();
    s.assert_outside_untouched(&before);
    let inside = s.root.join(s.outside.strip_prefix("/").unwrap());
    assert_eq!(fs::read(inside.join("pwned")).unwrap(), b"x");
    assert_eq!(fs::read(inside.join("pwned2")).unwrap(), b"y");
    assert_eq!(fs::read(inside.join("newdir/f")).unwrap(), b"z");
    // The links themselves are kept as written.
    assert_eq!(fs::read_link(s.root.join("link")).unwrap(), s.outside);
}

#[test]
fn symlink_chains_climbing_out_are_clamped_at_the_root() {
    let s = Scratch::new();
    let before = snapshot(&s.outside);
    let mut t = TarBuilder::new();
    t.symlink("a", "..")
        .file("a/f1", 0o644, b"1")
        .symlink("a/b", "../../..")
        .file("b/f2", 0o644, b"2")
        .file("a/b/a/b/f3", 0o644, b"3")
        .dir("c/d", 0o755)
        .symlink("c/d/up", "../../../../..")
        .file("c/d/up/outside/f4", 0o644, b"4")
        .symlink("c/d/abs", "/")
        .file("c/d/abs/f5", 0o644, b"5");
    s.unpack(&t.finish()).unwrap();
    s.assert_outside_untouched(&before);
    for (f, content) in [
        ("f1", "1"),
        ("f2", "2"),
        ("f3", "3"),
        ("outside/f4", "4"),
        ("f5", "5"),
    ] {
        assert_eq!(fs::read_to_string(s.root.join(f)).unwrap(), content, "{f}");
    }
    assert_eq!(
        fs::read_link(s.root.join("b")).unwrap(),
        Path::new("../../..")
    );
}

#[test]
fn symlink_to_etc_then_write_through_it() {
    let s = Scratch::new();
    let name = format!("kelp-pwned-{}", std::process::id());
    let mut t = TarBuilder::new();
    t.symlink("etcl", "/etc")
        .file(&format!("etcl/{name}"), 0o644, b"x");
    let result = s.unpack(&t.finish());
    let host = Path::new("/etc").join(&name);
    if host.exists() {
        let _ = fs::remove_file(&host);
        panic!("wrote into the host's /etc");
    }
    result.unwrap();
    assert_eq!(fs::read(s.root.join("etc").join(&name)).unwrap(), b"x");
}

#[test]
fn an_entry_replaces_a_symlink_instead_of_writing_through_it() {
    let s = Scratch::new();
    let before = snapshot(&s.outside);
    let secret = s.outside.join("secret");
    let mut t = TarBuilder::new();
    t.symlink("f", secret.to_str().unwrap())
        .file("f", 0o644, b"new")
        .symlink("d", s.outside.to_str().unwrap())
        .dir("d", 0o700)
        .symlink("h", secret.to_str().unwrap())
        .file("real", 0o644, b"r")
        .hardlink("h", "real");
    s.unpack(&t.finish()).unwrap();
    s.assert_outside_untouched(&before);
    assert!(fs::symlink_metadata(s.root.join("f")).unwrap().is_file());
    assert_eq!(fs::read(s.root.join("f")).unwrap(), b"new");
    assert!(fs::symlink_metadata(s.root.join("d")).unwrap().is_dir());
    assert_eq!(mode(&s.root.join("d")), 0o700);
    assert_eq!(
        fs::metadata(s.root.join("h")).unwrap().ino(),
        fs::metadata(s.root.join("real")).unwrap().ino()
    );
}

#[test]
fn hard_links_outside_the_layer_are_refused() {
    let host_nlink = fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
    let cases: Vec<(String, &str)> = vec![
        ("/etc/passwd".into(), "not found"),
        ("etc/passwd".into(), "not found"),
        ("../outside/secret".into(), "`..`"),
        ("a/../../outside/secret".into(), "`..`"),
        ("linkdir/secret".into(), "not found"),
        ("sym".into(), "not a regular file"),
        ("dir".into(), "not a regular file"),
    ];
    for (target, why) in cases {
        let s = Scratch::new();
        let before = snapshot(&s.outside);
        let mut t = TarBuilder::new();
        t.symlink("linkdir", s.outside.to_str().unwrap())
            .symlink("sym", "/etc/passwd")
            .dir("dir", 0o755)
            .hardlink("pwn", &target);
        match s.unpack(&t.finish()) {
            Err(UnpackError::BadHardLink { entry, reason, .. }) => {
                assert_eq!(entry, "pwn");
                assert!(reason.contains(why), "{target}: {reason}");
            }
            other => panic!("{target}: expected BadHardLink, got {other:?}"),
        }
        assert!(!s.root.join("pwn").exists());
        s.assert_outside_untouched(&before);
    }
    assert_eq!(
        fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(),
        host_nlink
    );
}

#[test]
fn hard_links_resolve_inside_the_root() {
    // `l -> /etc` then a hard link to `l/passwd`: the target is the layer's etc/passwd.
    let s = Scratch::new();
    let mut t = TarBuilder::new();
    t.file("etc/passwd", 0o644, b"layer")
        .symlink("l", "/etc")
        .hardlink("copy", "l/passwd")
        .hardlink("/abs", "/etc/passwd");
    s.unpack(&t.finish()).unwrap();
    let ino = fs::metadata(s.root.join("etc/passwd")).unwrap().ino();
    assert_eq!(fs::metadata(s.root.join("copy")).unwrap().ino(), ino);
    assert_eq!(fs::metadata(s.root.join("abs")).unwrap().ino(), ino);
    assert_eq!(fs::metadata(s.root.join("etc/passwd")).unwrap().nlink(), 3);
}

#[test]
fn paths_through_files_and_symlink_loops_are_errors() {
    let s = Scratch::new();
    let mut t = TarBuilder::new();
    t.file("f", 0o644, b"").file("f/x", 0o644, b"");
    assert!(matches!(
        s.unpack(&t.finish()),
        Err(UnpackError::NotADirectory { entry, .. }) if entry == "f/x"
    ));
    let s = Scratch::new();
    let mut t = TarBuilder::new();
    t.symlink("l1", "l2")
        .symlink("l2", "l1")
        .file("l1/x", 0o644, b"");
    assert!(matches!(
        s.unpack(&t.finish()),
        Err(UnpackError::SymlinkLoop { entry }) if entry == "l1/x"
    ));
}

#[test]
fn budget_is_enforced_before_writing() {
    let s = Scratch::new();
    let mut t = TarBuilder::new();
    t.file("small", 0o644, &[1; 100])
        .file("big", 0o644, &[2; 1000]);
    let tar = t.finish();
    let mut budget = Budget::new(1099);
    match unpack_layer(tar.as_slice(), &s.root, &mut budget) {
        Err(UnpackError::BudgetExceeded {
            entry,
            needed,
            left,
        }) => {
            assert_eq!((entry.as_str(), needed, left), ("big", 1000, 999));
        }
        other => panic!("expected BudgetExceeded, got {other:?}"),
    }
    assert!(
        !s.root.join("big").exists(),
        "nothing of the entry is written"
    );
    // Exactly enough passes.
    let s = Scratch::new();
    let mut budget = Budget::new(1100);
    unpack_layer(tar.as_slice(), &s.root, &mut budget).unwrap();
    assert_eq!(budget.bytes_left(), 0);
    // The entry count is limited too.
    let s = Scratch::new();
    let mut budget = Budget::new(1 << 20).with_max_entries(1);
    assert!(matches!(
        unpack_layer(tar.as_slice(), &s.root, &mut budget),
        Err(UnpackError::TooManyEntries { entry, limit: 1 }) if entry == "big"
    ));
}

#[test]
fn a_gzip_bomb_is_stopped_by_the_budget() {
    // 64 MiB of zeros in one file compresses to ~64 KiB.
    let s = Scratch::new();
    let mut t = TarBuilder::new();
    t.file("zeros", 0o644, &vec![0; 64 << 20]);
    let gz = gzip(&t.finish());
    assert!(gz.len() < 1 << 20);
    let err = unpack_layer(gz.as_slice(), &s.root, &mut Budget::new(1 << 20)).unwrap_err();
    assert!(matches!(err, UnpackError::BudgetExceeded { .. }), "{err:?}");
}

#[test]
fn oversized_pax_metadata_is_refused() {
    let s = Scratch::new();
    let big = vec![b'a'; 2 << 20];
    let mut t = TarBuilder::new();
    t.pax(&[("comment", &big)]).file("f", 0o644, b"x");
    let err = s.unpack(&t.finish()).unwrap_err();
    assert!(
        matches!(err, UnpackError::MetadataTooLarge { .. }),
        "{err:?}"
    );
}

#[test]
fn truncated_archives_are_errors() {
    let mut t = TarBuilder::new();
    t.file("a", 0o644, &[7; 3000]).file("b", 0o644, &[8; 10]);
    let tar = t.finish();
    // Cut inside a's data, right after a's header, and just before the end marker.
    let end_of_b = 512 + 3072 + 512 + 512;
    for cut in [512 + 1000, 512, end_of_b] {
        let s = Scratch::new();
        let err = s.unpack(&tar[..cut]).unwrap_err();
        assert!(
            matches!(err, UnpackError::Truncated { .. }),
            "cut at {cut}: {err:?}"
        );
    }
    // A truncated gzip stream.
    let gz = gzip(&tar);
    let s = Scratch::new();
    assert!(s.unpack(&gz[..gz.len() - 20]).is_err());
    // The complete archive is fine.
    let s = Scratch::new();
    s.unpack(&tar).unwrap();
}

#[test]
fn whiteouts_become_overlayfs_whiteouts() {
    let s = Scratch::new();
    let mut t = TarBuilder::new();
    t.file("etc/.wh.motd", 0o644, b"")
        .dir("var/cache", 0o755)
        .file("var/cache/.wh..wh..opq", 0o644, b"")
        .file("var/cache/kept", 0o644, b"k")
        .file(".wh..wh.plnk", 0o644, b"")
        .file(".wh.gone", 0o644, b"");
    let stats = s.unpack(&t.finish()).unwrap();
    for p in ["etc/motd", "gone"] {
        let md = fs::symlink_metadata(s.root.join(p)).unwrap();
        assert!(md.file_type().is_char_device(), "{p}");
        assert_eq!(md.rdev(), 0, "{p}: device 0/0");
    }
    assert!(!s.root.join("etc/.wh.motd").exists());
    let mut value = [0u8; 8];
    let n = rustix::fs::getxattr(
        s.root.join("var/cache"),
        "trusted.overlay.opaque",
        &mut value,
    )
    .expect("opaque xattr set");
    assert_eq!(&value[..n], b"y");
    assert_eq!(fs::read(s.root.join("var/cache/kept")).unwrap(), b"k");
    assert!(!s.root.join(".wh..wh.plnk").exists());
    assert_eq!(
        (stats.whiteouts, stats.opaque_dirs, stats.skipped_other),
        (2, 1, 1)
    );

    let s = Scratch::new();
    let mut t = TarBuilder::new();
    t.file("a/.wh...", 0o644, b"");
    assert!(matches!(
        s.unpack(&t.finish()),
        Err(UnpackError::DotDot { .. })
    ));
}

#[test]
fn pax_xattrs_capabilities_kept_overlay_ones_dropped() {
    let s = Scratch::new();
    let mut t = TarBuilder::new();
    t.pax(&[
        ("SCHILY.xattr.user.kelp", b"v"),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
    ])
    .file("f", 0o644, b"data");
    let stats = s.unpack(&t.finish()).unwrap();
    let mut value = [0u8; 8];
    let n = rustix::fs::getxattr(s.root.join("f"), "user.kelp", &mut value).unwrap();
    assert_eq!(&value[..n], b"v");
    assert!(
        rustix::fs::getxattr(s.root.join("f"), "trusted.overlay.redirect", &mut value).is_err()
    );
    assert_eq!(stats.xattrs_skipped, 1);
}

#[test]
fn long_paths_and_names_are_refused() {
    let s = Scratch::new();
    let long = "a".repeat(256);
    let mut t = TarBuilder::new();
    t.pax(&[("path", long.as_bytes())])
        .file("ignored", 0o644, b"");
    assert!(matches!(
        s.unpack(&t.finish()),
        Err(UnpackError::InvalidEntry { entry, .. }) if entry == long
    ));
    // A PAX path with `..` is caught as well.
    let s = Scratch::new();
    let mut t = TarBuilder::new();
    t.pax(&[("path", b"ok/../../evil")])
        .file("ignored", 0o644, b"");
    assert!(
        matches!(s.unpack(&t.finish()), Err(UnpackError::DotDot { entry }) if entry == "ok/../../evil")
    );
}

#[test]
fn zstd_layers_are_refused_clearly() {
    let s = Scratch::new();
    let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0];
    assert!(matches!(
        s.unpack(&zstd),
        Err(UnpackError::UnsupportedCompression("zstd"))
    ));
}

#[test]
fn read_only_mode_of_the_root_is_not_touched() {
    let s = Scratch::new();
    fs::set_permissions(&s.root, fs::Permissions::from_mode(0o711)).unwrap();
    let mut t = TarBuilder::new();
    t.dir("./", 0o777).file("x", 0o644, b"");
    s.unpack(&t.finish()).unwrap();
    assert_eq!(mode(&s.root), 0o711);
}
