# beacon - a small, fast, secure sidecar agent. Plain make + pkg-config.
#
#   make              build/beacon
#   make check        install missing packages, build, run every test
#   make asan         the whole suite under AddressSanitizer + UBSan (build-asan/)
#   make valgrind     unit and integration tests under valgrind --leak-check=full
#   make fuzz         every libFuzzer harness for FUZZ_TIME seconds (build-fuzz/)
#   make fuzz-smoke   every harness for a few seconds (part of make test)
#   make demo         local etcd + example app + agents, shows discovery
#   make install PREFIX=/usr/local   (the binary and the man page man/beacon.1)
#   make man-check    groff must format man/beacon.1 without a warning (part of check)
#   make lint         every include arrow points down the layers (part of check)
#   make image        build/beacon-VERSION.oci.tar: a minimal OCI image from scratch (buildah)
#   make deb          build/beacon_VERSION_ARCH.deb (dpkg-deb; lintian in ship-check)
#   make ship-check   tests of the image, the Kustomize manifests and the .deb (part of check)
#   make clean

CC       ?= cc
PREFIX   ?= /usr/local
BUILD    ?= build
VERSION  := 0.1.0
PKGS     := libevent libcurl jansson libsodium
SAN      ?=

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -fno-strict-aliasing -fstack-protector-strong -D_FORTIFY_SOURCE=2 \
            -DBCN_VERSION='"$(VERSION)"' -iquote agent $(PKG_CFLAGS) $(SAN)
LDFLAGS  += $(SAN) -Wl,-z,relro,-z,now
LDLIBS   += $(PKG_LIBS) -lm
# The ZooKeeper C client, single-threaded flavour (Debian ships no .pc for it).
ZK_LIBS  := $(shell pkg-config --libs zookeeper_st 2>/dev/null || echo -lzookeeper_st)
LDLIBS   += $(ZK_LIBS)

AGENT_SRC  := $(filter-out agent/main.c,$(wildcard agent/*.c agent/*/*.c))
PLUGIN_SRC := $(wildcard plugins/*/*.c)
LIB_OBJ    := $(patsubst %.c,$(BUILD)/%.o,$(AGENT_SRC) $(PLUGIN_SRC))
TEST_SRC   := $(wildcard tests/unit/test_*.c)
TEST_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_HELPERS := $(BUILD)/tests/http_fixture

.PHONY: all check test unit sims integration integration-cli-fronts asan valgrind demo bench install clean deps \
	man-check lint fuzz fuzz-smoke fuzz-build fuzzers

all: $(BUILD)/beacon

$(BUILD)/%.o: %.c $(wildcard agent/*.h agent/*/*.h plugins/*/*.h) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libbeacon.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/beacon: $(BUILD)/agent/main.o $(BUILD)/libbeacon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/testutil.h $(BUILD)/libbeacon.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -iquote tests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libbeacon.a \
		$(LDLIBS) $(CHECK_LIBS)

# Plugin tests run a real plugin against the test core (tests/unit/testcore.c,
# which implements plugin.h's reporting API) and the scripted HTTP client of
# the fuzz harnesses (tests/fuzz/fake_http.c); both come before the archive,
# so its real reporting API and curl client are never linked in.
PLUGIN_TESTS := $(patsubst %,$(BUILD)/tests/%,test_etcd_data test_consul_data test_vault_reply)
PLUGIN_TESTS += $(BUILD)/tests/test_zk_data
TEST_CORE_OBJ := $(BUILD)/tests/testcore.o $(BUILD)/fuzz/fake_http.o

$(BUILD)/tests/testcore.o: tests/unit/testcore.c tests/unit/testcore.h tests/fuzz/fake_http.h \
		$(wildcard agent/*.h agent/*/*.h) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -iquote tests/fuzz -c -o $@ $<

$(PLUGIN_TESTS): $(BUILD)/tests/%: tests/unit/%.c tests/unit/testutil.h tests/unit/testcore.h \
		$(TEST_CORE_OBJ) $(BUILD)/libbeacon.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -iquote tests/unit -iquote tests/fuzz $(LDFLAGS) -o $@ $< \
		$(TEST_CORE_OBJ) $(BUILD)/libbeacon.a $(LDLIBS) $(CHECK_LIBS)

# Installs what a fresh Debian 12 machine lacks (no-op when everything is there).
deps:
	@sh .ci/deps

unit: $(TEST_BIN)
	@fail=0; for t in $(TEST_BIN); do echo "== $$t"; $(TEST_WRAP) $$t || fail=1; done; exit $$fail

integration: $(BUILD)/beacon
	python3 tests/integration/run.py --beacon $(BUILD)/beacon $(if $(TEST_WRAP),--wrap "$(TEST_WRAP)")

# The Consul and Vault simulators' own tests (the fixtures the plugin tests trust).
sims:
	python3 tests/sim/test_consul_sim.py
	python3 tests/sim/test_vault_sim.py

# The Consul and Vault tests once more through their CONSUL_BIN / VAULT_BIN
# path, with the simulators behind the argv of `consul agent -dev` and `vault
# server -dev` (tests/sim/consul-cli, tests/sim/vault-cli): keeps the fixtures'
# real-server path working. Not a run against real Consul or Vault.
integration-cli-fronts: $(BUILD)/beacon
	CONSUL_BIN=$(CURDIR)/tests/sim/consul-cli python3 tests/integration/run.py --beacon $(BUILD)/beacon -k test_consul $(if $(TEST_WRAP),--wrap "$(TEST_WRAP)")
	VAULT_BIN=$(CURDIR)/tests/sim/vault-cli python3 tests/integration/run.py --beacon $(BUILD)/beacon -k test_vault $(if $(TEST_WRAP),--wrap "$(TEST_WRAP)")

# fuzz-smoke last, so its CPU load never overlaps the timing-sensitive tests under -j.
test: unit sims integration integration-cli-fronts
	$(MAKE) fuzz-smoke

check: deps
	$(MAKE) all $(TEST_BIN)
	$(MAKE) lint man-check
	$(MAKE) test
	$(MAKE) ship-check

asan:
	$(MAKE) BUILD=build-asan CC=clang OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		all test

valgrind:
	$(MAKE) all $(TEST_BIN)
	CK_FORK=no $(MAKE) test \
		TEST_WRAP="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99"

# libFuzzer harnesses (tests/fuzz/fuzz_<name>.c, seeds in tests/fuzz/corpus/<name>/):
# the library is rebuilt in build-fuzz/ with clang, coverage and ASan+UBSan,
# and linked with tests/fuzz/fake_http.c in place of the real HTTP client, so
# a backend's answers come from the fuzzer. New inputs go to
# build-fuzz/corpus/<name>/, never into the committed seeds; a crash is saved
# as build-fuzz/crash-* (rerun: build-fuzz/fuzz/fuzz_<name> <file>).
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME ?= 600
FUZZ_SMOKE_TIME ?= 3
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZ_NAMES))
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_FLAGS := -close_fd_mask=3 -timeout=20 -rss_limit_mb=2048 -artifact_prefix=$(FUZZ_BUILD)/ -print_final_stats=1

fuzzers: $(FUZZ_BIN)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h agent/*.h agent/*/*.h plugins/*/*.h) $(BUILD)/fuzz/fake_http.o $(BUILD)/libbeacon.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -iquote tests/fuzz $(patsubst %,-iquote %,$(wildcard plugins/*)) $(LDFLAGS) \
		-fsanitize=fuzzer -o $@ $< \
		$(BUILD)/fuzz/fake_http.o $(BUILD)/libbeacon.a $(LDLIBS)

$(BUILD)/fuzz/fake_http.o: tests/fuzz/fake_http.c $(wildcard tests/fuzz/*.h agent/*.h agent/*/*.h) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -iquote tests/fuzz -c -o $@ $<

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang OPT=-O1 SAN="$(FUZZ_SAN)" fuzzers

# FUZZ_TIME seconds per harness (FUZZ_NAMES="etcd vault" picks some).
fuzz: fuzz-build
	@for n in $(FUZZ_NAMES); do mkdir -p $(FUZZ_BUILD)/corpus/$$n; echo "== fuzz_$$n ($(FUZZ_TIME) s)"; \
		$(FUZZ_BUILD)/fuzz/fuzz_$$n $(FUZZ_FLAGS) -max_total_time=$(FUZZ_TIME) \
			$(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n || exit 1; done

# Each seed once, then a few seconds of mutation per harness (from the
# committed seeds only, so its time does not grow with build-fuzz/corpus/).
fuzz-smoke: fuzz-build
	@for n in $(FUZZ_NAMES); do rm -rf $(FUZZ_BUILD)/smoke/$$n; mkdir -p $(FUZZ_BUILD)/smoke/$$n; \
		echo "== fuzz_$$n ($(FUZZ_SMOKE_TIME) s)"; \
		$(FUZZ_BUILD)/fuzz/fuzz_$$n $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SMOKE_TIME) \
			$(FUZZ_BUILD)/smoke/$$n tests/fuzz/corpus/$$n >$(FUZZ_BUILD)/fuzz_$$n.log 2>&1 \
			|| { cat $(FUZZ_BUILD)/fuzz_$$n.log; exit 1; }; \
		grep -h 'stat::number_of_executed_units\|^Done' $(FUZZ_BUILD)/fuzz_$$n.log; done

demo: deps all
	sh examples/demo.sh $(BUILD)/beacon

# A benchmark, not a test: prints a table and writes bench/results.json
# (targets are reported as PASS/MISS; a miss never fails the command).
$(BUILD)/loadgen: bench/loadgen.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(shell pkg-config --libs libevent 2>/dev/null)

bench: all $(BUILD)/loadgen
	python3 bench/bench.py --beacon $(BUILD)/beacon --loadgen $(BUILD)/loadgen --out bench/results.json
	python3 bench/bench_dns.py --beacon $(BUILD)/beacon --out bench/results_dns.json
	python3 bench/bench_zk.py --beacon $(BUILD)/beacon --out bench/results_zk.json
	python3 bench/bench_proxy.py --beacon $(BUILD)/beacon --out bench/results_proxy.json
	python3 bench/bench_templates.py --beacon $(BUILD)/beacon --out bench/results_templates.json

install: $(BUILD)/beacon
	install -D -m 0755 $(BUILD)/beacon $(DESTDIR)$(PREFIX)/bin/beacon
	install -D -m 0644 man/beacon.1 $(DESTDIR)$(PREFIX)/share/man/man1/beacon.1

# Every #include arrow in agent/ and plugins/ points down the layers HACKING.md draws.
lint:
	python3 tests/lint/layers.py

# groff exits 0 on warnings, so any output at all fails the check.
man-check:
	@out=$$(groff -man -Tutf8 -z -ww man/beacon.1 2>&1); \
	if [ -n "$$out" ]; then printf '%s\n' "$$out"; echo "man/beacon.1: groff warnings" >&2; exit 1; fi; \
	echo "man/beacon.1: no groff warnings"

clean:
	rm -rf build build-asan build-fuzz

# ---- shipping (issue 16): the OCI image, the .deb, and their tests ----------
# packaging/rootfs.sh lays out the image's files (also used by the
# Containerfile's builder stage); packaging/image.sh builds the image with
# buildah from scratch on vfs storage kept in $(BUILD)/image/, no daemon.
.PHONY: image deb ship-check
IMAGE := $(BUILD)/beacon-$(VERSION).oci.tar
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB := $(BUILD)/beacon_$(VERSION)_$(DEB_ARCH).deb

image: $(IMAGE)

$(IMAGE): $(BUILD)/beacon packaging/rootfs.sh packaging/image.sh packaging/beacon.json packaging/copyright
	sh packaging/image.sh $(BUILD)/beacon $(VERSION) $@
	@echo "$@: $$(du -k $@ | cut -f1) KiB"

deb: $(DEB)

$(DEB): $(BUILD)/beacon man/beacon.1 systemd/beacon.service packaging/deb.sh packaging/beacon.json \
		packaging/copyright $(wildcard packaging/debian/*)
	sh packaging/deb.sh $(BUILD)/beacon $(VERSION) $@
	@echo "$@: $$(du -k $@ | cut -f1) KiB"

# The .deb test installs the package on this machine with apt-get and purges it.
ship-check: all image deb
	python3 tests/ship/test_image.py
	python3 tests/ship/test_containerfile.py
	BEACON_BIN=$(BUILD)/beacon python3 tests/ship/test_kube.py
	python3 tests/ship/test_deb.py
