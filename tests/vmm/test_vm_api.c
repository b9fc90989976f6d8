/*
 * test_vm_api.c - the VMM as a library, the way the KVM selftests drive KVM:
 * create a VM, load a guest program, run it, and check what it reported
 * through the payload device's callback.
 */
#include <pthread.h>
#include <string.h>

#include "log.h"
#include "payload.h"
#include "pvm_compat.h"
#include "test.h"

struct seen {
	pthread_mutex_t lock;
	uint64_t mem_size[4];
	int reports;
};

static void on_report(void *opaque, int vcpu, const char *key, uint64_t value)
{
	struct seen *s = opaque;

	pthread_mutex_lock(&s->lock);
	s->reports++;
	if (!strcmp(key, "mem_size") && vcpu < 4)
		s->mem_size[vcpu] = value;
	pthread_mutex_unlock(&s->lock);
}

TEST(vm_api_runs_a_payload_on_four_vcpus)
{
	struct vm vm;
	struct payload_dev dev;
	struct seen seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct vm_config cfg = {.mem_size = 32 << 20,
				.nr_vcpus = 4,
				.strict_io = true,
				.quirks = pvm_compat_quirks()};
	FILE *devnull = fopen("/dev/null", "w");

	test_require_kvm();
	log_init("test", LOG_ERR);
	ASSERT_EQ(vm_create(&vm, &cfg), 0);
	ASSERT_EQ(payload_dev_init(&dev, &vm, devnull, on_report, &seen), 0);
	ASSERT_EQ(payload_load(&vm, test_path("guest/payloads/hello.bin"), "status=5"), 0);
	ASSERT_EQ(vm_start(&vm), 0);
	ASSERT_EQ(vm_wait(&vm), 5);
	ASSERT_EQ(seen.reports, 12);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(seen.mem_size[i], 32 << 20);
	ASSERT(vm.first_guest_ns >= vm.created_ns);
	payload_dev_exit(&dev);
	vm_destroy(&vm);
	fclose(devnull);
}

TEST(vm_api_refuses_impossible_machines)
{
	struct vm vm;
	struct vm_config too_many = {.mem_size = 32 << 20, .nr_vcpus = 1000};
	struct vm_config too_small = {.mem_size = 1 << 20, .nr_vcpus = 1};

	test_require_kvm();
	log_init("test", LOG_ERR);
	ASSERT(vm_create(&vm, &too_many) < 0);
	ASSERT(vm_create(&vm, &too_small) < 0);
}
