# Per-step losses of trajectory runs in windows of steps: where a gap between two runs builds up.
import json, sys, numpy as np
runs = {}
for spec in sys.argv[1:]:
    name, path = spec.split('=')
    recs = [json.loads(l) for l in open(path)]
    if recs and 'ours_loss' in recs[0]:  # a torch_trajectory --json file: PyTorch's column
        runs[name] = np.array([r['pytorch_loss'] for r in recs if r.get('type') == 'step'])
    else:
        runs[name] = np.array([r['loss'] for r in recs if r['type'] == 'step'])
edges = [0, 5, 10, 20, 40, 60, 78, 88, 98, 118, 138, 156]
print('| steps | ' + ' | '.join(runs) + ' |')
print('|---|' + '---|' * len(runs))
for a, b in zip(edges, edges[1:]):
    print(f'| {a + 1}-{b} | ' + ' | '.join(f'{v[a:b].mean():.4f}' for v in runs.values()) + ' |')
for name, (a, b) in [('epoch 1', (0, 78)), ('epoch 2', (78, 156))]:
    print(f'| {name} | ' + ' | '.join(f'**{v[a:b].mean():.4f}**' for v in runs.values()) + ' |')
