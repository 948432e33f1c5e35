#!/usr/bin/env bash
# Makes FUSE usable for faultfs on a Debian/Ubuntu machine. Idempotent; says what it did.
#  - /dev/fuse must exist: if missing, try `modprobe fuse`, else fail with a clear message.
#  - Root mounts with the mount(2) syscall directly; other users need fusermount3, which
#    comes with the fuse3 package (installed with apt-get, through sudo when not root).
set -euo pipefail

say() { printf 'install-fuse: %s\n' "$*"; }
die() { printf 'install-fuse: error: %s\n' "$*" >&2; exit 1; }

if [[ -e /dev/fuse ]]; then
    say "/dev/fuse is present"
else
    say "/dev/fuse is missing; trying to load the fuse kernel module"
    if [[ $(id -u) -eq 0 ]]; then modprobe=(modprobe fuse); else modprobe=(sudo modprobe fuse); fi
    if command -v modprobe >/dev/null 2>&1 && "${modprobe[@]}" 2>/dev/null && [[ -e /dev/fuse ]]; then
        say "loaded the fuse module: /dev/fuse is now present"
    else
        die "/dev/fuse does not exist and 'modprobe fuse' did not create it. On a VM or bare \
metal, install the kernel's fuse module (linux-modules-extra on Ubuntu); in a container, run \
it with --device /dev/fuse (and --cap-add SYS_ADMIN to mount as root)."
    fi
fi

if [[ ! -r /dev/fuse || ! -w /dev/fuse ]]; then
    die "/dev/fuse exists but $(id -un) cannot open it for reading and writing (check its mode, normally crw-rw-rw-)"
fi

if [[ $(id -u) -eq 0 ]]; then
    say "running as root: faultfs mounts directly, fusermount3 is not needed"
elif command -v fusermount3 >/dev/null 2>&1; then
    say "fusermount3 is already installed: $(command -v fusermount3)"
else
    say "not root and fusermount3 is missing: installing package fuse3"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install fuse3 (fusermount3) by hand"
    command -v sudo >/dev/null 2>&1 || die "sudo not found: as root, run 'apt-get install -y fuse3'"
    sudo apt-get update
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y fuse3
    command -v fusermount3 >/dev/null 2>&1 || die "fuse3 installed but fusermount3 is not on PATH"
    say "installed fuse3: $(command -v fusermount3)"
fi

say "FUSE is usable"
