# lego - one build for everything: `make`, `make test`, `make bench`, `make bench-NAME`.
# Missing Debian packages are installed by mk/deps.sh (apt-get) before the first build.

CC      ?= gcc
BUILD   := build
V       ?= 0
# SANITIZE=1: everything built with AddressSanitizer and UndefinedBehaviorSanitizer
# into build-san; `make test SANITIZE=1` runs the suite but the Linux boots.
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD   := build-san
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
Q       := $(if $(filter 1,$(V)),,@)

DEB_PACKAGES := gcc make libc6-dev binutils pkg-config libjansson-dev liburing-dev clang-format \
                zlib1g-dev liblzma-dev liblz4-dev libzstd-dev cpio e2fsprogs \
                acpica-tools fio libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev \
                libvirt-dev libxml2-dev sqlite3 iproute2 libgnutls28-dev clang libclang-rt-14-dev \
                libseccomp-dev etcd-server libibverbs-dev librdmacm-dev ibverbs-providers

CFLAGS  := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-missing-field-initializers -D_GNU_SOURCE -pthread -MMD -MP

# Each component sees common/ and its own headers only, so that the build
# enforces the direction of dependencies: common/ including a component's
# header, or legoctl including the VMM's, does not compile. Tests see all.
INC_common  := -Icommon
INC_vmm     := -Icommon -Ivmm -Iguest/payloads
INC_memsrv  := -Icommon -Imemsrv
INC_storsrv := -Icommon -Istorsrv
INC_manager := -Icommon -Imanager -I/usr/include/libxml2
INC_agent   := -Icommon -Iagent
INC_cli     := -Icommon -Icli
INC_tests   := -Icommon -Ivmm -Imemsrv -Istorsrv -Imanager -Iagent -Icli -Iguest/payloads \
               -Itests/lib -I/usr/include/libxml2
MANAGER_LDLIBS := -lsqlite3 -lvirt -lxml2
LDLIBS  := -pthread -ljansson -luring -lz -llzma -llz4 -lzstd -lmicrohttpd -lcurl -lgnutls \
           -lseccomp -lrdmacm -libverbs
CFLAGS  += $(SAN_FLAGS)
LDLIBS  += $(SAN_FLAGS)

# Payloads: freestanding, static, linked at LP_LOAD_ADDR and flattened.
PAYLOAD_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -ffreestanding -fno-pic -fno-pie \
                  -fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none \
                  -mno-red-zone -mcmodel=small -fno-builtin -MMD -MP -Iguest/payloads/rt
PAYLOAD_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,--no-warn-rwx-segments -Wl,-z,noexecstack -Wl,-T,guest/payloads/rt/payload.ld

COMMON_SRCS := $(wildcard common/*.c)
VMM_SRCS    := $(filter-out vmm/main.c,$(wildcard vmm/*.c))
MEMSRV_SRCS := $(filter-out memsrv/main.c,$(wildcard memsrv/*.c))
STORSRV_SRCS := $(filter-out storsrv/main.c storsrv/volctl.c,$(wildcard storsrv/*.c))
MANAGER_SRCS := $(filter-out manager/main.c,$(wildcard manager/*.c))
AGENT_SRCS  := $(filter-out agent/main.c,$(wildcard agent/*.c))
CLI_SRCS    := $(wildcard cli/*.c)
RT_SRCS     := $(wildcard guest/payloads/rt/*.c) guest/payloads/rt/crt0.S
PAYLOADS    := $(basename $(notdir $(wildcard guest/payloads/*.c)))
TEST_LIB    := $(wildcard tests/lib/*.c)
TESTS       := $(basename $(wildcard tests/unit/*.c tests/vmm/*.c tests/memsrv/*.c tests/storsrv/*.c tests/manager/*.c tests/rdma/*.c tests/linux/*.c))
BENCHES     := $(basename $(wildcard tests/bench/bench_*.c))

COMMON_LIB  := $(BUILD)/lib/libcommon.a
VMM_LIB     := $(BUILD)/lib/libvmm.a
MEMSRV_LIB  := $(BUILD)/lib/libmemsrv.a
STORSRV_LIB := $(BUILD)/lib/libstorsrv.a
MANAGER_LIB := $(BUILD)/lib/libmanager.a
AGENT_LIB   := $(BUILD)/lib/libagent.a
BINS        := $(BUILD)/bin/lego-vmm $(BUILD)/bin/lego-memsrv $(BUILD)/bin/lego-storsrv \
               $(BUILD)/bin/lego-manager $(BUILD)/bin/lego-agent $(BUILD)/bin/legoctl
PAYLOAD_BINS := $(PAYLOADS:%=$(BUILD)/guest/payloads/%.bin)
TEST_BINS   := $(TESTS:%=$(BUILD)/%)
ifeq ($(SANITIZE),1)
TEST_BINS   := $(filter-out $(BUILD)/tests/linux/%,$(TEST_BINS))
endif
UNIT_BINS   := $(filter $(BUILD)/tests/unit/%,$(TEST_BINS))
BENCH_BINS  := $(BENCHES:%=$(BUILD)/%)
DEPS_STAMP  := $(BUILD)/.deps-installed

.PHONY: all deps guest test check bench demo format format-check clean fuzz test-rdma
all: $(BINS) $(PAYLOAD_BINS)

# Order-only: installing packages never makes objects stale.
$(DEPS_STAMP): mk/deps.sh Makefile
	$(Q)mkdir -p $(BUILD)
	$(Q)mk/deps.sh $(DEB_PACKAGES)
	$(Q)touch $@
deps: $(DEPS_STAMP)

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(INC_$(firstword $(subst /, ,$*))) -c -o $@ $<

$(COMMON_LIB): $(COMMON_SRCS:%.c=$(BUILD)/%.o)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^
$(VMM_LIB): $(VMM_SRCS:%.c=$(BUILD)/%.o)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(MEMSRV_LIB): $(MEMSRV_SRCS:%.c=$(BUILD)/%.o)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/bin/lego-vmm: $(BUILD)/vmm/main.o $(VMM_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LDLIBS)
$(BUILD)/bin/lego-memsrv: $(BUILD)/memsrv/main.o $(MEMSRV_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LDLIBS)
$(STORSRV_LIB): $(STORSRV_SRCS:%.c=$(BUILD)/%.o)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^
$(BUILD)/bin/lego-storsrv: $(BUILD)/storsrv/main.o $(BUILD)/storsrv/volctl.o $(STORSRV_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LDLIBS)

$(MANAGER_LIB): $(MANAGER_SRCS:%.c=$(BUILD)/%.o)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^
$(BUILD)/bin/lego-manager: $(BUILD)/manager/main.o $(MANAGER_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LDLIBS) $(MANAGER_LDLIBS)
$(AGENT_LIB): $(AGENT_SRCS:%.c=$(BUILD)/%.o)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^
$(BUILD)/bin/lego-agent: $(BUILD)/agent/main.o $(AGENT_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LDLIBS)
$(BUILD)/bin/legoctl: $(wildcard cli/*.c) $(CLI_SRCS:%.c=$(BUILD)/%.o) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

# --- guest payloads ---
$(BUILD)/payload-obj/%.o: guest/payloads/%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (payload)"
	$(Q)$(CC) $(PAYLOAD_CFLAGS) -c -o $@ $<
$(BUILD)/payload-obj/rt/%.o: guest/payloads/rt/%.S | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(PAYLOAD_CFLAGS) -c -o $@ $<
RT_OBJS := $(patsubst guest/payloads/%,$(BUILD)/payload-obj/%.o,$(basename $(RT_SRCS)))
$(BUILD)/guest/payloads/%.elf: $(BUILD)/payload-obj/%.o $(RT_OBJS) guest/payloads/rt/payload.ld
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(PAYLOAD_CFLAGS) $(PAYLOAD_LDFLAGS) -o $@ $(RT_OBJS) $< -lgcc
$(BUILD)/guest/payloads/%.bin: $(BUILD)/guest/payloads/%.elf
	@echo "  PAYLOAD $@"
	$(Q)objcopy -O binary $< $@

# --- the stock Linux boot kit: Debian's kernel, busybox and modules, as shipped ---
GUEST_KIT := $(BUILD)/guest/kit.txt
guest: $(GUEST_KIT)
GUEST_VERIFY := $(BUILD)/guest/lego-verify
$(GUEST_VERIFY): guest/verify/lego-verify.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (static, for the guest)"
	$(Q)$(CC) -static -O2 -Wall -Wextra -Werror -o $@ $<
$(GUEST_KIT): guest/kit/mkkit.sh guest/kit/init guest/kit/power-button $(GUEST_VERIFY) | $(DEPS_STAMP)
	$(Q)guest/kit/mkkit.sh $(BUILD)/guest $(GUEST_VERIFY)

# --- tests and benchmarks ---
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/lib/libtest.a $(VMM_LIB) $(MEMSRV_LIB) $(STORSRV_LIB) $(MANAGER_LIB) $(AGENT_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -o $@ $^ $(LDLIBS) $(MANAGER_LDLIBS) -lm
$(BUILD)/lib/libtest.a: $(TEST_LIB:%.c=$(BUILD)/%.o)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# --- fuzzing: clang's libFuzzer, with ASan and UBSan, on the real parsing functions ---
# Each harness tests/fuzz/fuzz_NAME.c is linked with the components' sources
# built again by clang; its seeds are tests/fuzz/corpus/fuzz_NAME/.
FUZZ_S      ?= 60
FUZZ_CFLAGS := $(filter-out -Werror -O2 $(SAN_FLAGS),$(CFLAGS)) -O1 \
               -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
               -Wno-gnu-variable-sized-type-not-at-end
FUZZ_LIBS   := $(filter-out $(SAN_FLAGS),$(LDLIBS)) $(MANAGER_LDLIBS) -fsanitize=fuzzer,address,undefined
FUZZ_SRCS   := $(COMMON_SRCS) $(MEMSRV_SRCS) $(STORSRV_SRCS) $(VMM_SRCS) $(MANAGER_SRCS)
FUZZERS     := $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS   := $(FUZZERS:%=$(BUILD)/fuzz/%)
$(BUILD)/fuzz/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (fuzz)"
	$(Q)clang $(FUZZ_CFLAGS) $(INC_tests) -c -o $@ $<
$(BUILD)/fuzz/%: $(BUILD)/fuzz/obj/tests/fuzz/%.o $(FUZZ_SRCS:%.c=$(BUILD)/fuzz/obj/%.o)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)clang -o $@ $^ $(FUZZ_LIBS)
# make fuzz [FUZZ_S=600]: each harness for FUZZ_S seconds, from its seeds and what
# earlier runs found (build/fuzz/corpus/NAME); a crash leaves its input in build/fuzz/.
fuzz: $(FUZZ_BINS)
	$(Q)for f in $(FUZZERS); do mkdir -p $(BUILD)/fuzz/corpus/$$f; \
	  echo "== $$f ($(FUZZ_S) s)"; \
	  $(BUILD)/fuzz/$$f -max_total_time=$(FUZZ_S) -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/$$f- $(BUILD)/fuzz/corpus/$$f tests/fuzz/corpus/$$f \
	    2>&1 | grep -E "^(stat::|#[0-9]+ +DONE|==[0-9]+==|SUMMARY|INFO: Loaded)" || exit 1; done

# The benchmarks are built (not run), so that a change cannot leave them broken.
test: all $(GUEST_KIT) $(TEST_BINS) $(BENCH_BINS) $(FUZZ_BINS)
	$(Q)tests/run.sh $(BUILD) $(TEST_BINS)

# The fast loop: the unit tests (no boot kit, no /dev/kvm), in seconds.
check: $(UNIT_BINS)
	$(Q)tests/run.sh $(BUILD) $(UNIT_BINS)

# Each prints BENCH lines; tests/bench/run.sh then prints the table of goals
# (tests/bench/goals.txt) of the benchmarks that ran. gnuplot draws bench-app's table.
BENCH_STAMP := $(BUILD)/.bench-deps-installed
$(BENCH_STAMP): mk/deps.sh | $(DEPS_STAMP)
	$(Q)mk/deps.sh gnuplot-nox perftest
	$(Q)touch $@
bench: all $(GUEST_KIT) $(BENCH_BINS) | $(BENCH_STAMP)
	$(Q)tests/bench/run.sh $(BUILD) $(BENCH_BINS)
bench-%: all $(GUEST_KIT) $(BUILD)/tests/bench/bench_% | $(BENCH_STAMP)
	$(Q)tests/bench/run.sh $(BUILD) $(BUILD)/tests/bench/bench_$*

# The RDMA tests over real verbs: in the nested guest (tests/nested/run.sh), on
# soft-RoCE (rdma_rxe), where this host has no RDMA device. Prints how long it took.
test-rdma: all $(GUEST_KIT) $(BUILD)/tests/rdma/test_rdma
	$(Q)mk/deps.sh rdma-core perftest
	$(Q)tests/nested/run.sh 'tests/rdma/in_guest.sh $(BUILD) tests/run.sh $(BUILD) $(BUILD)/tests/rdma/test_rdma'

demo: all $(GUEST_KIT)
	$(Q)examples/demo.sh $(BUILD)

# --- style ---
FORMAT_FILES = $(shell git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null || find common vmm guest tests -name '*.[ch]')
format: | $(DEPS_STAMP)
	$(Q)clang-format -i $(FORMAT_FILES)
format-check: | $(DEPS_STAMP)
	$(Q)clang-format --dry-run -Werror $(FORMAT_FILES) && echo "format-check: ok"

clean:
	rm -rf $(BUILD)

.SECONDARY:
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
