#!/usr/bin/env python3
"""Writes (or checks) meta-kelp's list of crates from the workspace's Cargo.lock.

    yocto/crates-inc.py            rewrite yocto/meta-kelp/recipes-kelp/kelp/kelp-crates.inc
    yocto/crates-inc.py --check    exit 1, naming what differs, if that file is not what
                                   Cargo.lock gives (CI runs this)

The output has the shape of the `*-crates.inc` files that oe-core's
cargo-update-recipe-crates class writes (`bitbake -c update_crates`): one
`crate://crates.io/NAME/VERSION` SRC_URI entry per crates.io package in Cargo.lock, in
Cargo.lock's order, then `SRC_URI[NAME-VERSION.sha256sum]` with the checksum Cargo.lock
records. bitbake's crate fetcher verifies each download against that checksum, and cargo_common
vendors them for `cargo build --frozen`, so the image builds offline from its download dir.

Git dependencies (source `git+URL?...#SHA`) become `git://` SRC_URI entries with
`name=` and `destsuffix=`, which oe-core's cargo_common_do_patch_paths turns into
`[patch."URL"]` paths, plus `SRCREV_NAME`. A crate that is not at the root of its repository
needs `subdir=` added by hand: the script says so on stderr. Packages from any other registry
are an error. Workspace members (no source) are skipped.
"""

import argparse
import difflib
import pathlib
import sys
import tomllib
import urllib.parse

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_LOCK = REPO / "Cargo.lock"
DEFAULT_OUT = REPO / "yocto/meta-kelp/recipes-kelp/kelp/kelp-crates.inc"
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
SPARSE_CRATES_IO = "sparse+https://index.crates.io/"


class LockError(Exception):
    pass


def srcrev_name(name):
    # bitbake's SRC_URI name= may not contain '-' in SRCREV_<name> comfortably; keep it
    # readable and unique.
    return name.replace("-", "_")


def render(lock_path, lock_name):
    try:
        lock = tomllib.loads(lock_path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise LockError(f"cannot read {lock_path}: {e}") from e
    packages = lock.get("package", [])
    crates, sums, gits, notes = [], [], [], []
    for p in packages:
        name, version, source = p["name"], p["version"], p.get("source")
        if source is None:
            continue  # a workspace member or path dependency: part of the source tree
        if source in (CRATES_IO, SPARSE_CRATES_IO):
            checksum = p.get("checksum")
            if not checksum:
                raise LockError(f"{lock_name}: {name} {version} from crates.io has no checksum")
            crates.append(f"    crate://crates.io/{name}/{version} \\")
            sums.append(f'SRC_URI[{name}-{version}.sha256sum] = "{checksum}"')
        elif source.startswith("git+"):
            url, _, sha = source[len("git+"):].partition("#")
            parsed = urllib.parse.urlsplit(url)
            if not sha or parsed.scheme not in ("https", "http", "ssh"):
                raise LockError(f"{lock_name}: cannot read the git source of {name} {version}: {source}")
            tag = srcrev_name(name)
            gits.append(
                f'SRC_URI += "git://{parsed.netloc}{parsed.path};protocol={parsed.scheme};'
                f'nobranch=1;name={tag};destsuffix={name}"'
            )
            gits.append(f'SRCREV_{tag} = "{sha}"')
            notes.append(
                f"git dependency {name} {version} from {parsed.netloc}{parsed.path} at {sha}: "
                f"add subdir=PATH to its SRC_URI entry if the crate is not at the repository root"
            )
        else:
            raise LockError(
                f"{lock_name}: {name} {version} comes from {source}; only crates.io and git "
                f"sources can be fetched by bitbake's cargo classes"
            )
    if not crates:
        raise LockError(f"{lock_name}: no crates.io packages found")
    out = [
        f"# Generated from {lock_name} by yocto/crates-inc.py; do not edit.",
        "# CI (yocto/ci.sh) fails when this file and Cargo.lock disagree.",
        "",
        f"# from {lock_name}",
        'SRC_URI += "\\',
        *crates,
        '"',
        "",
        *sums,
    ]
    if gits:
        out += ["", "# git dependencies", *gits]
    return "\n".join(out) + "\n", notes


def crate_set(text):
    return {line.split()[0] for line in text.splitlines() if line.startswith("SRC_URI[")} | {
        line.strip().rstrip(" \\") for line in text.splitlines() if line.strip().startswith(("crate://", "SRC_URI += \"git://"))
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lock", type=pathlib.Path, default=DEFAULT_LOCK, help="Cargo.lock to read (default: the workspace's)")
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="the .inc file (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 if --out differs from what --lock gives")
    args = ap.parse_args()

    try:
        text, notes = render(args.lock, "Cargo.lock")
    except LockError as e:
        print(f"crates-inc: error: {e}", file=sys.stderr)
        return 2
    for n in notes:
        print(f"crates-inc: note: {n}", file=sys.stderr)
    n_crates = text.count("crate://crates.io/")

    if args.check:
        try:
            current = args.out.read_text()
        except OSError as e:
            print(f"crates-inc: DRIFT: cannot read {args.out}: {e}; run yocto/crates-inc.py", file=sys.stderr)
            return 1
        if current == text:
            print(f"crates-inc: {args.out.name} matches {args.lock} ({n_crates} crates)")
            return 0
        want, have = crate_set(text), crate_set(current)
        print(f"crates-inc: DRIFT: {args.out} does not match {args.lock}; run yocto/crates-inc.py", file=sys.stderr)
        for line in sorted(want - have)[:20]:
            print(f"  missing from the .inc: {line}", file=sys.stderr)
        for line in sorted(have - want)[:20]:
            print(f"  not in Cargo.lock:     {line}", file=sys.stderr)
        if want == have:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(args.out), "expected", lineterm="", n=0)
            for line in list(diff)[:20]:
                print(f"  {line}", file=sys.stderr)
        return 1

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"crates-inc: wrote {args.out} ({n_crates} crates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
