#!/usr/bin/env bash
# The GPU check for a borrowed device machine, in one `run` call: every bench method merged on the
# GPU and on the CPU, each GPU output compared with the CPU's tensor by tensor, wall times against the
# disk, the kernels alone. Prepare it here first (no Node or npm there):
#   npm run device-kit
#   run({ command: 'bash bench/device-check.sh', carry: ['.device-kit', '.gl'], timeout_s: 570 })
# ALLOY_BENCH_PARAMS (default 1e9) sets the model size, ALLOY_BENCH_METHODS (default all) the methods.
# What it prints comes back under $OUT: machine.txt, bench.txt, last-run.md.
set -uo pipefail
out=${OUT:-/tmp/alloy-device-out}
mkdir -p "$out"
[ -d .device-kit ] || { echo 'no .device-kit: run `npm run device-kit` and carry it' >&2; exit 2; }

# NVIDIA's driver is mounted on these machines; the Vulkan and EGL loaders may not be installed.
if command -v nvidia-smi >/dev/null && ! ldconfig -p | grep -q libvulkan.so.1; then
  for deb in .gl/*.deb; do dpkg -x "$deb" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
[ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl

kit=$(mktemp -d /tmp/alloy-kit.XXXXXX)
trap 'rm -rf "$kit"' EXIT
cp -r .device-kit/. "$kit"
unxz_file() {
  if command -v xz >/dev/null; then xz -d "$1"
  else python3 -c 'import lzma, os, sys; p = sys.argv[1]; open(p[:-3], "wb").write(lzma.open(p).read()); os.remove(p)' "$1"; fi
}
find "$kit" -name '*.xz' -print0 | while IFS= read -r -d '' f; do unxz_file "$f"; done
chmod +x "$kit/node"

{
  date -u
  if command -v nvidia-smi >/dev/null; then nvidia-smi -L; else echo 'no nvidia-smi here'; fi
  echo "node $("$kit/node" --version), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
  df -h /tmp | tail -1
} 2>&1 | tee "$out/machine.txt"

bench_dir=/tmp/alloy-bench
"$kit/node" "$kit/bench.mjs" --params "${ALLOY_BENCH_PARAMS:-1e9}" --methods "${ALLOY_BENCH_METHODS:-all}" \
  --devices gpu,cpu --compare --run-timeout 60 --deadline 420 --dir "$bench_dir" 2>&1 | tee "$out/bench.txt"
status=${PIPESTATUS[0]}
cp "$bench_dir/last-run.md" "$out/" 2>/dev/null
rm -rf "$bench_dir"
exit "$status"
