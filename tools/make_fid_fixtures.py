"""Writes tests/fixtures/fid/: feature sets and reference values for metrics/fid.c and .npz
statistics files for metrics/stats_io.c. Run from the repo root: python tools/make_fid_fixtures.py
Needs numpy, scipy 1.16.x (pytorch-fid 0.3.0 calls sqrtm(..., disp=False), removed in scipy 1.18),
pytorch-fid 0.3.0 (pip install pytorch-fid==0.3.0 --no-deps) and safetensors.

features64.safetensors
  a, b          (300, 64) F32 synthetic ReLU-like features (b: shifted and rescaled latent)
  mu_a, sigma_a np.mean / np.cov of a in float64; the same for b (F64)
  fid           pytorch-fid calculate_frechet_distance(mu_a, sigma_a, mu_b, sigma_b) (F64, scalar)
  kid_all       the unbiased polynomial MMD² of all 300 rows of a against all of b (F64, scalar)
  fid2048       pytorch-fid's FID of the 2048-d pair that the C test regenerates (hash_features below)
Stats files (dim 4): stats_dim4.npz (savez_compressed, <f8, as pytorch-fid writes),
stats_dim4_adm.npz (savez, <f4 mu, <f8 sigma, plus arr_0 uint8 images, as ADM reference batches),
and hostile ones: fortran_order.npz, big_endian.npz, sigma_shape.npz, no_sigma.npz, not_a_zip.npz.
"""
import ast
import importlib.util
import os

import numpy as np
from safetensors.numpy import save_file
from scipy import linalg


def load_pytorch_fid_distance():
    """pytorch-fid's calculate_frechet_distance, taken verbatim from its installed fid_score.py:
    importing the module would pull in torchvision, which only its Inception network needs."""
    path = importlib.util.find_spec("pytorch_fid").submodule_search_locations[0] + "/fid_score.py"
    tree = ast.parse(open(path).read())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "calculate_frechet_distance")
    scope = {"np": np, "linalg": linalg}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), path, "exec"), scope)
    return scope["calculate_frechet_distance"]


calculate_frechet_distance = load_pytorch_fid_distance()

OUT = "tests/fixtures/fid"

# The dim-4 statistics, repeated as literals in tests/unit/test_stats_io.c.
MU4 = np.array([0.5, -1.25, 3.0, 0.1])
SIGMA4 = np.array([[2.0, 0.5, 0.0, -0.25], [0.5, 1.0, 0.125, 0.0], [0.0, 0.125, 0.75, 0.3],
                   [-0.25, 0.0, 0.3, 1.5]])

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def hash_uniform(seed, count):
    """Uniforms in [0, 1) from splitmix64's finaliser of seed * golden + index (53 bits), so that
    the C test regenerates them bit-exactly: u = (z >> 11) * 2^-53."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.arange(count, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def hash_features(seed, n, d, shift):
    """ReLU-like features with a power-law spectrum: relu(z diag(s) W + shift), z and W uniform
    in [-1/2, 1/2) from hash_uniform (z: seed, W: seed 1000 shared by both sets),
    s_k = (k + 1)^-0.75; computed in float64, then rounded to float32."""
    z = hash_uniform(seed, n * d).reshape(n, d) - 0.5
    w = hash_uniform(1000, d * d).reshape(d, d) - 0.5
    s = (np.arange(d) + 1.0) ** -0.75
    return np.maximum((z * s) @ w + shift, 0.0).astype(np.float32)


def stats(x):
    x = x.astype(np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def mmd2_unbiased(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    d, m = x.shape[1], x.shape[0]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    within = kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)
    return within / (m * (m - 1)) - 2 * kxy.sum() / (m * m)


def features64():
    rng = np.random.default_rng(64)
    w = rng.standard_normal((32, 64)) / np.sqrt(32)
    a = np.maximum(rng.standard_normal((300, 32)) @ w + 0.2, 0).astype(np.float32)
    b = np.maximum((1.2 * rng.standard_normal((300, 32)) + 0.1) @ w + 0.25, 0).astype(np.float32)
    mu_a, sigma_a = stats(a)
    mu_b, sigma_b = stats(b)
    fid = calculate_frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
    # The 2048-d pair: N = 2100 just above d, as in a small FID run.
    x = hash_features(1, 2100, 2048, 0.05)
    y = hash_features(2, 2100, 2048, 0.07)
    mu_x, sigma_x = stats(x)
    mu_y, sigma_y = stats(y)
    fid2048 = calculate_frechet_distance(mu_x, sigma_x, mu_y, sigma_y)
    print(f"fid64 {fid:.12g}  fid2048 {fid2048:.12g}  x[0,:4] {x[0, :4]}")
    save_file({"a": a, "b": b, "mu_a": mu_a, "sigma_a": sigma_a, "mu_b": mu_b, "sigma_b": sigma_b,
               "fid": np.array(fid, dtype=np.float64), "kid_all": np.array(mmd2_unbiased(a, b)),
               "fid2048": np.array(fid2048, dtype=np.float64)}, f"{OUT}/features64.safetensors")


def npz_files():
    np.savez_compressed(f"{OUT}/stats_dim4.npz", mu=MU4, sigma=SIGMA4)
    images = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3)
    np.savez(f"{OUT}/stats_dim4_adm.npz", images, mu=MU4.astype(np.float32), sigma=SIGMA4)
    np.savez(f"{OUT}/fortran_order.npz", mu=MU4, sigma=np.asfortranarray(SIGMA4 + 0.01 * np.arange(4)))
    np.savez(f"{OUT}/big_endian.npz", mu=MU4.astype(">f8"), sigma=SIGMA4)
    np.savez(f"{OUT}/sigma_shape.npz", mu=MU4, sigma=SIGMA4[:, :3].copy())
    np.savez(f"{OUT}/no_sigma.npz", mu=MU4)
    with open(f"{OUT}/not_a_zip.npz", "wb") as f:
        f.write(b"\x93NUMPY this is not a zip archive")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    features64()
    npz_files()
