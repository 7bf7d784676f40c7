#!/usr/bin/env bash
# `cmake --install` gives working tools outside the source tree (README: Install):
#   - the four commands land in PREFIX/bin, the default model's data in PREFIX/share/dato, and every
#     path the model's dato.json names (eval prompts, feature net, reference statistics) resolves there;
#   - from an unrelated folder, PREFIX/bin/dato-generate makes a 28x28 PNG with the embedded default
#     model, loaded from PREFIX/share/dato (it says which folder it loaded);
#   - it cannot be falling back to the source tree: with one file of the installed model moved away,
#     it fails and names the file under PREFIX; the prefix moved elsewhere still works (the data is
#     found next to the binary at run time); $DATO_DATA_DIR and $DATO_DEFAULT_MODEL override it;
#   - dato-search, dato-export and dato-fid answer --help.
# Usage: install_prefix.sh BUILD_DIR [CMAKE] (the build must have the four commands built).
set -uo pipefail
build=${1:?usage: install_prefix.sh BUILD_DIR [CMAKE]}
cmake=${2:-cmake}
work=$(mktemp -d /tmp/dato_install_XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
share=$prefix/share/dato
model=$share/models/fashion-sd
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# The tools run with none of the variables that move the data, from a folder that is not the repo.
gen() { (cd "$work/elsewhere" && env -u DATO_DATA_DIR -u DATO_DEFAULT_MODEL "$@"); }

"$cmake" --install "$build" --prefix "$prefix" > "$work/install.log" 2>&1 || { cat "$work/install.log"; echo "FAIL: install"; exit 1; }
echo "installed into $prefix: $(grep -c 'Installing' "$work/install.log") files"
for prog in dato-generate dato-search dato-export dato-fid; do
  [ -x "$prefix/bin/$prog" ] || fail "bin/$prog missing"
done
for dir in models/fashion-sd/unet models/fashion-sd/featnet models/clip_tokenizer/sd2; do
  [ -d "$share/$dir" ] || fail "share/dato/$dir missing"
done
# dato.json's paths are relative to the model folder (../../datasets/...): each must exist there.
for key in eval_prompts feature_net reference_stats; do
  rel=$(sed -n "s/.*\"$key\": *\"\([^\"]*\)\".*/\1/p" "$model/dato.json")
  [ -n "$rel" ] && [ -e "$model/$rel" ] || fail "dato.json's $key '$rel' does not resolve in the installed layout"
done

mkdir -p "$work/elsewhere"
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{print ($1*16777216 + $2*65536 + $3*256 + $4) "x" ($5*16777216 + $6*65536 + $7*256 + $8)}'; }
gen "$prefix/bin/dato-generate" --prompt "a sneaker" --steps 4 --out out.png > "$work/gen.log" 2>&1 || { cat "$work/gen.log"; fail "dato-generate from the prefix"; }
size=$(png_size "$work/elsewhere/out.png" 2>/dev/null)
echo "dato-generate from $work/elsewhere: out.png $size; $(grep -o 'loaded [^ ]*' "$work/gen.log")"
[ "$size" = "28x28" ] || fail "out.png is '$size', expected 28x28"
grep -q "loaded $model " "$work/gen.log" || fail "the default model was not loaded from $model"

# No fallback: the installed model without its UNet config fails, naming the file under the prefix.
mv "$model/unet/config.json" "$work/config.json"
if gen "$prefix/bin/dato-generate" --prompt "a sneaker" --steps 4 --out broken.png > "$work/broken.log" 2>&1; then
  fail "dato-generate succeeded with the installed model broken: it read another copy"
fi
grep -q "$model/unet/config.json" "$work/broken.log" || { cat "$work/broken.log"; fail "the error does not name the installed file"; }
echo "with the installed model broken: $(tail -1 "$work/broken.log")"
mv "$work/config.json" "$model/unet/config.json"

# The prefix moved: found again next to the binary.
mv "$prefix" "$work/moved"
gen "$work/moved/bin/dato-generate" --prompt "a sneaker" --steps 4 --out moved.png > "$work/moved.log" 2>&1 || { cat "$work/moved.log"; fail "the moved prefix"; }
grep -q "loaded $work/moved/share/dato/models/fashion-sd " "$work/moved.log" || fail "the moved prefix's model was not the one loaded"
echo "moved prefix: $(grep -o 'loaded [^ ]*' "$work/moved.log")"
mv "$work/moved" "$prefix"

# $DATO_DATA_DIR, then $DATO_DEFAULT_MODEL, name other folders (here: nowhere; the error names them).
(cd "$work/elsewhere" && DATO_DATA_DIR=$work/nodata "$prefix/bin/dato-generate" --prompt x --steps 4 --out d.png) > "$work/dd.log" 2>&1 &&
  fail "dato-generate succeeded with \$DATO_DATA_DIR naming an empty folder"
grep -q "$work/nodata/models/fashion-sd" "$work/dd.log" || { cat "$work/dd.log"; fail "\$DATO_DATA_DIR is not where the default model was looked for"; }
(cd "$work/elsewhere" && DATO_DEFAULT_MODEL=$work/nomodel "$prefix/bin/dato-generate" --prompt x --steps 4 --out d.png) > "$work/dm.log" 2>&1 &&
  fail "dato-generate succeeded with \$DATO_DEFAULT_MODEL naming nothing"
grep -q "$work/nomodel" "$work/dm.log" || { cat "$work/dm.log"; fail "\$DATO_DEFAULT_MODEL is not where the default model was looked for"; }

for prog in dato-search dato-export dato-fid; do
  gen "$prefix/bin/$prog" --help > "$work/help.log" 2>&1 || { tail -5 "$work/help.log"; fail "$prog --help"; }
  grep -q "usage: $prog" "$work/help.log" || fail "$prog --help printed no usage line"
done
echo "dato-search, dato-export, dato-fid --help: ok"

[ "$fails" -eq 0 ] && echo "install: all checks passed" || echo "install: $fails checks failed"
exit $((fails > 0))
