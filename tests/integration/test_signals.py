"""Signals: SIGHUP reloads (or refuses a broken config), SIGTERM/SIGINT stop."""

import contextlib
import json
import os
import re
import signal
import stat
import time

from harness import (Agent, RawResponseReader, endpoint, log_lines, raw_get, scale, wait_for,
                     wrapped)


def config(web, level="info", fmt="text", **more):
    services = {"web": web}
    services.update(more)
    return {"log": {"level": level, "format": fmt}, "static": {"services": services}}


def addresses(a, service="web"):
    st, _, body = a.get("/v1/endpoints/" + service)
    return sorted(e["address"] for e in body["endpoints"]) if st == 200 else st


def lines_at(log, level):
    """Text-format log lines of a level ("2026-...Z debug agent: ...")."""
    return [l for l in log_lines(log) if re.match(r"^\S+\s+%s\s" % level, l)]


def test_sighup_applies_services_and_level_keeping_connection():
    with Agent(config([endpoint("10.0.0.1", 80)], level="warn")) as a:
        assert not lines_at(a.log(), "info"), "level warn logs no info lines:\n" + a.log()
        with contextlib.closing(a.connect()) as conn:
            r = RawResponseReader(conn)
            conn.sendall(raw_get("/v1/endpoints/web"))
            st, h1, body = r.read()
            assert st == 200 and [e["address"] for e in body["endpoints"]] == ["10.0.0.1"], body

            a.reload(config([endpoint("10.0.0.2", 80), endpoint("10.0.0.3", 80)], level="debug",
                            cache=[endpoint("10.5.0.1", 6379)]))
            wait_for(lambda: addresses(a) == ["10.0.0.2", "10.0.0.3"], 5,
                     what="the reloaded services")

            # the same keep-alive connection, after the reload
            conn.sendall(raw_get("/v1/endpoints/web"))
            st, h2, body = r.read()
            assert st == 200, (st, body)
            assert sorted(e["address"] for e in body["endpoints"]) == ["10.0.0.2", "10.0.0.3"], body
            assert int(h2["x-beacon-index"]) > int(h1["x-beacon-index"]), (h1, h2)
            conn.sendall(raw_get("/v1/endpoints/cache"))
            st, _, body = r.read()
            assert st == 200 and body["endpoints"][0]["address"] == "10.5.0.1", body

        assert a.get("/ready")[0] == 200
        # the new level: info (the reload itself) and debug lines now appear
        a.wait_log(r"configuration reloaded")
        assert a.stop() == 0
        assert lines_at(a.log(), "debug"), "no debug line after switching to debug:\n" + a.log()


def test_sighup_removes_service():
    with Agent(config([endpoint("10.0.0.1", 80)], old=[endpoint("10.9.0.1", 80)])) as a:
        assert a.get("/v1/endpoints/old")[0] == 200
        a.reload(config([endpoint("10.0.0.1", 80)]))
        wait_for(lambda: a.get("/v1/endpoints/old")[0] == 404, 5, what="the removed service to go")
        st, _, body = a.get("/v1/services")
        assert "old" not in body["services"], body
        assert addresses(a) == ["10.0.0.1"]


def test_sighup_with_broken_config_keeps_running_config():
    with Agent(config([endpoint("10.0.0.1", 80)])) as a:
        idx = a.index()
        a.reload('{"static": {"services": {"web": [ {"address": "10.0.0.2", "port": 80} ]}\n')
        a.wait_log(r"reload refused")
        time.sleep(scale(0.2))  # room for a duplicate line to show up
        refused = [l for l in log_lines(a.log()) if "reload refused" in l]
        assert len(refused) == 1, "expected one line, got:\n" + "\n".join(refused)
        assert re.match(r"^\S+\s+error\s", refused[0]), "not an error line: %r" % refused[0]
        assert addresses(a) == ["10.0.0.1"], "the old services are no longer served"
        assert a.index() == idx
        assert a.get("/ready")[0] == 200

        # a config that parses but is invalid is refused the same way
        a.reload({"static": {"services": {"web": [endpoint("10.0.0.3", 70000)]}}, "sockett": {}})
        wait_for(lambda: len([l for l in log_lines(a.log()) if "reload refused" in l]) == 2, 5,
                 what="a second 'reload refused' line")
        assert addresses(a) == ["10.0.0.1"]

        # and a good one afterwards is applied
        a.reload(config([endpoint("10.0.0.4", 80)]))
        wait_for(lambda: addresses(a) == ["10.0.0.4"], 5, what="the good reload")
        assert a.stop() == 0


def test_log_format_json():
    with Agent(config([endpoint("10.0.0.1", 80)], fmt="json", level="debug")) as a:
        a.reload(config([endpoint("10.0.0.2", 80)], fmt="json", level="debug"))
        wait_for(lambda: addresses(a) == ["10.0.0.2"], 5, what="the reload")
        a.reload("{broken")
        a.wait_log(r"reload refused")
        assert a.stop() == 0
        lines = log_lines(a.log())
        assert len(lines) >= 4, a.log()
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                raise AssertionError("not a JSON line: %r" % line)
            assert isinstance(obj, dict), line
            assert obj.get("level") in ("debug", "info", "warn", "error"), line
            assert isinstance(obj.get("msg"), str) and obj["msg"], line
        assert any("reload refused" in json.loads(l)["msg"] for l in lines), lines


def test_log_format_switch_on_reload():
    with Agent(config([endpoint("10.0.0.1", 80)], fmt="text")) as a:
        a.reload(config([endpoint("10.0.0.2", 80)], fmt="json"))
        wait_for(lambda: addresses(a) == ["10.0.0.2"], 5, what="the reload")
        assert a.stop() == 0
        lines = log_lines(a.log())
        stop_line = [l for l in lines if "stopping" in l]
        assert stop_line, lines
        assert json.loads(stop_line[-1])["level"] == "info", stop_line


def test_sigterm_exit_0():
    with Agent(config([endpoint("10.0.0.1", 80)])) as a:
        # with a request in flight on another connection
        with contextlib.closing(a.connect()) as idle:
            idle.sendall(raw_get("/health"))
            RawResponseReader(idle).read()
            t0 = time.monotonic()
            rc = a.stop(signal.SIGTERM)
        assert rc == 0, "exit code %d; log:\n%s" % (rc, a.log())
        assert time.monotonic() - t0 < scale(3)
        assert re.search(r"SIGTERM", a.log()), a.log()


def test_sigint_exit_0():
    with Agent(config([endpoint("10.0.0.1", 80)])) as a:
        assert a.stop(signal.SIGINT) == 0, a.log()


def test_reload_storm():
    with Agent(config([endpoint("10.0.0.1", 80)])) as a:
        for i in range(20):
            a.reload(config([endpoint("10.0.1.%d" % (i + 1), 80)]))
            time.sleep(0.005)
        wait_for(lambda: addresses(a) == ["10.0.1.20"], 5, what="the last reload to win")
        assert a.alive() and a.get("/ready")[0] == 200
        assert a.stop() == 0


def test_drain_survives_reload():
    with Agent(config([endpoint("10.0.0.1", 80)])) as a:
        assert a.post("/v1/self/drain")[0] == 200
        a.reload(config([endpoint("10.0.0.2", 80)]))
        wait_for(lambda: addresses(a) == ["10.0.0.2"], 5, what="the reload")
        st, _, body = a.get("/ready")
        assert st == 503, "a reload must not undo a drain: %r" % (body,)
        assert a.get("/v1/self")[2]["drained"] is True


def test_reload_keeps_restart_only_keys_and_names_them():
    """socket.mode is restart-only (a flag in the config table): a reload
    names it, keeps the running value and still applies the rest."""
    restart = r"changes to socket\.mode take effect after a restart"
    with Agent(config([endpoint("10.0.0.1", 80)])) as a:
        mode = stat.S_IMODE(os.stat(a.sock).st_mode)
        cfg = config([endpoint("10.0.0.2", 80)])
        cfg["socket"] = {"mode": "0600", "timeout": "20s"}
        a.reload(cfg)
        wait_for(lambda: addresses(a) == ["10.0.0.2"], 5, what="the reload")
        a.wait_log(restart)
        assert stat.S_IMODE(os.stat(a.sock).st_mode) == mode
        # Back to the running value: nothing to say any more.
        a.reload(config([endpoint("10.0.0.3", 80)]))
        wait_for(lambda: addresses(a) == ["10.0.0.3"], 5, what="the second reload")
        a.wait_log(r"configuration reloaded(.|\n)*configuration reloaded")
        assert len(re.findall(restart, a.log())) == 1, a.log()
        assert a.stop() == 0
