#!/usr/bin/env bash
# Builds stable-diffusion.cpp's `sd-cli` (CPU only, Release, -march=native) in /tmp for
# bench/sdcpp_side_by_side.sh. Nothing of it enters this repository.
#   bash bench/build_sdcpp.sh [sdcpp-git] [ggml-git] [dest]
# sdcpp-git / ggml-git: a git directory (bare is fine) or a URL to clone; sd.cpp is taken at its HEAD
# and ggml at the commit sd.cpp's `ggml` submodule pins (leejet/ggml is a fork of ggml-org/ggml;
# the pinned commit must exist in ggml-git). Prints the path of the binary last.
# A mirror may lack some large blobs: under src/tokenizers/vocab/ (tokenizers of Qwen, T5, Gemma, ...
# models, never SD1.x's CLIP) they are replaced by one-byte stubs; any other missing file is an error.
set -euo pipefail
sd_src="${1:-/work/.mirror/leejet+stable-diffusion.cpp/repo}"
ggml_src="${2:-/work/.mirror/ggml-org+ggml/repo}"
dest="${3:-/tmp/sdcpp}"

git_dir() { # a git directory for $1: itself, or a bare clone in /tmp
  if [ -d "$1" ]; then echo "$1"; return; fi
  local d="/tmp/$(basename "$1" .git).git"
  [ -d "$d" ] || git clone -q --bare "$1" "$d"
  echo "$d"
}
sd_git=$(git_dir "$sd_src")
ggml_git=$(git_dir "$ggml_src")
sd_commit=$(git --git-dir="$sd_git" rev-parse HEAD)
ggml_commit=$(git --git-dir="$sd_git" ls-tree HEAD ggml | awk '{print $3}')

rm -rf "$dest"
mkdir -p "$dest/ggml"
# Check out sd.cpp through a throw-away index, minus assets/ and blobs the mirror lacks.
export GIT_INDEX_FILE="$dest.index"
git --git-dir="$sd_git" read-tree HEAD
git --git-dir="$sd_git" ls-files -s | awk '$1 != "160000" && $4 !~ /^assets\//' > "$dest.files" # mode blob stage path
missing=$(awk '{print $2}' "$dest.files" | git --git-dir="$sd_git" cat-file --batch-check |
  awk 'NR == FNR {if ($2 == "missing") lost[$1]; next} $2 in lost {print $4}' - "$dest.files")
rm -f "$dest.files"
for f in assets $missing; do
  git --git-dir="$sd_git" --work-tree="$dest" rm -r -q --cached --ignore-unmatch "$f"
done
git --git-dir="$sd_git" --work-tree="$dest" checkout-index -a
rm -f "$GIT_INDEX_FILE"
unset GIT_INDEX_FILE
# The C array each vocab header defines (src/tokenizers/vocab/vocab.cpp reads them).
declare -A vocab_var=(
  [gemma2_merges]=gemma2_merges_utf8_c_str [gemma2_vocab]=gemma2_vocab_json_utf8_c_str
  [gemma_merges]=gemma_merges_utf8_c_str [gemma_vocab]=gemma_vocab_json_utf8_c_str
  [gpt_oss_merges]=gpt_oss_merges_utf8_c_str [gpt_oss_vocab]=gpt_oss_vocab_json_utf8_c_str
  [mistral_merges]=mistral_merges_utf8_c_str [mistral_vocab]=mistral_vocab_json_utf8_c_str
  [qwen_merges]=qwen2_merges_utf8_c_str [t5]=t5_tokenizer_json_str [umt5]=umt5_tokenizer_json_str)
for f in $missing; do
  name=$(basename "$f" .hpp)
  if [[ "$f" != src/tokenizers/vocab/* || -z "${vocab_var[$name]:-}" ]]; then
    echo "build_sdcpp: $sd_src lacks $f, which the build needs" >&2
    exit 1
  fi
  echo "static const unsigned char ${vocab_var[$name]}[] = {0x0a}; // stub: blob absent from the mirror" > "$dest/$f"
  echo "build_sdcpp: stubbed $f" >&2
done
git --git-dir="$ggml_git" archive "$ggml_commit" | tar -x -C "$dest/ggml"
echo "sd.cpp $sd_commit, ggml $ggml_commit" > "$dest/COMMITS"

# GGML_NATIVE adds -march=native: AVX2 + FMA + F16C on Zen 3 (no AVX-512 there).
cmake -S "$dest" -B "$dest/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DSD_CUDA=OFF -DSD_METAL=OFF \
  -DSD_VULKAN=OFF -DSD_WEBP=OFF -DSD_WEBM=OFF > "$dest/cmake.log"
nice -n 10 cmake --build "$dest/build" -j2 --target sd-cli > "$dest/build.log"
echo "$dest/build/bin/sd-cli"
