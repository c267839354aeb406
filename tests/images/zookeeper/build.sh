#!/usr/bin/env bash
# Build the local/zookeeper:3.8 test image (Debian bookworm + Debian's
# zookeeper 3.8 package + a headless JRE) as a docker-archive tarball.
#
# usage: build.sh OUT.tar        (run as root; needs deb.debian.org)
#
# The debootstrap rootfs and the downloaded .debs are cached under
# $ZK_IMAGE_CACHE (default /var/tmp/tessera-zookeeper-image), so reruns only
# redo the chroot install, the trim and the tarball.  Delete that folder to
# start from scratch.
set -euo pipefail

if [ $# -ne 1 ] || [ "${1:0:1}" = - ]; then
    echo "usage: $0 OUT.tar" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "$0: must run as root (debootstrap, chroot, mounts)" >&2
    exit 1
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(realpath -m "$1")
image=${ZK_IMAGE_NAME:-local/zookeeper:3.8}
suite=bookworm
mirror=${ZK_IMAGE_MIRROR:-http://deb.debian.org/debian}
security_mirror=${ZK_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
cache=${ZK_IMAGE_CACHE:-/var/tmp/tessera-zookeeper-image}
base=$cache/base-$suite-minbase
debs=$cache/debs

log() { printf '[build.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap on the host"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

mkdir -p "$cache" "$debs/partial"

# 1. The pristine minbase rootfs, made once and reused.
if [ ! -e "$base/.complete" ]; then
    log "debootstrap --variant=minbase $suite (cached in $base)"
    rm -rf "$base"
    debootstrap --variant=minbase --cache-dir="$debs" "$suite" "$base" "$mirror"
    touch "$base/.complete"
fi

# 2. A scratch copy of it, in which the packages are installed.
work=$(mktemp -d "$cache/work.XXXXXX")
root=$work/rootfs
mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
bind() { mount "$@"; mounted+=("${*: -1}"); }

log "copying the base rootfs"
cp -a "$base" "$root"
rm -f "$root/.complete"

cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
EOF
# No daemons may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"

bind -t proc proc "$root/proc"
bind -t sysfs sysfs "$root/sys"
bind --bind /dev "$root/dev"
bind --bind "$debs" "$root/var/cache/apt/archives"

# zookeeper depends on default-jre, which pulls openjdk-17-jre and with it GTK,
# Mesa and X11.  A server needs none of that: an empty local package that
# provides default-jre (and depends on the headless one) stands in for it.
shim=$root/tmp/jre-shim
mkdir -p "$shim/DEBIAN"
cat >"$shim/DEBIAN/control" <<'EOF'
Package: tessera-headless-jre-shim
Version: 1.0
Architecture: all
Maintainer: Tessera tests <tessera@localhost>
Provides: default-jre
Depends: default-jre-headless
Section: java
Priority: optional
Description: satisfies default-jre with the headless JRE (test image only)
EOF
chroot "$root" dpkg-deb --build /tmp/jre-shim /tmp/jre-shim.deb >/dev/null

log "apt-get install zookeeper default-jre-headless (in the chroot)"
chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get update -qq
chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    apt-get install -y -qq --no-install-recommends \
    /tmp/jre-shim.deb zookeeper default-jre-headless >"$work/apt.log" 2>&1 ||
    { tail -n 40 "$work/apt.log" >&2; exit 1; }
chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' \
    zookeeper libzookeeper-java default-jre-headless openjdk-17-jre-headless >&2

for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}"; done
mounted=()

# 3. The entrypoint, the tools on PATH, the data and config folders.
install -m 0755 "$here/zk-start" "$root/usr/local/bin/zk-start"
install -m 0755 "$here/zk-4lw" "$root/usr/local/bin/zk-4lw"
# Wrappers, not symlinks: the scripts find zkEnv.sh next to the path they were
# called by.
for tool in zkCli.sh zkServer.sh; do
    printf '#!/bin/sh\nexec /usr/share/zookeeper/bin/%s "$@"\n' "$tool" >"$root/usr/local/bin/$tool"
    chmod 0755 "$root/usr/local/bin/$tool"
done
mkdir -p "$root/data" "$root/var/log/zookeeper"

# Debian's zkServer.sh and zkCli.sh source /etc/zookeeper/conf/environment (as
# zkEnv.sh), which pins ZOOCFGDIR to /etc/zookeeper/conf and leaves SLF4J with
# no binding (no server log at all).  This image's own conf folder, selected
# through the zookeeper-conf alternative, fixes both and keeps the JVMs small.
conf=$root/etc/zookeeper/conf_tessera
mkdir -p "$conf"
cat >"$conf/environment" <<'EOF'
# Sourced (as zkEnv.sh) by zkServer.sh and zkCli.sh in local/zookeeper:3.8.
ZOOMAIN=org.apache.zookeeper.server.quorum.QuorumPeerMain
ZOOCFGDIR=${ZOOCFGDIR:-/data/conf}
ZOOCFG=$ZOOCFGDIR/zoo.cfg
# `zkServer.sh status` looks for the client address in zoo.cfg and the dynamic
# file it names; a member that is not (yet, or any more) in the ensemble's
# membership has none there.  zk-start writes that address to zoo-client.cfg.
if [ "${1:-}" = status ] && [ -f "$ZOOCFGDIR/zoo-client.cfg" ]; then
    ZOOCFG=$ZOOCFGDIR/zoo-client.cfg
fi
ZOO_LOG_DIR=${ZOO_LOG_DIR:-/var/log/zookeeper}
JMXDISABLE=${JMXDISABLE:-true}
JAVA=/usr/bin/java
CLASSPATH="/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"
# The server logs INFO to stdout; clients (zkCli.sh, zkServer.sh status) log
# WARN to stderr and start a small, quick JVM.
SERVER_JVMFLAGS="-Dlog4j.configuration=file:/etc/zookeeper/conf/log4j-server.properties ${SERVER_JVMFLAGS:-}"
CLIENT_JVMFLAGS=${CLIENT_JVMFLAGS:--Xmx64m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC}
EOF
cat >"$conf/log4j.properties" <<'EOF'
log4j.rootLogger=WARN, CONSOLE
# zkCli.sh logs "ERROR ... Exiting JVM with code 0" on every normal exit.
log4j.logger.org.apache.zookeeper.util.ServiceUtils=OFF
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Target=System.err
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
EOF
cat >"$conf/log4j-server.properties" <<'EOF'
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Target=System.out
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n
EOF
chroot "$root" update-alternatives --quiet --install /etc/zookeeper/conf zookeeper-conf \
    /etc/zookeeper/conf_tessera 100
chroot "$root" update-alternatives --quiet --set zookeeper-conf /etc/zookeeper/conf_tessera
rm -rf "$root"/dev/*  # the runtime mounts its own /dev

# 4. Trim what is easy to trim.
log "trimming"
rm -rf "$root/tmp/jre-shim" "$root/tmp/jre-shim.deb" "$root/usr/sbin/policy-rc.d" \
    "$root/etc/resolv.conf"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/* "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/*
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/lintian "$root"/usr/share/linda "$root"/usr/share/bash-completion
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias \
    -exec rm -rf {} +
# Keep the resolver files present (the kubelet bind-mounts over them).
: >"$root/etc/resolv.conf"

# 5. The docker-archive tarball.
log "writing $out"
mkdir -p "$(dirname "$out")"
python3 "$here/write-image.py" "$root" "$out" "$image"
log "done: $(du -h "$out" | cut -f1) $out"
