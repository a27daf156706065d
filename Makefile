# sekisho build. Targets:
#   make             release build: build/sekisho (-O2, warnings are errors)
#   make asan        test build with AddressSanitizer + UBSan: build-asan/sekisho
#   make unit        build and run the C unit tests (ASan/UBSan build)
#   make fuzz        build the libFuzzer targets (clang): build-fuzz/fuzz_*
#   make cppcheck    static analysis, no warnings allowed
#   make check-sides the link check of the privilege sides (below)
#   make install     PREFIX=/usr/local DESTDIR=
#
# The code is built as libraries by the side it runs on (docs/architecture.md
# "Libraries"), in every build (release, asan, fuzz):
#   libsekisho-common.a   shared pure code: strings, log, config, the seam's
#                         messages and channel, metrics, and the parsers
#                         without I/O (listed in PURE_SRC)
#   libsekisho-session.a  what runs in a session process: the protocols,
#                         TLS session use, the back side's and the key
#                         process's clients, the session process's loop
#   libsekisho-back.a     the back side and the key process: backend, store,
#                         queue, mta, policy, geo, keyproc
#   libsekisho-daemon.a   the master and the privileges (src/daemon/)
#   libsekisho-cli.a      the operator commands (src/cli/)
# A source file's library is its folder's (the tables below); a new
# src/<part>/<file>.c needs no edit here unless it is a pure parser in a
# protocol's folder (PURE_SRC) or session code in src/core/ (SESSION_CORE).
# `make check-sides` links the session library with only the common one,
# and the back side's likewise: a call across the seam that is not a
# message fails to link.

PREFIX	?= /usr/local
DESTDIR	?=
CC	?= cc

LIBS	:= $(shell pkg-config --libs libevent_openssl libevent_pthreads libevent openssl sqlite3 libmaxminddb libcares libpq jansson libsystemd) -lcrypt -lpthread -lm
WARN	:= -Wall -Wextra -Wformat=2 -Wshadow -Wmissing-prototypes \
	   -Wstrict-prototypes -Wpointer-arith -Wvla -Wundef \
	   -Wnull-dereference -Werror
PQCFLAGS := $(shell pkg-config --cflags libpq)
BASEFLAGS := -std=c17 -D_GNU_SOURCE -MMD -MP $(WARN) $(PQCFLAGS)

SRC_ALL	:= $(sort $(wildcard src/*/*.c))
SRC_LIB	:= $(filter-out src/main.c,$(SRC_ALL))

# pure code (no I/O, no process of its own) in a side's folder: shared
PURE_SRC := src/smtp/smtp_parse.c src/smtp/smtp_header.c \
	    src/pop3/pop3_parse.c src/policyd/policyd_parse.c \
	    src/authpolicy/authpolicy_parse.c \
	    src/portal/portal_util.c src/portal/portal_rows.c \
	    src/queue/envelope.c src/policy/trace.c src/mta/mta_route.c \
	    src/milter/milter_proto.c
# session code in src/core/: the back side's client, the connection life,
# TLS session use, the metrics listener
SESSION_CORE := src/core/be_client.c src/core/conn.c src/core/tls.c \
	    src/core/metrics_http.c
COMMON_SRC := $(filter-out $(SESSION_CORE),$(wildcard src/core/*.c)) \
	    $(PURE_SRC)
SESSION_SRC := $(filter-out $(PURE_SRC),$(wildcard src/smtp/*.c \
	    src/pop3/*.c src/policyd/*.c src/portal/*.c \
	    src/authpolicy/*.c)) $(SESSION_CORE) \
	    src/keys/keys_client.c src/daemon/server.c src/daemon/limits.c
BACK_SRC := $(filter-out $(PURE_SRC),$(wildcard src/backend/*.c \
	    src/store/*.c src/queue/*.c src/mta/*.c src/policy/*.c \
	    src/geo/*.c src/milter/*.c)) src/keys/keyproc.c src/daemon/back_proc.c
DAEMON_SRC := src/daemon/master.c src/daemon/privsep.c
CLI_SRC := $(wildcard src/cli/*.c)
SIDES	:= common session back daemon cli
# link order: a library before those it uses
LINK_SIDES := daemon cli session back common
# every source in exactly one library (make check-sides checks it)
SIDE_SRC := $(sort $(COMMON_SRC) $(SESSION_SRC) $(BACK_SRC) $(DAEMON_SRC) $(CLI_SRC))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))

# --- release -----------------------------------------------------------
REL_CFLAGS := $(BASEFLAGS) -O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2
REL_OBJ	:= $(SRC_LIB:%.c=build/%.o)
REL_LIBS := $(LINK_SIDES:%=build/libsekisho-%.a)

all: build/sekisho build/sekisho-loadgen

build/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -c $< -o $@

# one archive per side, in each build directory B (build, build-asan,
# build-fuzz): B/libsekisho-SIDE.a from the objects of SIDE_SRC
define side_lib
$(1)/libsekisho-common.a: $(COMMON_SRC:%.c=$(1)/%.o)
$(1)/libsekisho-session.a: $(SESSION_SRC:%.c=$(1)/%.o)
$(1)/libsekisho-back.a: $(BACK_SRC:%.c=$(1)/%.o)
$(1)/libsekisho-daemon.a: $(DAEMON_SRC:%.c=$(1)/%.o)
$(1)/libsekisho-cli.a: $(CLI_SRC:%.c=$(1)/%.o)
endef
$(foreach b,build build-asan build-fuzz,$(eval $(call side_lib,$(b))))

build/libsekisho-%.a:
	rm -f $@
	ar rcs $@ $^
build-asan/libsekisho-%.a:
	rm -f $@
	ar rcs $@ $^
build-fuzz/libsekisho-%.a:
	rm -f $@
	ar rcs $@ $^

build/sekisho: build/src/main.o $(REL_LIBS)
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LIBS)

# the benchmark's load generator (bench/README.md): stands alone, no src/
LOADGEN_LIBS := $(shell pkg-config --libs libevent_openssl libevent openssl) -lpthread
build/sekisho-loadgen: bench/loadgen.c
	@mkdir -p build
	$(CC) $(REL_CFLAGS) -o $@ $< $(LOADGEN_LIBS)

# --- ASan + UBSan test build -------------------------------------------
SAN	:= -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# SEKISHO_TEST_HOOKS: test-only entry points (master.c's SIGUSR2 channel
# for the hostile-session test); never in the release build.
ASAN_CFLAGS := $(BASEFLAGS) -O1 -g $(SAN) -DSEKISHO_TEST_HOOKS
ASAN_OBJ := $(SRC_LIB:%.c=build-asan/%.o)
ASAN_LIBS := $(LINK_SIDES:%=build-asan/libsekisho-%.a)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build-asan/tests/%)

asan: build-asan/sekisho $(UNIT_BIN)

build-asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -c $< -o $@

build-asan/sekisho: build-asan/src/main.o $(ASAN_LIBS)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LIBS)

# the unit tests may use any side
build-asan/tests/%: tests/unit/%.c tests/unit/unit.h tests/unit/unit_queue.h tests/unit/store_rows.h $(ASAN_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -Isrc -o $@ $< $(ASAN_LIBS) $(LIBS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# --- libFuzzer targets (clang) -----------------------------------------
FUZZ_CC	?= clang
FUZZ_CFLAGS := -std=c17 -D_GNU_SOURCE -MMD -MP -g -O1 -fsanitize=fuzzer-no-link,address,undefined -Wall -Wextra -Werror $(PQCFLAGS)
FUZZ_OBJ := $(SRC_LIB:%.c=build-fuzz/%.o)
FUZZ_LIBS := $(LINK_SIDES:%=build-fuzz/libsekisho-%.a)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)

fuzz: $(FUZZ_BIN)

build-fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

build-fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_LIBS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Isrc -o $@ $< $(FUZZ_LIBS) $(LIBS)

# --- checks ------------------------------------------------------------
# The privilege sides (docs/architecture.md "Libraries"): a program that
# names every entry point of the session side links with the session and
# common libraries alone, and one that names the back side's with the back
# and common ones; each fails to link if its side calls into the other
# (or into the master or the CLI) other than by message. Release objects.
SIDES_BIN := build/tests/sides/session_only build/tests/sides/back_only

check-sides: $(SIDES_BIN)
	@test "$(SIDE_SRC)" = "$(sort $(SRC_LIB))" || { echo "check-sides: \
	    not every source is in exactly one library:"; \
	    echo "$(SIDE_SRC)" | tr ' ' '\n' | sort | uniq -d; \
	    echo "$(SIDE_SRC) $(SRC_LIB)" | tr ' ' '\n' | sort | uniq -u; \
	    exit 1; }
	@test $(words $(COMMON_SRC) $(SESSION_SRC) $(BACK_SRC) $(DAEMON_SRC) \
	    $(CLI_SRC)) = $(words $(SRC_LIB)) || { echo "check-sides: a \
	    source is in two libraries"; exit 1; }
	@echo "check-sides: the session side links without the back side, the back side without the session side"

build/tests/sides/session_only: tests/sides/session_only.c \
    build/libsekisho-session.a build/libsekisho-common.a
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -Isrc -o $@ $< build/libsekisho-session.a \
	    build/libsekisho-common.a $(LIBS)

build/tests/sides/back_only: tests/sides/back_only.c \
    build/libsekisho-back.a build/libsekisho-common.a
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -Isrc -o $@ $< build/libsekisho-back.a \
	    build/libsekisho-common.a $(LIBS)

cppcheck:
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
	    --inline-suppr --suppress=missingIncludeSystem -D_GNU_SOURCE -Isrc src tests/unit tests/sides fuzz

docs/config.md: build/sekisho
	build/sekisho config markdown > $@

# generated from the config table too (tests/e2e/test_install.py checks it)
man/sekisho.conf.5: build/sekisho
	build/sekisho config man > $@

# --- install -----------------------------------------------------------
# Never touches /etc: the example config goes with the documentation
# (the operator copies it to /etc/sekisho/sekisho.conf). The unit names
# PREFIX/sbin/sekisho.
UNITDIR	?= $(PREFIX)/lib/systemd/system
DOCDIR	:= $(PREFIX)/share/doc/sekisho
MANDIR	:= $(PREFIX)/share/man

install: build/sekisho
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(DOCDIR) \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(UNITDIR)
	install -m 0755 build/sekisho $(DESTDIR)$(PREFIX)/sbin/sekisho
	install -m 0644 man/sekisho.8 $(DESTDIR)$(MANDIR)/man8/sekisho.8
	install -m 0644 man/sekisho.conf.5 $(DESTDIR)$(MANDIR)/man5/sekisho.conf.5
	sed 's|@PREFIX@|$(PREFIX)|g' contrib/sekisho.service \
	    > $(DESTDIR)$(UNITDIR)/sekisho.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/sekisho.service
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	build/sekisho config defaults > $(DESTDIR)$(DOCDIR)/sekisho.conf.example
	chmod 0644 $(DESTDIR)$(DOCDIR)/sekisho.conf.example

clean:
	rm -rf build build-asan build-fuzz

.PHONY: all asan unit fuzz cppcheck check-sides install clean
-include $(REL_OBJ:.o=.d) $(ASAN_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d) build/src/main.d build-asan/src/main.d
