#!/bin/bash
# tests/vm/vm-kernel.sh: prints the path of the kernel the VM tests boot, Debian's cloud kernel: the versioned package
# linux-image-cloud-amd64 depends on (linux-image-6.1.0-N-cloud-amd64), fetched with `apt-get download` and unpacked
# with `dpkg-deb -x` into $AG_VM_KERNEL_CACHE/<package>_<version>/boot/ on first use. Nothing is installed on the host
# (a kernel package adds a boot entry and can change the default kernel); the package's modules are not kept (the
# VM loads none).
# When the package cannot be resolved or fetched (no network, no apt lists), the newest kernel in the cache is used.
#
# Environment: AG_VM_KERNEL_CACHE=DIR  (default /var/cache/cleanup-agent/vm-kernel)
# Exit status: 0 with the path on stdout; 1 when there is no kernel to boot (the reason on stderr).
set -euo pipefail

prog=vm-kernel
meta=linux-image-cloud-amd64
cache=${AG_VM_KERNEL_CACHE:-/var/cache/cleanup-agent/vm-kernel}
die() { echo "$prog: $*" >&2; exit 1; }

# The newest kernel already unpacked in the cache.
cached_kernel() {
    local k
    k=$(ls -1 "$cache"/*/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n $k ]] && echo "$k"
}

# "<package>_<version>" of the kernel the metapackage depends on, from the apt lists; remembered in $cache/resolved
# until the lists change (apt-cache takes seconds on a busy machine, for every VM test).
resolve() {
    if [[ -s $cache/resolved ]] &&
        [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -newer "$cache/resolved" -print -quit) ]]; then
        cat "$cache/resolved"
        return 0
    fi
    local pkg ver
    pkg=$(apt-cache depends "$meta" 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n 1)
    [[ -n $pkg ]] || return 1
    ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
    [[ -n $ver ]] || return 1
    echo "${pkg}_${ver}" | tee "$cache/resolved"
}

# unpack KEY DIR: downloads package KEY (package_version) and keeps its boot/ as DIR.
unpack() {
    local key=$1 dir=$2 tmp
    tmp=$(mktemp -d "$cache/.unpack.XXXXXX")
    # The download runs as root into a directory the _apt user cannot write: no sandbox for it.
    if ! (cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "${key%%_*}=${key#*_}") >&2; then
        rm -rf -- "$tmp"
        return 1
    fi
    dpkg-deb -x "$tmp"/*.deb "$tmp/root" || { rm -rf -- "$tmp"; return 1; }
    mkdir "$tmp/keep"
    mv "$tmp/root/boot" "$tmp/keep/boot"
    mv -T "$tmp/keep" "$dir" 2>/dev/null || true # another run may have unpacked it meanwhile
    rm -rf -- "$tmp"
    ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1
}

((EUID == 0)) || { cached_kernel && exit 0; die "no kernel in $cache: run as root once (or set AG_VM_KERNEL)"; }
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one download at a time

key=$(resolve || true)
if [[ -z $key ]]; then
    echo "$prog: $meta is not in the apt lists: apt-get update" >&2
    apt-get -q update >&2 || true
    key=$(resolve || true)
fi
if [[ -n $key && ! -d $cache/$key/boot ]]; then
    echo "$prog: unpacking $key into $cache/$key (dpkg-deb -x, not installed)" >&2
    unpack "$key" "$cache/$key" || { echo "$prog: could not fetch $key" >&2; key=""; }
fi
if [[ -n $key ]]; then
    k=$(ls -1 "$cache/$key"/boot/vmlinuz-* 2>/dev/null | head -n 1 || true)
    [[ -n $k ]] && { echo "$k"; exit 0; }
fi
cached_kernel || die "no kernel: $meta could not be resolved or fetched, and $cache holds none"
