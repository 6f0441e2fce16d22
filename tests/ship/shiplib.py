"""Shared bits of the shipping tests (tests/ship/test_*.py): a tiny runner and
helpers. Python 3 standard library only (plus PyYAML in test_kube.py).

Each test_*.py is its own runner (`python3 tests/ship/test_image.py`): it runs
its top-level test_* functions in definition order and prints one line each,
"PASS name (0.12s)", "FAIL name: reason" with a short traceback, or
"SKIP name: reason", then the last line "N passed, N failed" (", N skipped"
when any were skipped); exit status 1 when a test failed. The integration
suite's fixtures (tests/integration/etcd_fixture.py, harness.py) are reused
as they are, so an etcd starts here exactly as it does there.
"""

import inspect
import os
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

from harness import Skip, skip  # noqa: E402  (after the path is set)

VERSION_FILE = os.path.join(TOP, "Makefile")


def version():
    """The VERSION the Makefile builds (one source of truth)."""
    with open(VERSION_FILE) as f:
        for line in f:
            if line.startswith("VERSION"):
                return line.split(":=", 1)[1].strip()
    raise AssertionError("no VERSION in the Makefile")


def build_dir():
    return os.environ.get("BUILD", os.path.join(TOP, "build"))


def sh(*argv, check=True, timeout=120, **kw):
    """Run argv; (rc, stdout, stderr) as text. check: a non-zero exit fails
    the test with the command and its output."""
    p = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, universal_newlines=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (" ".join(map(str, argv)), p.returncode,
                                                       p.stdout[-2000:], p.stderr[-2000:]))
    return p.returncode, p.stdout, p.stderr


def main(ns):
    """Run the test_* functions of module namespace ns; exit 1 on a failure."""
    tests = [(n, f) for n, f in ns.items()
             if n.startswith("test_") and inspect.isfunction(f) and f.__module__ == ns["__name__"]]
    passed = failed = skipped = 0
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
        except Skip as e:
            skipped += 1
            print("SKIP %s: %s" % (name, e), flush=True)
        except Exception as e:  # noqa: BLE001  (a test's failure, reported)
            failed += 1
            print("FAIL %s: %s" % (name, str(e).splitlines()[0] if str(e) else type(e).__name__),
                  flush=True)
            print("".join(traceback.format_exception(type(e), e, e.__traceback__, limit=4)),
                  flush=True)
        else:
            passed += 1
            print("PASS %s (%.2fs)" % (name, time.monotonic() - t0), flush=True)
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % skipped if skipped else ""))
    sys.exit(1 if failed else 0)


__all__ = ["Skip", "skip", "sh", "main", "version", "build_dir", "TOP", "HERE"]
