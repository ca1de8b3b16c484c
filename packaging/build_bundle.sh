#!/usr/bin/env bash
# The Linux bundle (docs/PACKAGING.md): both commands frozen by PyInstaller into one folder, as a tarball and as a
# .deb that installs it under /opt with a desktop entry. Built from the wheel in dist/ (make dist), in a venv of its
# own, so that the bundle holds exactly what the wheel installs and nothing of the development venv.
#   packaging/build_bundle.sh        (make bundle)
# Writes build/bundle/ (the venv, PyInstaller's work, the frozen folder, the .deb's tree) and, in dist/,
# side-inspector-VERSION-linux-ARCH.tar.gz and side-inspector_VERSION_DEBARCH.deb.
set -euo pipefail
cd "$(dirname "$0")/.."

app_id=org.sideinspector.SideInspector
python=${PYTHON:-python3.11}
wheels=(dist/side_inspector-*-py3-none-any.whl)
[ ${#wheels[@]} -eq 1 ] && [ -f "${wheels[0]}" ] || { echo "need exactly one wheel in dist/ (make dist)" >&2; exit 2; }
wheel=${wheels[0]}
version=$(basename "$wheel" | cut -d- -f2)
work=build/bundle
venv=$work/venv
step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

step "venv for freezing: $venv"
[ -x $venv/bin/python ] || "$python" -m venv $venv
# torch first: the pinned CPU wheel; the wheel's own requirement alone would pull a multi-GB CUDA build.
$venv/bin/pip install -q torch==2.13.0
# The project from its wheel (reinstalled: the version may not have changed), PyInstaller from the bundle extra.
$venv/bin/pip install -q --force-reinstall --no-deps "$wheel"
$venv/bin/pip install -q "$wheel[bundle]"

step "PyInstaller"
start=$(date +%s)
rm -rf $work/side-inspector
$venv/bin/pyinstaller --noconfirm --clean --log-level WARN --distpath $work --workpath $work/pyinstaller \
    packaging/side-inspector.spec
echo "frozen in $(( $(date +%s) - start )) s: $(du -sh $work/side-inspector | cut -f1) in $work/side-inspector"

step "icons, rendered from side_gui/icon.py"
rm -rf $work/icons
QT_QPA_PLATFORM=offscreen $venv/bin/python packaging/render_icons.py $work/icons $app_id

arch=$(uname -m)
step "tarball"
tar -C $work -czf dist/side-inspector-"$version"-linux-"$arch".tar.gz side-inspector
ls -l dist/side-inspector-"$version"-linux-"$arch".tar.gz

step ".deb"
deb_arch=$(dpkg --print-architecture)
root=$work/deb
rm -rf $root
mkdir -p $root/DEBIAN $root/opt $root/usr/bin $root/usr/share/applications $root/usr/share/metainfo \
    $root/usr/share/icons
cp -a $work/side-inspector $root/opt/side-inspector
ln -s /opt/side-inspector/side $root/usr/bin/side
ln -s /opt/side-inspector/side-gui $root/usr/bin/side-gui
cp packaging/linux/$app_id.desktop $root/usr/share/applications/
cp packaging/linux/$app_id.metainfo.xml $root/usr/share/metainfo/
cp -a $work/icons $root/usr/share/icons/hicolor
size_kib=$(du -sk --exclude=DEBIAN $root | cut -f1)
# Depends: what the bundle does not carry. Qt's xcb platform plugin needs the X11 client libraries below (Qt's
# own list for Linux X11); PyInstaller leaves out libGL/libEGL and the C library, which come from the system.
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$deb_arch/" -e "s/@SIZE@/$size_kib/" packaging/linux/control \
    > $root/DEBIAN/control
deb=dist/side-inspector_"$version"_"$deb_arch".deb
# -Zxz: torch's libraries compress about 3:1; --root-owner-group: files owned by root without fakeroot.
dpkg-deb --root-owner-group -Zxz --build $root "$deb"
ls -l "$deb"
