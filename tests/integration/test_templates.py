"""Templates: `beacon render`, the Mustache engine against pystache (a
differential test on generated templates), and the agent's renderer."""

import json
import os
import random
import re
import subprocess

from harness import beacon_bin, run_beacon, skip, temp_dir

# ---- the differential test against pystache ---------------------------------

# Interpolated names are scalars: pystache prints lists, objects and
# booleans as Python's repr ("True", "{'x': 1}"), beacon as JSON ("true").
# null: pystache prints "None", the spec (and beacon) nothing.
NAMES = ["a", "b", "c", "obj.x", "obj.y.z", "zero", "missing", "obj.missing.z", "list.a"]
SECTIONS = ["list", "obj", "flag", "empty", "zero", "missing", "nested", "obj.y", "strs"]
TEXTS = ["x", " ", "  ", "\n", "hello ", "<&>\"", "\t", "a\nb", "\r\n", "=", "|", "x}"]
# (no "{" right before a tag: "{{{x}}" is an error for beacon, pystache guesses)


def html_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def gen_data(rng):
    word = lambda: rng.choice(["alpha", "<b>", "x&y", 'q"t', "", "multi\nline", "sp ace"])
    return {
        "a": word(), "b": rng.randint(-1000, 1000), "c": rng.choice([1.5, 0.25, -3.75, 2.0, 1e-5]),
        "n": None, "list": [{"a": word(), "b": i, "obj": {"x": word()}} for i in range(rng.randint(0, 3))],
        "obj": {"x": word(), "y": {"z": word()}}, "flag": rng.choice([True, False]),
        "empty": rng.choice(["", [], {}]), "zero": rng.choice([0, 1]),
        "nested": [[1, 2], ["u", "v"]], "strs": ["p", "q", "r"],
    }


def gen_body(rng, depth, delims, dot=False):
    o, c = delims
    out = []
    names = NAMES + (["."] if dot else [])
    for _ in range(rng.randint(1, 5)):
        k = rng.random()
        if k < 0.3:
            out.append(rng.choice(TEXTS))
        elif k < 0.5:
            out.append(o + rng.choice(["", " "]) + rng.choice(names) + rng.choice(["", " "]) + c)
        elif k < 0.58:
            out.append(o + "&" + rng.choice(names) + c)
        elif k < 0.62 and o == "{{":
            out.append("{{{" + rng.choice(names) + "}}}")
        elif k < 0.8 and depth < 3:
            name = rng.choice(SECTIONS)
            sig = rng.choice("#^")
            nl = rng.choice(["", "\n"])
            ind = rng.choice(["", "  "])
            inner = gen_body(rng, depth + 1, delims, dot=(name == "strs" and sig == "#"))
            out.append(ind + o + sig + name + c + nl + inner + nl +
                       ind + o + "/" + name + c + nl)
        elif k < 0.86:
            out.append(rng.choice(["", "  "]) + o + "! note " + rng.choice(["", "\n"]) + c +
                       rng.choice(["", "\n"]))
        elif k < 0.93:
            out.append(rng.choice(["", "  ", "x "]) + o + ">" + rng.choice(["p1", "p2", "none"]) + c +
                       rng.choice(["", "\n"]))
        elif depth == 0 and o == "{{":
            out.append(rng.choice(["", " "]) + "{{=<% %>=}}" + rng.choice(["", "\n"]))
            out.append(gen_body(rng, depth + 1, ("<%", "%>")))
            out.append("<%={{ }}=%>")
        else:
            out.append(rng.choice(TEXTS))
    return "".join(out)


# A line holding only a section, comment, partial or delimiter tag and
# blanks is "standalone" (removed from the output) for the spec and beacon;
# pystache does not take blanks AFTER the tag as blank. Such templates are
# left out of the comparison (a known pystache difference, see README).
TRAILING_BLANKS = re.compile(r"(^|\n)[ \t]*(\{\{|<%)[#^/>!=][^\n]*?(\}\}|%>)[ \t]+(\r?\n|$)")

PARTIALS = {"p1": "[{{a}}]\n", "p2": "{{#list}}\n  <{{b}}>\n{{/list}}\nend"}


def test_render_matches_pystache_on_generated_templates():
    try:
        import pystache
    except ImportError:
        # Debian's package, when python3 is not Debian's own (pyenv).
        import sys
        sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import pystache
    except ImportError:
        skip("python3-pystache is not installed (apt-get install python3-pystache)")
    rng = random.Random(int(os.environ.get("BEACON_DIFF_SEED", "12")))
    with temp_dir() as d:
        diff_cases(pystache, rng, d)


def diff_cases(pystache, rng, d):
    for name, text in PARTIALS.items():
        with open(os.path.join(d, name + ".mustache"), "w") as f:
            f.write(text)
    renderer = pystache.Renderer(escape=html_escape, partials=PARTIALS, missing_tags="ignore")
    cases, compared = 200, 0
    for i in range(cases):
        tmpl = gen_body(rng, 0, ("{{", "}}"))
        data = gen_data(rng)
        if TRAILING_BLANKS.search(tmpl):
            continue
        try:
            want = renderer.render(tmpl, data)
        except Exception:
            continue  # pystache refuses it: not a comparison
        tpath = os.path.join(d, "t%d.mustache" % i)
        dpath = os.path.join(d, "d%d.json" % i)
        with open(tpath, "w", newline="") as f:
            f.write(tmpl)
        with open(dpath, "w") as f:
            json.dump(data, f)
        # bytes: text mode would turn the template's \r\n into \n
        p = subprocess.run([beacon_bin(), "render", tpath, "--data", dpath, "--escape", "html"],
                           capture_output=True, timeout=20)
        rc, out, err = p.returncode, p.stdout.decode(), p.stderr.decode()
        assert rc == 0, (tmpl, err)
        assert out == want, "template %r\ndata %r\nbeacon   %r\npystache %r" % (tmpl, data, out, want)
        compared += 1
    assert compared > cases * 0.6, compared


# ---- beacon render ---------------------------------------------------------------

def test_render_with_data_file_and_escape_modes():
    with temp_dir() as d:
        render_with_data(d)


def render_with_data(d):
    t = os.path.join(d, "up.conf.tmpl")
    with open(t, "w") as f:
        f.write("upstream {{name}} {\n{{#servers}}\n  server {{address}}:{{port}};\n{{/servers}}\n"
                "{{^servers}}\n  # none\n{{/servers}}\n}\n{{> extra}}\n{{v}}\n")
    with open(os.path.join(d, "extra.mustache"), "w") as f:
        f.write("# {{name}}\n")
    data = os.path.join(d, "data.json")
    with open(data, "w") as f:
        json.dump({"name": "web", "servers": [{"address": "10.0.0.1", "port": 80},
                                               {"address": "10.0.0.2", "port": 81}], "v": "a\"<b>"}, f)
    rc, out, err = run_beacon("render", t, "--data", data)
    assert rc == 0, err
    assert out == ("upstream web {\n  server 10.0.0.1:80;\n  server 10.0.0.2:81;\n}\n# web\na\"<b>\n"), out
    rc, out, _ = run_beacon("render", t, "--data", data, "--escape", "html")
    assert out.endswith("a&quot;&lt;b&gt;\n"), out
    rc, out, _ = run_beacon("render", t, "--data", data, "--escape", "json")
    assert out.endswith("a\\\"<b>\n"), out


def test_render_reports_template_errors_with_line_and_column():
    with temp_dir() as d:
        render_errors(d)


def render_errors(d):
    t = os.path.join(d, "bad.tmpl")
    with open(t, "w") as f:
        f.write("line one\n  {{#servers}}\n{{/server}}\n")
    data = os.path.join(d, "d.json")
    with open(data, "w") as f:
        f.write("{}")
    rc, out, err = run_beacon("render", t, "--data", data)
    assert rc == 2, (rc, err)
    assert "bad.tmpl:3:1:" in err and "does not close" in err and "2:3" in err, err
    assert out == ""
    rc, _, err = run_beacon("render", t, "--data", data, "--escape", "xml")
    assert rc == 2 and "none, html or json" in err, err
    rc, _, err = run_beacon("render", os.path.join(d, "absent.tmpl"), "--data", data)
    assert rc == 2 and "absent.tmpl" in err, err
