#!/usr/bin/env python3
"""An independent reader and admin for the local subtensor in tests
(substrate-interface 1.8.1, not our code). Prints one JSON object.

  chain_peer.py URL weights NETUID UID          Weights[netuid][uid] as {"weights": [[uid, w], ...]}
  chain_peer.py URL axon NETUID SS58            Axons[netuid][hotkey]
  chain_peer.py URL sudo FN KEY=INT|true|false ...   AdminUtils.FN via Sudo.sudo by //Alice
  chain_peer.py URL blocks N                    build N blocks (dev_newBlock)
  chain_peer.py URL head                        the best block number
  chain_peer.py URL fund SS58 TAO               transfer from //Alice
  chain_peer.py URL register-many NETUID N      burned_register N new hotkeys (//bench/i) by //Alice
  chain_peer.py URL pulse ROUND SIG_HEX         store a drand pulse (Drand.Pulses, LastStoredRound) with
                                                Chopsticks' dev_setStorage; read back as {"pulse": ...}
  chain_peer.py URL events NETUID               SubtensorModule events of the best block, by name
"""
import json, sys
from urllib.parse import urlparse
from substrateinterface import SubstrateInterface, Keypair

url, cmd, *rest = sys.argv[1:]
host = urlparse(url).hostname
if not host or not host.startswith('127.'):
    sys.exit(f'refusing a non-loopback chain: {url}')
s = SubstrateInterface(url=url)

def out(v):
    print(json.dumps(v))

def value(text):
    if text in ('true', 'false'):
        return text == 'true'
    return int(text)

if cmd == 'weights':
    netuid, uid = int(rest[0]), int(rest[1])
    row = s.query('SubtensorModule', 'Weights', [netuid, uid]).value
    out({'weights': [[int(u), int(w)] for u, w in row]})
elif cmd == 'axon':
    netuid, hotkey = int(rest[0]), rest[1]
    out(s.query('SubtensorModule', 'Axons', [netuid, hotkey]).value)
elif cmd == 'sudo':
    fn, params = rest[0], dict(p.split('=', 1) for p in rest[1:])
    alice = Keypair.create_from_uri('//Alice')
    inner = s.compose_call('AdminUtils', fn, {k: value(v) for k, v in params.items()})
    call = s.compose_call('Sudo', 'sudo', {'call': inner})
    xt = s.create_signed_extrinsic(call=call, keypair=alice)
    r = s.submit_extrinsic(xt, wait_for_inclusion=True)
    ok = r.is_success and not any(
        e.value['event']['event_id'] == 'Sudid' and 'Err' in str(e.value['event']['attributes'])
        for e in r.triggered_events)
    out({'ok': ok, 'error': None if ok else str(r.error_message)})
    sys.exit(0 if ok else 1)
elif cmd == 'blocks':
    s.rpc_request('dev_newBlock', [{'count': int(rest[0])}])
    out({'head': s.get_block_number(s.get_chain_head())})
elif cmd == 'pulse':
    # Pulse{round: u64, randomness: BoundedVec<u8,32>, signature: BoundedVec<u8,144>};
    # randomness is sha256(signature), as drand defines it.
    import hashlib
    rnd, sig = int(rest[0]), bytes.fromhex(rest[1])
    storage = {'Drand': {'Pulses': [[[rnd], {'round': rnd,
                                              'randomness': '0x' + hashlib.sha256(sig).hexdigest(),
                                              'signature': '0x' + sig.hex()}]],
                         'LastStoredRound': rnd}}
    r = s.rpc_request('dev_setStorage', [storage])
    if 'error' in r:
        sys.exit(f"dev_setStorage: {r['error']}")
    got = s.query('Drand', 'Pulses', [rnd]).value
    out({'pulse': got, 'last_stored_round': s.query('Drand', 'LastStoredRound').value})
elif cmd == 'events':
    evs = s.get_events(s.get_chain_head())
    out({'events': [e.value['event']['event_id'] for e in evs
                    if e.value['event']['module_id'] == 'SubtensorModule']})
elif cmd == 'head':
    out({'head': s.get_block_number(s.get_chain_head())})
elif cmd == 'fund':
    alice = Keypair.create_from_uri('//Alice')
    call = s.compose_call('Balances', 'transfer_keep_alive', {'dest': rest[0], 'value': int(rest[1]) * 10**9})
    r = s.submit_extrinsic(s.create_signed_extrinsic(call=call, keypair=alice), wait_for_inclusion=True)
    out({'ok': r.is_success})
    sys.exit(0 if r.is_success else 1)
elif cmd == 'register-many':
    # Manual block mode: submit every registration, then build blocks until all are in.
    netuid, n = int(rest[0]), int(rest[1])
    alice = Keypair.create_from_uri('//Alice')
    for fn, key in [('sudo_set_max_registrations_per_block', 'max_registrations_per_block'),
                    ('sudo_set_target_registrations_per_interval', 'target_registrations_per_interval'),
                    ('sudo_set_max_allowed_uids', 'max_allowed_uids')]:
        inner = s.compose_call('AdminUtils', fn, {'netuid': netuid, key: max(n, 256)})
        xt = s.create_signed_extrinsic(call=s.compose_call('Sudo', 'sudo', {'call': inner}), keypair=alice)
        s.submit_extrinsic(xt, wait_for_inclusion=True)
    nonce = s.rpc_request('system_accountNextIndex', [alice.ss58_address])['result']
    s.rpc_request('dev_setBlockBuildMode', ['Manual'])
    for i in range(n):
        hot = Keypair.create_from_uri(f'//bench/{i}')
        call = s.compose_call('SubtensorModule', 'burned_register', {'netuid': netuid, 'hotkey': hot.ss58_address})
        s.submit_extrinsic(s.create_signed_extrinsic(call=call, keypair=alice, nonce=nonce + i), wait_for_inclusion=False)
    for _ in range(64):
        s.rpc_request('dev_newBlock', [{'count': 1}])
        if s.query('SubtensorModule', 'SubnetworkN', [netuid]).value >= n:
            break
    s.rpc_request('dev_setBlockBuildMode', ['Instant'])
    out({'uids': s.query('SubtensorModule', 'SubnetworkN', [netuid]).value})
else:
    sys.exit(f'unknown command {cmd}')
