#!/bin/bash
# tests/systemd/stock-host.sh: the test command's host suites on a stock Debian 12 host: inside the Debian 12 image
# of the systemd label (tests/vm/systemd-vm.sh: systemd as PID 1, pure cgroup v2, Debian's docker.io on its socket),
# as root, `tests/run.sh --host-only` (no qemu: it cannot nest under TCG). By hand, as root on the host; not a ctest.
#
# Usage: stock-host.sh [--keep] [--log FILE] [-- CMD...]
#   CMD        what runs in the VM, from the copied tree (default: tests/run.sh --host-only)
#   --log FILE the host's copy of CMD's output (default /work/ci/stock-<date>.log, else ./stock-<date>.log)
#   --keep     leave the VM running at the end (stop it with AG_VM_STATE=... tests/vm/systemd-vm.sh stop)
# Environment: AG_VM_STATE, AG_VM_MEM, AG_VM_SMP as for systemd-vm.sh; AG_STOCK_DISK (default 24G): the size the
# image's disk is grown to (a sparse copy of the cached image under AG_STOCK_CACHE, default
# /var/tmp/cleanup-agent-stock, with its file system grown inside: the image's own 3G holds neither the build's
# packages nor three builds); AG_STOCK_POLL (default 30) seconds between looks at CMD; AG_TIMEOUT_SCALE (default
# 4) for CMD in the VM: the suites' time limits, multiplied (tests/run.sh; under TCG a suite took up to 3 times as
# long as on the host when it mostly waits, as chaos does, and up to 10 times when it computes, as the image build).
#
# The tree goes in as a clone of it, to /srv/cleanup-agent (not under /root, 0700: tests run the build's binary as
# nobody), its tracked files as they are in the working tree; CMD
# runs detached there (setsid, nohup) with its output in /root/stock.log, so that a lost ssh connection does not end
# it; the log is copied to FILE as it grows. Exit status: CMD's; 255 when the VM fails.
#
# Measured once (2026-12-06, 2 host CPUs, TCG, AG_VM_MEM=8192, AG_VM_SMP=2, qemu at nice 10): boot 40 s, copy 3 s,
# packages 15 min (719 of them, 263 MB), build/ 9 min, the unit and docker labels 44 min (-j2), the cgroup label
# below; far beyond CI's 45 minutes for the whole command (see issue 22's report for what failed and why).
set -euo pipefail
prog=stock-host
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
vm=$repo/tests/vm/systemd-vm.sh
keep=0
log=""
while (($#)); do
    case $1 in
    --keep) keep=1; shift ;;
    --log) log=${2:?--log FILE}; shift 2 ;;
    --) shift; break ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "$prog: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
(($#)) || set -- tests/run.sh --host-only
stamp=$(date -u +%Y%m%dT%H%M%SZ)
if [[ -z $log ]]; then
    if [[ -d /work/ci ]]; then log=/work/ci/stock-$stamp.log; else log=$PWD/stock-$stamp.log; fi
fi
state=${AG_VM_STATE:-/run/cleanup-agent-systemd-vm}
stock_cache=${AG_STOCK_CACHE:-/var/tmp/cleanup-agent-stock}
t() { date -u +%H:%M:%S; }
say() { echo "$prog: $(t) $*"; }

# The grown image: a cache of our own (AG_VM_CACHE) holding a sparse copy of the cached image, its disk grown.
image=$("$vm" image)
key=$(basename -- "$image")
grown=$stock_cache/systemd-vm/$key
if [[ ! -s $grown/disk.img || $grown/disk.img -ot $image/disk.img ]]; then
    rm -rf -- "$grown"
    mkdir -p "$grown"
    cp -a -- "$image"/vmlinuz "$image"/initrd.img "$image"/id_ed25519 "$image"/id_ed25519.pub "$grown/"
    cp --sparse=always -- "$image/disk.img" "$grown/disk.img.tmp"
    truncate -s "${AG_STOCK_DISK:-24G}" "$grown/disk.img.tmp"
    mv -- "$grown/disk.img.tmp" "$grown/disk.img"
fi
export AG_VM_CACHE=$stock_cache
# shellcheck disable=SC2317 # the EXIT trap
stop_vm() {
    if ((!keep)); then
        "$vm" stop || true
        rm -rf -- "$grown"
        rm -f -- "$stock_cache/systemd-vm/.lock"
        rmdir "$stock_cache/systemd-vm" "$stock_cache" 2>/dev/null || true
    fi
}
trap stop_vm EXIT

vssh() {
    ssh -i "$grown/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
        -o BatchMode=yes -o ConnectTimeout=60 -o ServerAliveInterval=15 -o ServerAliveCountMax=8 \
        -p "$(cat "$state/port")" root@127.0.0.1 "$@"
}

t0=$SECONDS
say "boot (AG_VM_MEM=${AG_VM_MEM:-1536} AG_VM_SMP=${AG_VM_SMP:-2}, disk ${AG_STOCK_DISK:-24G})"
"$vm" boot || exit 255
# Lower than the host's own work: TCG takes whole CPUs.
renice -n 10 -p "$(cat "$state/pid")" >/dev/null || true
vssh 'resize2fs /dev/vda >/dev/null 2>&1 && df -h / | tail -n 1' </dev/null || exit 255
say "booted in $((SECONDS - t0)) s"

# The certificate authorities this host added to Debian's (/usr/local/share/ca-certificates: a TLS-intercepting
# egress proxy's, on a machine whose network has one), so that the VM reaches what the host reaches (npm's registry
# for the clients suite) as a runner image of that network would; node reads extra ones from NODE_EXTRA_CA_CERTS.
extra_ca=""
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    # Debian's ca-certificates, when the test command installs it, builds the bundle with them.
    # shellcheck disable=SC2016 # expanded in the VM
    tar -C /usr/local/share/ca-certificates -c . | vssh 'd=/usr/local/share/ca-certificates; mkdir -p $d &&
        tar -C $d -x && { ! command -v update-ca-certificates >/dev/null || update-ca-certificates >/dev/null; }' ||
        exit 255
    extra_ca="export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"
    say "the host's own certificate authorities added: $(cd /usr/local/share/ca-certificates && echo *.crt)"
fi

t1=$SECONDS
# A git checkout, as a CI runner has one (tests/package/build-deb.sh lists the tree with git ls-files): a clone at
# this tree's commit, its tracked files as they are in the working tree on top (uncommitted changes included).
clone=$(mktemp -d "${TMPDIR:-/tmp}/stock-host.XXXXXX")
git clone -q --no-hardlinks --no-checkout "$repo" "$clone/cleanup-agent"
git -C "$clone/cleanup-agent" checkout -q --detach "$(git -C "$repo" rev-parse HEAD)"
git -C "$repo" ls-files -z | tar -C "$repo" --null -T - -c | tar -C "$clone/cleanup-agent" -x
# shellcheck disable=SC2016 # expanded in the VM
tar -C "$clone" -c cleanup-agent |
    vssh 'set -e; d=/srv/cleanup-agent; rm -rf "$d"; tar -x -C /srv' || { rm -rf -- "$clone"; exit 255; }
rm -rf -- "$clone"
say "tree copied in $((SECONDS - t1)) s ($(git -C "$repo" ls-files | wc -l) files and a clone's .git)"

line=""
for a in "$@"; do line+=" '${a//\'/\'\\\'\'}'"; done
printf 'cd /srv/cleanup-agent\n%s\nexport AG_TIMEOUT_SCALE=%s\n%s >/root/stock.log 2>&1\necho $? >/root/stock.rc\n' \
    "$extra_ca" "${AG_TIMEOUT_SCALE:-4}" "$line" |
    vssh 'cat >/root/stock.sh && rm -f /root/stock.rc' || exit 255
vssh 'setsid nohup bash /root/stock.sh </dev/null >/dev/null 2>&1 &' </dev/null || exit 255
say "started in the VM: $line (log $log)"
t2=$SECONDS
while :; do
    sleep "${AG_STOCK_POLL:-30}"
    if vssh 'cat /root/stock.log' </dev/null >"$log.tmp" 2>/dev/null; then mv -f "$log.tmp" "$log"; fi
    if rc=$(vssh 'cat /root/stock.rc 2>/dev/null' </dev/null 2>/dev/null) && [[ -n $rc ]]; then break; fi
    if ! "$vm" status; then say "the VM no longer answers"; exit 255; fi
done
say "CMD exited $rc after $((SECONDS - t2)) s (total $((SECONDS - t0)) s); log $log"
tail -n 40 "$log"
exit "$rc"
