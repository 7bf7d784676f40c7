"""dato_diffusers against the unpatched pipeline and against dato-generate.

- baseline: `apply(pipe, "baseline")` gives the unpatched pipeline's latents bit for bit, and
  remove() restores it;
- parity: a mixed schedule (full, partial shallow and deep, reuse steps; every ratio, pruning from
  step 1 on, where DDIM has one prediction and dato's seeded random pick chooses the base tokens)
  through `apply` gives dato-generate's image within 2/255 and its final latents within 1e-4
  relative, on SD1-, SD2- (v_prediction) and SDXL-style pipelines under DDIM, PLMS and DPM++2M;
- no state leaks: a second call gives the first call's images;
- refusals: a schedule of other steps, another sampler or another UNet; img2img counts the steps
  its strength leaves.

dato-generate comes from $DATO_GENERATE, else build/dato-generate; the parity tests skip without it.
Run: python3 -m pytest python/tests -v   (about 3 minutes on 2 cores)
"""
import json
import os
import subprocess

import pytest

np = pytest.importorskip("numpy", reason="dato_diffusers tests need numpy")
torch = pytest.importorskip("torch", reason="dato_diffusers tests need PyTorch")
pytest.importorskip("diffusers", reason="dato_diffusers tests need diffusers")
pytest.importorskip("transformers", reason="dato_diffusers tests need transformers")

import dato_diffusers  # noqa: E402
import tiny  # noqa: E402

PROMPT, NEGATIVE, STEPS, SIZE, GUIDANCE = "a photo of a cat", "blurry", 10, 32, 7.5  # SDXL's default is 5
# depth per step in units of B: "F" full, an integer a partial depth, 0 reuse
MIXED_DEPTH = ["F", "F", 2, 5, 0, "F", 1, "B", 3, "F"]  # "B": the deepest partial step
MIXED_RATIO = [0, 0.3, 0.3, 0.5, 0, 0.7, 0.4, 0.6, 0.3, 0]


def mixed_schedule(B, sampler):
    depth = [B + 1 if d == "F" else B if d == "B" else d for d in MIXED_DEPTH]
    return {"format": "dato-schedule", "version": 1, "sampler": sampler, "steps": STEPS, "n_branches": B,
            "genes": [{"depth": d, "ratio": r} for d, r in zip(depth, MIXED_RATIO)]}


def dato_generate():
    path = os.environ.get("DATO_GENERATE", os.path.join(tiny.REPO, "build", "dato-generate"))
    if not os.access(path, os.X_OK):
        pytest.skip(f"no dato-generate at {path} (build it: cmake --build build --target dato-generate, "
                    "or set DATO_GENERATE)")
    return path


@pytest.fixture(scope="module", params=sorted(tiny.KINDS))
def model(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    pipe = tiny.build(request.param, str(folder))
    latents = torch.randn((1, 4, SIZE // 2, SIZE // 2), generator=torch.Generator().manual_seed(1))
    return request.param, folder, pipe, latents


def run(pipe, latents, sampler, output_type="pil", steps=STEPS):
    pipe.scheduler = tiny.SCHEDULERS[sampler](pipe.scheduler.config)
    out = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps, guidance_scale=GUIDANCE, height=SIZE,
               width=SIZE, latents=latents.clone(), output_type=output_type).images
    return out if output_type == "latent" else np.array(out[0])


@pytest.mark.parametrize("sampler", ["ddim", "pndm", "dpmpp-2m", "euler"])
def test_baseline_is_the_unpatched_pipeline(model, sampler):
    _, _, pipe, latents = model
    plain = run(pipe, latents, sampler, "latent")
    dato_diffusers.apply(pipe, "baseline")
    patched = run(pipe, latents, sampler, "latent")
    dato_diffusers.remove(pipe)
    again = run(pipe, latents, sampler, "latent")
    print(f"baseline vs unpatched: max abs diff {float((patched - plain).abs().max())}")
    assert torch.equal(patched, plain)
    assert torch.equal(again, plain)


@pytest.mark.parametrize("sampler", ["ddim", "pndm", "dpmpp-2m"])
def test_mixed_schedule_matches_dato_generate(model, sampler, tmp_path):
    kind, folder, pipe, latents = model
    exe = dato_generate()
    schedule = mixed_schedule(dato_diffusers.n_branches(pipe.unet), sampler)
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(schedule))
    np.save(tmp_path / "latents.npy", latents.numpy())
    subprocess.run([exe, "--model", str(folder), "--prompt", PROMPT, "--negative-prompt", NEGATIVE, "--guidance", str(GUIDANCE), "--size",
                    str(SIZE), "--latents", str(tmp_path / "latents.npy"), "--schedule", str(path), "--seed", "0",
                    "--out", str(tmp_path / "dato.png"), "--latents-out", str(tmp_path / "dato.safetensors")],
                   check=True, capture_output=True, env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))
    from PIL import Image
    from safetensors.torch import load_file
    theirs = np.array(Image.open(tmp_path / "dato.png")).astype(int)
    their_latents = next(iter(load_file(str(tmp_path / "dato.safetensors")).values()))

    dato_diffusers.apply(pipe, str(path), seed=0)
    mine = run(pipe, latents, sampler).astype(int)
    my_latents = run(pipe, latents, sampler, "latent")
    dato_diffusers.remove(pipe)
    baseline = run(pipe, latents, sampler, "latent")

    err = int(np.abs(mine - theirs).max())
    rel = float((my_latents - their_latents).norm() / their_latents.norm())
    moved = float((my_latents - baseline).norm() / baseline.norm())
    print(f"{kind} {sampler}: image max diff {err}/255, latents rel {rel:.2e}, schedule vs baseline {moved:.2%}")
    assert err <= 2
    assert rel <= 1e-4
    assert moved > 1e-3, "the schedule did not change the result: the test would not see a broken runtime"


def test_second_call_gives_the_same_images(model):
    _, _, pipe, latents = model
    dato_diffusers.apply(pipe, mixed_schedule(dato_diffusers.n_branches(pipe.unet), "ddim"))
    first = run(pipe, latents, "ddim", "latent")
    second = run(pipe, latents, "ddim", "latent")
    dato_diffusers.remove(pipe)
    assert torch.equal(first, second)


def test_refuses_a_schedule_that_does_not_fit(model):
    _, _, pipe, latents = model
    B = dato_diffusers.n_branches(pipe.unet)
    dato_diffusers.apply(pipe, mixed_schedule(B, "ddim"))
    with pytest.raises(ValueError, match="10 sampler steps, but this pipeline call runs 8"):
        run(pipe, latents, "ddim", "latent", steps=8)
    with pytest.raises(ValueError, match="searched for sampler 'ddim'.*'dpmpp-2m'"):
        run(pipe, latents, "dpmpp-2m", "latent")
    dato_diffusers.apply(pipe, "deepcache:3")  # presets fit any step count and sampler
    run(pipe, latents, "pndm", "latent", steps=7)
    with pytest.raises(ValueError, match=f"UNet of {B + 1} skip branches, this pipeline's UNet has {B}"):
        dato_diffusers.apply(pipe, mixed_schedule(B + 1, "ddim"))
        run(pipe, latents, "ddim", "latent")
    dato_diffusers.remove(pipe)


def test_img2img_counts_the_steps_it_runs(model):
    kind, _, pipe, _ = model
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline
    cls = StableDiffusionXLImg2ImgPipeline if kind == "sdxl" else StableDiffusionImg2ImgPipeline
    i2i = cls(**pipe.components)
    i2i.set_progress_bar_config(disable=True)
    i2i.scheduler = tiny.SCHEDULERS["ddim"](pipe.scheduler.config)
    image = torch.rand((1, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(2))
    call = lambda: i2i(PROMPT, image=image, strength=0.5, num_inference_steps=STEPS, output_type="latent",
                       generator=torch.Generator().manual_seed(3)).images
    plain = call()
    dato_diffusers.apply(i2i, "baseline")
    assert torch.equal(call(), plain)
    dato_diffusers.apply(i2i, "deepcache:2")
    first, second = call(), call()
    assert torch.equal(first, second) and not torch.equal(first, plain)
    dato_diffusers.apply(i2i, mixed_schedule(dato_diffusers.n_branches(pipe.unet), "ddim"))
    with pytest.raises(ValueError, match="10 sampler steps, but this pipeline call runs 5"):
        call()
    dato_diffusers.remove(i2i)


def test_schedule_reader_and_presets_follow_the_c_side():
    fixtures = os.path.join(tiny.REPO, "tests", "fixtures", "schedules")
    dc = dato_diffusers.load(os.path.join(fixtures, "deepcache_3_branch1_10steps_b9.json"))
    preset = dato_diffusers.preset("deepcache:3:branch=1", 10, 9)
    assert (dc.depth, dc.ratio) == (preset.depth, preset.ratio)
    mixed = dato_diffusers.load(os.path.join(fixtures, "mixed_6steps_b12.json"))
    assert mixed.steps == 6 and mixed.n_branches == 12 and mixed.depth[0] == 13
    with pytest.raises(ValueError, match="unknown key 'cache_interval'"):
        dato_diffusers.load(os.path.join(fixtures, "bad_unknown_key.json"))
    paper = dato_diffusers.preset("dato-paper", 50, 12)  # docs/SCHEDULES.md: full at 0 2 5 10 20 30 40
    assert [k for k, d in enumerate(paper.depth) if d == 13] == [0, 2, 5, 10, 20, 30, 40]
    assert paper.ratio[1] == np.float32(0.3) and paper.ratio[49] == np.float32(0.7)
    assert dato_diffusers.preset("deepcache:3", 7, 12).depth == [13, 1, 1, 13, 1, 1, 13]
