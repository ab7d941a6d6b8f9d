#!/usr/bin/env bash
# `deno task setup`: the Debian packages the tests, the figures and the bench's anchors need, installed
# with apt-get when this runs as root (it says what it installs), else printed as the command to run.
#   python3-torch         the fixtures' generator and the bench's PyTorch column
#   python3-onnx          the ONNX graphs of fixtures/onnx
#   libopenblas0-pthread  a fast BLAS for PyTorch (Debian's torch links the generic libblas.so.3)
#   libjemalloc2          the allocator the bench preloads for PyTorch (glibc malloc faults in every large tensor)
#   mesa-vulkan-drivers   lavapipe, a CPU Vulkan: WebGPU where there is no GPU
#   fonts-dejavu-core     the charts' font
#   chromium              the browser test of the page (site/browser_e2e.ts)
set -euo pipefail
packages=(python3-torch python3-onnx libopenblas0-pthread libjemalloc2 mesa-vulkan-drivers fonts-dejavu-core chromium)
if ! command -v dpkg >/dev/null 2>&1; then
  echo "setup: no dpkg here (not Debian or Ubuntu); install the equivalents of: ${packages[*]}"
  exit 0
fi
need=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -eq 0 ]; then
  echo "setup: ${packages[*]} already installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing ${need[*]}; as root, run:"
  echo "  apt-get update && apt-get install -y --no-install-recommends ${need[*]}"
  exit 1
fi
echo "setup: installing ${need[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
