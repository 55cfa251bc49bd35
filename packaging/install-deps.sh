#!/usr/bin/env bash
# Installs every Debian package mppdl needs to build, test and run.
# Idempotent and non-interactive: packages already present are skipped, so a second call is fast.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # engine
  libtorch-dev libopenblas0-pthread libgloo-dev
  libsqlite3-dev sqlite3 libpqxx-dev libpq-dev
  nlohmann-json3-dev libcli11-dev libstb-dev zlib1g-dev libssl-dev
  # tests: hosts as network namespaces (ip, tc)
  iproute2
  libprotobuf-dev protobuf-compiler libonnx-dev
  # GUI
  qt6-base-dev libqcustomplot-dev libgl-dev
  # the terminal workbench (ncursesw)
  libncurses-dev
  # packaging: the man page, the icon's PNG sizes, the .deb's Depends, desktop file checks
  help2man librsvg2-bin dpkg-dev desktop-file-utils
  # tests and benchmarks
  libgtest-dev libgmock-dev dataset-fashion-mnist
  postgresql postgresql-client
  python3 python3-torch python3-numpy python3-onnx python3-opencv
  xvfb xauth tmux
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# libtorch links to the BLAS chosen by Debian's alternatives: the reference BLAS is ~20x slower
# for sgemm than OpenBLAS, so make sure OpenBLAS wins.
if command -v update-alternatives >/dev/null; then
  arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
  for alt in "libblas.so.3-$arch" "liblapack.so.3-$arch"; do
    cur=$(update-alternatives --query "$alt" 2>/dev/null | awk '/^Value:/{print $2}')
    case "$cur" in
      *openblas*) ;;
      *)
        best=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-pthread | head -1 || true)
        if [ -n "$best" ]; then
          sudo_cmd=()
          [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
          "${sudo_cmd[@]}" update-alternatives --set "$alt" "$best" >/dev/null
        fi
        ;;
    esac
  done
fi
echo "install-deps: all packages present"
