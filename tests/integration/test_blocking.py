"""Blocking reads (?index=N&wait=D) as in Consul (SPEC.md, "Local API")."""

import threading
import time

from harness import Agent, endpoint, metric, scale, wait_for


def config(web=None, **more):
    services = {"web": web or [endpoint("10.0.0.1", 80)], "db": [endpoint("10.1.0.1", 5432)]}
    services.update(more)
    return {"static": {"services": services}}


class Background:
    """One GET in a thread; .result is (status, headers, body), .elapsed seconds."""

    def __init__(self, agent, path, timeout=30):
        self.result = self.error = None
        self.started = time.monotonic()
        self.done_at = None

        def run():
            try:
                self.result = agent.get(path, timeout=timeout)
            except BaseException as e:  # reported by join()
                self.error = e
            self.done_at = time.monotonic()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def done(self):
        return self.done_at is not None

    def join(self, timeout):
        self.thread.join(scale(timeout))
        assert not self.thread.is_alive(), "the blocking request did not return within %.1fs" % scale(timeout)
        if self.error:
            raise AssertionError("the blocking request failed: %r" % (self.error,)) from self.error
        return self.result

    @property
    def elapsed(self):
        return self.done_at - self.started


def wait_parked(agent, n=1):
    """Until the agent holds n blocking reads (so the request reached it)."""
    wait_for(lambda: metric(agent.metrics(), "beacon_blocking_queries") == n, 5,
             what="%d blocking read(s) held by the agent" % n)


def test_endpoints_wake_on_reload():
    with Agent(config()) as a:
        idx = a.index("/v1/endpoints/web")
        bg = Background(a, "/v1/endpoints/web?index=%d&wait=5s" % idx)
        wait_parked(a)
        time.sleep(0.2)
        assert not bg.done(), "answered before anything changed: %r" % (bg.result,)
        a.reload(config(web=[endpoint("10.0.0.1", 80), endpoint("10.0.0.9", 90)]))
        reloaded = time.monotonic()
        st, h, body = bg.join(5)
        assert st == 200, (st, body)
        assert bg.done_at - reloaded < scale(1.0), \
            "answered %.2fs after the reload" % (bg.done_at - reloaded)
        assert int(h["x-beacon-index"]) > idx, (h, idx)
        assert body["index"] > idx, body
        assert {e["address"] for e in body["endpoints"]} == {"10.0.0.1", "10.0.0.9"}, body


def test_endpoints_wait_expires_unchanged():
    with Agent(config()) as a:
        idx = a.index("/v1/endpoints/web")
        t0 = time.monotonic()
        st, h, body = a.get("/v1/endpoints/web?index=%d&wait=1s" % idx)
        took = time.monotonic() - t0
        assert st == 200, (st, body)
        assert 0.9 <= took < scale(2.5), "wait=1s answered after %.2fs" % took
        assert int(h["x-beacon-index"]) == idx and body["index"] == idx, (h, body, idx)
        assert [e["address"] for e in body["endpoints"]] == ["10.0.0.1"], body
        # sub-second waits are honoured too
        t0 = time.monotonic()
        st, _, _ = a.get("/v1/endpoints/web?index=%d&wait=300ms" % idx)
        took = time.monotonic() - t0
        assert st == 200 and 0.25 <= took < scale(1.5), "wait=300ms answered after %.2fs" % took


def test_old_index_answers_at_once():
    with Agent(config()) as a:
        a.reload(config(web=[endpoint("10.0.0.2", 80)]))
        wait_for(lambda: a.get("/v1/endpoints/web")[2]["endpoints"][0]["address"] == "10.0.0.2",
                 5, what="the reload")
        idx = a.index("/v1/endpoints/web")
        assert idx > 1
        t0 = time.monotonic()
        st, h, body = a.get("/v1/endpoints/web?index=1&wait=5s")
        assert st == 200 and time.monotonic() - t0 < scale(0.5), "held a request for an old index"
        assert int(h["x-beacon-index"]) == idx, h


def test_future_index_answers_at_once():
    with Agent(config()) as a:
        idx = a.index("/v1/endpoints/web")
        for path in ("/v1/endpoints/web?index=%d&wait=5s" % (idx + 1000),
                     "/v1/services?index=%d&wait=5s" % (idx + 1000)):
            t0 = time.monotonic()
            st, h, body = a.get(path)
            took = time.monotonic() - t0
            assert st == 200, (st, body)
            assert took < scale(0.5), "%s was held %.2fs (index ahead of the agent's)" % (path, took)
            assert int(h["x-beacon-index"]) <= idx, h


def test_wait_without_index_does_not_block():
    with Agent(config()) as a:
        t0 = time.monotonic()
        st, _, _ = a.get("/v1/endpoints/web?wait=5s")
        assert st == 200 and time.monotonic() - t0 < scale(0.5)


def test_long_wait_is_accepted_and_capped():
    with Agent(config()) as a:
        idx = a.index("/v1/endpoints/web")
        bg = Background(a, "/v1/endpoints/web?index=%d&wait=10m" % idx)
        wait_parked(a)
        assert not bg.done(), "wait=10m was not held: %r" % (bg.result,)
        a.reload(config(web=[endpoint("10.0.0.3", 80)]))
        st, h, body = bg.join(5)
        assert st == 200, (st, body)
        assert int(h["x-beacon-index"]) > idx
        assert body["endpoints"][0]["address"] == "10.0.0.3", body


def test_services_blocking():
    with Agent(config()) as a:
        idx = a.index("/v1/services")
        bg = Background(a, "/v1/services?index=%d&wait=5s" % idx)
        wait_parked(a)
        time.sleep(0.1)
        assert not bg.done(), "answered before anything changed: %r" % (bg.result,)
        a.reload(config(cache=[endpoint("10.5.0.1", 6379), endpoint("10.5.0.2", 6379)]))
        reloaded = time.monotonic()
        st, h, body = bg.join(5)
        assert st == 200, (st, body)
        assert bg.done_at - reloaded < scale(1.0)
        assert body["services"].get("cache") == 2, body
        assert body["index"] > idx and int(h["x-beacon-index"]) == body["index"], (h, body)
        # and when nothing changes it waits the whole period
        idx = body["index"]
        t0 = time.monotonic()
        st, h, body = a.get("/v1/services?index=%d&wait=1s" % idx)
        took = time.monotonic() - t0
        assert st == 200 and 0.9 <= took < scale(2.5), "took %.2fs" % took
        assert body["index"] == idx, body


def test_several_waiters_all_wake():
    with Agent(config()) as a:
        idx = a.index("/v1/endpoints/web")
        bgs = [Background(a, "/v1/endpoints/web?index=%d&wait=5s" % idx) for _ in range(5)]
        wait_parked(a, 5)
        a.reload(config(web=[endpoint("10.0.0.4", 80)]))
        for bg in bgs:
            st, _, body = bg.join(5)
            assert st == 200 and body["endpoints"][0]["address"] == "10.0.0.4", body
        assert metric(a.metrics(), "beacon_blocking_queries") == 0


def test_invalid_index_is_400():
    with Agent(config()) as a:
        for q in ("index=-1", "index=abc", "index=", "index=1.5"):
            for path in ("/v1/endpoints/web?", "/v1/services?"):
                st, h, body = a.get(path + q + "&wait=1s")
                assert st == 400, "%s%s answered %d %r" % (path, q, st, body)
                assert isinstance(body, dict) and "error" in body, body


def test_bad_wait_is_400():
    with Agent(config()) as a:
        idx = a.index("/v1/endpoints/web")
        for w in ("abc", "5x", "-1s", "", "1s2"):
            t0 = time.monotonic()
            st, h, body = a.get("/v1/endpoints/web?index=%d&wait=%s" % (idx, w))
            assert st == 400, "wait=%r answered %d %r" % (w, st, body)
            assert "error" in body and time.monotonic() - t0 < scale(1.0), body


def test_stop_releases_blocking_reads():
    with Agent(config()) as a:
        idx = a.index("/v1/endpoints/web")
        bg = Background(a, "/v1/endpoints/web?index=%d&wait=5m" % idx)
        wait_parked(a)
        t0 = time.monotonic()
        rc = a.stop()
        assert rc == 0, "exit code %d; log:\n%s" % (rc, a.log())
        assert time.monotonic() - t0 < scale(3), "stopping took %.1fs" % (time.monotonic() - t0)
        st, _, body = bg.join(2)
        assert st == 200, "a held read is answered when the agent stops: %r" % ((st, body),)


def test_removed_service_wakes_its_watchers():
    with Agent(config(old=[endpoint("10.9.0.1", 80)])) as a:
        idx = a.index("/v1/endpoints/old")
        sidx = a.index("/v1/services")
        bg = Background(a, "/v1/endpoints/old?index=%d&wait=5s" % idx)
        bgs = Background(a, "/v1/services?index=%d&wait=5s" % sidx)
        wait_parked(a, 2)
        a.reload(config())
        reloaded = time.monotonic()
        st, _, body = bg.join(5)
        assert bg.done_at - reloaded < scale(1.0), "a removed service left its watcher waiting"
        assert st == 404 or (st == 200 and body["endpoints"] == []), (st, body)
        st, _, body = bgs.join(5)
        assert st == 200 and "old" not in body["services"] and body["index"] > sidx, body


def test_index_from_before_a_restart():
    with Agent(config()) as a:
        for i in range(5):
            a.reload(config(web=[endpoint("10.0.0.%d" % (i + 10), 80)]))
            wait_for(lambda: a.get("/v1/endpoints/web")[2]["endpoints"][0]["address"] ==
                     "10.0.0.%d" % (i + 10), 5, what="reload %d" % i)
        old_idx = a.index("/v1/endpoints/web")
        assert a.stop() == 0
    with Agent(config()) as b:
        assert b.index("/v1/endpoints/web") < old_idx, "the restarted agent's index is not lower"
        t0 = time.monotonic()
        st, _, body = b.get("/v1/endpoints/web?index=%d&wait=5s" % old_idx)
        assert st == 200 and time.monotonic() - t0 < scale(0.5), \
            "an index from before the restart was held %.2fs" % (time.monotonic() - t0)
        assert body["endpoints"][0]["address"] == "10.0.0.1", body
