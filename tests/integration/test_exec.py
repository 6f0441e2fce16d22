"""Exec mode (SPEC.md "Exec mode"): `beacon agent -c F -- CMD ARGS` runs the
app as a child with rendered environment variables, forwards signals, restarts
it on an environment change, and exits with its status."""

import json
import os
import signal
import time

from etcd_fixture import Etcd
from harness import Agent, registry_config, temp_dir, wait_for
from vault_fixture import Vault

PREFIX = "/beacon/services"

# A child that records its environment and the signals it gets, then waits.
CHILD = r"""
echo "start $$ WEB=$WEB COLOR=$COLOR DB=$DB_PASSWORD" >> "$OUT"
trap 'echo "TERM $$" >> "$OUT"; exit 3' TERM
trap 'echo "HUP $$" >> "$OUT"' HUP
trap 'echo "USR1 $$" >> "$OUT"' USR1
while :; do sleep 0.05; done
"""


def lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def starts(path):
    return [l for l in lines(path) if l.startswith("start ")]


def etcd_registry(etcd):
    return {"backend": "etcd", "endpoints": [etcd.url], "ttl": "2s", "timeout": "2s",
            "dial_timeout": "1s"}


def test_exec_env_reaches_child_signals_forwarded_and_exit_status_passed_on():
    with Etcd() as etcd:
        etcd.put(PREFIX + "/web/w1", json.dumps({"id": "w1", "address": "10.5.0.1", "port": 80}))
        etcd.put("/config/app/color", "blue")
        with temp_dir() as d:
            out = os.path.join(d, "out")
            cfg = registry_config(etcd_registry(etcd), service=("app", "app-1", 8080),
                                  exec={"env": {"WEB": "{{#service.web}}{{address}}:{{port}}{{/service.web}}",
                                                "COLOR": "{{key.config/app/color}}"}})
            a = Agent(cfg, env={"OUT": out}, args=["--", "sh", "-c", CHILD])
            with a:
                wait_for(lambda: starts(out), 10, what="the child")
                assert starts(out)[0].endswith("WEB=10.5.0.1:80 COLOR=blue DB="), lines(out)
                pid = starts(out)[0].split()[1]
                wait_for(lambda: etcd.get(PREFIX + "/app/app-1") is not None, 10, what="registration")
                a.signal(signal.SIGUSR1)
                wait_for(lambda: "USR1 %s" % pid in lines(out), 5, what="SIGUSR1 forwarded")
                a.signal(signal.SIGHUP)
                wait_for(lambda: "HUP %s" % pid in lines(out), 5, what="SIGHUP forwarded")
                rc = a.stop(signal.SIGTERM)
                assert "TERM %s" % pid in lines(out), lines(out)
                assert rc == 3, (rc, a.log())  # the child's status
                assert etcd.get(PREFIX + "/app/app-1") is None, "still registered"


def test_exec_child_exit_ends_beacon_with_its_status_after_deregistering():
    with Etcd() as etcd:
        with temp_dir() as d:
            flag = os.path.join(d, "go")
            cfg = registry_config(etcd_registry(etcd), service=("app", "app-2", 8080), exec={})
            child = 'while [ ! -e "%s" ]; do sleep 0.05; done; exit 42' % flag
            a = Agent(cfg, args=["--", "sh", "-c", child])
            with a:
                wait_for(lambda: etcd.get(PREFIX + "/app/app-2") is not None, 10, what="registration")
                open(flag, "w").close()
                assert a.wait_exit(10) == 42, a.log()
                assert etcd.get(PREFIX + "/app/app-2") is None, "the exit did not deregister"
            # killed by a signal: 128 + the signal
            # (the child is alone in its process group: kill 0 is a kill of itself)
            a = Agent({"exec": {"command": ["sh", "-c", "kill -KILL 0"]}}, wait=False)
            with a:
                assert a.wait_exit(10) == 128 + 9, a.log()


def test_exec_secret_rotation_restarts_child_with_new_value():
    with Vault() as v:
        tok = v.create_token(ttl="1h")
        v.kv2_put("web/db", {"password": "first-pw"})
        with temp_dir() as d:
            out = os.path.join(d, "out")
            cfg = {"vault": {"address": v.url, "auth": {"method": "token", "token_file": "@DIR@/token"},
                             "secrets": [{"name": "db", "path": "secret/data/web/db", "refresh": "200ms"}],
                             "timeout": "2s"},
                   "exec": {"command": ["sh", "-c", CHILD.replace("$$", "$$$$")], "kill_timeout": "5s",
                            "env": {"DB_PASSWORD": "{{secret.db.password}}"}}}
            a = Agent(cfg, env={"OUT": out})
            with open(os.path.join(a.dir, "token"), "w") as f:
                f.write(tok)
            with a:
                wait_for(lambda: starts(out), 10, what="the child")
                assert starts(out)[0].endswith("DB=first-pw"), lines(out)
                pid1 = starts(out)[0].split()[1]
                assert pid1.isdigit(), starts(out)
                v.kv2_put("web/db", {"password": "second-pw"})
                wait_for(lambda: len(starts(out)) == 2, 10, what="a restart")
                assert "TERM %s" % pid1 in lines(out), lines(out)  # kill_signal, then the new one
                assert starts(out)[1].endswith("DB=second-pw"), lines(out)
                assert "second-pw" not in a.log() and "first-pw" not in a.log()
                st, _, body = a.get("/v1/self")
                assert body["exec"]["restarts"] == 1 and body["exec"]["starts"] == 2, body["exec"]
                assert a.stop() == 3


def test_exec_restart_loop_backs_off():
    with Etcd() as etcd:
        etcd.put("/config/app/v", "0")
        with temp_dir() as d:
            out = os.path.join(d, "out")
            cfg = registry_config(etcd_registry(etcd),
                                  exec={"env": {"COLOR": "{{key.config/app/v}}"}, "kill_timeout": "2s"})
            a = Agent(cfg, env={"OUT": out}, args=["--", "sh", "-c", CHILD])
            with a:
                wait_for(lambda: starts(out), 10, what="the child")
                # The value flaps every 50 ms for 2 s: 40 changes.
                t0 = time.monotonic()
                for i in range(40):
                    etcd.put("/config/app/v", str(i + 1))
                    time.sleep(max(0, t0 + (i + 1) * 0.05 - time.monotonic()))
                wait_for(lambda: starts(out) and starts(out)[-1].endswith("COLOR=40 DB="), 15,
                         what="the last value")
                n = len(starts(out))
                # 0.25 s doubling: ~4 restarts in the 2 s (plus the last one), never 40.
                assert 2 <= n <= 7, starts(out)
                assert a.stop() == 3


def test_exec_child_starts_after_the_templates_and_gets_their_signal():
    with temp_dir() as d:
        out, dest = os.path.join(d, "out"), os.path.join(d, "up.conf")
        cfg = {"static": {"services": {"web": [{"address": "10.6.0.1", "port": 80}]}},
               "templates": [{"contents": "{{#service.web}}{{address}}\n{{/service.web}}",
                              "destination": dest, "signal": "SIGUSR1"}],
               # (config strings expand ${VAR}: "$$" is written "$$$$")
               "exec": {"command": ["sh", "-c", ('echo "file $(head -1 "$DEST")" >> "$OUT"\n' +
                                                 CHILD).replace("$$", "$$$$")]}}
        a = Agent(cfg, env={"OUT": out, "DEST": dest})
        with a:
            wait_for(lambda: starts(out), 10, what="the child")
            # the file was there when the child started (no signal for that first write)
            assert lines(out)[0] == "file 10.6.0.1", lines(out)
            pid = starts(out)[0].split()[1]
            cfg["static"]["services"]["web"].append({"address": "10.6.0.2", "port": 80})
            a.reload(cfg)
            wait_for(lambda: "10.6.0.2" in open(dest).read(), 10, what="the rewrite")
            wait_for(lambda: "USR1 %s" % pid in lines(out), 5, what="the template's signal")
            assert lines(out).count("USR1 %s" % pid) == 1, lines(out)
            assert a.stop() == 3
