"""Builds the CLIP tokenizer fixtures of tests/unit/test_tokenizer.c.

  models/clip_tokenizer/                 vocab.json, merges.txt (49,408 tokens, as HF's
                                         openai/clip-vit-large-patch14) + SD1 configs (pad <|endoftext|>)
  models/clip_tokenizer/sd2/             SD2 configs only (pad "!"), sharing the vocab and merges
  tests/fixtures/tokenizer/prompts.txt   the prompt corpus, one per line
  tests/fixtures/tokenizer/expected.json transformers' CLIPTokenizer ids for both variants
  tests/fixtures/tokenizer/json-sd1/     tokenizer.json + tokenizer_config.json only: a reduced
  tests/fixtures/tokenizer/json-sd2/     vocabulary (the first 1000 merges, as tests/fixtures/pipeline)
                                         in an SD1 / SD2 folder, re-saved by transformers 5
  tests/fixtures/tokenizer/expected_json.json  transformers' ids of those two folders on prompts.txt
                                         and the prompt files of datasets/

The vocabulary comes from OpenAI's bpe_simple_vocab_16e6.txt.gz as shipped in open_clip_torch
(pip install open_clip_torch --no-deps), built the way CLIP's simple_tokenizer.py builds it.
Usage: python3 tools/make_tokenizer_fixtures.py [--bpe PATH]
"""

import argparse
import gzip
import json
import os
import random
import shutil
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
MAX_LENGTH = 77
JSON_MERGES = 1000  # the tokenizer.json fixtures' vocabulary is tests/fixtures/pipeline's (its text encoder reads them)
PROMPT_FILES = ("tests/fixtures/tokenizer/prompts.txt", "datasets/fashion-mnist/eval_prompts.txt",
                "datasets/fashion-mnist/prompts.tsv")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))], dict(zip(bs, [chr(c) for c in cs]))


def build_vocab(bpe_path):
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]  # simple_tokenizer.py: 48,894 merges after the header
    _, byte_map = bytes_to_unicode()
    symbols = list(byte_map.values())  # in simple_tokenizer.py's order (printable bytes first)
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    return {tok: i for i, tok in enumerate(vocab)}, merges


def added_token(content):
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def write_configs(folder, pad):
    """The special_tokens_map.json and tokenizer_config.json of the diffusers SD tokenizer folders."""
    os.makedirs(folder, exist_ok=True)
    bos, eos = added_token("<|startoftext|>"), added_token("<|endoftext|>")
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": bos, "eos_token": eos, "pad_token": pad, "unk_token": eos}, f, indent=2)
    typed = lambda t: {"__type": "AddedToken", **t}
    config = {
        "add_prefix_space": False,
        "bos_token": typed(bos),
        "do_lower_case": True,
        "eos_token": typed(eos),
        "errors": "replace",
        "model_max_length": MAX_LENGTH,
        "pad_token": pad,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": typed(eos),
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)


def prompts():
    fixed = [
        "",
        "a photo of a cat",
        "a photo of an astronaut riding a horse on mars",
        "Apple CoreML developer tools on a Macbook Air are fast",
        "A PHOTO OF A CAT",
        "MiXeD CaSe PrOmPt With CamelCase and snake_case",
        "it's a dog's life, isn't it? they're here, we've gone, I'm fine, you'll see, he'd know",
        "IT'S THEY'RE WE'VE I'M YOU'LL HE'D DON'T",
        "'s 't 're 've 'm 'll 'd",
        "''s '''t rock'n'roll o'clock",
        "'ſ long s after an apostrophe",
        "tom’s café — “quoted” ‘single’",
        "1234567890 3.14159 1,000,000 42nd 2x 4k 8K uhd 1080p",
        "½ ¼ ² ³ ٣ ۴ १२ 一二三 ⅷ",
        "  leading and trailing spaces  ",
        "multiple     spaces\tand\ttabs\t\there",
        "\t\ttab first",
        "nbsp\u00a0and ideographic\u3000space and em\u2003space",
        "zero\u200bwidth\u200cjoiner\u200d and \u2060word joiner",
        "mongolian\u180evowel separator and \u001cfile separator \u0085nel",
        "control \u0007bell \u0001soh \u007fdel",
        "&amp; &lt;tag&gt; &quot;quoted&quot; &#39;apos&#39; &nbsp; &#x27;",
        "<b>bold</b> <i>italic</i> <br/>",
        "masterpiece, best quality, (ultra detailed:1.2), [sharp focus], {hdr}",
        "((((very)))) [[[[nested]]]] <<<angles>>>",
        "!!!! ???? .... ,,,, ;;;; ---- ____ ****",
        "hello!! world! wow!!! a!b!c",
        "! leading exclamation",
        "email@example.com https://example.com/path?q=1&x=y#frag",
        "$100 €50 £20 ¥1000 ₹500 ₿",
        "C++ C# F# .NET node.js",
        "café naïve résumé façade jalapeño Ångström Øresund",
        "CAFÉ NAÏVE RÉSUMÉ ÅNGSTRÖM ØRESUND ÆSIR ŒUVRE",
        "cafe\u0301 composed by NFC, e\u0301 and a\u030a",
        "n\u0303 o\u0308 u\u0308 and stacked a\u0301\u0302\u0303\u0304",
        "straße STRASSE ß ẞ",
        "İstanbul ıi IĞDIR ışık",
        "ΣΟΦΟΣ σοφος ΟΔΥΣΣΕΥΣ",
        "Ǆ ǅ ǆ Ǉ ǈ ǉ",
        "ﬁ ﬂ ﬃ ligatures",
        "Ⅻ Ⓐ ⓐ 🅰",
        "ＦＵＬＬＷＩＤＴＨ ｆｕｌｌｗｉｄｔｈ １２３",
        "東京の夜景、ネオンサイン、雨",
        "一只猫坐在窗台上，阳光明媚。",
        "고양이가 창가에 앉아 있다",
        "Кошка сидит на подоконнике, ПРИВЕТ МИР",
        "Ёжик в тумане ёлка",
        "قطة تجلس على حافة النافذة",
        "חתול יושב על אדן החלון",
        "बिल्ली खिड़की पर बैठी है",
        "แมวนั่งอยู่บนขอบหน้าต่าง",
        "Ελληνικά γράμματα",
        "Tiếng Việt có dấu: phở, bánh mì",
        "emoji 🐱🐶🦊 🚀 ✨ 👩‍🚀 👍🏽 🇯🇵 ❤️",
        "😀😃😄😁😆😅😂🤣",
        "a cat 🐱 riding a 🚲 on the 🌙",
        "math ∑ ∫ √ ∞ ≈ ≠ ≤ ≥ ± × ÷",
        "arrows → ← ↑ ↓ ⇒ ⟶",
        "box ─│┌┐└┘ ░▒▓█",
        "quotes «guillemets» „low“ ‚single‘",
        "mixed 日本語 and English and русский",
        "a" * 40,
        "ab" * 30,
        "x" * 200,
        "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
        "<|startoftext|>",
        "<|endoftext|>",
        "a <|endoftext|> b",
        "x<|endoftext|>y<|startoftext|>z",
        "x<|ENDOFTEXT|>y <|StartOfText|>",
        "!!<|startoftext|>!!",
        "<|endoftext|>!!",
        "<|endoftext|> <|endoftext|> <|endoftext|>",
        "<|notatoken|> <| |> <|endoftext",
        "trailing apostrophe' and 'leading",
        "dots... ellipsis… dash–en—em",
        "under_score hyphen-ated slash/separated back\\slash",
        "1girl, solo, long hair, looking at viewer, smile, blue eyes",
        "a painting by greg rutkowski, trending on artstation, 8k, octane render",
        "portrait of a woman, by Alphonse Mucha and Artgerm, highly detailed",
        "(masterpiece:1.4), (best quality:1.2), 1boy, outdoors, sky, cloud",
        "a     lot\t\t\tof   \t whitespace",
        " ",
        "\t",
        "!",
        "a",
        "A",
        "0",
        "'",
        "<|",
        "|>",
        "\u00a0",
    ]
    rng = random.Random(1234)
    words = (
        "a the of and on in with by at photo painting portrait landscape cat dog horse astronaut city night "
        "sunset forest mountain river ocean castle dragon robot car street neon rain snow fog light shadow "
        "golden hour cinematic lighting highly detailed sharp focus 4k 8k unreal engine octane render "
        "watercolor oil sketch anime manga realistic photorealistic studio bokeh wide angle macro lens "
        "café résumé naïve Über Straße Ångström 東京 猫 Москва кошка قطة 🐱 🚀 ✨ it's don't they're we've "
        "I'm you'll he'd !!! ... ,,, ?? (( )) [[ ]] {{ }} <> & &amp; 1 22 333 2024 3.5 50% #1 @user"
    ).split()
    seps = [" ", " ", " ", ", ", "  ", "\t", ",", " - ", "  \t ", "\u00a0", "\u3000"]
    generated = []
    for i in range(260):
        n = rng.randint(1, 12 if i < 160 else 90)  # the last 100 mostly run past 77 tokens
        parts = []
        for _ in range(n):
            w = rng.choice(words)
            r = rng.random()
            w = w.upper() if r < 0.1 else w.capitalize() if r < 0.25 else w
            parts.append(w + rng.choice(seps))
        generated.append("".join(parts).rstrip("\n"))
    # Long single words: BPE merge order over hundreds of symbols (the first 75 ids are compared).
    for n in (300, 1000, 3000):
        generated.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n)))
    generated.append("".join(rng.choice("aeiou") + rng.choice("nrst") for _ in range(500)))
    generated.append(" ".join(["word"] * 100))
    generated.append(", ".join(f"tag{i}" for i in range(60)))
    all_prompts = fixed + generated
    assert all("\n" not in p and "\r" not in p for p in all_prompts)
    return all_prompts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bpe", default=None, help="bpe_simple_vocab_16e6.txt.gz (default: open_clip's)")
    args = ap.parse_args()
    bpe = args.bpe
    if bpe is None:
        import importlib.util  # locate the package without importing it (it needs torchvision)

        package_dir = importlib.util.find_spec("open_clip").submodule_search_locations[0]
        bpe = os.path.join(package_dir, "bpe_simple_vocab_16e6.txt.gz")
    vocab, merges = build_vocab(bpe)

    # The vocabulary ships in models/ (single-file checkpoints carry no tokenizer); the tests use it.
    clip_dir = os.path.join(ROOT, "models", "clip_tokenizer")
    sd2_dir = os.path.join(clip_dir, "sd2")
    write_vocab_folder(clip_dir, vocab, merges, "<|endoftext|>")
    write_configs(sd2_dir, "!")

    corpus = prompts()
    with open(os.path.join(OUT, "prompts.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(p + "\n" for p in corpus))

    from transformers import CLIPTokenizer

    expected = {"max_length": MAX_LENGTH, "n_prompts": len(corpus)}
    for name, config_dir in (("sd1", clip_dir), ("sd2", sd2_dir)):
        with tempfile.TemporaryDirectory() as tmp:  # from_pretrained wants one folder with everything
            for f in ("vocab.json", "merges.txt"):
                shutil.copy(os.path.join(clip_dir, f), tmp)
            for f in ("special_tokens_map.json", "tokenizer_config.json"):
                shutil.copy(os.path.join(config_dir, f), tmp)
            tok = CLIPTokenizer.from_pretrained(tmp)
        padded = tok(corpus, padding="max_length", max_length=MAX_LENGTH, truncation=True)["input_ids"]
        unpadded = tok(corpus, max_length=MAX_LENGTH, truncation=True)["input_ids"]
        expected[name] = {
            "pad_id": tok.pad_token_id,
            "bos_id": tok.bos_token_id,
            "eos_id": tok.eos_token_id,
            "n_tokens": [len(ids) for ids in unpadded],
            "ids": padded,
        }
        over = sum(len(ids) for ids in tok(corpus)["input_ids"] if len(ids) > MAX_LENGTH)
        print(f"{name}: pad {tok.pad_token_id}, {len(corpus)} prompts, {over > 0} truncation exercised")
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        f.write("{\n")
        f.write(f'"max_length": {MAX_LENGTH},\n"n_prompts": {len(corpus)},\n')
        for k, name in enumerate(("sd1", "sd2")):
            e = expected[name]
            f.write(f'"{name}": {{"pad_id": {e["pad_id"]}, "bos_id": {e["bos_id"]}, "eos_id": {e["eos_id"]},\n')
            f.write(f'"n_tokens": {json.dumps(e["n_tokens"])},\n"ids": [\n')
            f.write(",\n".join(json.dumps(ids, separators=(",", ":")) for ids in e["ids"]))
            f.write("\n]}" + (",\n" if k == 0 else "\n"))
        f.write("}\n")
    print(f"wrote {OUT}: {len(corpus)} prompts")
    write_json_fixtures(vocab, merges)


def read_prompts(relpath):
    """One prompt a line; in a .tsv file the text after the first tab (label, prompt)."""
    with open(os.path.join(ROOT, relpath), encoding="utf-8", newline="\n") as f:
        lines = f.read().split("\n")
    assert lines[-1] == "", f"{relpath}: no final newline"
    return [line.split("\t", 1)[1] if relpath.endswith(".tsv") else line for line in lines[:-1]]


def write_vocab_folder(folder, vocab, merges, pad):
    """A tokenizer folder as diffusers' SD repositories hold it: vocab.json, merges.txt and the configs."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    write_configs(folder, pad)


def write_json_fixtures(vocab, merges):
    """json-sd1/ and json-sd2/: an SD tokenizer folder with a reduced vocabulary (the byte symbols, the
    first JSON_MERGES merges, the two specials) loaded and saved again by transformers 5, which writes
    only tokenizer.json and tokenizer_config.json. expected_json.json: the ids of those folders."""
    from transformers import CLIPTokenizer

    by_id = sorted(vocab, key=vocab.get)
    kept = by_id[: 512 + JSON_MERGES] + ["<|startoftext|>", "<|endoftext|>"]
    small_vocab, small_merges = {tok: i for i, tok in enumerate(kept)}, merges[:JSON_MERGES]
    assert kept[512:-2] == ["".join(m.split()) for m in small_merges]
    pipeline_tokenizer = os.path.join(ROOT, "tests", "fixtures", "pipeline", "sd15", "tokenizer")
    if os.path.isdir(pipeline_tokenizer):  # the pipeline case of the test feeds these ids to its text encoder
        with open(os.path.join(pipeline_tokenizer, "vocab.json"), encoding="utf-8") as f:
            assert json.load(f) == small_vocab, "tests/fixtures/pipeline has another vocabulary"
        with open(os.path.join(pipeline_tokenizer, "merges.txt"), encoding="utf-8") as f:
            assert f.read() == "#version: 0.2\n" + "\n".join(small_merges) + "\n"

    sets = [read_prompts(f) for f in PROMPT_FILES]
    prompts = [p for s in sets for p in s]
    expected = {}
    for name, pad in (("sd1", "<|endoftext|>"), ("sd2", "!")):
        folder = os.path.join(OUT, f"json-{name}")
        with tempfile.TemporaryDirectory() as tmp:
            write_vocab_folder(tmp, small_vocab, small_merges, pad)
            source = CLIPTokenizer.from_pretrained(tmp)
            source_ids = source(prompts, max_length=MAX_LENGTH, truncation=True)["input_ids"]
            shutil.rmtree(folder, ignore_errors=True)
            source.save_pretrained(folder)
        assert sorted(os.listdir(folder)) == ["tokenizer.json", "tokenizer_config.json"], os.listdir(folder)
        tok = CLIPTokenizer.from_pretrained(folder)  # the ids come from exactly the committed files
        ids = tok(prompts, max_length=MAX_LENGTH, truncation=True)["input_ids"]
        padded = tok(prompts, padding="max_length", max_length=MAX_LENGTH, truncation=True)["input_ids"]
        assert all(p == i + [tok.pad_token_id] * (MAX_LENGTH - len(i)) for p, i in zip(padded, ids))
        assert ids == source_ids, "re-saving changed the ids"
        special_ids = {"pad_id": tok.pad_token_id, "bos_id": tok.bos_token_id, "eos_id": tok.eos_token_id}
        expected[name] = {**special_ids, "ids": ids}
        truncated = sum(len(i) == MAX_LENGTH for i in ids)
        print(f"json-{name}: vocab {len(small_vocab)}, pad {tok.pad_token_id}, {len(prompts)} prompts, "
              f"{truncated} truncated")
    with open(os.path.join(OUT, "expected_json.json"), "w") as f:
        files = ", ".join(f'["{path}", {len(s)}]' for path, s in zip(PROMPT_FILES, sets))
        f.write(f'{{\n"max_length": {MAX_LENGTH},\n"prompt_files": [{files}],\n')
        for k, name in enumerate(("sd1", "sd2")):
            e = expected[name]
            ids_of = ", ".join(f'"{key}": {e[key]}' for key in ("pad_id", "bos_id", "eos_id"))
            f.write(f'"{name}": {{{ids_of}, "ids": [\n')
            f.write(",\n".join(json.dumps(i, separators=(",", ":")) for i in e["ids"]))
            f.write("\n]}" + (",\n" if k == 0 else "\n"))
        f.write("}\n")


if __name__ == "__main__":
    main()
