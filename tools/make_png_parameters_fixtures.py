#!/usr/bin/env python3
"""Expected A1111 "parameters" texts for tests/unit/test_image.c (engine/io/image.h dato_a1111_parameters).

For each case (fixed ones for the rules, then seeded random ones over an alphabet of the characters that
matter: ',', ':', '"', '\\', newlines, control bytes, non-ASCII and Unicode spaces), this script
  1. writes the text as AUTOMATIC1111's webui does: create_infotext (modules/processing.py) with
     infotext_utils.quote, re-implemented below from their source; then dato's one difference: the
     "Negative prompt:" line is also there when the negative prompt is empty (ComfyUI's importer needs it);
  2. reads it back with A1111's parse_generation_parameters (modules/infotext_utils.py, re_param,
     unquote, the prompt / negative split, re_imagesize) and asserts
     - it reads the same fields from dato's text as from A1111's own text, and
     - every setting comes back exactly (Steps, Sampler, Schedule type, CFG scale, Seed, Size-1/-2,
       Model hash, Model, DaTo schedule, Version), the prompts as A1111 reads any prompt: each line
       stripped (the cases marked lossy are A1111's own limits and say which field they lose);
  3. reads it with ComfyUI's importA1111 (ComfyUI_frontend src/scripts/pnginfo.ts; its option regex,
     split(':') and the "\\nNegative prompt:" / "\\nSteps:" search) and asserts prompt, negative prompt,
     steps, CFG scale, seed and size come back, and which ComfyUI sampler name each A1111 name becomes;
  4. checks the Version value is not a version A1111's infotext_versions.parse_version accepts
     (it would switch on back-compatibility options).
Writes tests/fixtures/png_parameters/cases.json (sorted keys, byte-identical on rerun).

    python3 tools/make_png_parameters_fixtures.py [--out tests/fixtures/png_parameters]
"""
import argparse
import json
import os
import random
import re

import numpy as np

# ---- A1111, re-implemented from modules/infotext_utils.py and modules/processing.py -----------------

RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")


def a1111_quote(text):
    if ',' not in str(text) and '\n' not in str(text) and ':' not in str(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def a1111_unquote(text):
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def a1111_create_infotext(prompt, negative_prompt, generation_params, always_negative=False):
    """create_infotext's last lines: the settings joined, None left out, key alone when value == key.
    always_negative: dato's one difference, the Negative prompt line also when it is empty."""
    text = ", ".join([k if k == v else f'{k}: {a1111_quote(v)}' for k, v in generation_params.items() if v is not None])
    negative_prompt_text = f"\nNegative prompt: {negative_prompt}" if negative_prompt or always_negative else ""
    return f"{prompt}{negative_prompt_text}\n{text}".strip()


def a1111_parse(x):
    """parse_generation_parameters up to the defaults it fills in (styles off)."""
    res = {}
    prompt = ""
    negative_prompt = ""
    done_with_prompt = False
    *lines, lastline = x.strip().split("\n")
    if len(RE_PARAM.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ''
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt
    for k, v in RE_PARAM.findall(lastline):
        if v[0] == '"' and v[-1] == '"':
            v = a1111_unquote(v)
        m = RE_IMAGESIZE.match(v)
        if m is not None:
            res[f"{k}-1"] = m.group(1)
            res[f"{k}-2"] = m.group(2)
        else:
            res[k] = v
    return res


def a1111_parse_version(text):
    """infotext_versions.parse_version: None when A1111 does not read the Version as its own."""
    from packaging import version
    if text is None:
        return None
    m = re.match(r'([^-]+-[^-]+)-.*', text)
    if m:
        text = m.group(1)
    try:
        return version.parse(text)
    except Exception:
        return None


# ---- ComfyUI's importA1111 (the frontend's pnginfo.ts), the parts that read the text ----------------

# JavaScript's \s, '.' (no line terminators) and '$' (end of input without the m flag), spelled out.
JS_SPACE = '\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'
JS_DOT = '[^\n\r\u2028\u2029]'
COMFY_OPTION = re.compile(f'[{JS_SPACE}]*([^:]+:[{JS_SPACE}]*([^"\\{{]{JS_DOT}*?|"{JS_DOT}*?"|\\{{{JS_DOT}*?\\}}))'
                          f'[{JS_SPACE}]*(,|\\Z)')


def js_trim(text):
    return re.sub(f'^[{JS_SPACE}]+|[{JS_SPACE}]+$', '', text)


def comfy_import(parameters):
    p = parameters.rfind('\nSteps:')
    if p < 0:
        return None
    line = parameters[p:].split('\n')[1]
    opts = {}
    for m in COMFY_OPTION.finditer(line):
        s = m.group(0).split(':')
        if s[1].endswith(','):
            s[1] = s[1][:-1]
        opts[js_trim(s[0]).lower()] = js_trim(s[1])
    p2 = parameters.rfind('\nNegative prompt:', 0, p + len('\nNegative prompt:'))  # lastIndexOf(s, p)
    if p2 < 0:
        return None  # ComfyUI builds no graph
    a, b = sorted((p2 + 18, p))  # String.substring swaps its arguments
    opts["positive"] = js_trim(parameters[:p2])
    opts["negative"] = js_trim(parameters[a:b])
    return opts


def comfy_sampler(a1111_name):
    """The name the importer looks for in KSampler's list (it also matches 'sample_' + name)."""
    return a1111_name.lower().replace('++', 'pp').replace(' ', '_')


# ---- dato's side ------------------------------------------------------------------------------------

A1111_SAMPLERS = {"ddim": "DDIM", "pndm": "PLMS", "dpmpp-2m": "DPM++ 2M", "euler": "Euler", "euler-a": "Euler a"}
A1111_SCHEDULES = {"leading": "DDIM", "trailing": "SGM Uniform", "linspace": "Uniform"}
WEIGHT_FILE_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth")


def model_name(path):
    name = path.rstrip('/').rsplit('/', 1)[-1]
    for ext in WEIGHT_FILE_EXTENSIONS:
        if name.endswith(ext) and len(name) > len(ext):
            return name[:-len(ext)]
    return name


def cfg_text(guidance):
    """The float32's shortest positional form: what the user typed (dato keeps guidance as a float)."""
    return np.format_float_positional(np.float32(guidance), trim='-')


def dato_text(case):
    settings = {
        "Steps": case["steps"],
        "Sampler": A1111_SAMPLERS[case["sampler"]],
        "Schedule type": A1111_SCHEDULES[case["spacing"]],
        "CFG scale": cfg_text(case["guidance"]),
        "Seed": int(case["seed"]),
        "Size": f'{case["width"]}x{case["height"]}',
        "Model hash": case.get("model_hash") or None,
        "Model": model_name(case["model_path"]) if case.get("model_path") else None,
        "DaTo schedule": case.get("dato_schedule") or None,
        "Version": case.get("version") or None,
    }
    settings = {k: (v if v != "" else None) for k, v in settings.items()}
    negative = case.get("negative_prompt") or ""
    a1111 = a1111_create_infotext(case["prompt"], negative, settings)
    dato = a1111_create_infotext(case["prompt"], negative, settings, always_negative=True)
    return a1111, dato, settings


def a1111_lines(text):
    """parse_generation_parameters' accumulation of prompt lines."""
    out = ""
    for line in text.split("\n"):
        out += ("" if out == "" else "\n") + line.strip()
    return out


def check(case, a1111, dato, settings):
    lossy = set(case.get("lossy", []))
    assert a1111_parse_version(case.get("version")) is None, (case["name"], case.get("version"))
    got, own = a1111_parse(dato), a1111_parse(a1111)
    assert got == own, (case["name"], got, own)
    want = {k: str(v) for k, v in settings.items() if v is not None and k != "Size"}
    want["Size-1"], want["Size-2"] = str(case["width"]), str(case["height"])
    # The prompts as A1111 reads any: each line stripped, leading empty lines dropped; the prompt also
    # loses the leading spaces create_infotext's strip takes off the whole text.
    want["Prompt"] = a1111_lines(case["prompt"].lstrip())
    want["Negative prompt"] = a1111_lines(case.get("negative_prompt") or "")
    for k, v in want.items():
        if k in lossy:
            assert got.get(k) != v, (case["name"], k, "marked lossy but reads back")
        else:
            assert got.get(k) == v, (case["name"], k, got.get(k), v)
    comfy = comfy_import(dato)
    if not case["prompt"].strip():  # "Negative prompt:" comes first, without the "\n" ComfyUI looks for
        assert comfy is None, case["name"]
        return
    assert comfy is not None, case["name"]
    # The text starts with the prompt less Python's leading spaces (create_infotext's strip).
    assert comfy["positive"] == js_trim(case["prompt"].lstrip()), (case["name"], comfy["positive"])
    assert comfy["negative"] == js_trim(case.get("negative_prompt") or ""), (case["name"], comfy["negative"])
    for key, value in (("steps", str(case["steps"])), ("cfg scale", cfg_text(case["guidance"])),
                       ("seed", case["seed"]), ("size", f'{case["width"]}x{case["height"]}')):
        assert comfy.get(key) == value, (case["name"], key, comfy.get(key), value)


def fixed_cases():
    base = dict(prompt="a photo of a cat", negative_prompt="blurry", steps=25, sampler="euler-a",
                spacing="linspace", guidance=7.5, seed="42", width=512, height=512)
    return [
        dict(base, name="plain", model_hash="6ce0161689", model_path="/models/v1-5-pruned-emaonly.safetensors",
             dato_schedule="fast", version="dato 0.1.0"),
        dict(base, name="no_negative_no_optionals", negative_prompt="", sampler="ddim", spacing="leading",
             guidance=7.0, steps=50, seed="0", width=28, height=28),
        dict(base, name="default_model", prompt="a sneaker", negative_prompt="", sampler="pndm", spacing="leading",
             guidance=4.0, steps=25, seed="1234", width=28, height=28, model_path="models/fashion-sd/",
             version="dato 0.1.0"),
        dict(base, name="quoting", prompt="masterpiece, (cat:1.2), \"quoted\"\nsecond line", sampler="dpmpp-2m",
             negative_prompt="ugly, blurry\nlow: quality", guidance=7.1, seed="18446744073709551615",
             model_path="/w/my,model:v2.ckpt", dato_schedule="/tmp/sched \"a\", b\\c:\n\t\x01.json",
             model_hash="abc", version="dato 0.1.0 (build: x)"),
        dict(base, name="trailing_spacing_unicode", prompt="  caf\u00e9 \u4e2d\u6587\u3000", sampler="euler",
             spacing="trailing", negative_prompt="\u00a0nope", guidance=0.0, seed="7", width=768, height=64,
             model_path="sd-2.1", version="dato v2 ", lossy=["Version"]),
        dict(base, name="value_equals_key", model_path="/x/Model.safetensors", lossy=["Model"],
             guidance=12.25, width=1024, height=1536),
        dict(base, name="empty_prompt", prompt="", negative_prompt="", guidance=1000000.0, steps=1, seed="3",
             width=1, height=1),
    ]


ALPHABET = (list("abcXYZ019 ()[]<>.-_/|") + [",", ":", "\"", "\\", "\n", "\t", "\r", "\x01", "\x1f", "\x7f",
            "\u00e9", "\u4e2d", "\u3000", "\u2028", "\u00a0", "\U0001f431", "{", "}", "'"])
VALUE_ALPHABET = [c for c in ALPHABET if c not in "\n\r\t \u3000\u2028\u00a0"] + [" ", "\n"]


def random_text(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def random_value(rng):
    """A setting value A1111 reads back: not empty, no surrounding spaces, and not starting with '"'
    unless quoted (a raw one is read as the start of a quoted value)."""
    while True:
        v = random_text(rng, VALUE_ALPHABET, rng.randint(1, 12))
        if v and v.strip() == v and (v[0] != '"' or re.search('[,:\n]', v)):
            return v


def random_cases(rng, count):
    cases = []
    for i in range(count):
        prompt = random_text(rng, ALPHABET, rng.randint(1, 40))
        # A prompt line that starts with "Negative prompt:" would be read as the negative prompt:
        # the alphabet cannot spell it.
        case = dict(name=f"random_{i}", prompt=prompt,
                    negative_prompt=random_text(rng, ALPHABET, rng.randint(0, 20)),
                    steps=rng.randint(1, 1000), sampler=rng.choice(sorted(A1111_SAMPLERS)),
                    spacing=rng.choice(sorted(A1111_SCHEDULES)),
                    guidance=float(np.float32(rng.choice([rng.uniform(0, 30), rng.randint(0, 20), rng.randint(0, 60) / 4]))),
                    seed=str(rng.randrange(2**64)), width=rng.randint(1, 4096), height=rng.randint(1, 4096))
        for key in ("model_hash", "dato_schedule", "version"):
            if rng.random() < 0.7:
                case[key] = random_value(rng)
        if rng.random() < 0.7:
            case["model_path"] = "/m/" + random_value(rng).replace("/", "_") + rng.choice(["", ".ckpt", ".safetensors"])
        if not prompt.strip().replace("\n", "").strip():
            case["prompt"] = "x" + prompt  # a prompt A1111 reads back: not only whitespace
        cases.append(case)
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                                   "fixtures", "png_parameters")))
    args = ap.parse_args()
    cases = fixed_cases() + random_cases(random.Random(1111), 40)
    for case in cases:
        a1111, dato, settings = dato_text(case)
        check(case, a1111, dato, settings)
        case["expected"] = dato
        case["a1111_own"] = a1111  # what A1111 itself would write (differs only without a negative prompt)
    names = sorted({A1111_SAMPLERS[c["sampler"]] for c in cases})
    print("ComfyUI sampler names looked up:", {n: comfy_sampler(n) for n in names})
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(cases)} cases, each read back by A1111's parser and ComfyUI's importer -> {args.out}/cases.json")


if __name__ == "__main__":
    main()
