#!/usr/bin/env python3
"""Builds per-target fuzz seed corpora from the real test data.

The data is read from ../shared/testdata (never copied into the repository).
Usage: seed.py TESTDATA_DIR OUT_DIR
"""
import glob
import json
import os
import subprocess
import sys

T, OUT = sys.argv[1], sys.argv[2]
n = 0


def put(target, data):
    global n
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, "s%03d" % n), "wb") as f:
        f.write(data)
    n += 1


def inner(body, key):
    """Exact bytes of the inner object of a PCS body (as the verifier signs them)."""
    start = body.index(b'{"%s":' % key.encode()) + len(key) + 3
    end = body.rindex(b',"signature":"')
    return body[start:end]


quotes = []
for pat in ("dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_outdated", "go-tdx-guest/*.dat",
            "go-tdx-guest/ccel/cos-113-tdx-quote.dat", "trustee/*.dat", "trustee/*/*.bin",
            "zkdcap/*.dat"):
    for q in sorted(glob.glob(os.path.join(T, pat))):
        quotes.append(open(q, "rb").read())
for q in quotes:
    put("quote", q)

for pat in ("go-tdx-guest/sample_tcbInfo_response", "go-tdx-guest/sample_tcbinfo_response_v5",
            "zkdcap/tcbinfov3_*.json", "trustee/tcbInfo.json"):
    for p in glob.glob(os.path.join(T, pat)):
        b = open(p, "rb").read()
        put("pcs-body", b)
        put("tcb-info", inner(b, "tcbInfo"))
for pat in ("go-tdx-guest/sample_qeIdentity_response", "zkdcap/qeidentityv2_tdx.json",
            "trustee/enclaveIdentity.json"):
    for p in glob.glob(os.path.join(T, pat)):
        put("qe-identity", inner(open(p, "rb").read(), "enclaveIdentity"))
for p in glob.glob(os.path.join(T, "dcap-qvl/*collateral.json")):
    j = json.load(open(p))
    put("tcb-info", j["tcb_info"].encode())
    put("qe-identity", j["qe_identity"].encode())

# SGX extension values of the real PCK leaf certificates.
for q in quotes:
    s = q.find(b"-----BEGIN CERTIFICATE-----")
    e = q.find(b"-----END CERTIFICATE-----", s)
    if s < 0 or e < 0:
        continue
    pem = q[s:e + len(b"-----END CERTIFICATE-----")] + b"\n"
    der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=pem,
                         capture_output=True).stdout
    oid = bytes.fromhex("06092a864886f84d010d01")  # OID 1.2.840.113741.1.13.1
    i = der.find(oid)
    if i < 0:
        continue
    i += len(oid)
    if der[i] == 0x01:  # critical BOOLEAN (absent in Intel's certs)
        i += 3
    assert der[i] == 0x04  # OCTET STRING wrapping the extension value
    ln = der[i + 1]
    i += 2
    if ln & 0x80:
        k = ln & 0x7F
        ln = int.from_bytes(der[i:i + k], "big")
        i += k
    put("pck-ext", der[i:i + ln])
