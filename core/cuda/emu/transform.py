# Rewrites core/cuda/*.cu into host C++ for the emulator (see README.md): kernel launches
# `k<<<grid, block, smem, stream>>>(args)` become `emu::launch("k", k, grid, block, smem, stream)(args)`,
# dynamic shared memory becomes a per-block buffer, and the allocator's size classes become exact sizes
# (so AddressSanitizer sees every overrun). Headers core/cuda/*.cuh (kernels templated on the caller's
# functors) are rewritten the same way into <out_dir>/inc/core/cuda/, which build.sh puts first on
# the include path. Usage: transform.py <repo> <out_dir>
import glob
import os
import re
import sys

repo, out = sys.argv[1], sys.argv[2]
inc = os.path.join(out, 'inc', 'core', 'cuda')
os.makedirs(inc, exist_ok=True)
for f in glob.glob(os.path.join(repo, 'core/cuda/*.cu')) + glob.glob(os.path.join(repo, 'core/cuda/*.cuh')):
    s = open(f).read()
    s = re.sub(r'([A-Za-z_][A-Za-z_0-9]*(?:<[^;<>()]*>)?)\s*<<<',
               lambda m: 'emu::launch("%s", %s, ' % (m.group(1), m.group(1)), s)
    s = s.replace('>>>', ')')
    s = re.sub(r'extern __shared__ __align__\(\d+\) unsigned char (\w+)\[\];',
               r'unsigned char* \1 = emu::dynamic_smem();', s)
    if f.endswith('allocator.cu'):
        s = s.replace('size_t size_class(size_t bytes) {',
                      'size_t size_class(size_t bytes) {\n  if (bytes) return bytes;  // emulator: exact sizes')
    if f.endswith('.cuh'):
        open(os.path.join(inc, os.path.basename(f)), 'w').write(s)
    else:
        open(os.path.join(out, os.path.basename(f)[:-3] + '.cpp'), 'w').write(s)
