#!/usr/bin/env python3
"""Checks that every #include arrow in agent/ and plugins/ points down.

The folders of agent/ are layers, lowest first (HACKING.md draws them):

    base  <  config, http  <  store  <  secrets  <  plugin  <  health, api, template, exec, dns, proxy  <  agent/ (daemon)

(secrets sits on store: a secret's readers wait on store/wait.h queues.
exec sits just above template: exec mode's env values are templates.)

A file may include headers of its own folder and of lower layers only; cli/
stands apart on base. A plugin (plugins/<name>/) includes its own headers and
agent/plugin/plugin.h, nothing else of agent/. Exit 1 with one line per arrow
that points the wrong way; the last line is "N passed, N failed" (files).
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
LEVEL = {"base": 0, "config": 1, "http": 1, "cli": 1, "store": 2, "secrets": 2.5,
         "plugin": 3, "health": 4, "api": 4,
         "template": 4, "exec": 4.5, "dns": 4, "proxy": 4, "": 5}
PLUGIN_MAY = {"plugin/plugin.h"}
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folder_of(rel):
    """agent-relative path -> its layer folder ('' for agent/ itself)."""
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else ""


def main():
    bad, nfiles = [], 0
    for top in ("agent", "plugins"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in sorted(files):
                if not f.endswith((".c", ".h")):
                    continue
                path = os.path.join(d, f)
                rel = os.path.relpath(path, ROOT)
                nfiles += 1
                before = len(bad)
                text = open(path, encoding="utf-8").read()
                for inc in INC.findall(text):
                    if top == "plugins":
                        if "/" in inc and inc not in PLUGIN_MAY:
                            bad.append("%s includes %s: a plugin sees only plugin/plugin.h" % (rel, inc))
                        continue
                    mine = folder_of(os.path.relpath(path, os.path.join(ROOT, "agent")))
                    theirs = folder_of(inc)
                    if theirs == mine:
                        continue
                    if theirs not in LEVEL:
                        bad.append("%s includes %s: not a layer of agent/" % (rel, inc))
                    elif mine == "cli" and theirs != "base":
                        bad.append("%s includes %s: cli/ stands on base/ only" % (rel, inc))
                    elif LEVEL[theirs] >= LEVEL[mine]:
                        bad.append("%s (%s) includes %s (%s): an arrow up or sideways"
                                   % (rel, mine or "agent", inc, theirs or "agent"))
    for b in bad:
        print(b)
    files_bad = len({b.split(" ")[0] for b in bad})
    print("%d passed, %d failed" % (nfiles - files_bad, files_bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
