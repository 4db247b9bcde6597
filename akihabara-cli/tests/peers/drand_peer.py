#!/usr/bin/env python3
"""bittensor-drand 1.3.0 (the SDK's Rust extension, not our code) for tests.
Prints one JSON object.

  drand_peer.py rounds N SEED        get_encrypted_commit on N random inputs (seeded): for each,
                                     the inputs, the reveal round, the ciphertext's length and
                                     the wall clock just before and just after the call
  drand_peer.py seal ROUND HEX       encrypt_at_round(payload): the raw ciphertext the chain takes
                                     (encrypt_at_round wraps it in SCALE UserData{Vec<u8>, u64})
  drand_peer.py open CT_HEX SIG_HEX  decrypt_with_signature of a raw ciphertext (wrapped first)
"""
import json
import random
import sys
import time

import bittensor_drand as d


def compact(n):
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return ((n << 2) | 1).to_bytes(2, 'little')
    return ((n << 2) | 2).to_bytes(4, 'little')


def read_compact(b):
    size = {0: 1, 1: 2, 2: 4}[b[0] & 3]
    return int.from_bytes(b[:size], 'little') >> 2, size


cmd, *rest = sys.argv[1:]
if cmd == 'rounds':
    n, rng = int(rest[0]), random.Random(int(rest[1]))
    cases = []
    for _ in range(n):
        k = rng.randint(1, 64)
        case = {
            'uids': rng.sample(range(4096), k),
            'weights': [rng.randint(0, 65535) for _ in range(k)],
            'version_key': rng.randint(0, 2**63),
            'tempo': rng.choice([0, 1, 10, 99, 360, rng.randint(1, 10_000)]),
            'current_block': rng.randint(0, 20_000_000),
            'netuid': rng.randint(0, 65535),
            'reveal_period': rng.randint(0, 10),
            # Eighths of a second: exact in binary, so both sides multiply the same number.
            'block_time': rng.randint(1, 24 * 8) / 8,
            'hotkey': rng.randbytes(32).hex(),
        }
        before = time.time()
        ct, rnd = d.get_encrypted_commit(case['uids'], case['weights'], case['version_key'], case['tempo'],
                                         case['current_block'], case['netuid'], case['reveal_period'],
                                         case['block_time'], bytes.fromhex(case['hotkey']))
        after = time.time()
        case.update(round=rnd, ct_len=len(ct), before=before, after=after)
        cases.append(case)
    print(json.dumps({'cases': cases}))
elif cmd == 'seal':
    wrapped, rnd = d.encrypt_at_round(bytes.fromhex(rest[1]), int(rest[0]))
    n, off = read_compact(wrapped)
    assert off + n + 8 == len(wrapped) and int.from_bytes(wrapped[off + n:], 'little') == rnd
    print(json.dumps({'ciphertext': wrapped[off:off + n].hex(), 'round': rnd}))
elif cmd == 'open':
    ct, sig = bytes.fromhex(rest[0]), rest[1]
    wrapped = compact(len(ct)) + ct + (0).to_bytes(8, 'little')
    print(json.dumps({'plaintext': d.decrypt_with_signature(wrapped, sig).hex()}))
else:
    sys.exit(f'unknown command {cmd}')
