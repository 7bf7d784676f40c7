#!/usr/bin/env bash
# The GPU kit is complete (issue 16): `scripts/gpu-kit pack` from this checkout, then
#   - the packed kit.tar.xz is at most 32 MiB;
#   - `scripts/gpu-kit check` on it: every binary's and library's dependencies resolve inside the
#     kit's lib/ or to glibc, without /etc/ld.so.cache, and the only absent ones are the GPU
#     machine's (libcuda.so.1, cuBLAS, cuBLASLt, cuDNN): exactly that list is tolerated;
#   - a kit with one bundled library removed is refused, naming it (the check is no stub);
#   - `scripts/gpu-kit run --dry-run` totals at most 480 s.
# Usage: gpu_kit_complete.sh WORKDIR (the kit's own build goes to WORKDIR/build). Needs nvcc,
# patchelf and PyPI (the wheels).
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:?usage: gpu_kit_complete.sh WORKDIR}
mkdir -p "$work"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

bash "$repo/scripts/gpu-kit" pack --out "$work/out" --build "$work/build" > "$work/pack.log" 2>&1 ||
  { tail -20 "$work/pack.log"; echo "FAIL: pack"; exit 1; }
grep '^gpu-kit' "$work/pack.log"
bytes=$(stat -c %s "$work/out/kit.tar.xz")
echo "kit.tar.xz: $bytes bytes (limit 33554432)"
[ "$bytes" -le 33554432 ] || fail "the kit is over 32 MiB"

rm -rf "$work/unpacked" && mkdir -p "$work/unpacked"
tar -C "$work/unpacked" -xJf "$work/out/kit.tar.xz" || { echo "FAIL: unpack"; exit 1; }
kit=$work/unpacked/kit
verdict=$(env -u LD_LIBRARY_PATH bash "$repo/scripts/gpu-kit" check "$kit")
echo "$verdict"
echo "$verdict" | grep -q '^gpu-kit check: complete: ' || fail "the packed kit is incomplete"
absent=$(echo "$verdict" | sed -n 's/.*absent \(.*\)$/\1/p')
for lib in $absent; do
  case " libcuda.so.1 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9 " in
    *" $lib "*) ;; *) fail "absent and not the GPU machine's: $lib" ;;
  esac
done
echo "$absent" | grep -q 'libcublas.so.13' || fail "libcublas.so.13 not reported absent: the check read /etc/ld.so.cache"
for prog in dato-generate dato-search bench_unet test_cuda_ops test_gpu_probe; do
  [ -x "$kit/bin/$prog" ] || fail "bin/$prog missing"
done
ls "$kit"/wheels/diffusers-0.42.1-*.whl "$kit"/wheels/pytorch_fid-*.whl > /dev/null || fail "wheels missing"

# A kit missing one library is refused, and the message names it.
rm -rf "$work/broken" && cp -a "$kit" "$work/broken"
rm -f "$work/broken/lib/libhdf5_serial.so.103"
broken=$(env -u LD_LIBRARY_PATH bash "$repo/scripts/gpu-kit" check "$work/broken")
if echo "$broken" | grep -q 'INCOMPLETE' && echo "$broken" | grep -q 'libhdf5_serial.so.103'; then
  echo "a kit without libhdf5_serial.so.103: refused, named"
else
  fail "a kit without libhdf5_serial.so.103 was not refused: $broken"
fi
rm -rf "$work/broken"

total=$(bash "$repo/scripts/gpu-kit" run --dry-run | sed -n 's/^  total *\([0-9]*\) s.*/\1/p')
echo "run --dry-run: $total s in all (limit 480)"
[ -n "$total" ] && [ "$total" -le 480 ] || fail "the run's budgets total ${total:-?} s"

[ $fails = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
[ $fails = 0 ]
