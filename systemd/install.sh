#!/bin/sh
# Install the systemd units and the mount(8) helper, pointing them at an installed bucketfs.
#   systemd/install.sh [BUCKETFS_EXECUTABLE]       (default: `command -v bucketfs`)
# DESTDIR renders into a staging tree instead of / (used by the tests).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exe=${1:-$(command -v bucketfs || true)}
[ -n "$exe" ] && [ -x "$exe" ] || { echo "install.sh: bucketfs executable not found; pass its path" >&2; exit 1; }
dest=${DESTDIR:-}
mkdir -p "$dest/etc/systemd/system" "$dest/sbin" "$dest/etc/bucketfs/mounts"
for unit in bucketfs-hub.service bucketfs@.service; do
    sed "s|@BUCKETFS@|$exe|g" "$here/$unit" > "$dest/etc/systemd/system/$unit"
done
sed "s|@BUCKETFS@|$exe|g" "$here/mount.fuse.bucketfs" > "$dest/sbin/mount.fuse.bucketfs"
chmod 0755 "$dest/sbin/mount.fuse.bucketfs"
if [ -z "$dest" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
echo "installed units in $dest/etc/systemd/system and $dest/sbin/mount.fuse.bucketfs"
