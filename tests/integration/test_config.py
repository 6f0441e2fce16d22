"""The config file: --check-config, problems with JSON paths, ${VAR} expansion."""

import json
import os
import re

from harness import Agent, endpoint, free_port, run_beacon, scale, tcp_request, temp_dir

GOOD = {
    "node": "n1",
    "socket": {"path": "/tmp/beacon-it-never-created.sock", "mode": "0660",
               "max_connections": 100, "timeout": "1m30s"},
    "log": {"level": "debug", "format": "json"},
    "http": {"listen": "127.0.0.1:9464"},
    "static": {"services": {"legacy-db": [endpoint("10.1.2.3", 5432, tags=["primary"],
                                                    meta={"zone": "a"}, weight=3)]}},
}


def check(d, cfg, name="c.json"):
    """--check-config on cfg (dict -> JSON, str verbatim); (rc, stdout, stderr, path)."""
    path = os.path.join(d, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(cfg if isinstance(cfg, str) else json.dumps(cfg, indent=2))
    rc, out, err = run_beacon("agent", "--config", path, "--check-config")
    return rc, out, err, path


def problems(err):
    """The problem lines of --check-config's stderr (the summary line excluded)."""
    return [l for l in err.splitlines() if l.strip() and not l.startswith("beacon:")
            and not re.match(r"^==\d+==", l)]


def assert_problem(err, path, *words):
    """A line starting with the JSON path that holds every word."""
    lines = [l for l in problems(err) if l.startswith(path + ":")]
    assert lines, "no problem reported at %s; stderr:\n%s" % (path, err)
    assert any(all(w.lower() in l.lower() for w in words) for l in lines), \
        "the problem at %s should mention %r; got:\n%s" % (path, words, "\n".join(lines))


def test_check_config_good():
    with temp_dir() as d:
        rc, out, err, path = check(d, GOOD)
        assert rc == 0, "rc %d, stderr:\n%s" % (rc, err)
        assert "valid" in out and path in out, "no success line: %r" % out
        assert len(out.strip().splitlines()) == 1, out
        assert not os.path.exists(GOOD["socket"]["path"]), "--check-config must not start anything"
        # the same with -c and --config=FILE
        rc, out, _ = run_beacon("agent", "-c", path, "--check-config")
        assert rc == 0 and "valid" in out, out
        rc, out, _ = run_beacon("agent", "--check-config", "--config=" + path)
        assert rc == 0 and "valid" in out, out


def test_check_config_minimal_is_valid():
    with temp_dir() as d:
        rc, out, err, _ = check(d, {})
        assert rc == 0, err


def test_check_config_reports_every_problem_with_path():
    bad = {
        "sockt": {},
        "socket": {"pth": "/tmp/x.sock", "max_connections": "many", "timeout": "10 parsecs",
                   "mode": "rw"},
        "log": {"level": 5},
        "watch": {"services": "web"},
        "node": 3,
        "service": {"name": "web", "address": "10.0.0.1", "port": 70000},
    }
    with temp_dir() as d:
        rc, out, err, path = check(d, bad)
        assert rc == 2, "rc %d; stdout %r stderr %r" % (rc, out, err)
        assert "valid" not in out, out
        assert_problem(err, "$.sockt", "unknown", 'did you mean "socket"')
        assert_problem(err, "$.socket.pth", "unknown", 'did you mean "path"')
        assert_problem(err, "$.socket.max_connections", "integer")
        assert_problem(err, "$.socket.timeout", "duration")
        assert_problem(err, "$.socket.mode", "mode")
        assert_problem(err, "$.log.level", "string")
        assert_problem(err, "$.watch.services", "array")
        assert_problem(err, "$.node", "string")
        assert_problem(err, "$.service.port", "65535")
        # Cross-field rules are checked in the same pass (watch.services is
        # invalid, so it watches nothing and needs no registry).
        assert_problem(err, "$.service", "registry")
        assert len(problems(err)) == 10, "one line per problem:\n" + err
        assert "10" in err.splitlines()[-1], "the summary counts the problems: %r" % err


def test_check_config_wrong_types():
    cfg = {"socket": {"path": ["a"], "max_body_size": 1.5}, "log": {"format": None},
           "static": {"services": {"web": [{"address": "10.0.0.1", "port": "eighty",
                                            "tags": "v1"}]}}}
    with temp_dir() as d:
        rc, _, err, _ = check(d, cfg)
        assert rc == 2, err
        assert_problem(err, "$.socket.path", "string")
        assert_problem(err, "$.socket.max_body_size", "integer")
        assert_problem(err, "$.log.format", "string")


def test_check_config_static_endpoint_problems():
    cfg = {"static": {"services": {"web": [{"address": "10.0.0.1", "port": "eighty"},
                                           {"address": "10.0.0.2", "port": 80, "tags": "v1"},
                                           {"port": 80}]}}}
    with temp_dir() as d:
        rc, _, err, _ = check(d, cfg)
        assert rc == 2, err
        assert_problem(err, "$.static.services.web[0].port", "integer")
        assert_problem(err, "$.static.services.web[1].tags", "array")
        assert_problem(err, "$.static.services.web[2].address", "missing")


def test_check_config_one_problem_one_line():
    # a single bad value is one problem, reported once
    cfg = {"static": {"services": {"web": [{"address": "10.0.0.1", "port": 0}]}}}
    with temp_dir() as d:
        rc, _, err, _ = check(d, cfg)
        assert rc == 2, err
        assert_problem(err, "$.static.services.web[0].port", "65535")
        assert len(problems(err)) == 1, "one bad port reported %d times:\n%s" % (
            len(problems(err)), err)


def test_check_config_bad_duration():
    for value, hint in (("10 parsecs", "duration"), ("10", "unit"), ("-5s", "duration"),
                        ("", "duration")):
        with temp_dir() as d:
            rc, _, err, _ = check(d, {"socket": {"timeout": value}})
            assert rc == 2, (value, err)
            assert_problem(err, "$.socket.timeout", hint)


def test_check_config_port_out_of_range():
    with temp_dir() as d:
        rc, _, err, _ = check(d, {"http": {"listen": "127.0.0.1:70000"}})
        assert rc == 2, err
        assert_problem(err, "$.http.listen", "port")
        rc, _, err, _ = check(d, {"static": {"services": {"a": [endpoint("10.0.0.1", 65536)]}}})
        assert rc == 2, err
        assert_problem(err, "$.static.services.a[0].port", "65535")
        rc, _, err, _ = check(d, {"http": {"listen": "nohostport"}})
        assert rc == 2, err
        assert_problem(err, "$.http.listen", "host:port")


def test_check_config_bad_mode():
    for mode, words in (("rw", ("mode",)), ("0999", ("mode",)), ("0777", ("execute",))):
        with temp_dir() as d:
            rc, _, err, _ = check(d, {"socket": {"mode": mode}})
            assert rc == 2, (mode, err)
            assert_problem(err, "$.socket.mode", *words)


def test_check_config_bad_enums():
    with temp_dir() as d:
        rc, _, err, _ = check(d, {"log": {"level": "loud", "format": "xml"}})
        assert rc == 2, err
        assert_problem(err, "$.log.level", "loud")
        assert_problem(err, "$.log.format", "xml")


def test_check_config_reports_problems_of_every_kind_at_once():
    # a misspelt key and a bad value in the same file: both are reported
    with temp_dir() as d:
        rc, _, err, _ = check(d, {"log": {"level": "loud"}, "sockett": {}})
        assert rc == 2, err
        assert_problem(err, "$.sockett", "unknown")
        assert_problem(err, "$.log.level", "loud")


def test_check_config_invalid_json_line_and_column():
    with temp_dir() as d:
        text = '{\n  "node": "a",\n  "socket": {,}\n}\n'
        rc, _, err, path = check(d, text)
        assert rc == 2, err
        m = re.search(re.escape(path) + r":(\d+):(\d+)", err)
        assert m, "no FILE:LINE:COLUMN in %r" % err
        assert m.group(1) == "3", "the error is on line 3: %r" % err
        assert 10 <= int(m.group(2)) <= 15, "column of the stray comma: %r" % err
        rc, _, err, path = check(d, '{"node": "a"')
        assert rc == 2 and re.search(re.escape(path) + r":1:\d+", err), err
        rc, _, err, path = check(d, '[1, 2]')
        assert rc == 2 and "object" in err, err
        rc, _, err, path = check(d, '{"node": "a", "node": "b"}')
        assert rc == 2 and "node" in err, "duplicate keys are refused: %r" % err


def test_check_config_missing_file():
    rc, out, err = run_beacon("agent", "--config", "/nonexistent/beacon.json", "--check-config")
    assert rc == 2, (rc, err)
    assert "/nonexistent/beacon.json" in err, err


def test_check_config_service_without_registry():
    with temp_dir() as d:
        rc, _, err, _ = check(d, {"service": {"name": "web", "address": "10.0.0.1", "port": 8080}})
        assert rc == 2, err
        assert_problem(err, "$.service", "registry")


def test_check_config_check_with_two_types():
    cfg = {"registry": {"backend": "etcd", "endpoints": ["http://127.0.0.1:2379"]},
           "service": {"name": "web", "address": "10.0.0.1", "port": 8080,
                       "check": {"http": "http://127.0.0.1:8080/healthz", "tcp": "127.0.0.1:8080"}}}
    with temp_dir() as d:
        rc, _, err, _ = check(d, cfg)
        assert rc == 2, err
        assert_problem(err, "$.service.check", "exactly one")


def test_check_config_short_interval_without_timeout_is_valid():
    # The default timeout (2s) must not make a 300ms interval invalid: it
    # follows the interval; an explicit longer timeout is still refused.
    check_of = lambda extra: {
        "registry": {"backend": "etcd", "endpoints": ["http://127.0.0.1:2379"]},
        "service": {"name": "web", "address": "10.0.0.1", "port": 8080,
                    "check": dict({"tcp": "127.0.0.1:8080", "interval": "300ms"}, **extra)}}
    with temp_dir() as d:
        rc, out, err, _ = check(d, check_of({}))
        assert rc == 0, "rc %d, stderr:\n%s" % (rc, err)
        assert "valid" in out, out
        rc, _, err, _ = check(d, check_of({"timeout": "2s"}))
        assert rc == 2, err
        assert_problem(err, "$.service.check.timeout", "longer than the interval")


def test_check_config_tls_server_name_and_insecure_skip_verify():
    # The tls object every backend takes: server_name is the host name the
    # certificate holds (a URL or host:port there is the likely mistake), and
    # insecure_skip_verify a boolean.
    auth = {"method": "token", "token_file": "/t"}
    with temp_dir() as d:
        for name, bad in (("url", "https://vault.example.com:8200"), ("hostport", "vault.example.com:8200"),
                          ("space", "vault example"), ("dots", "vault..example"), ("dash", "-vault.example")):
            cfg = {"registries": [{"backend": "etcd", "endpoints": ["https://127.0.0.1:2379"],
                                   "tls": {"server_name": bad}},
                                  {"backend": "consul", "address": "https://127.0.0.1:8501",
                                   "tls": {"server_name": bad}}],
                   "vault": {"address": "https://127.0.0.1:8200", "auth": auth, "tls": {"server_name": bad}}}
            rc, _, err, _ = check(d, cfg, name + ".json")
            assert rc == 2, err
            for p in ("$.registries[0].tls.server_name", "$.registries[1].tls.server_name",
                      "$.vault.tls.server_name"):
                assert_problem(err, p, "host name")
                if name in ("url", "hostport"):
                    assert_problem(err, p, "not a URL or host:port")
            assert len(problems(err)) == 3, err
        cfg = {"registry": {"backend": "etcd", "tls": {"insecure_skip_verify": "yes"}}}
        rc, _, err, _ = check(d, cfg, "bool.json")
        assert rc == 2, err
        assert_problem(err, "$.registry.tls.insecure_skip_verify", "true or false")
        good = {"server_name": "vault.service.consul", "insecure_skip_verify": False}
        cfg = {"registries": [{"backend": "etcd", "endpoints": ["https://127.0.0.1:2379"], "tls": good},
                              {"backend": "consul", "address": "https://127.0.0.1:8501",
                               "tls": dict(good, server_name="consul_1.example")}],
               "vault": {"address": "https://10.0.0.5:8200", "auth": auth,
                         "tls": {"server_name": "10.0.0.5", "insecure_skip_verify": True}}}
        rc, out, err, _ = check(d, cfg, "good.json")
        assert rc == 0, (out, err)


def test_check_config_unknown_registry_backend():
    rc, out, _ = run_beacon("--version")
    assert rc == 0, out
    plugins = out.splitlines()[1].split(":", 1)[1].split()
    with temp_dir() as d:
        rc, _, err, _ = check(d, {"registry": {"backend": "eureka"}})
        assert rc == 2, err
        assert_problem(err, "$.registry.backend", "eureka", "compiled in")
        line = [l for l in problems(err) if l.startswith("$.registry.backend:")][0]
        listed = re.search(r"compiled in:?\s*([^)]*)", line).group(1)
        names = [n.strip() for n in listed.split(",") if n.strip()]
        assert names, line
        for n in names:
            assert n == "none" or n in plugins, "%r is not a compiled-in plugin %r" % (n, plugins)
        for backend in ("etcd", "consul", "zookeeper"):
            assert (backend in names) == (backend in plugins), (backend, line, plugins)
        rc, _, err, _ = check(d, {"registries": [{"backend": "eureka"}]})
        assert rc == 2, err
        assert_problem(err, "$.registries[0].backend", "eureka")


def test_env_expansion_socket_path_and_port():
    port = free_port()
    with temp_dir() as d:
        sock = os.path.join(d, "from-env.sock")
        cfg = {"socket": {"path": "${BEACON_IT_SOCK}"},
               "http": {"listen": "127.0.0.1:${BEACON_IT_PORT}"},
               "node": "${BEACON_IT_UNSET_NODE:-fallback-node}",
               "static": {"services": {"web": [{"address": "${BEACON_IT_ADDR}",
                                                "port": "${BEACON_IT_WEB_PORT:-8080}"}]}}}
        env = {"BEACON_IT_SOCK": sock, "BEACON_IT_PORT": str(port), "BEACON_IT_ADDR": "10.9.8.7",
               "BEACON_IT_UNSET_NODE": None, "BEACON_IT_WEB_PORT": None}
        with Agent(cfg, env=env, sock=sock) as a:
            assert os.path.exists(sock)
            st, _, body = a.get("/v1/self")
            assert st == 200 and body["node"] == "fallback-node", body
            st, _, body = a.get("/v1/endpoints/web")
            assert st == 200, body
            e = body["endpoints"][0]
            assert (e["address"], e["port"]) == ("10.9.8.7", 8080), e
            st, _, _ = tcp_request(port, "GET", "/health")
            assert st == 200


def test_env_expansion_default_not_used_when_set():
    with temp_dir() as d:
        cfg = {"node": "${BEACON_IT_NODE:-fallback}",
               "static": {"services": {"web": [endpoint("10.0.0.1", "${BEACON_IT_WEB_PORT:-1}")]}}}
        with Agent(cfg, env={"BEACON_IT_NODE": "pod-7", "BEACON_IT_WEB_PORT": "9090"}, dir=d) as a:
            assert a.get("/v1/self")[2]["node"] == "pod-7"
            assert a.get("/v1/endpoints/web")[2]["endpoints"][0]["port"] == 9090


def test_env_expansion_empty_port_is_reported():
    with temp_dir() as d:
        path = os.path.join(d, "c.json")
        with open(path, "w") as f:
            json.dump({"socket": {"max_connections": "${BEACON_IT_UNSET}"}}, f)
        rc, _, err = run_beacon("agent", "--config", path, "--check-config",
                                env={"BEACON_IT_UNSET": None})
        assert rc == 2, err
        assert_problem(err, "$.socket.max_connections", "${BEACON_IT_UNSET}")


def test_agent_with_bad_config_exits_2_without_socket():
    with temp_dir() as d:
        sock = os.path.join(d, "s.sock")
        path = os.path.join(d, "c.json")
        with open(path, "w") as f:
            json.dump({"socket": {"path": sock}, "sockett": {}}, f)
        rc, out, err = run_beacon("agent", "--config", path, timeout=scale(10))
        assert rc == 2, "rc %d: %s" % (rc, err)
        assert "$.sockett" in err, err
        assert not os.path.exists(sock), "a socket was created by a config that does not load"
        with open(path, "w") as f:
            f.write('{"socket": {"path": "%s"}' % sock)
        rc, out, err = run_beacon("agent", "--config", path, timeout=scale(10))
        assert rc == 2 and not os.path.exists(sock), (rc, err)


def test_agent_without_config_file_exits_2():
    rc, _, err = run_beacon("agent", "--config", "/nonexistent/beacon.json")
    assert rc == 2 and "/nonexistent/beacon.json" in err, (rc, err)
