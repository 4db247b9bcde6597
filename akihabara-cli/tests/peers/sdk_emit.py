"""What the Bittensor SDK would send. Prints one JSON object.

  sdk_emit.py UIDS WEIGHTS                  convert_weights_and_uids_for_emit
  sdk_emit.py --hash SS58 NETUID REVEAL     generate_weight_hash of a reveal file's JSON
"""
import json
import sys

import numpy as np

from bittensor.utils.weight_utils import convert_weights_and_uids_for_emit, generate_weight_hash

if sys.argv[1] == '--hash':
    ss58, netuid, reveal = sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    h = generate_weight_hash(ss58, netuid, reveal['uids'], reveal['weights'], reveal['version_key'], reveal['salt'])
    print(json.dumps({'hash': h}))
else:
    uids = [int(u) for u in sys.argv[1].split(',')]
    weights = [float(w) for w in sys.argv[2].split(',')]
    u, w = convert_weights_and_uids_for_emit(np.array(uids, dtype=np.int64), np.array(weights, dtype=np.float64))
    print(json.dumps({'uids': [int(x) for x in u], 'weights': [int(x) for x in w]}))
