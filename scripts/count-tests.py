#!/usr/bin/env python3
"""Counts test cases in a meson testlog.json: cmocka cases where a test binary
reports them ("[       OK ] name" / "[  FAILED  ] name"), otherwise one case per
meson test.
Prints "passed failed" and the names of failed tests on stderr."""
import json
import re
import sys

passed = failed = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t.get("result") == "SKIP":
        continue
    ok = t.get("result") in ("OK", "EXPECTEDFAIL")
    out = (t.get("stdout") or "") + (t.get("stderr") or "")
    p = len(re.findall(r"^\[       OK \] ", out, re.M))
    # cmocka lists a failed case twice (when it fails, and in the summary)
    f = len(set(re.findall(r"^\[  FAILED  \] (?!\d+ test)(\S+)", out, re.M)))
    if p + f == 0:
        p, f = (1, 0) if ok else (0, 1)
    elif not ok and f == 0:
        f = 1  # crashed or sanitizer report after the cases ran
    passed += p
    failed += f
    if not ok:
        print(t.get("name"), file=sys.stderr)
print(passed, failed)
