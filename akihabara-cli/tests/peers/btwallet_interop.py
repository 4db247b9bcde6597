"""The official bittensor-wallet package's side of akihabara's wallet interop tests.

    write DIR PASSWORD       write wallet "py" as btcli does; print what was written as JSON
    read DIR NAME HOTKEYS PASSWORD   load a wallet akihabara wrote; print addresses and secrets as JSON
    sign URI_OR_MNEMONIC MESSAGE     print the ss58 and a signature
    verify SS58 MESSAGE SIGNATURE    print true or false
"""
import ctypes
import json
import os
import sys

from bittensor_wallet import Keyfile, Keypair, Wallet
from bittensor_wallet import keyfile as kf


def describe(kp):
    return {
        "ss58": kp.ss58_address,
        "public": "0x" + bytes(kp.public_key).hex(),
    }


def write(root, password):
    w = Wallet(name="py", hotkey="hk", path=root)
    cold = Keypair.create_from_mnemonic(Keypair.generate_mnemonic(12))
    w.set_coldkey(cold, encrypt=True, overwrite=True, coldkey_password=password)
    w.set_coldkeypub(cold, encrypt=False, overwrite=True)
    hot_phrase = Keypair.generate_mnemonic(15)
    hot = Keypair.create_from_mnemonic(hot_phrase)
    w.set_hotkey(hot, encrypt=False, overwrite=True)
    w.set_hotkeypub(hot, encrypt=False, overwrite=True)
    dev = Keypair.create_from_uri("//validator1")
    wd = Wallet(name="py", hotkey="dev", path=root)
    wd.set_hotkey(dev, encrypt=False, overwrite=True)
    # A legacy ansible-vault keyfile, as btcli can still write.
    plain = kf.serialized_keypair_to_keyfile_data(cold)
    with open(os.path.join(root, "py", "legacy_coldkey"), "wb") as f:
        f.write(kf.legacy_encrypt_keyfile_data(plain, password))
    # bittensor's password variable for the coldkey.
    ckf = w.coldkey_file
    ckf.save_password_to_env(password)
    bt_pw_name = ckf.env_var_name()
    # The extension sets the variable in the process environment, which
    # os.environ (a snapshot) does not see: read it through libc.
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    bt_pw_value = libc.getenv(bt_pw_name.encode()).decode()
    message = "akihabara interop: signed by bittensor-wallet"
    print(json.dumps({
        "coldkey": {**describe(cold), "mnemonic": cold_mnemonic(w, password)},
        "hotkey": {**describe(hot), "mnemonic": hot_phrase},
        "dev": describe(dev),
        "bt_pw": {"name": bt_pw_name, "value": bt_pw_value},
        "message": message,
        "hotkey_signature": "0x" + bytes(hot.sign(message)).hex(),
        "coldkey_signature": "0x" + bytes(cold.sign(message)).hex(),
    }))


def cold_mnemonic(w, password):
    data = kf.decrypt_keyfile_data(w.coldkey_file.data, password)
    return json.loads(data)["secretPhrase"]


def read(root, name, hotkeys, password):
    w = Wallet(name=name, hotkey="default", path=root)
    out = {"coldkeypub": w.get_coldkeypub().ss58_address}
    cold = w.get_coldkey(password=password)
    out["coldkey"] = cold.ss58_address
    out["hotkeys"] = {}
    for h in hotkeys.split(","):
        wh = Wallet(name=name, hotkey=h, path=root)
        out["hotkeys"][h] = {
            "ss58": wh.get_hotkey().ss58_address,
            "pub": wh.get_hotkeypub().ss58_address,
        }
    print(json.dumps(out))


def verify(ss58, message, signature):
    print("true" if Keypair(ss58_address=ss58).verify(message, signature) else "false")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "write":
        write(*args)
    elif cmd == "read":
        read(*args)
    elif cmd == "verify":
        verify(*args)
    elif cmd == "uri":
        print(Keypair.create_from_uri(args[0]).ss58_address)
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
