# mix_init.py OURS_DIR TORCH_INIT OUT GROUP: our initial parameters (OURS_DIR/params.bin of a
# `trajectory --out OURS_DIR` run, with its params.json) with GROUP's tensors taken from PyTorch's
# draw (TORCH_INIT from `bench/torch_trajectory.py --write-init`), written to OUT for
# `trajectory --init OUT`.
# GROUP: fc | conv1 | depthwise | pointwise (conv2-4 pointwise weights)
import json, sys
import numpy as np
ours_dir, torch_bin, out, group = sys.argv[1:5]
meta = json.load(open(ours_dir + "/params.json"))
ours = np.fromfile(ours_dir + "/params.bin", dtype=np.float32)
torch = np.fromfile(torch_bin, dtype=np.float32)
assert ours.size == torch.size
mix = ours.copy()
off = 0
for p in meta["params"]:
    n = int(np.prod(p["shape"]))
    name = p["name"]
    take = {"fc": name == "fc.weight",
            "conv1": name.startswith("conv1.") and name.endswith("weight"),
            "depthwise": name.endswith("depthwise.weight") and not name.startswith("conv1."),
            "pointwise": name.endswith("pointwise.weight") and not name.startswith("conv1.")}[group]
    if take:
        mix[off:off + n] = torch[off:off + n]
    off += n
assert off == ours.size
mix.tofile(out)
print(group, "changed", int((mix != ours).sum()), "of", ours.size)
