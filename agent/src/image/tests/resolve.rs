//! The in-root resolver agrees with the kernel's `openat2(RESOLVE_IN_ROOT)`.

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::symlink;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::image::inroot::{ResolveError, Root};

#[test]
fn resolver_matches_openat2_resolve_in_root() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let root = base.join("root");
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(base.join("outside/dir")).unwrap();
    fs::create_dir_all(root.join("outside")).unwrap();
    // The in-root twin of the outside directory, where links to it must lead.
    let outside = base.join("outside");
    fs::create_dir_all(root.join(outside.strip_prefix("/").unwrap()).join("dir")).unwrap();
    fs::write(root.join("file"), b"").unwrap();
    let links: &[(&str, String)] = &[
        ("up", "..".into()),
        ("abs", "/a/b".into()),
        ("rel", "a/b".into()),
        ("loop1", "loop2".into()),
        ("loop2", "loop1".into()),
        ("a/b/back", "../../..".into()),
        ("a/b/c/deep", "../../../../../a".into()),
        ("a/b/c/dotty", "./../.././b/../b/c".into()),
        ("dang", "nothere".into()),
        ("viafile", "file".into()),
        ("host", outside.to_str().unwrap().into()),
        ("hostrel", format!("../../../../../..{}", outside.display())),
        ("slashes", "//a///b//".into()),
        ("etc", "/etc".into()),
        ("root", "/".into()),
    ];
    for (name, target) in links {
        symlink(target, root.join(name)).unwrap();
    }
    let r = Root::open(&root).unwrap();
    let paths = [
        "a",
        "a/b",
        "a/b/c",
        "up",
        "up/up/a",
        "abs",
        "abs/c",
        "rel/c",
        "loop1",
        "a/b/back",
        "a/b/back/a/b/back/a",
        "a/b/c/deep/b",
        "a/b/c/dotty",
        "dang",
        "viafile",
        "host",
        "host/dir",
        "hostrel",
        "hostrel/dir",
        "slashes/c",
        "etc",
        "root",
        "root/a/b",
        "../a",
        "../../outside",
        "a/../../a/b",
        "up/../up/../outside",
        "file",
        "nothere/x",
    ];
    let mut compared = 0;
    for p in paths {
        let comps: Vec<&[u8]> = p.split('/').map(str::as_bytes).collect();
        let mine = r.resolve_dir(&comps, false);
        let kernel = rustix::fs::openat2(
            r.fd(),
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        );
        match (&mine, &kernel) {
            (_, Err(Errno::NOSYS)) => {
                eprintln!("openat2 unavailable: differential test skipped");
                return;
            }
            (Ok(m), Ok(k)) => {
                let (m, k) = (
                    rustix::fs::fstat(m.as_fd()).unwrap(),
                    rustix::fs::fstat(k).unwrap(),
                );
                assert_eq!(
                    (m.st_dev, m.st_ino),
                    (k.st_dev, k.st_ino),
                    "{p}: different directories"
                );
            }
            (Err(ResolveError::Loop), Err(Errno::LOOP))
            | (Err(ResolveError::NotFound(_)), Err(Errno::NOENT))
            | (Err(ResolveError::NotADirectory(_)), Err(Errno::NOTDIR)) => {}
            _ => panic!("{p}: resolver {mine:?} vs kernel {kernel:?}"),
        }
        compared += 1;
    }
    assert_eq!(compared, paths.len());
    // And none of them reached the real outside directory.
    let out = rustix::fs::stat(&outside).unwrap();
    for p in ["host", "hostrel", "../../outside", "up/../up/../outside"] {
        let comps: Vec<&[u8]> = p.split('/').map(str::as_bytes).collect();
        let fd = r.resolve_dir(&comps, false).unwrap();
        let st = rustix::fs::fstat(fd).unwrap();
        assert_ne!(
            (st.st_dev, st.st_ino),
            (out.st_dev, out.st_ino),
            "{p} escaped"
        );
    }
}

#[test]
fn resolver_creates_missing_directories_inside_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    symlink("/x/y", root.join("l")).unwrap();
    let r = Root::open(&root).unwrap();
    r.resolve_dir(&[b"l", b"z"], true).unwrap();
    assert!(root.join("x/y/z").is_dir());
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["root"]);
}
