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


# ---- the agent's templates -------------------------------------------------------

import stat
import threading
import time

from etcd_fixture import Etcd
from harness import Agent, metric, registry_config, wait_for
from vault_fixture import Vault

PREFIX = "/beacon/services"


def etcd_cfg(etcd, templates, **top):
    reg = {"backend": "etcd", "endpoints": [etcd.url], "ttl": "2s", "timeout": "2s",
           "dial_timeout": "1s"}
    return registry_config(reg, templates=templates, **top)


def put_ep(etcd, service, sid, address, port=80):
    etcd.put("%s/%s/%s" % (PREFIX, service, sid),
             json.dumps({"id": sid, "address": address, "port": port}))


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def lines(path):
    text = read(path)
    return text.splitlines() if text else []


def self_templates(a):
    st, _, body = a.get("/v1/self")
    assert st == 200, body
    return body["templates"]


UPSTREAM = ("upstream web {\n{{#service.web}}\n  server {{address}}:{{port}};\n{{/service.web}}\n}\n"
            "color={{key.config/web/color}}\n")


def test_template_from_etcd_services_and_kv_command_runs_once_per_change():
    with Etcd() as etcd:
        put_ep(etcd, "web", "w1", "10.1.0.1")
        etcd.put("/config/web/color", "blue")
        with temp_dir() as d:
            dest, ran = os.path.join(d, "up.conf"), os.path.join(d, "ran")
            cmd = ["sh", "-c", "echo run >> %s" % ran]
            # No watch section: the template's names are watched by themselves.
            with Agent(etcd_cfg(etcd, [{"contents": UPSTREAM, "destination": dest,
                                        "command": cmd}])) as a:
                wait_for(lambda: read(dest) is not None, 10, what="the first render")
                assert read(dest) == "upstream web {\n  server 10.1.0.1:80;\n}\ncolor=blue\n", read(dest)
                assert stat.S_IMODE(os.stat(dest).st_mode) == 0o644
                wait_for(lambda: len(lines(ran)) == 1, 5, what="the command after the first write")
                put_ep(etcd, "web", "w2", "10.1.0.2", 81)
                wait_for(lambda: "10.1.0.2:81" in read(dest), 5, what="a new endpoint in the file")
                wait_for(lambda: len(lines(ran)) == 2, 5, what="the command after the change")
                etcd.put("/config/web/color", "green")
                wait_for(lambda: "color=green" in read(dest), 5, what="a KV change in the file")
                wait_for(lambda: len(lines(ran)) == 3, 5, what="the command after the KV change")
                # The same bytes again: a render, but no write and no command.
                mtime = os.stat(dest).st_mtime_ns
                renders = self_templates(a)[0]["renders"]
                put_ep(etcd, "web", "w2", "10.1.0.2", 81)
                etcd.put("/config/web/other", "x")
                put_ep(etcd, "other", "o1", "10.9.9.9")
                time.sleep(0.5)  # nothing to poll for: we assert that nothing happens
                assert os.stat(dest).st_mtime_ns == mtime
                assert len(lines(ran)) == 3, lines(ran)
                t = self_templates(a)[0]
                assert t["writes"] == 3 and t["commands"] == 3 and t["commands_failed"] == 0, t
                assert t["renders"] >= renders and t["last_error"] == "", t
                m = a.metrics()
                assert metric(m, "beacon_template_writes_total", destination=dest) == 3
                assert metric(m, "beacon_template_commands_total", destination=dest) == 3
                assert a.stop() == 0


def test_template_burst_of_changes_renders_once_or_twice():
    with Etcd() as etcd:
        put_ep(etcd, "web", "w0", "10.2.0.0")
        with temp_dir() as d:
            dest, ran = os.path.join(d, "up.conf"), os.path.join(d, "ran")
            cmd = ["sh", "-c", "echo run >> %s" % ran]
            tmpl = {"contents": "{{#service.web}}{{address}} {{/service.web}}\n", "destination": dest,
                    "command": cmd, "wait": {"min": "500ms", "max": "10s"}}
            with Agent(etcd_cfg(etcd, [tmpl])) as a:
                wait_for(lambda: len(lines(ran)) == 1, 10, what="the first render and command")
                w0 = self_templates(a)[0]["writes"]
                start = time.monotonic()
                for i in range(100):
                    put_ep(etcd, "web", "w0", "10.2.0.%d" % (i + 1))
                    time.sleep(max(0, start + (i + 1) * 0.01 - time.monotonic()))
                wait_for(lambda: read(dest) == "10.2.0.100 \n", 10, what="the last change in the file")
                time.sleep(0.8)  # longer than wait.min: a late extra render would show now
                t = self_templates(a)[0]
                assert 1 <= t["writes"] - w0 <= 2, t
                assert 2 <= len(lines(ran)) <= 3, lines(ran)
                assert a.stop() == 0


def test_template_file_is_never_seen_half_written():
    with temp_dir() as d:
        dest = os.path.join(d, "big.conf")
        body = "BEGIN\n" + "{{#service.web}}server {{address}}:{{port}}; # padding padding\n{{/service.web}}" + "END\n"
        n = 2000
        eps = [{"address": "10.3.%d.%d" % (i // 250, i % 250), "port": 80} for i in range(n)]
        cfg = {"static": {"services": {"web": eps}}, "templates": [{"contents": body, "destination": dest}]}
        with Agent(cfg) as a:
            wait_for(lambda: read(dest) is not None, 10, what="the first render")
            bad, reads, stop = [], [0], threading.Event()

            def reader():
                while not stop.is_set():
                    text = read(dest)
                    reads[0] += 1
                    if not (text.startswith("BEGIN\n") and text.endswith("END\n")):
                        bad.append(len(text))
            th = threading.Thread(target=reader)
            th.start()
            try:
                # Each reload changes the set: the file is rewritten every time.
                for i in range(8):
                    cfg["static"]["services"]["web"] = eps[: n - 100 * (i % 2) - i]
                    a.reload(cfg)
                    want = len(cfg["static"]["services"]["web"])
                    wait_for(lambda: read(dest).count("server ") == want, 10, what="a rewrite")
            finally:
                stop.set()
                th.join()
            assert not bad, "half-written reads: %r" % bad[:5]
            assert reads[0] > 20, reads
            assert self_templates(a)[0]["writes"] >= 1
            assert a.stop() == 0


def test_template_with_secret_is_0600_perms_owner_as_configured():
    with Vault() as v:
        tok = v.create_token(ttl="1h")
        pw = "pw-" + os.urandom(8).hex()
        v.kv2_put("web/db", {"user": "app", "password": pw})
        with temp_dir() as d:
            sec, pub = os.path.join(d, "db.env"), os.path.join(d, "pub.conf")
            grp = "nogroup"
            cfg = {"vault": {"address": v.url, "auth": {"method": "token", "token_file": "@DIR@/token"},
                             "secrets": [{"name": "db", "path": "secret/data/web/db"}], "timeout": "2s"},
                   "templates": [
                       {"contents": "DB_USER={{secret.db.user}}\nDB_PASSWORD={{secret.db.password}}\n",
                        "destination": sec},
                       {"contents": "node={{node}}\n", "destination": pub, "perms": "0640",
                        "group": grp}]}
            a = Agent(cfg)
            with open(os.path.join(a.dir, "token"), "w") as f:
                f.write(tok)
            with a:
                wait_for(lambda: read(sec) is not None and read(pub) is not None, 10, what="both files")
                assert read(sec) == "DB_USER=app\nDB_PASSWORD=%s\n" % pw
                assert stat.S_IMODE(os.stat(sec).st_mode) == 0o600
                assert stat.S_IMODE(os.stat(pub).st_mode) == 0o640
                import grp as grpmod
                assert os.stat(pub).st_gid == grpmod.getgrnam(grp).gr_gid
                assert pw not in a.log()
                assert a.stop() == 0


def test_failed_command_stderr_is_logged_unless_the_template_renders_a_secret():
    # A command that prints the rendered file to stderr and fails: for a
    # plain template its stderr is in the log and /v1/self, for a secret
    # template only the status is (the file may hold the secret).
    with Vault() as v:
        tok = v.create_token(ttl="1h")
        pw = "pw-" + os.urandom(8).hex()
        v.kv2_put("web/db", {"password": pw})
        with temp_dir() as d:
            sec, pub = os.path.join(d, "db.env"), os.path.join(d, "pub.conf")
            blurt = lambda f: ["/bin/sh", "-c", "cat %s >&2; exit 3" % f]
            cfg = {"vault": {"address": v.url, "auth": {"method": "token", "token_file": "@DIR@/token"},
                             "secrets": [{"name": "db", "path": "secret/data/web/db"}], "timeout": "2s"},
                   "templates": [
                       {"contents": "DB_PASSWORD={{secret.db.password}}\n", "destination": sec,
                        "command": blurt(sec)},
                       {"contents": "plain-%s\n" % pw[3:9], "destination": pub, "command": blurt(pub)}]}
            a = Agent(cfg)
            with open(os.path.join(a.dir, "token"), "w") as f:
                f.write(tok)
            with a:
                wait_for(lambda: all(t["commands_failed"] == 1 for t in self_templates(a)), 10,
                         what="both commands failed once")
                by_dest = {t["destination"]: t for t in self_templates(a)}
                assert "exited with status 3" in by_dest[sec]["last_error"], by_dest[sec]
                assert "not shown" in by_dest[sec]["last_error"], by_dest[sec]
                assert "plain-%s" % pw[3:9] in by_dest[pub]["last_error"], by_dest[pub]
                assert "plain-%s" % pw[3:9] in a.log()
                assert pw not in a.log() and pw not in json.dumps(by_dest)
                assert a.stop() == 0


def test_template_waits_for_first_sync_and_keeps_the_file_through_an_outage():
    with Etcd() as etcd:
        put_ep(etcd, "web", "w1", "10.4.0.1")
        with temp_dir() as d:
            dest = os.path.join(d, "up.conf")
            tmpl = {"contents": "{{#service.web}}{{address}}\n{{/service.web}}{{^service.web}}EMPTY\n{{/service.web}}",
                    "destination": dest}
            etcd.sigstop()  # unreachable at start: nothing is known yet
            try:
                with Agent(etcd_cfg(etcd, [tmpl]), wait=False) as a:
                    a.wait_healthy()
                    time.sleep(1.0)  # asserting that nothing happens
                    assert read(dest) is None, "rendered before the first sync: %r" % read(dest)
                    assert "waiting_for" in self_templates(a)[0]
                    etcd.sigcont()
                    wait_for(lambda: read(dest) == "10.4.0.1\n", 15, what="the render after the sync")
                    mtime = os.stat(dest).st_mtime_ns
                    etcd.kill9()
                    wait_for(lambda: a.get("/v1/endpoints/web")[2].get("stale") is True, 10,
                             what="stale endpoints")
                    time.sleep(0.5)
                    assert read(dest) == "10.4.0.1\n" and os.stat(dest).st_mtime_ns == mtime
                    etcd.start()
                    put_ep(etcd, "web", "w2", "10.4.0.2")
                    wait_for(lambda: read(dest) == "10.4.0.1\n10.4.0.2\n", 15, what="the render after the outage")
                    assert a.stop() == 0
            finally:
                etcd.sigcont()


def test_template_errors_are_config_errors_with_line_and_column():
    with temp_dir() as d:
        src = os.path.join(d, "t.tmpl")
        with open(src, "w") as f:
            f.write("ok\n{{#service.web}}\n  {{address}\n")
        cfg = os.path.join(d, "c.json")
        with open(cfg, "w") as f:
            json.dump({"socket": {"path": os.path.join(d, "s.sock")},
                       "templates": [{"source": src, "destination": os.path.join(d, "out")},
                                     {"contents": "{{secret.nope.x}}", "destination": os.path.join(d, "o2")},
                                     {"contents": "x", "source": src, "destination": os.path.join(d, "o3")}]}, f)
        rc, out, err = run_beacon("agent", "-c", cfg, "--check-config")
        assert rc == 2, (rc, out, err)
        assert "$.templates[0]" in err and "t.tmpl:3:3:" in err and "never closed" in err, err
        assert "$.templates[1]" in err and "secret \"nope\"" in err and "vault.secrets" in err, err
        assert "$.templates[2]" in err and "exactly one" in err, err
        rc, out, err = run_beacon("agent", "-c", cfg)
        assert rc == 2 and "t.tmpl:3:3:" in err, err


def test_render_against_the_running_agent():
    with temp_dir() as d:
        t = os.path.join(d, "t.tmpl")
        with open(t, "w") as f:
            f.write("node={{node}}{{#self}} self={{service}}{{/self}}\n"
                    "{{#service.web}}{{address}}:{{port}}\n{{/service.web}}"
                    "{{#services}}[{{name}}]{{/services}}\n")
        cfg = {"node": "render-node",
               "static": {"services": {"web": [{"address": "10.7.0.1", "port": 80},
                                               {"address": "10.7.0.2", "port": 81, "status": "critical"}],
                                       "db": [{"address": "10.7.1.1", "port": 5432}]}}}
        with Agent(cfg) as a:
            rc, out, err = a.cli("render", t)
            assert rc == 0, err
            assert out == "node=render-node\n10.7.0.1:80\n[db][web]\n", out
        rc, out, err = run_beacon("render", t, "--socket", os.path.join(d, "none.sock"))
        assert rc == 1 and "cannot reach the agent" in err, (rc, err)


def test_template_command_survives_a_reload():
    with temp_dir() as d:
        dest, ran = os.path.join(d, "up.conf"), os.path.join(d, "ran")
        cmd = ["sh", "-c", "sleep 1; echo done >> %s" % ran]
        cfg = {"static": {"services": {"web": [{"address": "10.8.0.1", "port": 80}]}},
               "templates": [{"contents": "{{#service.web}}{{address}}\n{{/service.web}}",
                              "destination": dest, "command": cmd}]}
        with Agent(cfg) as a:
            wait_for(lambda: self_templates(a)[0]["commands"] == 1, 10, what="the first command")
            a.reload(cfg)  # while it runs (it sleeps 1 s)
            a.wait_log(r"configuration reloaded")
            assert not lines(ran), "the command ended already: the reload came too late"
            wait_for(lambda: lines(ran) == ["done"], 10, what="the command to finish")
            t = self_templates(a)[0]
            assert t["commands"] == 1 and t["commands_failed"] == 0 and t["writes"] == 1, t
            assert a.stop() == 0
