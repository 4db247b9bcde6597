"""Weight vectors from the real Bittensor SDK: convert_weights_and_uids_for_emit
and normalize_max_weight on random float64 inputs (ties at .5 included).
Prints one JSON object per line. Usage: weights_vectors.py SEED CASES"""
import json
import sys

import numpy as np
from bittensor.utils.weight_utils import (
    convert_weights_and_uids_for_emit,
    normalize_max_weight,
)

seed, cases = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(seed)
ties = 0
for case in range(cases):
    n = int(rng.integers(1, 300))
    kind = case % 5
    if kind == 0:
        w = rng.random(n)
    elif kind == 1:
        w = rng.random(n) * (rng.random(n) < 0.5)  # many zeros
    elif kind == 2:
        # exact ties: max 1.0, others (k + 0.5) / 65535
        w = (rng.integers(0, 65535, n) + 0.5) / 65535.0
        w[0] = 1.0
    elif kind == 3:
        w = np.exp(rng.normal(0, 5, n))  # wide range
    else:
        w = rng.integers(0, 4, n).astype(np.float64)  # small ints, often all zero
    w = w.astype(np.float64)
    uids = np.arange(n, dtype=np.int64)
    rng.shuffle(uids)
    eu, ew = convert_weights_and_uids_for_emit(uids, w)
    m = float(max(w))
    if m > 0:
        ties += sum(1 for x in w if (float(x) / m * 65535) % 1 == 0.5)
    limit = float(rng.uniform(0.01, 0.6))
    y = normalize_max_weight(w.copy(), limit)
    lu, lw = convert_weights_and_uids_for_emit(uids, y)
    print(json.dumps({
        "uids": uids.tolist(), "weights": w.tolist(), "emit": [eu, ew],
        "limit": limit, "normalized": y.tolist(), "emit_limited": [lu, lw],
    }))
print(json.dumps({"ties": ties}))
