#!/usr/bin/env python3
"""Verify a fapiao audit bundle independently: Python's standard library only.

usage: python3 verify_bundle.py BUNDLE.json [--key PUBLIC_KEY] [--require-signature]

Checks, for every event: the record bytes decode and sit at their position; SHA-256 of the
record is its ledgerhash; the RFC 9162 inclusion proof takes SHA-256(0x00 || record) to the
signed root; the CloudEvent's attributes and its data bytes are the record's; consecutive
records chain. The Ed25519 signature of the head is checked when the optional `cryptography`
package is installed (--require-signature makes that mandatory); --key (base64 or hex) names
the only key trusted to have signed it. Exit status 0 when everything verifies, 1 otherwise.
"""
import base64
import hashlib
import json
import struct
import sys


def leaf_hash(record):
    return hashlib.sha256(b"\x00" + record).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf, index, size, path, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def parse_record(b):
    """The record layout of docs/storage-format.md (format version 1)."""
    if len(b) < 82 or b[0] != 1:
        raise ValueError("not a version-1 record")
    position, _stream_version, _recorded, _occurred = struct.unpack(">QQqq", b[2:34])
    fields, offset = {}, 66
    for name in ("subject", "type", "source", "id", "time", "datacontenttype"):
        (n,) = struct.unpack(">H", b[offset:offset + 2])
        fields[name] = b[offset + 2:offset + 2 + n].decode("utf-8")
        offset += 2 + n
    (n,) = struct.unpack(">I", b[offset:offset + 4])
    data = b[offset + 4:offset + 4 + n]
    if offset + 4 + n != len(b):
        raise ValueError("field lengths do not add up to the record size")
    if not b[1] & 1:
        del fields["datacontenttype"]
    return position, b[34:66], fields, data


def check_event(event, head, root):
    """Returns (problems, record hash, previous hash) for one bundled event."""
    problems = []
    position = event["position"]
    record = base64.b64decode(event["record"], validate=True)
    number, previous, fields, data = parse_record(record)
    record_hash = hashlib.sha256(record).digest()
    if number != position or event["leafIndex"] != position - 1:
        problems.append("the record says position %d" % number)
    path = [bytes.fromhex(h) for h in event["inclusionProof"]]
    if not verify_inclusion(leaf_hash(record), position - 1, head["treeSize"], path, root):
        problems.append("the inclusion proof does not reach the signed root")
    line = event["cloudEvent"].encode("utf-8")
    cloud_event = json.loads(line)
    expected = dict(fields, specversion="1.0", ledgerposition=position,
                    ledgerhash=record_hash.hex(), ledgerprevhash=previous.hex())
    for name, value in expected.items():
        if cloud_event.get(name) != value:
            problems.append("%s is %r, the record says %r" % (name, cloud_event.get(name), value))
    if not line.endswith(b',"data":' + data + b"}"):
        problems.append("data is not byte-identical to the record's")
    return problems, record_hash, previous


def check_signature(head, trusted_key, required):
    message = "fapiao-tree-head/v1\n%d\n%s\n%s\n" % (head["treeSize"], head["rootHash"], head["ledgerTime"])
    key = base64.b64decode(head["publicKey"])
    if trusted_key is not None and key != trusted_key:
        return ["the head is signed by %s, not by the trusted key" % head["publicKey"]], "untrusted"
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.exceptions import InvalidSignature
    except ImportError:
        if required:
            return ["the signature cannot be checked: pip install cryptography"], "unchecked"
        return [], "not checked (install the cryptography package to check it)"
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(base64.b64decode(head["signature"]), message.encode("utf-8"))
    except InvalidSignature:
        return ["the head's Ed25519 signature does not verify"], "INVALID"
    return [], "valid"


def main(argv):
    if len(argv) < 2 or argv[1].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 64
    trusted_key, required = None, "--require-signature" in argv
    if "--key" in argv:
        text = argv[argv.index("--key") + 1]
        trusted_key = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text)
    with open(argv[1], "rb") as file:
        bundle = json.load(file)
    head = bundle["head"]
    root = bytes.fromhex(head["rootHash"])
    failures, hashes, previous = [], {}, {}
    if bundle.get("format") != "fapiao-audit-bundle/1":
        failures.append((0, "unknown bundle format %r" % bundle.get("format")))
    problems, signature = check_signature(head, trusted_key, required)
    failures += [(0, p) for p in problems]
    for event in bundle["events"]:
        try:
            problems, hashes[event["position"]], previous[event["position"]] = check_event(event, head, root)
        except (ValueError, KeyError, struct.error) as error:
            problems = ["unreadable: %s" % error]
        failures += [(event["position"], p) for p in problems]
    for position, link in previous.items():
        if position - 1 in hashes and hashes[position - 1] != link:
            failures.append((position, "previous-hash differs from the hash of record %d" % (position - 1)))
    if failures:
        for position, problem in sorted(failures):
            print("FAIL position %d: %s" % (position, problem) if position else "FAIL head: %s" % problem)
        return 1
    print("OK: %d events proven against the head signed at size %d (root %s); signature %s"
          % (len(bundle["events"]), head["treeSize"], head["rootHash"], signature))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
