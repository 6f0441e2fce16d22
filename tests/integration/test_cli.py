"""The client subcommands: endpoints, pick, status, drain/resume, --version, --help, man page."""

import json
import os
import re

from harness import Agent, endpoint, run_beacon, temp_dir

CONFIG = {
    "node": "cli-node",
    "static": {"services": {
        "web": [endpoint("10.0.0.1", 8080, tags=["v1"]),
                endpoint("10.0.0.2", 8080, tags=["v2"]),
                endpoint("10.0.0.3", 8081, tags=["v1"], status="critical")],
        "v6": [endpoint("fd00::1", 443)],
        "down": [endpoint("10.2.0.1", 80, status="critical")],
    }},
}
WEB_PASSING = {"10.0.0.1:8080", "10.0.0.2:8080"}


def one_sentence(err):
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, "expected one line on stderr, got %r" % err
    assert len(lines[0]) > 10, err
    return lines[0]


def first_column(out):
    return [l.split()[0] for l in out.splitlines() if l.strip()]


def test_endpoints_prints_address_port_lines():
    with Agent(CONFIG) as a:
        rc, out, err = a.cli("endpoints", "web")
        assert rc == 0, (rc, err)
        assert sorted(first_column(out)) == sorted(WEB_PASSING), out
        assert err == "", err
        rc, out, _ = a.cli("endpoints", "v6")
        assert rc == 0 and first_column(out) == ["[fd00::1]:443"], out


def test_endpoints_json():
    with Agent(CONFIG) as a:
        rc, out, err = a.cli("endpoints", "--json", "web")
        assert rc == 0, (rc, err)
        body = json.loads(out)
        _, _, api = a.get("/v1/endpoints/web")
        assert body == api, (body, api)
        rc, out, _ = a.cli("endpoints", "--json", "--all", "web")
        assert rc == 0 and len(json.loads(out)["endpoints"]) == 3, out


def test_endpoints_tag_and_all():
    with Agent(CONFIG) as a:
        rc, out, err = a.cli("endpoints", "--tag", "v1", "web")
        assert rc == 0, err
        assert first_column(out) == ["10.0.0.1:8080"], out
        rc, out, err = a.cli("endpoints", "--all", "web")
        assert rc == 0, err
        assert sorted(first_column(out)) == ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8081"], out
        assert "critical" in out, out
        rc, out, err = a.cli("endpoints", "--all", "--tag", "v1", "web")
        assert rc == 0 and sorted(first_column(out)) == ["10.0.0.1:8080", "10.0.0.3:8081"], out
        rc, out, err = a.cli("endpoints", "down")
        assert rc == 0 and out.strip() == "", (rc, out)


def test_options_after_service():
    # SPEC.md writes the options after the name: `beacon endpoints SERVICE [--tag T]
    # [--all] [--json]`, `beacon pick SERVICE [--policy P] [--key K]`
    with Agent(CONFIG) as a:
        for cmd, check in (
                (("endpoints", "web", "--json"), lambda out: json.loads(out)["service"] == "web"),
                (("endpoints", "web", "--tag", "v1"), lambda out: first_column(out) == ["10.0.0.1:8080"]),
                (("endpoints", "web", "--all"), lambda out: len(first_column(out)) == 3),
                (("pick", "web", "--policy", "hash", "--key", "k1"), lambda out: out.strip() in WEB_PASSING),
                (("endpoints", "web", "--socket", a.sock), lambda out: len(first_column(out)) == 2)):
            rc, out, err = a.cli(*cmd)
            assert rc == 0, "`beacon %s` exited %d: %s" % (" ".join(cmd), rc, err.splitlines()[:1])
            assert check(out), (cmd, out)


def test_pick_prints_address_port():
    with Agent(CONFIG) as a:
        seen = set()
        for _ in range(4):
            rc, out, err = a.cli("pick", "web")
            assert rc == 0, err
            assert out.endswith("\n") and out.count("\n") == 1, repr(out)
            seen.add(out.strip())
        assert seen == WEB_PASSING, "round robin over both: %r" % seen
        rc, out, _ = a.cli("pick", "v6")
        assert rc == 0 and out == "[fd00::1]:443\n", repr(out)
        rc, out, _ = a.cli("pick", "--policy", "random", "web")
        assert rc == 0 and out.strip() in WEB_PASSING, out


def test_pick_hash_key_stable():
    with Agent(CONFIG) as a:
        outs = set()
        for _ in range(5):
            rc, out, err = a.cli("pick", "--policy", "hash", "--key", "customer 42", "web")
            assert rc == 0, err
            outs.add(out)
        assert len(outs) == 1 and outs.pop().strip() in WEB_PASSING, outs
        rc, _, err = a.cli("pick", "--policy", "hash", "web")
        assert rc == 1, (rc, err)
        one_sentence(err)
        rc, _, err = a.cli("pick", "--policy", "fastest", "web")
        assert rc == 1 and "policy" in one_sentence(err), (rc, err)
        rc, _, err = a.cli("pick", "down")
        assert rc == 1, (rc, err)
        one_sentence(err)


def test_status():
    with Agent(CONFIG) as a:
        rc, out, err = a.cli("status")
        assert rc == 0, err
        lines = out.splitlines()
        agent_lines = [l for l in lines if l.startswith("agent:")]
        assert len(agent_lines) == 1 and "ready" in agent_lines[0] and "not ready" not in agent_lines[0], out
        assert "cli-node" in agent_lines[0], out
        assert len([l for l in lines if l.startswith("service:")]) == 1, out
        backends = [l for l in lines if l.startswith("backend")]
        assert len(backends) == 1 and "static#0" in backends[0], out
        a.post("/v1/self/drain")
        rc, out, _ = a.cli("status")
        assert rc == 0 and "not ready" in out and "drained" in out, out


def test_drain_and_resume():
    with Agent(CONFIG) as a:
        rc, out, err = a.cli("drain")
        assert rc == 0, err
        assert out.strip(), "drain says what it did"
        assert a.get("/ready")[0] == 503
        rc, out, err = a.cli("resume")
        assert rc == 0, err
        assert a.get("/ready")[0] == 200


def test_unknown_service_exit_1():
    with Agent(CONFIG) as a:
        for cmd in (("endpoints", "nope"), ("pick", "nope"), ("endpoints", "--json", "nope")):
            rc, out, err = a.cli(*cmd)
            assert rc == 1, (cmd, rc, err)
            assert "nope" in one_sentence(err), err
            assert out == "", (cmd, out)


def test_agent_not_running():
    with temp_dir() as d:
        sock = os.path.join(d, "nobody-here.sock")
        for cmd in (("status",), ("endpoints", "web"), ("pick", "web"), ("drain",)):
            rc, out, err = run_beacon("--socket", sock, *cmd)
            assert rc == 1, (cmd, rc, err)
            line = one_sentence(err)
            assert sock in line, "the message should name the socket: %r" % line
            assert out == "", out


def test_usage_errors_exit_2():
    with Agent(CONFIG) as a:
        for cmd in (("endpoints",), ("endpoints", "a", "b"), ("pick",), ("pick", "web", "--bogus"),
                    ("endpoints", "web", "--tag"), ("frobnicate",), ("status", "extra"),
                    ("drain", "now"), ("kv",), ("secret",)):
            rc, out, err = a.cli(*cmd)
            assert rc == 2, "%r exited %d: %r" % (cmd, rc, err)
            assert err.strip(), cmd
        rc, _, err = run_beacon()
        assert rc == 2 and err.strip(), (rc, err)
        assert a.get("/ready")[0] == 200, "a usage error must not reach the agent"


def test_beacon_socket_env():
    with Agent(CONFIG) as a:
        rc, out, err = run_beacon("pick", "v6", env={"BEACON_SOCKET": a.sock})
        assert rc == 0 and out == "[fd00::1]:443\n", (rc, out, err)
        # --socket wins over the environment
        rc, out, err = run_beacon("--socket", a.sock, "pick", "v6",
                                  env={"BEACON_SOCKET": "/nonexistent/x.sock"})
        assert rc == 0, err
        rc, _, err = run_beacon("status", env={"BEACON_SOCKET": "/nonexistent/x.sock"})
        assert rc == 1 and "/nonexistent/x.sock" in err, err


def test_version_lists_plugins():
    rc, out, err = run_beacon("--version")
    assert rc == 0, err
    assert out.startswith("beacon "), out
    assert "static" in out, out
    assert "plugins" in out, out


def test_agent_without_config_is_usage_error():
    rc, _, err = run_beacon("agent")
    assert rc == 2 and "--config" in err, (rc, err)
    rc, _, err = run_beacon("agent", "--bogus")
    assert rc == 2, (rc, err)


COMMANDS = ("agent", "endpoints", "pick", "kv", "secret", "status", "drain", "resume", "render")
MAN_PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "man", "beacon.1")
# No agent behind this socket: a command that tried to reach one would fail with 1.
NO_AGENT = {"BEACON_SOCKET": "/nonexistent/beacon-help.sock"}


def long_options(text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", text))


def test_help_of_every_command_on_stdout_exit_0():
    for args in (("--help",), ("-h",), ("help",)):
        rc, out, err = run_beacon(*args, env=NO_AGENT)
        assert rc == 0 and err == "", (args, rc, err)
        assert out.startswith("usage: beacon "), (args, out)
        for cmd in COMMANDS:
            assert re.search(r"^  %s\b" % cmd, out, re.M), "%r does not list %s:\n%s" % (args, cmd, out)
    for cmd in COMMANDS:
        for flag in ("--help", "-h"):
            rc, out, err = run_beacon(cmd, flag, env=NO_AGENT)
            assert rc == 0, "`beacon %s %s` exited %d: %r" % (cmd, flag, rc, err)
            assert err == "", (cmd, flag, err)
            assert out.startswith("usage: beacon %s" % cmd), (cmd, flag, out)
            assert "--help" in out, out
        rc, same, _ = run_beacon("help", cmd, env=NO_AGENT)
        assert rc == 0 and same == out, (cmd, same)
    # Every option a command takes is in its help.
    for cmd, opts in (("agent", {"--config", "--check-config"}),
                      ("endpoints", {"--tag", "--all", "--json", "--socket"}),
                      ("pick", {"--policy", "--key", "--socket"}), ("kv", {"--recurse"}),
                      ("secret", {"--field"})):
        out = run_beacon(cmd, "--help")[1]
        assert opts <= long_options(out), (cmd, opts - long_options(out))
    # --help wins wherever it stands, also after the command's arguments.
    for args in (("endpoints", "web", "--all", "--help"), ("pick", "web", "-h"),
                 ("--socket", "/nonexistent/x.sock", "kv", "config/x", "--help"),
                 ("agent", "--config", "/nonexistent/beacon.json", "--help")):
        rc, out, err = run_beacon(*args, env=NO_AGENT)
        assert rc == 0 and out.startswith("usage: "), (args, rc, out, err)


def test_unknown_options_exit_2_with_a_message():
    for cmd in COMMANDS:
        rc, out, err = run_beacon(cmd, "--bogus", env=NO_AGENT)
        assert rc == 2, "`beacon %s --bogus` exited %d: %r" % (cmd, rc, err)
        assert out == "", (cmd, out)
        first = err.splitlines()[0] if err else ""
        assert first.startswith("beacon") and "--bogus" in first, (cmd, err)
        assert "usage: beacon %s" % cmd in err, (cmd, err)
    rc, out, err = run_beacon("--bogus", env=NO_AGENT)
    assert rc == 2 and out == "" and "--bogus" in err, (rc, out, err)
    rc, out, err = run_beacon("help", "frobnicate", env=NO_AGENT)
    assert rc == 2 and out == "" and "frobnicate" in err, (rc, out, err)
    rc, out, err = run_beacon("pick", "web", "-x", env=NO_AGENT)
    assert rc == 2 and out == "" and "'x'" in err.splitlines()[0], (rc, out, err)


def test_man_page_covers_every_command_and_option():
    with open(MAN_PAGE, encoding="utf-8") as f:
        man = f.read().replace("\\-", "-").replace("\\fB", "").replace("\\fI", "").replace("\\fR", "")
    th = re.search(r"^\.TH BEACON 1 .*$", man, re.M)
    assert th, "no .TH BEACON 1 line"
    version = run_beacon("--version")[1].splitlines()[0]  # "beacon 0.1.0"
    assert '"%s"' % version in th.group(0), "beacon.1 is not for %s: %s" % (version, th.group(0))
    for cmd in COMMANDS:
        assert re.search(r"^\.SS .*\b%s\b" % cmd, man, re.M), "beacon.1 has no section for %s" % cmd
        documented = long_options(run_beacon(cmd, "--help")[1])
        missing = documented - long_options(man)
        assert not missing, "beacon.1 lacks %s of `beacon %s`" % (sorted(missing), cmd)
    for word in ("BEACON_SOCKET", "SIGHUP", "SIGTERM", "EXIT STATUS", "FILES", "SEE ALSO",
                 "/run/beacon/beacon.sock"):
        assert word in man, "beacon.1 does not mention %s" % word


def test_control_characters_from_data_are_escaped():
    evil = "web-1\x1b[31m\nforged 10.6.6.6:80 passing\x07\x7f\u009b"
    cfg = {"node": "n\x1b]0;title\x07", "static": {"services": {
        "odd": [endpoint("10.0.0.1", 80, id=evil, tags=["t\x1b[0m", "ok"])]}}}
    with Agent(cfg) as a:
        for args in (("endpoints", "odd"), ("status",)):
            rc, out, err = a.cli(*args)
            assert rc == 0, (args, rc, err)
            for bad in ("\x1b", "\x07", "\x7f", "\u009b"):
                assert bad not in out, "%s writes %r raw: %r" % (args, bad, out)
        rc, out, _ = a.cli("endpoints", "odd")
        lines = out.splitlines()
        assert len(lines) == 1, "an id with a newline forged a line: %r" % out
        assert "web-1\\x1b[31m\\nforged 10.6.6.6:80 passing\\x07\\x7f\\u009b" in lines[0], lines
        assert "t\\x1b[0m,ok" in lines[0], lines
        rc, out, _ = a.cli("status")
        assert "node n\\x1b]0;title\\x07" in out, out
        # --json stays JSON and carries the same text, with DEL and C1 escaped too.
        rc, out, _ = a.cli("endpoints", "odd", "--json")
        assert "\x7f" not in out and "\u009b" not in out, out
        assert json.loads(out)["endpoints"][0]["id"] == evil, out
        # An error sentence that quotes data is escaped on stderr as well.
        rc, out, err = a.cli("endpoints", "no\x1b[2Jsuch")
        assert rc == 1 and "\x1b" not in err and "no\\x1b[2Jsuch" in err, (rc, err)
