#!/usr/bin/env python3
"""Runs beacon's integration tests.

    python3 tests/integration/run.py --beacon build/beacon [--wrap "valgrind ..."] [-k SUBSTRING]

Imports every tests/integration/test_*.py (sorted by name) and runs each
top-level function named test_* that takes no argument, in definition order,
with a per-test timeout (60 s, 4x under --wrap). One line per test:
"PASS name (0.12s)", "FAIL name: reason" followed by a short traceback, or
"SKIP name: reason" (harness.skip). The last line is "N passed, N failed"
(", N skipped" when any were skipped); the exit status is 1 when a test failed.
"""

import argparse
import importlib
import inspect
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 60.0


class TestTimeout(BaseException):
    """Raised in the test by SIGALRM; a BaseException so that a test's own
    `except Exception` does not swallow it."""


def _on_alarm(signum, frame):
    raise TestTimeout()


def discover(pattern):
    sys.path.insert(0, HERE)
    tests, errors = [], []
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        modname = fname[:-3]
        try:
            mod = importlib.import_module(modname)
        except Exception:
            errors.append((modname, traceback.format_exc(limit=5)))
            continue
        funcs = []
        for name, obj in vars(mod).items():
            if not name.startswith("test_") or not inspect.isfunction(obj):
                continue
            if obj.__module__ != mod.__name__:
                continue  # imported from elsewhere
            try:
                params = inspect.signature(obj).parameters.values()
            except (TypeError, ValueError):
                continue
            if any(p.default is inspect.Parameter.empty and
                   p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                   for p in params):
                continue
            funcs.append((obj.__code__.co_firstlineno, name, obj))
        for _, name, obj in sorted(funcs, key=lambda t: t[0]):
            full = "%s.%s" % (modname, name)
            if pattern and pattern not in full:
                continue
            tests.append((full, obj))
    return tests, errors


def short_traceback(exc):
    """The frames inside the tests directory, most recent last."""
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in tb if f.filename.startswith(HERE) and
              os.path.basename(f.filename) != "run.py"]
    lines = traceback.format_list(frames[-4:] or tb[-2:])
    return "".join("    " + l.replace("\n", "\n    ").rstrip(" ") for l in lines).rstrip()


def reason_of(exc):
    if isinstance(exc, TestTimeout):
        return "timed out"
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    name = type(exc).__name__
    if isinstance(exc, AssertionError):
        return first or "assertion failed"
    return "%s: %s" % (name, first) if first else name


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beacon", required=True, help="path of the beacon binary")
    ap.add_argument("--wrap", default="", help="command prefix for the agent, e.g. valgrind")
    ap.add_argument("-k", dest="pattern", default="", help="run tests whose name contains this")
    ap.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per test")
    args = ap.parse_args()

    binary = os.path.abspath(args.beacon)
    if not os.access(binary, os.X_OK):
        print("run.py: %s is not an executable" % binary, file=sys.stderr)
        return 2
    os.environ["BEACON_BIN"] = binary
    os.environ["BEACON_WRAP"] = args.wrap
    timeout = args.timeout * (4 if args.wrap.strip() else 1)

    tests, import_errors = discover(args.pattern)
    import harness  # after discover() put HERE on sys.path

    passed = failed = skipped = 0
    for modname, tb in import_errors:
        failed += 1
        print("FAIL %s: cannot import" % modname)
        print("    " + tb.rstrip().replace("\n", "\n    "))

    signal.signal(signal.SIGALRM, _on_alarm)
    for name, fn in tests:
        start = time.monotonic()
        outcome, exc = "pass", None
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            try:
                fn()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except harness.Skip as e:
            outcome, exc = "skip", e
        except TestTimeout as e:
            outcome, exc = "fail", e
        except KeyboardInterrupt:
            harness.kill_leftovers()
            raise
        except BaseException as e:  # noqa: B902 - SystemExit from a test is a failure too
            outcome, exc = "fail", e
        finally:
            harness.kill_leftovers()
        took = time.monotonic() - start
        if outcome == "pass":
            passed += 1
            print("PASS %s (%.2fs)" % (name, took))
        elif outcome == "skip":
            skipped += 1
            print("SKIP %s: %s" % (name, str(exc) or "skipped"))
        else:
            failed += 1
            reason = reason_of(exc)
            if isinstance(exc, TestTimeout):
                reason = "timed out after %.0fs" % timeout
            print("FAIL %s: %s" % (name, reason))
            print(short_traceback(exc))
            text = str(exc).strip()
            extra = text.splitlines()[1:40]
            for note in getattr(exc, "__notes__", None) or []:
                extra += str(note).splitlines()
            if extra:
                print("    " + "\n    ".join(extra))
        sys.stdout.flush()

    if skipped:
        print("%d skipped (see the SKIP lines above)" % skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
