#!/usr/bin/env bash
# make bundle-test: what packaging/build_bundle.sh made, checked as a user gets it (docs/PACKAGING.md).
#   1. the desktop entry and the AppStream metadata validate;
#   2. the frozen `side` runs the quick demo, reports, exports, and verifies the export (regenerating its images);
#   3. the frozen `side-gui` runs the quick demo under Xvfb (a real X server: Qt's xcb plugin and the system's X
#      libraries) and opens the finished audit on Qt's offscreen platform, each saving a screenshot;
#   4. the .deb installs with dpkg -i into a minimal Debian root (debootstrap, made once and kept in
#      build/debian-root), its dependencies from Debian's archive, and `side --version` runs there from PATH.
# Needs root for step 4 (chroot, mount); xvfb-run, desktop-file-validate, appstreamcli and debootstrap installed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
app_id=org.sideinspector.SideInspector
frozen=$(realpath build/bundle/side-inspector)
debs=(dist/side-inspector_*.deb)
[ -x "$frozen/side" ] && [ -f "${debs[0]}" ] || { echo "build the bundle first: make bundle" >&2; exit 2; }
deb=$(realpath "${debs[0]}")
version=$(dpkg-deb --field "$deb" Version)
t=$(realpath -m build/bundle-test)
rm -rf "$t"
mkdir -p "$t"
# Caches, settings and data of this run only: the demo's digits are rebuilt from the bundled scikit-learn.
export XDG_CACHE_HOME=$t/cache XDG_CONFIG_HOME=$t/config XDG_DATA_HOME=$t/data HF_HUB_OFFLINE=1
step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

step "desktop entry and AppStream metadata"
desktop-file-validate "$repo/packaging/linux/$app_id.desktop"
appstreamcli validate --no-net "$repo/packaging/linux/$app_id.metainfo.xml"

step "frozen side, run from $t"
cd "$t"
test "$("$frozen/side" --version)" = "side $version"
"$frozen/side" demo --quick --out A > demo.log 2>&1 || { cat demo.log; exit 1; }
tail -1 demo.log
"$frozen/side" report A > report.txt
head -3 report.txt
"$frozen/side" export A --out E --top 3
"$frozen/side" verify E
"$frozen/side" verify E --model "$frozen/_internal/side_engine/demo_models/regime"

step "frozen side-gui: the quick demo under Xvfb, its engine in the bundle's side engine-process"
env -u QT_QPA_PLATFORM xvfb-run -a -s "-screen 0 1600x1000x24" \
    "$frozen/side-gui" --demo --quick --out G --screenshot gui-demo-xvfb.png --exit-when-done
test -s gui-demo-xvfb.png
step "frozen side-gui: the finished audit A opened offscreen"
QT_QPA_PLATFORM=offscreen "$frozen/side-gui" A --screenshot gui-open-offscreen.png --exit-when-done
test -s gui-open-offscreen.png

step "the .deb installed with dpkg -i into a minimal Debian root"
base=$repo/build/debian-root
if [ ! -x "$base/usr/bin/apt-get" ]; then
    rm -rf "$base"
    debootstrap --variant=minbase bookworm "$base" http://deb.debian.org/debian > "$t/debootstrap.log"
fi
root=$t/root
cp -a "$base" "$root"
cp "$deb" "$root/tmp/"
mount -t proc proc "$root/proc"
trap 'umount "$root/proc"' EXIT
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" apt-get update -q > apt.log
# apt resolves the Depends from Debian's archive, as on a user's machine.
chroot "$root" apt-get install -y -q "/tmp/$(basename "$deb")" >> apt.log
readlink "$root/usr/bin/side" "$root/usr/bin/side-gui"
test "$(chroot "$root" side --version)" = "side $version"
# The installed commands on a system that has nothing else of the project: a quick demo, its export verified, the
# audit opened by the app (offscreen: the root has no X server).
chroot "$root" env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 sh -ec 'cd /tmp
    side demo --quick --out A > demo.log 2>&1 || { cat demo.log; exit 1; }
    side export A --out E --top 3
    side verify E
    QT_QPA_PLATFORM=offscreen side-gui A --screenshot gui.png --exit-when-done
    test -s gui.png'
cp "$root/tmp/gui.png" gui-deb-chroot.png
printf '\nok: the bundle and the .deb work; look at %s/gui-*.png\n' "$t"
