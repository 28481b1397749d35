#!/bin/bash
# tests/vm/systemd-vm.sh: a stock Debian 12 host under test. A system image built with debootstrap from Debian's
# archive (the mirror of the host's apt sources): systemd as PID 1, dbus, the distribution's docker.io,
# openssh-server (the control channel), Debian's cloud kernel with its initrd (both taken out of the image), booted by
# qemu (TCG) with pure cgroup v2 (systemd.unified_cgroup_hierarchy=1).
#
# Usage:
#   systemd-vm.sh image                 build the image unless the cache has it (prints its directory)
#   systemd-vm.sh boot                  build if needed, boot the VM unless one is running (prints the boot time)
#   systemd-vm.sh run [--user NAME] [--agent PATH | --deb PATH] -- CMD [ARG...]
#                                       boot if needed, install the agent, run CMD inside as root (or as the
#                                       non-root NAME, created if missing, with `loginctl enable-linger`, through
#                                       an ssh login: a logind session with its user manager), pass stdin, stdout,
#                                       stderr through and exit with CMD's status
#   systemd-vm.sh stop                  power the VM off (kills qemu if it does not go); its writes are gone
#   systemd-vm.sh status                exit 0 when a VM answers
#
# The agent (--agent PATH, else $AG_SYSTEMD_VM_AGENT, else build/cleanup-agent of this tree) is copied to
# /usr/local/bin/cleanup-agent in the VM (over ssh, only when it changed) before CMD runs. With --deb PATH (or
# $AG_SYSTEMD_VM_DEB; a directory: the cleanup-agent_*.deb in it) the package is installed instead, as an admin
# does: `apt-get install ./cleanup-agent_<version>_amd64.deb`, offline (its dependencies are in the image), and
# /usr/local/bin/cleanup-agent removed, so CMD finds /usr/bin/cleanup-agent (only when the package changed).
# The image's disk is never written: qemu's snapshot mode keeps each boot's writes in a temporary file of its own.
#
# Environment (all optional):
#   AG_VM_CACHE      the cache (default /var/cache/cleanup-agent): debian-12-minbase.tar (debootstrap's result,
#                    reused), apt-archives/ (downloaded .debs), systemd-vm/<key>/ (disk.img, vmlinuz, initrd.img,
#                    the ssh key), where <key> is a hash of this script's image recipe
#   AG_VM_MIRROR     Debian mirror (default: the first deb.debian.org-style URI of the host's apt sources)
#   AG_VM_STATE      the running VM's files (default /run/cleanup-agent-systemd-vm): pid, port, boot id, console log
#                    (and the last boot's, console.prev.log)
#   AG_VM_MEM        guest memory in MiB (default 1536)   AG_VM_SMP  guest CPUs (default 2, the machine has 2)
#   AG_VM_BOOT_TIMEOUT  seconds to wait for ssh after qemu starts (default 300)
# Exit status of `run`: CMD's; 255 when the VM cannot be built, booted or reached (said on stderr).
set -euo pipefail

prog=systemd-vm
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${AG_VM_CACHE:-/var/cache/cleanup-agent}
state=${AG_VM_STATE:-/run/cleanup-agent-systemd-vm}
mem=${AG_VM_MEM:-1536}
smp=${AG_VM_SMP:-2}
boot_timeout=${AG_VM_BOOT_TIMEOUT:-300}
suite=bookworm
die() { echo "$prog: $*" >&2; exit 255; }
say() { echo "$prog: $*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# --- the image recipe (its text is the cache key) ---------------------------------------------------------------
# Packages on top of minbase: what a CI host runs (systemd, dbus, logind sessions, docker.io with apparmor, which it
# recommends and a stock install brings: its containers run confined by docker-default), the control channel, the
# kernel (its modules stay inside, docker needs them), the agent's libraries, and procps for the suites.
image_packages=(systemd systemd-sysv dbus libpam-systemd docker.io apparmor openssh-server linux-image-cloud-amd64
    initramfs-tools libcurl4 libcjson1 libhttp-parser2.9 libsystemd0 procps psmisc)

mirror() {
    if [[ -n ${AG_VM_MIRROR:-} ]]; then echo "$AG_VM_MIRROR"; return; fi
    local m
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
        grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v -- -security | head -n 1 | tr -d ' ' || true)
    echo "${m:-http://deb.debian.org/debian}"
}

# in_root ROOTFS CMD...: runs CMD chrooted in ROOTFS with /proc, /sys and /dev mounted in a private mount
# namespace (nothing stays mounted when it ends, whatever happens), services kept from starting.
in_root() {
    local root=$1
    shift
    unshare --mount --propagation private -- /bin/sh -eu -c '
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount -t sysfs sysfs "$root/sys"
        mount --rbind /dev "$root/dev"
        mount --bind "$AG_VM_DEBS" "$root/var/cache/apt/archives"
        exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
            LC_ALL=C "$@"' sh "$root" "$@"
}

# minbase ROOTFS: debootstrap's minbase into ROOTFS, from the cached tar when there is one (written on first use).
minbase() {
    local root=$1 tar=$cache/debian-12-minbase.tar
    if [[ -s $tar ]]; then
        say "minbase from $tar"
        tar -xpf "$tar" -C "$root" --numeric-owner
        return
    fi
    say "debootstrap --variant=minbase $suite from $(mirror)"
    debootstrap --variant=minbase --cache-dir="$AG_VM_DEBS" "$suite" "$root" "$(mirror)" >&2 ||
        { tail -n 30 "$root/debootstrap/debootstrap.log" >&2 2>/dev/null; return 1; }
    tar -cpf "$tar.tmp" -C "$root" --numeric-owner . && mv "$tar.tmp" "$tar"
}

# configure ROOTFS KEYFILE: what makes the image a reachable host: networkd on DHCP, the ssh key, no timers that
# would compete for the CPU, docker started on its socket's first use (boot time).
configure() {
    local root=$1 key=$2
    echo systemd-vm >"$root/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 systemd-vm\n' >"$root/etc/hosts"
    echo '/dev/vda / ext4 defaults,noatime 0 1' >"$root/etc/fstab"
    printf '[Match]\nName=en* eth*\n[Network]\nDHCP=yes\n' >"$root/etc/systemd/network/10-dhcp.network"
    echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
    install -d -m 700 "$root/root/.ssh"
    install -m 600 "$key.pub" "$root/root/.ssh/authorized_keys"
    printf 'UseDNS no\nPermitRootLogin prohibit-password\n' >"$root/etc/ssh/sshd_config.d/cleanup-agent.conf"
    in_root "$root" systemctl enable systemd-networkd.service ssh.service docker.socket >&2
    in_root "$root" systemctl disable docker.service containerd.service >&2 # started with docker.socket
    in_root "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
        e2scrub_reap.service fstrim.timer systemd-networkd-wait-online.service >&2
    in_root "$root" passwd -d root >/dev/null # the serial console logs in without a password (debugging)
}

# build DIR: the image into DIR (disk.img, vmlinuz, initrd.img, id_ed25519).
build_image() {
    local dir=$1 tmp root t0
    t0=$(now)
    for tool in debootstrap mkfs.ext4 unshare ssh-keygen; do
        command -v "$tool" >/dev/null || die "$tool not found (apt-get install debootstrap e2fsprogs util-linux openssh-client)"
    done
    export AG_VM_DEBS=$cache/apt-archives
    mkdir -p "$AG_VM_DEBS/partial"
    tmp=$(mktemp -d "$cache/.build.XXXXXX")
    root=$tmp/root
    mkdir "$root"
    # shellcheck disable=SC2064 # expand now: tmp is local
    trap "rm -rf -- '$tmp'" EXIT
    minbase "$root" || return 1
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$(mirror)" "$suite" "$(mirror)" "$suite" \
        >"$root/etc/apt/sources.list"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # The initrd needs only the root disk's drivers (ext4 is built in); the rest load from the disk. A small initrd
    # is built in seconds, not minutes.
    mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/usr/share/initramfs-tools/modules.d"
    echo MODULES=list >"$root/etc/initramfs-tools/conf.d/cleanup-agent-vm.conf"
    printf 'virtio_pci\nvirtio_blk\n' >"$root/usr/share/initramfs-tools/modules.d/cleanup-agent-vm"
    say "apt-get install ${image_packages[*]}"
    in_root "$root" apt-get -q update >&2 || return 1
    in_root "$root" apt-get -q -y --no-install-recommends install "${image_packages[@]}" >&2 || return 1
    rm -f "$root/usr/sbin/policy-rc.d"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
    ssh-keygen -q -t ed25519 -N '' -C cleanup-agent-systemd-vm -f "$tmp/id_ed25519"
    configure "$root" "$tmp/id_ed25519"
    cp -L "$root/vmlinuz" "$tmp/vmlinuz"
    cp -L "$root/initrd.img" "$tmp/initrd.img"
    chmod 644 "$tmp/vmlinuz" "$tmp/initrd.img"
    say "mkfs.ext4 -d (no loop mount)"
    mkfs.ext4 -q -F -L systemd-vm -d "$root" "$tmp/disk.img" 3G >&2 || return 1
    rm -rf -- "$root"
    mv -T "$tmp" "$dir"
    trap - EXIT
    say "image built in $(secs "$t0" "$(now)") s: $dir"
}

image_key() {
    { declare -f mirror in_root minbase configure build_image; echo "${image_packages[*]} $suite"; } |
        sha256sum | cut -c1-12
}

image_dir=$cache/systemd-vm/$(image_key)

cmd_image() {
    ((EUID == 0)) || die "building the image needs root"
    mkdir -p "$cache/systemd-vm"
    exec 8>"$cache/systemd-vm/.lock"
    flock 8 # one build at a time
    if [[ ! -s $image_dir/disk.img ]]; then
        say "building the image (empty cache: $image_dir)"
        build_image "$image_dir" || die "the image could not be built (see above)"
    fi
    # Older recipes' images are dead weight (3 GB sparse each), once nobody built or booted them for a week (another
    # checkout may still use its recipe's image).
    touch "$image_dir"
    find "$cache/systemd-vm" -mindepth 1 -maxdepth 1 -type d -mtime +7 ! -path "$image_dir" -exec rm -rf -- {} + \
        2>/dev/null || true
    exec 8>&-
    echo "$image_dir"
}

# --- the running VM ---------------------------------------------------------------------------------------------
ssh_opts() {
    echo -i "$image_dir/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
        -o BatchMode=yes -o ConnectTimeout=60 -o ServerAliveInterval=15 -o ServerAliveCountMax=8 \
        -p "$(cat "$state/port" 2>/dev/null || echo 0)"
}
# vssh USER CMD...: one command in the VM (CMD is a shell command line there).
vssh() {
    local user=$1
    shift
    # shellcheck disable=SC2046 # options are words
    ssh $(ssh_opts) "$user@127.0.0.1" "$@"
}
running() {
    [[ -s $state/pid ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}
answers() {
    running && vssh root true </dev/null >/dev/null 2>&1
}

free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 20000))
        ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
    done
    die "no free TCP port for the VM's ssh"
}

cmd_boot() {
    command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
    cmd_image >/dev/null
    mkdir -p "$state"
    exec 7>"$state/.lock"
    flock 7 # one boot at a time; the next caller reuses it
    if answers; then exec 7>&-; return 0; fi
    running && cmd_stop_locked
    local port t0 t_ssh
    port=$(free_port)
    echo "$port" >"$state/port"
    echo "$image_dir" >"$state/image"
    # The last boot's console stays beside the new one: a VM that panicked or was stopped under a suite (qemu runs
    # with -no-reboot: a guest panic ends it) is booted again by the next `run`, which would overwrite what it said.
    if [[ -s $state/console.log ]]; then mv -f "$state/console.log" "$state/console.prev.log"; fi
    : >"$state/console.log"
    t0=$(now)
    # qemu outlives this script (a later `run` reuses it); `stop` ends it. The CPU is x86-64-v2, the least a CI host
    # has: qemu's default model (qemu64) lacks POPCNT, and libFuzzer's comparison hooks use it (SIGILL otherwise).
    setsid qemu-system-x86_64 -accel tcg -cpu qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt -m "$mem" -smp "$smp" \
        -nodefaults -display none -no-reboot \
        -serial "file:$state/console.log" -monitor none \
        -kernel "$image_dir/vmlinuz" -initrd "$image_dir/initrd.img" \
        -append "console=ttyS0 root=/dev/vda rw systemd.unified_cgroup_hierarchy=1 panic=-1 no_timer_check net.ifnames=0" \
        -drive "file=$image_dir/disk.img,if=virtio,format=raw,snapshot=on,cache=unsafe" \
        -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" -device virtio-net-pci,netdev=n0 \
        -device virtio-rng-pci -pidfile "$state/pid" </dev/null >"$state/qemu.out" 2>&1 7>&- &
    local deadline=$(($(date +%s) + boot_timeout))
    until vssh root true </dev/null >/dev/null 2>&1; do
        if ! kill -0 $! 2>/dev/null; then
            tail -n 40 "$state/console.log" "$state/qemu.out" >&2
            die "qemu ended before the VM answered"
        fi
        if (($(date +%s) >= deadline)); then
            tail -n 40 "$state/console.log" >&2
            cmd_stop_locked
            die "the VM did not answer ssh within ${boot_timeout} s (console above)"
        fi
        sleep 1
    done
    t_ssh=$(now)
    # Booted means systemd finished starting the system, not only that sshd answers.
    vssh root 'systemctl is-system-running --wait >/dev/null; systemctl is-system-running' </dev/null >"$state/running" 2>&1 || true
    local t_up
    t_up=$(now)
    echo "boot: ssh after $(secs "$t0" "$t_ssh") s, systemd $(cat "$state/running") after $(secs "$t0" "$t_up") s" |
        tee "$state/boot-time" >&2
    # Which boot this is: a `run` whose ssh is lost tells a VM booted again (by another caller) from one that hung.
    vssh root 'cat /proc/sys/kernel/random/boot_id' </dev/null >"$state/boot-id" 2>/dev/null || true
    exec 7>&-
}

cmd_stop_locked() {
    if running; then
        local pid
        pid=$(cat "$state/pid")
        vssh root 'systemctl poweroff' </dev/null >/dev/null 2>&1 || true
        for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$state/pid" "$state/port" "$state/boot-id"
}

cmd_stop() {
    mkdir -p "$state"
    exec 7>"$state/.lock"
    flock 7
    cmd_stop_locked
    exec 7>&-
}

# install_agent PATH: copies the agent in when it differs from the one there.
install_agent() {
    local agent=$1 sum
    [[ -x $agent ]] || die "the agent '$agent' is missing (build it first, or --agent PATH)"
    sum=$(sha256sum <"$agent" | cut -d' ' -f1)
    # Asked of the VM, not remembered here: another user of the VM may have installed another build.
    [[ $(vssh root 'sha256sum </usr/local/bin/cleanup-agent' </dev/null 2>/dev/null) == "$sum  -" ]] && return 0
    # shellcheck disable=SC2046 # options are words
    vssh root 'cat >/usr/local/bin/.cleanup-agent.new && chmod 755 /usr/local/bin/.cleanup-agent.new &&
        mv /usr/local/bin/.cleanup-agent.new /usr/local/bin/cleanup-agent' <"$agent" || die "could not copy the agent in"
}

# install_deb PATH: installs the package (a file, or the directory holding one) unless the VM has this one already.
install_deb() {
    local deb=$1 sum
    if [[ -d $deb ]]; then
        local found=("$deb"/cleanup-agent_*_amd64.deb)
        [[ -f ${found[0]} ]] || die "no cleanup-agent_*_amd64.deb in $deb (tests/package/build-deb.sh builds it)"
        deb=${found[0]}
    fi
    [[ -f $deb ]] || die "the package '$deb' is missing (tests/package/build-deb.sh builds it)"
    sum=$(sha256sum <"$deb" | cut -d' ' -f1)
    [[ $(vssh root 'cat /var/lib/cleanup-agent-vm.deb.sha256 2>/dev/null' </dev/null) == "$sum" ]] && return 0
    local t0 name
    t0=$(now)
    name=$(basename -- "$deb")
    # The image has no network and no package lists: every dependency must already be installed, so apt resolves
    # them from dpkg's status and downloads nothing (a missing one fails here, saying which).
    vssh root "set -e; rm -f /usr/local/bin/cleanup-agent; d=\$(mktemp -d); cat >\$d/$name
        DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends \$d/$name >\$d/apt.log 2>&1 ||
            { cat \$d/apt.log; exit 1; }
        rm -rf \$d; echo $sum >/var/lib/cleanup-agent-vm.deb.sha256" <"$deb" >&2 ||
        die "could not install $name in the VM (apt-get's output above)"
    say "installed $name in $(secs "$t0" "$(now)") s"
}

# ssh_lost QEMU_PID: after ssh ended with 255 (no connection, or the connection was lost), what became of the VM
# that `run` started on (qemu QEMU_PID), said on stderr: qemu gone, stopped or booted again by another caller of this
# state dir (stop, or a boot that found it not answering), a VM that no longer answers, or one that answers in the
# same boot (then its sshd or the session's processes ended: its journal and the console's last lines are shown).
ssh_lost() {
    local pid=$1 now boot
    now=$(cat "$state/pid" 2>/dev/null || echo none)
    if ! kill -0 "$pid" 2>/dev/null; then
        say "ssh lost: qemu $pid is gone (qemu now: $now; stopped or booted again by another caller of $state?)"
    elif [[ $now != "$pid" ]]; then
        say "ssh lost: $state now names qemu $now, not $pid"
    elif ! boot=$(vssh root 'cat /proc/sys/kernel/random/boot_id' </dev/null 2>/dev/null); then
        say "ssh lost: qemu $pid runs but the VM does not answer ssh within 60 s"
    elif [[ -s $state/boot-id && $boot != "$(cat "$state/boot-id")" ]]; then
        say "ssh lost: the VM booted again (boot id $boot, was $(cat "$state/boot-id" 2>/dev/null))"
    else
        say "ssh lost: the VM answers in the same boot; its journal's kills, OOM kills, failures, stops, and the console:"
        vssh root 'journalctl -b --no-pager -o short-monotonic -n 3000 | grep -vE "pam_env|ommand line|sigframe|MMCONFIG" |
            grep -iE "kill|oom|out of memory|signal|segfault|timeout|timed out|error|fail|stopping|terminat|panic" |
            tail -n 30' </dev/null >&2 2>/dev/null || true
    fi
    tail -n 10 "$state/console.log" >&2 2>/dev/null || true
}

# ensure_user NAME: a non-root user with lingering on (its user manager runs without a login).
ensure_user() {
    local u=$1
    [[ $u =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--user '$u' is not a user name"
    vssh root "id -u $u >/dev/null 2>&1 || useradd -m -s /bin/bash $u
        loginctl enable-linger $u
        install -d -m 700 -o $u -g $u ~$u/.ssh
        install -m 600 -o $u -g $u /root/.ssh/authorized_keys ~$u/.ssh/authorized_keys
        uid=\$(id -u $u)
        for i in \$(seq 60); do systemctl is-active -q user@\$uid.service && exit 0; sleep 0.5; done
        echo 'user@'\$uid'.service did not start' >&2; exit 1" </dev/null >&2 || die "could not set up user $u"
}

cmd_run() {
    local user=root agent=${AG_SYSTEMD_VM_AGENT:-$repo/build/cleanup-agent} deb=${AG_SYSTEMD_VM_DEB:-}
    local usage="usage: run [--user NAME] [--agent PATH | --deb PATH] -- CMD [ARG...]"
    while (($#)); do
        case $1 in
        --user) user=${2:?--user NAME}; shift 2 ;;
        --agent) agent=${2:?--agent PATH}; deb=""; shift 2 ;;
        --deb) deb=${2:?--deb PATH}; shift 2 ;;
        --) shift; break ;;
        *) die "run: unknown option '$1' ($usage)" ;;
        esac
    done
    (($#)) || die "run: no command ($usage)"
    cmd_boot
    if [[ -n $deb ]]; then install_deb "$deb"; else install_agent "$agent"; fi
    [[ $user == root ]] || ensure_user "$user"
    # POSIX single quotes: the user's login shell may be sh (a user created before, by someone else).
    local line="" a
    for a in "$@"; do line+=" '${a//\'/\'\\\'\'}'"; done
    local rc=0 qemu_pid
    qemu_pid=$(cat "$state/pid")
    vssh "$user" "$line" || rc=$?
    if ((rc == 255)); then ssh_lost "$qemu_pid"; fi
    exit "$rc"
}

case ${1:-} in
image) cmd_image ;;
boot) cmd_boot ;;
run) shift; cmd_run "$@" ;;
stop) cmd_stop ;;
status) answers ;;
-h | --help | help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" ;;
*) echo "usage: $0 image|boot|run [--user NAME] [--agent PATH] -- CMD [ARG...]|stop|status" >&2; exit 2 ;;
esac
