#!/usr/bin/env bash
# CI stage for the Yocto layer and the systemd units; builds nothing with bitbake.
#
#   yocto/ci.sh
#
# Checks, each printed as "ok   - NAME" or "FAIL - NAME: why", and each shown able to fail
# on a broken input first:
#   1. crate list: yocto/meta-kelp/recipes-kelp/kelp/kelp-crates.inc is what
#      `yocto/crates-inc.py` makes of Cargo.lock (drift fails, naming the crates);
#   2. LIC_FILES_CHKSUM of kelp.inc matches the lines of Cargo.toml it names;
#   3. oelint-adv on every file of yocto/meta-kelp, for wrynose, offline (in a network
#      namespace of its own), suppressing only oelint.vars.homepageping (it pings HOMEPAGE);
#   4. the kas files (yocto/kas/*.yml) validate against the JSON schema kas ships;
#   5. `systemd-analyze verify` of dist/systemd/*.service, and their Delegate=yes,
#      KillMode=process, Restart=always, network-online ordering.
# Installs its Python tools itself (pinned, into a venv cached under ~/.cache/kelp). Needs
# python3 with venv, root (for the network namespace: unshare -n) and systemd-analyze; a
# missing prerequisite fails the stage, naming it. Prints "yocto ci: N s".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
layer=$here/meta-kelp
units=$repo/dist/systemd
t0=$(date +%s)

# Pinned tools (PyPI). kas is installed only for the schema it ships (kas/schema-kas.json).
pins=(oelint-adv==9.11.2 oelint-parser==8.13.2 oelint-data==1.5.26 kas==5.5 jsonschema==4.26.0 PyYAML==6.0.4)

. "$repo/ci/checks.sh"
need() { # need WHAT CMD...: the prerequisite WHAT, or fail the stage naming it
	local what=$1
	shift
	"$@" >/dev/null 2>&1 || {
		echo "yocto ci: missing prerequisite: $what" >&2
		exit 1
	}
}

need "python3 (3.11+, for tomllib)" python3 -c 'import tomllib'
need "python3 venv module (apt-get install python3-venv)" python3 -c 'import venv, ensurepip'
need "root, for an offline network namespace (unshare -n)" unshare -n true
need "systemd-analyze (apt-get install systemd)" systemd-analyze --version

work=$(mktemp -d "${TMPDIR:-/tmp}/kelp-yocto-ci.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- tools --------------------------------------------------------------------------------
pin_hash=$(printf '%s\n' "${pins[@]}" "$(python3 -c 'import sys; print(sys.version)')" | sha256sum | cut -c1-16)
venv=${XDG_CACHE_HOME:-$HOME/.cache}/kelp/yocto-ci-venv-$pin_hash
if [ ! -x "$venv/bin/oelint-adv" ] || [ ! -f "$venv/.complete" ]; then
	rm -rf "$venv"
	mkdir -p "$(dirname "$venv")"
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" || {
		echo "yocto ci: pip install ${pins[*]} failed" >&2
		exit 1
	}
	touch "$venv/.complete"
fi
t1=$(date +%s)
echo "yocto ci: tools ready in $((t1 - t0)) s ($venv)"

# --- 1. crate list ------------------------------------------------------------------------
name="crate list matches Cargo.lock"
# can it fail? a Cargo.lock with one crate's version changed must be reported as drift
sed '0,/^version = "\(.*\)"/s//version = "999.0.0"/' "$repo/Cargo.lock" >"$work/Cargo.lock"
if python3 "$here/crates-inc.py" --lock "$work/Cargo.lock" --check >"$work/neg.out" 2>&1; then
	fail "$name" "the check did not notice a changed Cargo.lock (crates-inc.py --check exited 0)"
elif ! grep -q 'DRIFT' "$work/neg.out"; then
	fail "$name" "the check failed on a changed Cargo.lock without reporting drift: $(tr '\n' '|' <"$work/neg.out")"
elif out=$(python3 "$here/crates-inc.py" --check 2>&1); then
	pass "$name (${out#crates-inc: })"
else
	fail "$name" "$out"
fi

# --- 2. licence checksum ------------------------------------------------------------------
name="LIC_FILES_CHKSUM matches Cargo.toml"
if out=$(python3 - "$layer/recipes-kelp/kelp/kelp.inc" "$repo" 2>&1 <<'EOF'
import hashlib, re, sys
inc, repo = sys.argv[1], sys.argv[2]
m = re.search(r'^LIC_FILES_CHKSUM = "file://([^;"]+);beginline=(\d+);endline=(\d+);md5=([0-9a-f]{32})"', open(inc).read(), re.M)
if not m:
    sys.exit(f"no LIC_FILES_CHKSUM with file, beginline, endline and md5 in {inc}")
path, begin, end, want = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
lines = open(f"{repo}/{path}", "rb").read().splitlines(keepends=True)[begin - 1:end]
have = hashlib.md5(b"".join(lines)).hexdigest()  # as oe-core's insane.bbclass computes it
text = b"".join(lines).decode().strip()
if have != want:
    sys.exit(f"{path} lines {begin}-{end} ({text!r}) have md5 {have}, the recipe says {want}")
if "Apache-2.0" not in text:
    sys.exit(f"{path} lines {begin}-{end} are {text!r}, not the licence field")
print(f"{path} line {begin}: {text}")
EOF
); then
	pass "$name ($out)"
else
	fail "$name" "$out"
fi

# --- 3. oelint-adv, offline ----------------------------------------------------------------
name="oelint-adv on meta-kelp (wrynose, offline)"
oelint() { # oelint FILE...: oelint-adv as CI runs it, in a network namespace with no network
	unshare -n "$venv/bin/oelint-adv" --quiet --release wrynose --mode all --relpaths \
		--constantmods "+$here/oelint-constants.json" --suppress oelint.vars.homepageping "$@"
}
mapfile -t files < <(cd "$here" && find meta-kelp -type f \( -name '*.bb' -o -name '*.bbappend' -o -name '*.inc' -o -name '*.conf' \) | sort)
# can it fail? a recipe with a tab, no LICENSE and an unquoted value must be reported
mkdir -p "$work/meta-bad/conf" "$work/meta-bad/recipes-bad/bad"
cp "$layer/conf/layer.conf" "$work/meta-bad/conf/"
printf 'SUMMARY = "bad"\nSRC_URI = "file://x"\ndo_install() {\n\tinstall -d ${D}/usr/bin\n}\n' >"$work/meta-bad/recipes-bad/bad/bad_1.0.bb"
if (cd "$work" && oelint meta-bad/conf/layer.conf meta-bad/recipes-bad/bad/bad_1.0.bb) >/dev/null 2>&1; then
	fail "$name" "oelint-adv exited 0 on a broken recipe: it is not checking"
elif [ "${#files[@]}" -lt 5 ]; then
	fail "$name" "found only ${#files[@]} files under $layer"
elif out=$(cd "$here" && oelint "${files[@]}" 2>&1); then
	pass "$name (${#files[@]} files, no findings)"
else
	fail "$name" "$(tr '\n' '|' <<<"$out")"
fi

# --- 4. kas files against kas' schema -------------------------------------------------------
name="kas files validate against kas' JSON schema"
printf 'header:\n  version: 14\nmachine: raspberrypi4-64\nrepos:\n  kelp:\n    layer: [yocto/meta-kelp]\n' >"$work/bad-kas.yml"
if out=$("$venv/bin/python" - "$work/bad-kas.yml" "$here"/kas/*.yml 2>&1 <<'EOF'
import json, os, sys
import jsonschema, yaml
import kas
schema_path = os.path.join(os.path.dirname(kas.__file__), "schema-kas.json")
schema = json.load(open(schema_path))
validator = jsonschema.Draft202012Validator if "2020-12" in schema.get("$schema", "") else jsonschema.Draft7Validator
bad, files = sys.argv[1], sys.argv[2:]
if not list(validator(schema).iter_errors(yaml.safe_load(open(bad)))):
    sys.exit(f"the schema accepted {bad} (a 'layer' key): it is not checking")
problems = []
for f in files:
    for e in validator(schema).iter_errors(yaml.safe_load(open(f))):
        problems.append(f"{os.path.basename(f)}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}")
if problems:
    sys.exit("; ".join(problems))
print(f"{len(files)} files, kas {kas.__version__} schema")
EOF
); then
	pass "$name ($out)"
else
	fail "$name" "$out"
fi

# --- 5. systemd units ---------------------------------------------------------------------
name="systemd units verify"
# systemd-analyze verify wants the ExecStart binaries and the targets the units name: a root
# with stand-ins for kelp's binaries and modprobe, and this host's systemd units.
root=$work/sdroot
mkdir -p "$root/usr/bin" "$root/sbin" "$root/usr/lib/systemd/system"
for b in usr/bin/kelp-agent usr/bin/kelp sbin/modprobe; do
	printf '#!/bin/sh\n' >"$root/$b"
	chmod 0755 "$root/$b"
done
cp -a /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/"
cp "$units"/*.service "$root/usr/lib/systemd/system/"
printf '[Service]\nExecStart=/usr/bin/kelp-agent run\nKillMode=bogus\n' >"$root/usr/lib/systemd/system/kelp-bad.service"
problems=""
if [ -z "$(systemd-analyze verify --root="$root" kelp-bad.service 2>&1)" ]; then
	problems+=" systemd-analyze verify said nothing about KillMode=bogus: it is not checking;"
fi
mapfile -t unit_files < <(cd "$units" && ls ./*.service)
[ "${#unit_files[@]}" = 2 ] || problems+=" want 2 units in $units, found ${#unit_files[@]};"
for u in "${unit_files[@]}"; do
	u=${u#./}
	out=$(systemd-analyze verify --root="$root" "$u" 2>&1) || problems+=" $u: systemd-analyze verify failed;"
	[ -z "$out" ] || problems+=" $u: $(tr '\n' '|' <<<"$out");"
	for want in Delegate=yes KillMode=process Restart=always After=network-online.target \
		Wants=network-online.target "EnvironmentFile=-/etc/kelp/"; do
		grep -q "^$want" "$units/$u" || problems+=" $u: no $want;"
	done
done
if [ -z "$problems" ]; then
	pass "$name (${unit_files[*]#./}; $(systemd-analyze --version | head -n1))"
else
	fail "$name" "$problems"
fi

echo "yocto ci: $passed passed, $failed failed"
echo "yocto ci: $(($(date +%s) - t0)) s"
[ "$failed" = 0 ]
