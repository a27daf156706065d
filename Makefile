# sekisho build. Targets:
#   make            release build: build/sekisho (-O2, warnings are errors)
#   make asan       test build with AddressSanitizer + UBSan: build-asan/sekisho
#   make unit       build and run the C unit tests (ASan/UBSan build)
#   make fuzz       build the libFuzzer targets (clang): build-fuzz/fuzz_*
#   make cppcheck   static analysis, no warnings allowed
#   make install    PREFIX=/usr/local DESTDIR=
# Sources are found by glob: a new src/<part>/<file>.c needs no edit here.

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
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))

# --- release -----------------------------------------------------------
REL_CFLAGS := $(BASEFLAGS) -O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2
REL_OBJ	:= $(SRC_LIB:%.c=build/%.o)

all: build/sekisho build/sekisho-loadgen

build/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -c $< -o $@

build/libsekisho.a: $(REL_OBJ)
	ar rcs $@ $^

build/sekisho: build/src/main.o build/libsekisho.a
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LIBS)

# the benchmark's load generator (bench/README.md): stands alone, no src/
LOADGEN_LIBS := $(shell pkg-config --libs libevent_openssl libevent openssl) -lpthread
build/sekisho-loadgen: bench/loadgen.c
	@mkdir -p build
	$(CC) $(REL_CFLAGS) -o $@ $< $(LOADGEN_LIBS)

# --- ASan + UBSan test build -------------------------------------------
SAN	:= -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# SEKISHO_TEST_HOOKS: test-only entry points (server.c's SIGUSR2 channel
# for the hostile-session test); never in the release build.
ASAN_CFLAGS := $(BASEFLAGS) -O1 -g $(SAN) -DSEKISHO_TEST_HOOKS
ASAN_OBJ := $(SRC_LIB:%.c=build-asan/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build-asan/tests/%)

asan: build-asan/sekisho $(UNIT_BIN)

build-asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -c $< -o $@

build-asan/libsekisho.a: $(ASAN_OBJ)
	ar rcs $@ $^

build-asan/sekisho: build-asan/src/main.o build-asan/libsekisho.a
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LIBS)

build-asan/tests/%: tests/unit/%.c tests/unit/unit.h build-asan/libsekisho.a
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -Isrc -o $@ $< build-asan/libsekisho.a $(LIBS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# --- libFuzzer targets (clang) -----------------------------------------
FUZZ_CC	?= clang
FUZZ_CFLAGS := -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer-no-link,address,undefined -Wall -Wextra -Werror $(PQCFLAGS)
FUZZ_OBJ := $(SRC_LIB:%.c=build-fuzz/%.o)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)

fuzz: $(FUZZ_BIN)

build-fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

build-fuzz/libsekisho.a: $(FUZZ_OBJ)
	ar rcs $@ $^

build-fuzz/fuzz_%: fuzz/fuzz_%.c build-fuzz/libsekisho.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Isrc -o $@ $< build-fuzz/libsekisho.a $(LIBS)

# --- checks ------------------------------------------------------------
cppcheck:
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
	    --inline-suppr --suppress=missingIncludeSystem -D_GNU_SOURCE -Isrc src tests/unit fuzz

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

.PHONY: all asan unit fuzz cppcheck install clean
-include $(REL_OBJ:.o=.d) $(ASAN_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d) build/src/main.d build-asan/src/main.d
