"""The official bittensor package as a peer of akihabara's axon and dendrite.

Run under a venv with bittensor==10.5.0 (modes `dendrite-suite`, `axon`) or
bittensor==11.3.0 (modes `btauth-sign`, `btauth-verify`, `btauth-call`).
Every socket it opens is checked: anything but loopback raises, so no test
traffic can leave 127.0.0.0/8 (bittensor looks up its external IP on the
internet; that lookup is replaced before any Axon or Dendrite exists).
Output: one JSON object per line on stdout.
"""

import argparse
import asyncio
import ipaddress
import json
import socket
import sys
from typing import ClassVar, Optional


def guard_loopback():
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(addr):
        if not isinstance(addr, tuple):
            return  # unix socket
        try:
            ip = ipaddress.ip_address(addr[0])
        except ValueError:
            raise OSError(f"loopback guard: refusing to resolve-and-connect {addr[0]!r}")
        if not (ip.is_loopback or ip.is_unspecified):
            raise OSError(f"loopback guard: refusing to connect to {addr[0]}")

    def connect(self, addr):
        check(addr)
        return real_connect(self, addr)

    def connect_ex(self, addr):
        check(addr)
        return real_connect_ex(self, addr)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex


guard_loopback()


def emit(obj):
    print(json.dumps(obj), flush=True)


def legacy():
    import bittensor as bt
    from bittensor.utils import networking

    networking.get_external_ip = lambda: "127.0.0.3"

    class Ping(bt.Synapse):
        message: str
        count: int = 0
        echo: Optional[str] = None
        count_plus_one: Optional[int] = None
        served_by: Optional[str] = None
        required_hash_fields: ClassVar[tuple[str, ...]] = ("message", "count")

    class SpecsQuery(bt.Synapse):
        include_gpus: bool = True
        hostname: Optional[str] = None
        cpu_count: Optional[int] = None
        memory_gb: Optional[float] = None
        gpus: Optional[list[dict]] = None

    return bt, Ping, SpecsQuery


def wallet_of(bt, a, name=None):
    return bt.Wallet(name=name or a.wallet_name, hotkey=a.wallet_hotkey, path=a.wallet_path)


def result(syn):
    return {
        "status": int(syn.dendrite.status_code) if syn.dendrite.status_code is not None else None,
        "message": syn.dendrite.status_message,
        "body": {k: v for k, v in syn.model_dump().items() if k not in ("dendrite", "axon")},
    }


def dendrite_suite(a):
    """The official Dendrite calls our axon: the answers the tests assert on."""
    bt, Ping, SpecsQuery = legacy()
    import aiohttp

    async def run():
        out = {}
        d = bt.Dendrite(wallet=wallet_of(bt, a))
        info = bt.AxonInfo(version=0, ip="127.0.0.1", port=a.port, ip_type=4, hotkey=a.axon_hotkey, coldkey=a.axon_hotkey)
        out["ping"] = result(await d.call(info, Ping(message="hi", count=41), timeout=12.0, deserialize=False))
        out["specs"] = result(await d.call(info, SpecsQuery(), timeout=12.0, deserialize=False))
        out["specs_no_gpus"] = result(await d.call(info, SpecsQuery(include_gpus=False), timeout=12.0, deserialize=False))
        wrong = bt.AxonInfo(version=0, ip="127.0.0.1", port=a.port, ip_type=4, hotkey=d.keypair.ss58_address, coldkey=a.axon_hotkey)
        out["wrong_axon_hotkey"] = result(await d.call(wrong, Ping(message="x"), timeout=12.0, deserialize=False))
        # Replay: the official request, prepared once and sent twice.
        syn = d.preprocess_synapse_for_request(info, Ping(message="replay", count=1), timeout=12.0)
        headers, body = syn.to_headers(), syn.model_dump()
        replies = []
        async with aiohttp.ClientSession() as s:
            for _ in range(2):
                async with s.post(f"http://127.0.0.1:{a.port}/Ping", headers=headers, json=body) as r:
                    replies.append({"status": r.status, "body": await r.json()})
        out["replay"] = replies
        # Many concurrent calls from one official Dendrite.
        many = await d.forward([info] * 50, Ping(message="many", count=1), timeout=12.0, deserialize=False)
        out["concurrent_statuses"] = sorted({int(s.dendrite.status_code) for s in many})
        if a.blacklisted_wallet:
            b = bt.Dendrite(wallet=wallet_of(bt, a, a.blacklisted_wallet))
            out["blacklisted"] = result(await b.call(info, Ping(message="x"), timeout=12.0, deserialize=False))
            await b.aclose_session()
        await d.aclose_session()
        return out

    emit(asyncio.run(run()))


def axon(a):
    """The official Axon on loopback, serving Ping and SpecsQuery, until killed."""
    bt, Ping, SpecsQuery = legacy()
    import os
    import time

    wallet = wallet_of(bt, a)
    ax = bt.Axon(wallet=wallet, ip="127.0.0.1", port=a.port, external_ip="127.0.0.1", external_port=a.port)
    ax.fast_config.host = "127.0.0.1"  # it binds 0.0.0.0 otherwise

    def ping(synapse: Ping) -> Ping:
        synapse.echo = synapse.message
        synapse.count_plus_one = synapse.count + 1
        synapse.served_by = wallet.hotkey.ss58_address
        return synapse

    def specs(synapse: SpecsQuery) -> SpecsQuery:
        synapse.hostname = socket.gethostname()
        synapse.cpu_count = os.cpu_count()
        synapse.gpus = []
        return synapse

    ax.attach(forward_fn=ping).attach(forward_fn=specs)
    ax.start()
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", a.port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    emit({"event": "ready", "hotkey": wallet.hotkey.ss58_address, "port": a.port})
    try:
        while True:
            time.sleep(1)
    finally:
        ax.stop()


def btauth_sign(a):
    """Signs with bittensor 11's http_auth and prints headers and payload."""
    from bittensor import http_auth, sp_core

    kp = sp_core.Keypair.create_from_uri(a.uri)
    receiver = sp_core.Keypair.create_from_uri(a.receiver_uri).ss58_address if a.receiver_uri else None
    body = bytes.fromhex(a.body_hex)
    headers = http_auth.sign(kp, method=a.method, path=a.path, body=body, receiver_ss58=receiver, nonce_ns=a.nonce)
    payload = http_auth.build_payload(
        scheme="sr25519", method=a.method, path=a.path, body=body, nonce_ns=a.nonce,
        sender_ss58=kp.ss58_address, receiver_ss58=receiver,
    )
    emit({"headers": headers, "payload_hex": payload.hex()})


def btauth_verify(a):
    """Verifies cases read from stdin with bittensor 11's http_auth."""
    from bittensor import http_auth, sp_core

    for line in sys.stdin:
        case = json.loads(line)
        me = sp_core.Keypair.create_from_uri(case["self_uri"]).ss58_address
        try:
            caller = http_auth.verify(
                case["headers"], bytes.fromhex(case["body_hex"]), method=case["method"], path=case["path"],
                self_hotkey_ss58=me, now_ns=case["now_ns"], nonce_store=http_auth.InMemoryNonceStore(),
            )
            emit({"ok": True, "hotkey": caller.hotkey_ss58})
        except http_auth.AuthError as e:
            emit({"ok": False, "error": type(e).__name__})


def btauth_call(a):
    """A bittensor 11 client (http_auth + urllib) calling our axon."""
    import time
    import urllib.error
    import urllib.request

    from bittensor import http_auth, sp_core

    kp = sp_core.Keypair.create_from_uri(a.uri)
    out = {}
    for case, receiver in (("ok", a.axon_hotkey), ("wrong_receiver", kp.ss58_address)):
        body = json.dumps({"message": "v11", "count": 1}).encode()
        headers = http_auth.sign(kp, method="POST", path="/Ping", body=body, receiver_ss58=receiver)
        headers["Content-Type"] = "application/json"
        req = urllib.request.Request(f"http://127.0.0.1:{a.port}/Ping", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                out[case] = {"status": r.status, "body": json.loads(r.read())}
        except urllib.error.HTTPError as e:
            out[case] = {"status": e.code, "body": json.loads(e.read())}
        time.sleep(0.001)
    emit(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--wallet-path")
    p.add_argument("--wallet-name")
    p.add_argument("--wallet-hotkey", default="default")
    p.add_argument("--blacklisted-wallet")
    p.add_argument("--port", type=int)
    p.add_argument("--axon-hotkey")
    p.add_argument("--uri")
    p.add_argument("--receiver-uri")
    p.add_argument("--method", default="POST")
    p.add_argument("--path", default="/")
    p.add_argument("--body-hex", default="")
    p.add_argument("--nonce", type=int)
    a = p.parse_args()
    modes = {
        "dendrite-suite": dendrite_suite,
        "axon": axon,
        "btauth-sign": btauth_sign,
        "btauth-verify": btauth_verify,
        "btauth-call": btauth_call,
    }
    modes[a.mode](a)


if __name__ == "__main__":
    main()
