/*
 * test_failover.c - a guest's memory replicated on two lego-memsrv
 * processes, its primary killed (kill -9) at a random moment while a payload
 * on 2 vCPUs writes and verifies 64 MiB through an 8 MiB ExCache: twenty
 * rounds, and every round the guest finishes with zero mismatches, on the
 * secondary. KVM.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "util.h"

static json_t *excache_line(const char *err)
{
	const char *p = strstr(err, "EXCACHE ");

	ASSERT(p, "no EXCACHE line in:\n%s", err);
	return json_loadb(p + 8, strcspn(p + 8, "\n"), 0, NULL);
}

TEST_TIMEOUT(twenty_primary_kills_under_a_verifying_guest_lose_nothing, 1200)
{
	int failed_over = 0;
	double pause_max_ms = 0;

	test_require_kvm();
	for (int round = 0; round < 20; round++) {
		char a[64], b[64], vmm[600], payload[600];
		char *argv[] = {vmm,	    "--payload", payload,
				"--memory", "96M",	 "--cpus",
				"2",	    "--excache", "8M",
				"--memsrv", a,		 "--memsrv-secondary",
				b,	    "--epoch",	 "1",
				"--stats",  "--args",	 "op=verify mode=rand size=64M passes=2",
				NULL};
		struct proc_result r;
		pid_t pa, pb, pid;
		uint64_t mism = 1;
		json_t *xc, *route;
		bool killed_while_running;

		snprintf(vmm, sizeof(vmm), "%s", test_path("bin/lego-vmm"));
		snprintf(payload, sizeof(payload), "%s", test_path("guest/payloads/touch.bin"));
		pa = memsrv_spawn("256M", a);
		pb = memsrv_spawn("256M", b);
		pid = proc_spawn(argv);
		usleep(300000 + (useconds_t)(now_ns() % 2000000));
		killed_while_running = proc_running(pid);
		kill(pa, SIGKILL);
		waitpid(pa, NULL, 0);
		proc_collect(pid, 300, &r);
		ASSERT(!r.timed_out, "round %d: the guest did not finish after the failover",
		       round);
		ASSERT(r.status == 0, "round %d: lego-vmm exited %d:\n%s", round, r.status, r.err);
		for (int v = 0; v < 2; v++) {
			ASSERT(report_get(r.out, v, "mismatches", &mism), "no mismatches report");
			ASSERT(mism == 0, "round %d: vCPU %d found %llu mismatches", round, v,
			       (unsigned long long)mism);
		}
		xc = excache_line(r.err);
		route = json_object_get(xc, "route");
		ASSERT(route, "no route in the EXCACHE line");
		if (killed_while_running) {
			ASSERT(json_integer_value(json_object_get(route, "failovers")) == 1,
			       "round %d: no failover recorded: %s", round,
			       json_string_value(json_object_get(route, "last_event")));
			double ms =
				json_integer_value(json_object_get(route, "pause_max_ns")) / 1e6;

			pause_max_ms = ms > pause_max_ms ? ms : pause_max_ms;
			failed_over++;
		}
		json_decref(xc);
		proc_result_free(&r);
		kill(pb, SIGTERM);
		waitpid(pb, NULL, 0);
	}
	/* The kill lands at a random moment: most rounds must have had the guest running. */
	ASSERT(failed_over >= 15, "only %d of 20 kills landed while the guest ran", failed_over);
	printf("  %d rounds failed over under the running guest, 0 mismatches; longest pause "
	       "%.1f ms\n",
	       failed_over, pause_max_ms);
}
