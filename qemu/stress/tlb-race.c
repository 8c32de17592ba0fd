// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * tlb-race.c - no syslets: threads that sleep and wake on every CPU while
 * other processes spin, and the main thread forks and then writes to its
 * memory: each write is a copy-on-write fault whose TLB flush reads
 * mm_cpumask() as other CPUs switch between the mm and the spinners'.  On a KCSAN kernel this gives the report
 * "data-race in smp_call_function_many_cond" that syslet-fuzz sees, on
 * the unpatched kernel as well (fuzz/kcsan-known.txt).  Run by
 * qemu/stress/stress.sh.
 *
 * Usage: tlb-race SECONDS
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGES	64
#define THREADS	6
#define SPINNERS	3

static volatile int stop;

static void *napper(void *arg)
{
	struct timespec ts = { 0, 20000 };

	while (!stop)
		nanosleep(&ts, NULL);
	return arg;
}

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	time_t end = time(NULL) + (argc > 1 ? atoi(argv[1]) : 20);
	pthread_t t[THREADS];
	char *mem;
	int i;

	mem = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	memset(mem, 1, PAGES * page);
	for (i = 0; i < SPINNERS; i++) {
		if (fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;)
				sched_yield();
		}
	}
	for (i = 0; i < THREADS; i++)
		if (pthread_create(&t[i], NULL, napper, NULL))
			return 1;
	while (time(NULL) < end) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		if (pid < 0)
			return 1;
		/* Copy-on-write faults while the child may still live */
		for (i = 0; i < PAGES; i++)
			mem[i * page]++;
		waitpid(pid, NULL, 0);
	}
	stop = 1;
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	return 0;
}
