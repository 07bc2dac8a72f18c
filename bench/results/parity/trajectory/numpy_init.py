"""Writes an initial depsep model for `trajectory --init` drawn from NumPy's PCG64 (a generator
independent of ours and of PyTorch's): every conv/fc weight U(-limit, limit) with limit
sqrt(6 / fan_in) and the same fans as layers/models.cpp (depthwise: 9 * C), biases 0, BatchNorm
gamma 1 and beta 0, in the parameter order of a trajectory folder's params.json.

    /usr/bin/python3 numpy_init.py TRAJECTORY_DIR SEED OUT.bin
"""
import json
import sys

import numpy as np


def main():
    folder, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    meta = json.load(open(f"{folder}/params.json"))
    rng = np.random.default_rng(seed)
    parts = []
    for p in meta["params"]:
        shape, name = p["shape"], p["name"]
        n = int(np.prod(shape))
        if name.endswith("weight") and not name.startswith("bn"):
            fan_in = 9 * shape[0] if "depthwise" in name else int(np.prod(shape[1:]))
            limit = np.sqrt(6.0 / fan_in)
            parts.append(rng.uniform(-limit, limit, n).astype(np.float32))
        elif name == "bn.gamma":
            parts.append(np.ones(n, np.float32))
        else:
            parts.append(np.zeros(n, np.float32))
    np.concatenate(parts).tofile(out)


if __name__ == "__main__":
    main()
