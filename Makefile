# Thin wrapper over CMake/CTest.  `make run` and `make test` work from a
# fresh Debian machine: they install what is missing first (apt).
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
BUILD       ?= build/release
TEST_BUILD  ?= build/asan
CMAKE_FLAGS ?=

.PHONY: all deps build run test tsan valgrind evp fuzz report bench clean

all: build

deps:
	@./scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	      -DMODHOST_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

# The demo: the bundled plugins through the modhost command.
run: build
	@./scripts/demo $(BUILD)

# Every test, built with AddressSanitizer + UndefinedBehaviorSanitizer and
# warnings as errors.
test: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug \
	      -DMODHOST_SANITIZE=ON -DMODHOST_WERROR=ON $(CMAKE_FLAGS)
	cmake --build $(TEST_BUILD) -j$(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j$(JOBS)

# The concurrency tests under ThreadSanitizer: zero reports, or it fails.
TSAN_BUILD  ?= build/tsan
TSAN_TESTS  ?= ^(thread|stress|intern)\.|thread
tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMODHOST_TSAN=ON \
	      -DMODHOST_WERROR=ON $(CMAKE_FLAGS)
	cmake --build $(TSAN_BUILD) -j$(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	      ctest --output-on-failure -j$(JOBS) -R '$(TSAN_TESTS)'

# The core tests under valgrind memcheck (a plain build: valgrind and the
# sanitizers do not mix): any error or definite leak fails.
VG_BUILD    ?= build/valgrind
VG_TESTS    ?= api names intern import path fs meta deps finders
valgrind: deps
	cmake -S . -B $(VG_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMODHOST_WERROR=ON \
	      $(CMAKE_FLAGS)
	cmake --build $(VG_BUILD) -j$(JOBS)
	./scripts/valgrind-tests $(VG_BUILD) $(VG_TESTS)

# SHA-256 through EVP, as with an OpenSSL whose headers drop the API that
# 3.0 deprecated (host/fileio.c uses that API where it is declared): the
# library built that way, and the tests that check its digests against
# sha256sum.
EVP_BUILD   ?= build/evp
EVP_FLAGS   ?= -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED
evp: deps
	cmake -S . -B $(EVP_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMODHOST_WERROR=ON \
	      -DCMAKE_C_FLAGS="$(EVP_FLAGS)" $(CMAKE_FLAGS)
	cmake --build $(EVP_BUILD) -j$(JOBS) --target test_http test_memload
	@if nm -D --undefined-only $(EVP_BUILD)/lib/libmodhost.so | \
	    grep -q ' SHA256_'; then \
	    echo "evp: the library still calls SHA256_*"; exit 1; fi
	cd $(EVP_BUILD) && ctest --output-on-failure -j$(JOBS) -R '^(http|memload)\.'

# docs/reliability.md's tables, from the last make test / tsan / valgrind.
report:
	./scripts/reliability-report --into docs/reliability.md \
	      $(TEST_BUILD) $(TSAN_BUILD) $(VG_BUILD)

# libFuzzer runs of every fuzz target (clang), FUZZ_SECONDS each.
fuzz: deps
	./scripts/fuzz

# modhost against GLib, libltdl, Lua and CPython (bench/): prints one table
# per area and writes them to docs/performance.md.  BENCH_ARGS: e.g.
# "--quick" or area names ("registry intern").
BENCH_BUILD ?= build/bench
BENCH_ARGS  ?=
bench:
	./scripts/bench $(BENCH_BUILD) $(BENCH_ARGS)

clean:
	rm -rf build
