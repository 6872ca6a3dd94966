#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A strict checker of the Prometheus text exposition format 0.0.4, for tdcrypt-kbs's
/metrics (docs/PROTOCOL.md section 9).

usage: prom-check.py FILE [SERIES...]
Checks the whole file, then prints the value of each SERIES given exactly as it appears
(e.g. 'tdcrypt_kbs_denials_total{reason="policy_denied"}'), one a line. Exit 1 with the
line number on the first violation or a series that is missing.
"""
import math
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(
    rf"^({NAME})(?:\{{((?:{LABEL}={VALUE})(?:,{LABEL}={VALUE})*)?,?\}})? (\S+)(?: (-?\d+))?$")
PAIR = re.compile(rf"({LABEL})=({VALUE})")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def fail(n, msg):
    sys.exit(f"prom-check: line {n}: {msg}")


def number(s, n):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", s):
        fail(n, f"bad value {s!r}")
    return float(s)


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base and types.get(base) in ("histogram", "summary"):
            return base
    return name


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    text = open(sys.argv[1], encoding="utf-8").read()
    if not text.endswith("\n"):
        fail(0, "the last line does not end with a newline")
    types, helps, series, done = {}, set(), {}, set()
    current = None
    hist = {}  # (family, labels without le) -> {"buckets": [(le, v)], "sum", "count"}
    for n, line in enumerate(text[:-1].split("\n"), 1):
        if line.startswith("#"):
            m = re.fullmatch(rf"# (HELP|TYPE) ({NAME}) (.*)", line)
            if not m:
                if line.startswith("# HELP") or line.startswith("# TYPE"):
                    fail(n, "malformed HELP/TYPE")
                continue  # a comment
            kind, name, rest = m.groups()
            if name in done:
                fail(n, f"{kind} of {name} after its samples")
            if kind == "TYPE":
                if rest not in TYPES:
                    fail(n, f"unknown type {rest!r}")
                if name in types:
                    fail(n, f"second TYPE of {name}")
                types[name] = rest
            else:
                if name in helps:
                    fail(n, f"second HELP of {name}")
                helps.add(name)
            continue
        if not line.strip():
            fail(n, "empty line")
        m = SAMPLE.match(line)
        if not m:
            fail(n, f"not a sample: {line!r}")
        name, labels, value = m.group(1), m.group(2) or "", number(m.group(3), n)
        fam = family_of(name, types)
        if fam not in types:
            fail(n, f"{name}: no TYPE before its samples")
        if current != fam:
            if fam in done:
                fail(n, f"samples of {fam} are not together")
            if current:
                done.add(current)
            current = fam
        pairs = PAIR.findall(labels)
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            fail(n, "a label given twice")
        key = (name, tuple(sorted(pairs)))
        if key in series:
            fail(n, f"duplicate series {line.split(' ')[0]}")
        series[key] = value
        typ = types[fam]
        if typ == "counter":
            if not name.endswith("_total"):
                fail(n, f"counter {name} does not end in _total")
            if value < 0 or math.isnan(value):
                fail(n, "a counter below zero")
        if typ == "histogram":
            rest = tuple(sorted(p for p in pairs if p[0] != "le"))
            h = hist.setdefault((fam, rest), {"buckets": [], "sum": None, "count": None})
            if name.endswith("_bucket"):
                le = dict(pairs).get("le")
                if le is None:
                    fail(n, "a bucket without le")
                h["buckets"].append((number(le.strip('"'), n), value, n))
            elif name.endswith("_sum"):
                h["sum"] = value
            elif name.endswith("_count"):
                h["count"] = value
            else:
                fail(n, f"{name}: not a histogram sample name")
    for (fam, rest), h in hist.items():
        b = h["buckets"]
        if not b or b[-1][0] != math.inf:
            fail(0, f"{fam}{rest}: no +Inf bucket last")
        for (le0, v0, _), (le1, v1, ln) in zip(b, b[1:]):
            if le1 <= le0:
                fail(ln, f"{fam}: buckets not in increasing le")
            if v1 < v0:
                fail(ln, f"{fam}: buckets not cumulative")
        if h["count"] is None or h["sum"] is None:
            fail(0, f"{fam}{rest}: no _sum or _count")
        if h["count"] != b[-1][1]:
            fail(0, f"{fam}{rest}: _count {h['count']} != +Inf bucket {b[-1][1]}")
    for want in sys.argv[2:]:
        m = SAMPLE.match(want + " 0")
        if not m:
            sys.exit(f"prom-check: bad series {want!r}")
        key = (m.group(1), tuple(sorted(PAIR.findall(m.group(2) or ""))))
        if key not in series:
            sys.exit(f"prom-check: no series {want}")
        v = series[key]
        print(int(v) if v == int(v) else v)


if __name__ == "__main__":
    main()
