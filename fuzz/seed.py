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

# The real CC event log (its events; the rest of the 256 KiB area is erased padding), its ACPI
# table, and the same as a TPM-style log (PCR numbers in the index field).
ccel = open(os.path.join(T, "go-tdx-guest/ccel/ccel_data.dat"), "rb").read()
end = len(ccel.rstrip(b"\xff"))
put("eventlog", ccel[:end])
put("eventlog", open(os.path.join(T, "go-tdx-guest/ccel/ccel_table.dat"), "rb").read())
put("eventlog", ccel[:min(end, 4096)])


# Real firmware and kernels are megabytes: small synthetic ones in the same formats instead.
def tdvf_image():
    import struct
    size = 0x8000
    img = bytearray(size)
    secs = [(0x1000, 0x2000, 0xFFFF0000 - 0x2000, 0x2000, 0, 1),   # BFV, MR.EXTEND
            (0x3000, 0x1000, 0xFFFF0000 - 0x3000, 0x1000, 1, 0),   # CFV
            (0, 0, 0x809000, 0x2000, 2, 0),                         # TD_HOB
            (0, 0, 0x800000, 0x6000, 3, 0)]                         # TempMem
    desc = b"TDVF" + struct.pack("<III", 16 + 32 * len(secs), 1, len(secs))
    for s_ in secs:
        desc += struct.pack("<IIQQII", *s_)
    at = 0x6000
    img[at - 16:at] = bytes.fromhex("f3f9eae98e16d544a8eb7f4d8738f6ae")
    img[at:at + len(desc)] = desc
    entry = struct.pack("<I", size - at) + struct.pack("<H", 22) + \
        bytes.fromhex("35657ae44a989847865e4685a7bf8ec2")
    table = entry + struct.pack("<H", len(entry) + 18) + bytes.fromhex("de82b596b21ff745baeaa366c55a082d")
    end = size - 0x20
    img[end - len(table):end] = table
    return bytes(img)


def pe_image():
    import struct
    img = bytearray(0x1400)
    img[0:2] = b"MZ"
    struct.pack_into("<I", img, 0x3c, 0x40)
    img[0x40:0x44] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", img, 0x44, 0x8664, 2, 0, 0, 0, 240, 0x22)
    opt = 0x58
    struct.pack_into("<H", img, opt, 0x20b)
    struct.pack_into("<I", img, opt + 60, 0x400)    # SizeOfHeaders
    struct.pack_into("<I", img, opt + 108, 16)      # NumberOfRvaAndSizes
    struct.pack_into("<II", img, opt + 112 + 32, 0x1200, 0x200)  # certificate table
    sh = opt + 240
    for i, (ptr, sz) in enumerate(((0xc00, 0x600), (0x400, 0x800))):
        img[sh + 40 * i:sh + 40 * i + 8] = b".sec%d\0\0\0" % i
        struct.pack_into("<II", img, sh + 40 * i + 16, sz, ptr)
    return bytes(img)


put("tdvf", tdvf_image())
put("pe", pe_image())


# GRUB EFI images (PE with a "mods" section: ELF modules, a memdisk tar, the prefix) around
# grub.cfg texts that exercise the predictor's modelled subset and its stops.
import struct
def grub_tar(files):
    out = b''
    for name, data in files:
        h = bytearray(512)
        h[0:len(name)] = name.encode()
        h[100:108] = b'0000644\0'; h[108:116] = b'0000000\0'; h[116:124] = b'0000000\0'
        h[124:136] = ('%011o' % len(data)).encode() + b'\0'
        h[136:148] = b'00000000000\0'
        h[156] = ord('0'); h[257:263] = b'ustar\0'; h[263:265] = b'00'
        h[148:156] = b' ' * 8
        h[148:155] = ('%06o' % sum(h)).encode() + b'\0'
        out += bytes(h) + data + b'\0' * ((512 - len(data) % 512) % 512)
    return out + b'\0' * 1024
def grub_align(b, a): return b + b'\0' * ((a - len(b) % a) % a)
def grub_elf(name, extra=b''):
    shstr = b'\0.shstrtab\0.modname\0.text\0'
    b = bytearray(64); b[0:7] = b'\x7fELF\x02\x01\x01'
    so = len(b); b += shstr; no = len(b); b += name.encode() + b'\0'; to = len(b); b += extra
    b = bytearray(grub_align(bytes(b), 8)); shoff = len(b)
    sh = bytearray(256)
    struct.pack_into('<IQQ', sh, 64, 1, 0, 0); struct.pack_into('<QQ', sh, 64 + 0x18, so, len(shstr))
    struct.pack_into('<I', sh, 128, 11); struct.pack_into('<QQ', sh, 128 + 0x18, no, len(name) + 1)
    struct.pack_into('<I', sh, 192, 20); struct.pack_into('<QQ', sh, 192 + 0x18, to, len(extra))
    b += sh
    struct.pack_into('<Q', b, 0x28, shoff); struct.pack_into('<HHH', b, 0x3a, 64, 4, 1)
    return grub_align(bytes(b), 8)
def grub_obj(t, data): return struct.pack('<II', t, 8 + len(data)) + data
def grub_image(cfg, memfiles=(), prefix='(memdisk)/boot/grub', mods=('normal', 'tpm', 'search', 'linux', 'configfile', 'echo')):
    m = b''
    for n in mods: m += grub_obj(0, grub_elf(n))
    m += grub_obj(1, grub_tar([('boot/grub/grub.cfg', cfg.encode())] + list(memfiles)))
    m += grub_obj(3, grub_align(prefix.encode() + b'\0', 8))
    m = b'mimg' + struct.pack('<IQQ', 0, 24, 24 + len(m)) + m
    img = bytearray(0x40); img[0:2] = b'MZ'; struct.pack_into('<I', img, 0x3c, 0x40)
    pe = bytearray(24); pe[0:4] = b'PE\0\0'; struct.pack_into('<HH', pe, 4, 0x8664, 2)
    img += pe; sect = len(img); img += bytes(80); img = bytearray(grub_align(bytes(img), 512))
    text = len(img); img += b'GRUB 2.06-13 (x86_64-efi)'; img = bytearray(grub_align(bytes(img), 512))
    mo = len(img); img += m; img = bytearray(grub_align(bytes(img), 512))
    img[sect:sect + 8] = b'.text\0\0\0'; struct.pack_into('<II', img, sect + 16, 512, text)
    img[sect + 40:sect + 48] = b'mods\0\0\0\0'; struct.pack_into('<II', img, sect + 56, len(m), mo)
    return bytes(img)

GRUB_UUID = "0f6e1b2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
put("grub-image", grub_image("search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\n"
                             "configfile /boot/grub/grub.cfg\n" % GRUB_UUID))
put("grub-image", grub_image("set timeout=0\nset default='B'\nmenuentry 'A' {\n\tlinux /vmlinuz a\n}\n"
                             "menuentry 'B' --class x {\n\tlinux /vmlinuz root=UUID=x \"a b\" ro\n"
                             "\tinitrd /i1 /i2\n}\n",
                             [("vmlinuz", b"MZkernel"), ("i1", b"abcde"), ("i2", b"fg")]))
put("grub-image", grub_image("set a=one\necho $a ${a}x 'q' \\$a\nexport a\nsource /boot/grub/x.cfg\n",
                             [("boot/grub/x.cfg", b"echo $a\nset a=2\ninsmod foo\n")]))
put("grub-image", grub_image("if true; then echo; fi\nload_env\nsearch --file /x\n"))
