"""Writes the statistics files of tests/unit/test_stats_io.c that dato does not write itself:
  stats_dim4_h5py.h5    dato-fid-stats written by h5py with its default attribute types: str
                        attributes as variable-length UTF-8 strings, ints as int64; no user block
                        (no seal), so also an unsealed file that must still open
  sigma_asym.npz        pytorch-fid layout, sigma[0][1] != sigma[1][0] (not symmetric)
  sigma_negdef.npz      pytorch-fid layout, sigma = -SIGMA4 (negative definite)
  sigma_huge.npz        pytorch-fid layout, sigma = 1e300 * SIGMA4 (FID would overflow)
Run from the repo root: python tools/make_stats_fixtures.py (numpy, h5py 3.x). The bytes do not
depend on the run: h5py is told not to record times, np.savez dates its entries 1980-01-01.
The script asserts the h5py attributes really are variable-length UTF-8 strings."""
import h5py
import numpy as np

OUT = "tests/fixtures/fid"
# The dim-4 statistics of tools/make_fid_fixtures.py (repeated in tests/unit/test_stats_io.c).
MU4 = np.array([0.5, -1.25, 3.0, 0.1])
SIGMA4 = np.array([[2.0, 0.5, 0.0, -0.25], [0.5, 1.0, 0.125, 0.0], [0.0, 0.125, 0.75, 0.3],
                   [-0.25, 0.0, 0.3, 1.5]])


def main():
    path = f"{OUT}/stats_dim4_h5py.h5"
    with h5py.File(path, "w", libver="earliest", track_order=False) as f:
        f.create_dataset("mu", data=MU4, track_times=False)
        f.create_dataset("sigma", data=SIGMA4, track_times=False)
        f.attrs["format"] = "dato-fid-stats"
        f.attrs["version"] = np.int64(1)
        f.attrs["count"] = np.int64(50000)
        f.attrs["extractor"] = "pytorch-fid-inception-v3-pool3"
        f.attrs["weights_hash"] = "fnv1a64:0123456789abcdef"
        f.attrs["preprocessing"] = "pytorch-fid"
        f.attrs["source"] = "h5py default strings: variable-length UTF-8 \u00e9"
    with h5py.File(path, "r") as f:
        t = f.attrs.get_id("format").get_type()
        assert t.is_variable_str() and t.get_cset() == h5py.h5t.CSET_UTF8, "not a variable-length UTF-8 string"
    asym = SIGMA4.copy()
    asym[0, 1] += 0.25
    np.savez(f"{OUT}/sigma_asym.npz", mu=MU4, sigma=asym)
    np.savez(f"{OUT}/sigma_negdef.npz", mu=MU4, sigma=-SIGMA4)
    np.savez(f"{OUT}/sigma_huge.npz", mu=MU4, sigma=1e300 * SIGMA4)


if __name__ == "__main__":
    main()
