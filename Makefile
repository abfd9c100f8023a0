# mod_websocket: top-level build.

SHELL := /bin/bash
#
#   make          build the module (build/mod_websocket.so, with apxs's
#                 flags) and the example handlers (build/handlers/*.so)
#   make install  install them and the plugin header where apxs says
#   make check    unit tests, the same tests under ASan + UBSan, then every
#                 fuzz target for FUZZ_SECONDS (default 10) each
#   make fuzz     every libFuzzer target for FUZZ_SECONDS each (clang)
#   make bench    the hot-loop microbenchmarks
#   make demo     build, then serve the demo pages with a private httpd on
#                 127.0.0.1, port $PORT or 8080, until Ctrl-C
#
# Our own code builds with -Wall -Wextra -Werror.

CC      ?= cc
CLANG   ?= clang
BUILD   ?= build
FUZZ_SECONDS ?= 10

APR_CFLAGS := $(shell apr-1-config --cflags --cppflags --includes 2>/dev/null) \
              $(shell apu-1-config --includes)
APR_LIBS   := $(shell apu-1-config --link-ld --libs) \
              $(shell apr-1-config --link-ld --libs)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

APXS       ?= apxs
# Quiet when apxs is not installed yet (make demo installs it first).
apxs_q      = $(shell $(APXS) -q $(1) 2>/dev/null)
AP_INCLUDE := $(call apxs_q,INCLUDEDIR)
AP_LIBEXEC := $(call apxs_q,LIBEXECDIR)
AP_CFLAGS  := $(call apxs_q,CFLAGS) $(call apxs_q,NOTEST_CPPFLAGS)

WARN    := -Wall -Wextra -Werror
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(APR_CFLAGS) -Imod_websocket \
             -fvisibility=hidden

SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all \
             -fno-omit-frame-pointer

CORE := ws_mask ws_utf8 ws_frame ws_close ws_msg ws_engine ws_extension ws_origin \
        ws_handshake ws_pmd_negotiate ws_deflate
CORE_HDRS := $(wildcard mod_websocket/*.h)
# The Redis link: hiredis for RESP, OpenSSL for rediss://.
REDIS_LIBS := -lhiredis -lssl -lcrypto

# Each unit test links only the core files it tests, so one unfinished file
# does not stop the others' tests from building.
ws_mask_test_OBJS      := ws_mask
ws_utf8_test_OBJS      := ws_utf8
ws_frame_test_OBJS     := ws_frame ws_mask
ws_close_test_OBJS     := ws_close ws_utf8
ws_msg_test_OBJS       := ws_msg
ws_engine_test_OBJS    := ws_engine ws_frame ws_mask ws_utf8 ws_close ws_msg \
                          ws_deflate
ws_engine_output_test_OBJS := $(ws_engine_test_OBJS)
ws_engine_deflate_test_OBJS := $(ws_engine_test_OBJS)
ws_extension_test_OBJS := ws_extension
ws_pmd_negotiate_test_OBJS := ws_pmd_negotiate ws_extension
ws_handshake_test_OBJS := ws_handshake
ws_origin_test_OBJS    := ws_origin
ws_deflate_test_OBJS   := ws_deflate
ws_bus_test_OBJS       := ws_bus
ws_redis_test_OBJS     := ws_redis ws_redis_io ws_redis_url ws_redis_wire
ws_redis_test_LIBS     := $(REDIS_LIBS)
ws_topic_test_OBJS     := ws_topic

UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/*_test.c))
UNIT_BINS  := $(UNIT_TESTS:%=$(BUILD)/tests/%)

FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz_engine_OBJS    := ws_engine ws_frame ws_mask ws_utf8 ws_close ws_msg \
                       ws_deflate
fuzz_handshake_OBJS := ws_handshake ws_extension
fuzz_extension_OBJS := ws_extension
fuzz_pmd_offer_OBJS := ws_pmd_negotiate ws_extension
fuzz_utf8_OBJS      := ws_utf8
fuzz_frame_OBJS     := ws_frame
fuzz_inflate_OBJS   := ws_deflate
fuzz_bus_frame_OBJS := ws_bus
fuzz_redis_payload_OBJS := ws_redis_wire
fuzz_redis_payload_LIBS := -lhiredis
fuzz_redis_url_OBJS := ws_redis_url

# Prerequisites below use $$(...) to compute per-target file lists.
.SECONDEXPANSION:

.PHONY: all core module handlers test-plugins install check unit unit-san fuzz \
        integration guide browser \
        fuzz-build bench clean demo

all: module handlers

core: $(CORE:%=$(BUILD)/core/%.o)

$(BUILD)/core/%.o: mod_websocket/%.c $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# The module: the core and the Apache glue, position-independent, with the
# flags apxs reports, hidden symbols but for the module record. CFLAGS
# comes last so a sanitizer build (CFLAGS="-O1 -g -fsanitize=address")
# reaches every object and the link.
MODULE_SRCS := $(wildcard mod_websocket/*.c)
MODULE_OBJS := $(MODULE_SRCS:mod_websocket/%.c=$(BUILD)/module/%.o)

module: $(BUILD)/mod_websocket.so

$(BUILD)/module/%.o: mod_websocket/%.c $(CORE_HDRS) \
                     include/mod_websocket_plugin.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(AP_CFLAGS) $(CFLAGS) $(APR_CFLAGS) \
	    -I$(AP_INCLUDE) -Iinclude -Imod_websocket -fPIC -fvisibility=hidden \
	    -c $< -o $@

$(BUILD)/mod_websocket.so: $(MODULE_OBJS)
	$(CC) -shared $(CFLAGS) -o $@ $^ $(APR_LIBS) -lpthread -lz $(REDIS_LIBS)

# Each handlers/<name>/ builds into build/handlers/<name>.so from its .c
# files and the public header alone, as a plugin author's would.
HANDLERS := $(notdir $(wildcard handlers/*))

handlers: $(HANDLERS:%=$(BUILD)/handlers/%.so)

$(BUILD)/handlers/%.so: $$(wildcard handlers/%/*.c) \
                        include/mod_websocket_plugin.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -fPIC -shared -Iinclude \
	    $(wildcard handlers/$*/*.c) -o $@ -lpthread

# Plugins that only the integration tests load.
TEST_PLUGINS := $(patsubst tests/integration/plugins/%.c,%,\
                  $(wildcard tests/integration/plugins/*.c))

test-plugins: $(TEST_PLUGINS:%=$(BUILD)/test-plugins/%.so)

$(BUILD)/test-plugins/%.so: tests/integration/plugins/%.c \
                            include/mod_websocket_plugin.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -fPIC -shared -Iinclude $< -o $@ \
	    -lpthread

# DESTDIR stages the files elsewhere (packaging, or a test of the rule).
install: all
	install -d $(DESTDIR)$(AP_LIBEXEC) $(DESTDIR)$(AP_INCLUDE)
	$(APXS) -i -S LIBEXECDIR=$(DESTDIR)$(AP_LIBEXEC) -n websocket \
	    $(BUILD)/mod_websocket.so
	install -d $(DESTDIR)$(AP_LIBEXEC)/mod_websocket
	install -m 644 $(HANDLERS:%=$(BUILD)/handlers/%.so) \
	    $(DESTDIR)$(AP_LIBEXEC)/mod_websocket/
	install -m 644 include/mod_websocket_plugin.h $(DESTDIR)$(AP_INCLUDE)/

# demo/run installs what is missing, builds and runs httpd in the
# foreground from a generated config; it needs nothing from make but this.
demo:
	demo/run

# A test binary: tests/unit/<stem>_test.c plus the objects it names. (In a
# second expansion '%' would stand for the stem, hence addprefix.)
$(BUILD)/tests/%: tests/unit/%.c tests/unit/test_util.h tests/unit/engine_harness.h \
                  $$(addprefix $(BUILD)/core/,$$(addsuffix .o,$$($$*_OBJS)))
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit $< \
	    $(patsubst %,$(BUILD)/core/%.o,$($*_OBJS)) \
	    $(CHECK_LIBS) $(APR_LIBS) -lz $($*_LIBS) -o $@

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do \
	    echo "== $$t"; $$t; \
	done

# The same tests with AddressSanitizer and UndefinedBehaviorSanitizer. Check
# runs without fork so LeakSanitizer sees the whole process; any report
# aborts the run.
unit-san:
	CK_FORK=no ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(MAKE) --no-print-directory BUILD=$(BUILD)/san CC=$(CLANG) \
	    CFLAGS="-O1 -g $(SAN_FLAGS)" unit

# Real httpd processes (prefork, worker, event, TLS) driven by real
# clients; tests/integration/run.sh says what it runs and skips.
integration: module handlers test-plugins
	BUILD=$(BUILD) tests/integration/run.sh

# Every C sample of the plugin author's guide compiles, loads and serves.
guide: module
	BUILD=$(BUILD) tests/guide/check-samples.sh

# Headless Chromium against the demo pages served by demo/run (plain and
# TLS); tests/browser/run.sh says what it runs and fails without chromium.
browser: module handlers
	BUILD=$(BUILD) tests/browser/run.sh

check: unit unit-san fuzz integration guide browser
	@echo "make check: unit tests passed plain and under ASan+UBSan;" \
	      "fuzz targets ran $(FUZZ_SECONDS)s each without a report;" \
	      "the integration suite, the guide's samples and the browser" \
	      "tests passed"

$(BUILD)/fuzz/%: tests/fuzz/%.c $(CORE_HDRS) \
                 $$(addprefix mod_websocket/,$$(addsuffix .c,$$($$*_OBJS)))
	@mkdir -p $(dir $@)
	$(CLANG) -std=gnu11 $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all $(APR_CFLAGS) -Imod_websocket $< \
	    $(patsubst %,mod_websocket/%.c,$($*_OBJS)) $(APR_LIBS) -lz $($*_LIBS) \
	    -o $@

fuzz-build: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)

# New inputs go to a scratch corpus under $(BUILD); the seeds in the repo
# are only read. A crash, leak or sanitizer report exits non-zero and the
# log's tail is shown.
fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(BUILD)/fuzz/corpus-$$t; \
	    echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
	    if ! $(BUILD)/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) \
	            -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/$$t- \
	            $(BUILD)/fuzz/corpus-$$t tests/fuzz/corpus/$$t \
	            > $(BUILD)/fuzz/$$t.log 2>&1; then \
	        tail -n 60 $(BUILD)/fuzz/$$t.log; \
	        echo "fuzz $$t: FAILED (log: $(BUILD)/fuzz/$$t.log)"; exit 1; \
	    fi; \
	    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb)' \
	        $(BUILD)/fuzz/$$t.log; \
	done

bench: $(BUILD)/bench/ws_hotloops
	$(BUILD)/bench/ws_hotloops

$(BUILD)/bench/ws_hotloops: bench/ws_hotloops.c $(BUILD)/core/ws_mask.o \
                            $(BUILD)/core/ws_utf8.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $^ -o $@

clean:
	rm -rf $(BUILD)

# The WebSocket server benchmark (bench/README.md): bench/run.sh installs
# what it lacks, builds the module, the handlers and the binaries below,
# and runs every peer server through every scenario. QUICK=1 for a smoke
# run.
.PHONY: benchmark

benchmark:
	BUILD=$(BUILD) bench/run.sh

$(BUILD)/bench/ws_load: bench/ws_load.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) $< -o $@

$(BUILD)/bench/lws_echo: bench/lws_echo.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) $< -o $@ \
	    $$(pkg-config --cflags --libs libwebsockets)

$(BUILD)/bench/plugins/fanout.so: bench/plugins/fanout.c \
                                  include/mod_websocket_plugin.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -fPIC -shared -Iinclude $< -o $@ \
	    -lpthread

$(BUILD)/bench/plugins/pubsub.so: bench/plugins/pubsub.c \
                                  include/mod_websocket_plugin.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -fPIC -shared -Iinclude $< -o $@ \
	    -lpthread
