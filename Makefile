# Kite — top-level entry points. CMake does the building; this file installs
# what is missing, picks build directories and runs the test tiers.
#
#   make demo    install deps, build, run the local demo
#   make test    install deps, build with ASan+UBSan, run unit, e2e and fuzz-smoke tests
#   make build   optimised build in build/ (binaries in build/bin/)
#   make bench   compare kite-proxy with HAProxy and nginx (see bench/README.md)
#   make fuzz    run every libFuzzer target for FUZZ_SECONDS each

BUILD      ?= build
SAN_BUILD  ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 20
PYTEST     ?= /usr/bin/python3 -m pytest

# Every Debian package anything in this repository uses: build, tests,
# fuzzing, demo and benchmarks. `make deps` installs the missing ones.
DEB_PACKAGES := \
	build-essential cmake pkg-config clang clang-format libclang-rt-14-dev \
	libuv1-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev \
	libfyaml-dev \
	python3 python3-pytest curl procps iproute2 valgrind \
	wrk hey haproxy nginx-light

.PHONY: all deps build build-asan test unit e2e fuzz-smoke fuzz demo bench format format-check clean

all: build

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "deps: all $(words $(DEB_PACKAGES)) packages present"; \
	fi

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

$(SAN_BUILD)/Makefile:
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKITE_SANITIZE=ON

build-asan: deps $(SAN_BUILD)/Makefile
	cmake --build $(SAN_BUILD) -j $(JOBS)

$(FUZZ_BUILD)/Makefile:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKITE_FUZZ=ON

# Sanitizer settings for every test tier: fail on the first error, report leaks.
export ASAN_OPTIONS ?= abort_on_error=0:detect_leaks=1:halt_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

# The sanitizer build runs the unit and end-to-end tests; the optimised build
# runs one session under valgrind (test_memcheck.py) and is what `make demo`
# and `make bench` use.
test: build-asan build
	@$(MAKE) --no-print-directory format-check unit e2e fuzz-smoke

unit:
	cd $(SAN_BUILD) && ctest --output-on-failure -j $(JOBS)

e2e:
	KITE_BIN_DIR=$(CURDIR)/$(SAN_BUILD)/bin KITE_MEMCHECK_BIN_DIR=$(CURDIR)/$(BUILD)/bin \
		$(PYTEST) -q -p no:cacheprovider tests/e2e

fuzz-smoke: $(FUZZ_BUILD)/Makefile
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@FUZZ_SECONDS=5 FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run.sh

fuzz: deps $(FUZZ_BUILD)/Makefile
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run.sh

demo: build
	examples/demo.sh

bench: build
	bench/run.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# Fails when a C file differs from what .clang-format makes of it.
format-check:
	@bad=""; for f in $$(find src tests -name '*.[ch]'); do \
		clang-format "$$f" | cmp -s - "$$f" || bad="$$bad $$f"; \
	done; \
	if [ -n "$$bad" ]; then echo "format-check: run 'make format' for:$$bad"; exit 1; fi; \
	echo "format-check: ok"

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD)
