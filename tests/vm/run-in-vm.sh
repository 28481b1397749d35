#!/bin/bash
# run-in-vm.sh TEST-BINARY [ARG...]
#
# Runs a test binary inside a throwaway qemu (TCG) VM that boots Debian's cloud kernel with a pure cgroup v2
# hierarchy (memory, pids and cpu enabled for children), and exits 0 only when the binary exited 0 in there.
# The initramfs is built from scratch for every run (busybox-static, the binary, the libraries ldd lists), so
# nothing can go stale between builds. A Criterion binary with no ARG gets --jobs=1 --verbose.
#
# Environment (all optional):
#   AG_VM_KERNEL   kernel image (default: Debian's cloud kernel, unpacked into a cache by tests/vm/vm-kernel.sh)
#   AG_VM_TIMEOUT  seconds before the VM is killed and the run fails (default 240)
#   AG_VM_MEM      guest memory in MiB (default 512, 1024 for sanitizer builds)
#   AG_VM_SMP      guest CPUs (default 1)
#   AG_VM_LOG      where to keep the serial console log (default: a temp file, printed on failure, then removed)
#   AG_VM_EXTRA    absolute paths of more programs the suite runs (the agent binary), copied with their libraries
#                  to /extra/<name> in the VM (not their build paths: /tmp is a fresh tmpfs there); the suite
#                  finds them through AG_VM_EXTRA_DIR=/extra, and /extra leads PATH
#   ASAN_OPTIONS, UBSAN_OPTIONS, LSAN_OPTIONS, CRITERION_*  passed through to the test binary
#
# Exit status: the binary's status when it ran (0 = passed), 1 when the VM could not produce a result
# (no kernel, no qemu, panic, timeout, missing marker), 2 on usage errors.
set -euo pipefail

prog=run-in-vm
die() { echo "$prog: $*" >&2; exit 1; }

[[ $# -ge 1 ]] || { echo "usage: $0 TEST-BINARY [ARG...]" >&2; exit 2; }
binary=$1
shift
[[ -f $binary && -x $binary ]] || die "test binary '$binary' is missing or not executable"
name=$(basename -- "$binary")

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
command -v cpio >/dev/null || die "cpio not found (apt-get install cpio)"
busybox=""
for b in /bin/busybox /usr/bin/busybox; do
    if [[ -x $b ]] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi # static: ldd refuses it
done
[[ -n $busybox ]] || die "no static busybox found (apt-get install busybox-static)"

kernel=${AG_VM_KERNEL:-}
if [[ -z $kernel ]]; then
    kernel=$("$(dirname -- "${BASH_SOURCE[0]}")/vm-kernel.sh") || die "no kernel to boot (see above; or set AG_VM_KERNEL)"
fi
[[ -r $kernel ]] || die "kernel $kernel is not readable (Debian ships it 0600: run as root)"

timeout_s=${AG_VM_TIMEOUT:-240}
smp=${AG_VM_SMP:-1}
libs=$(ldd "$binary" 2>/dev/null || true)
if [[ -n ${AG_VM_MEM:-} ]]; then
    mem=$AG_VM_MEM
elif grep -q 'lib[at]san\.so' <<<"$libs"; then
    mem=1024 # ASan's quarantine and shadow pages
else
    mem=512
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/run-in-vm.XXXXXX")
qemu_pid=""
cleanup() {
    if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill -KILL "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

root=$work/root
log=${AG_VM_LOG:-$work/console.log}
: >"$log"

# --- the initramfs -------------------------------------------------------------------------------------------
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,test}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list-full); do
    [[ -e $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
done

# Copy a file to the same path inside the initramfs (following symlinks), and remember its directory so the
# loader finds it without an ld.so.cache.
libdirs=()
copy_lib() {
    local src=$1
    [[ -e $src ]] || die "ldd names $src for $name, but it does not exist"
    mkdir -p "$root$(dirname -- "$src")"
    cp -L "$src" "$root$src"
    local d
    d=$(dirname -- "$src")
    [[ " ${libdirs[*]-} " == *" $d "* ]] || libdirs+=("$d")
}

# copy_libs FILE LDD-OUTPUT: the libraries ldd lists for FILE.
copy_libs() {
    local file=$1 out=$2 a b c
    if [[ -z $out ]] || grep -q 'not a dynamic executable' <<<"$out"; then
        return 0 # static binary: nothing to copy
    fi
    if grep -q 'not found' <<<"$out"; then
        die "ldd $file: $(grep 'not found' <<<"$out" | head -n 1 | tr -s ' \t' ' ')"
    fi
    while read -r a b c _; do
        if [[ $b == "=>" && $c == /* ]]; then copy_lib "$c"
        elif [[ $a == /* ]]; then copy_lib "$a" # the dynamic loader, at the path the binary names
        fi
    done <<<"$out"
}
copy_libs "$binary" "$libs"
if [[ -n $libs ]] && ! grep -q 'not a dynamic executable' <<<"$libs"; then
    # glibc dlopens libgcc_s for unwinding (pthread_cancel, backtraces); ldd does not list it.
    for extra in /lib/x86_64-linux-gnu/libgcc_s.so.1 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1; do
        if [[ -e $extra ]]; then copy_lib "$extra"; break; fi
    done
fi
# AG_VM_EXTRA: more programs a suite runs (the agent binary, say), in /extra with their libraries.
mkdir -p "$root/extra"
for extra in ${AG_VM_EXTRA:-}; do
    [[ $extra == /* && -x $extra ]] || die "AG_VM_EXTRA: '$extra' is not an absolute path to an executable"
    cp -L "$extra" "$root/extra/$(basename -- "$extra")"
    copy_libs "$extra" "$(ldd "$extra" 2>/dev/null || true)"
done
cp -L "$binary" "$root/test/$name"

# Criterion runs tests in parallel by default; one at a time keeps OOM tests from disturbing each other.
args=("$@")
if [[ ${#args[@]} -eq 0 ]] && grep -q 'libcriterion\.so' <<<"$libs"; then
    args=(--jobs=1 --verbose)
fi

quote() { # single-quote for the guest's sh
    local s=${1//\'/\'\\\'\'}
    printf "'%s'" "$s"
}
marker="AG-VM-RESULT-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
env_lines=""
for var in $(compgen -e); do
    case $var in
    ASAN_OPTIONS | UBSAN_OPTIONS | LSAN_OPTIONS | CRITERION_*) env_lines+="export $var=$(quote "${!var}")"$'\n' ;;
    esac
done
arg_words=""
for a in "${args[@]}"; do arg_words+=" $(quote "$a")"; done
ld_path=$(IFS=:; echo "${libdirs[*]-}")

cat >"$root/init" <<EOF
#!/bin/busybox sh
# Generated by run-in-vm.sh for $(quote "$name").
export PATH=/extra:/bin:/sbin:/usr/bin:/usr/sbin AG_VM_EXTRA_DIR=/extra
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts /sys/fs/cgroup
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
echo "AG-VM-INIT uptime=\$(cut -d' ' -f1 /proc/uptime)"
for c in memory pids cpu; do
    echo "+\$c" >/sys/fs/cgroup/cgroup.subtree_control || echo "run-in-vm: cannot enable the \$c controller"
done
echo 127.0.0.1 localhost >/etc/hosts
hostname vm
cd /tmp
export TERM=dumb HOME=/tmp TMPDIR=/tmp LD_LIBRARY_PATH=$(quote "$ld_path")
$env_lines
/test/$(quote "$name")$arg_words
rc=\$?
echo "$marker exit=\$rc uptime=\$(cut -d' ' -f1 /proc/uptime)"
# Give the UART time to drain before the power goes.
sleep 0.3
poweroff -f
EOF
chmod 755 "$root/init"

initrd=$work/initrd.cpio
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$initrd"

# --- boot ----------------------------------------------------------------------------------------------------
now() { date +%s.%N; }
t0=$(now)
# If this script is killed outright (a ctest timeout sends SIGKILL), the kernel takes qemu down with it.
reaper=()
if setpriv --help 2>/dev/null | grep -q -- --pdeathsig; then reaper=(setpriv --pdeathsig KILL --); fi
"${reaper[@]}" qemu-system-x86_64 -accel tcg -m "$mem" -smp "$smp" -nodefaults -display none -no-reboot \
    -serial "file:$log" -monitor none -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 quiet panic=-1 no_timer_check cgroup_no_v1=all rdinit=/init" </dev/null >"$work/qemu.out" 2>&1 &
qemu_pid=$!

t_init=""
deadline=$(( $(date +%s) + timeout_s ))
timed_out=0
while kill -0 "$qemu_pid" 2>/dev/null; do
    if [[ -z $t_init ]] && grep -q '^AG-VM-INIT' "$log"; then t_init=$(now); fi
    if (( $(date +%s) >= deadline )); then timed_out=1; break; fi
    sleep 0.1
done
if ((timed_out)); then
    kill -KILL "$qemu_pid" 2>/dev/null || true
fi
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
qemu_pid=""
t1=$(now)
[[ -n $t_init ]] || ! grep -q '^AG-VM-INIT' "$log" || t_init=$t1

# The console is a tty: strip carriage returns before reading it.
tr -d '\r' <"$log" >"$work/console.txt"
result=$(grep -a "^$marker exit=" "$work/console.txt" | tail -n 1 || true)
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
total=$(secs "$t0" "$t1")
to_init=${t_init:+$(secs "$t0" "$t_init")}
guest_init=$(sed -n 's/^AG-VM-INIT uptime=//p' "$work/console.txt" | head -n 1)
timing="boot to /init ${to_init:-?} s (guest uptime ${guest_init:-?} s), total ${total} s"

show_console() {
    echo "----- $prog: serial console of $name -----" >&2
    cat "$work/console.txt" >&2
    if [[ -s $work/qemu.out ]]; then
        echo "----- $prog: qemu said -----" >&2
        cat "$work/qemu.out" >&2
    fi
    echo "----- end of console -----" >&2
}

if [[ -z $result ]]; then
    show_console
    if ((timed_out)); then
        reason="timed out after ${timeout_s} s"
    elif grep -q 'Kernel panic' "$work/console.txt"; then
        reason="kernel panic: $(grep -m1 -a 'Kernel panic' "$work/console.txt" | sed 's/^\[[^]]*\] *//')"
    elif ((qemu_rc != 0)); then
        reason="qemu exited with status $qemu_rc"
    elif [[ -z $t_init ]]; then
        reason="the VM never reached /init"
    else
        reason="the suite ended without a result marker"
    fi
    echo "$prog: FAIL $name: $reason ($timing)" >&2
    exit 1
fi

rc=${result#* exit=}
rc=${rc%% *}
[[ $rc =~ ^[0-9]+$ ]] || { show_console; die "FAIL $name: unreadable result line '$result'"; }
# The suite's own output, without the kernel's and ours.
grep -av -e '^AG-VM-' -e "^$marker" "$work/console.txt" || true
if ((rc != 0)); then
    echo "$prog: FAIL $name: exit status $rc in the VM ($timing)" >&2
    exit "$rc"
fi
echo "$prog: PASS $name ($timing)"
