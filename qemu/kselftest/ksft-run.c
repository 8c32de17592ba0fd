// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * ksft-run - run one kernel selftest program in the guest the way the
 * kselftest runner would, and print one result line for the host's
 * comparison (qemu/kselftest/compare.sh).
 *
 * Usage: ksft-run TIMEOUT NAME DIR PROGRAM [ARGS...]
 *
 * Runs PROGRAM in DIR (the selftests open files beside them) in a process
 * group of its own, kills the group after TIMEOUT seconds (0 = none) and
 * when the program ends, then prints
 *   # ksft-run: NAME: pass|skip|fail (exit N | signal N | timeout Ns) in S.SSs
 * kselftest's rule: exit 0 passes, exit 4 (KSFT_SKIP) skips, anything else
 * fails. Exits 0, 4 or 1 accordingly.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *name, *dir, *res;
	double start, limit;
	char why[64];
	int status, code;
	pid_t pid, r;

	if (argc < 5) {
		fprintf(stderr, "usage: ksft-run TIMEOUT NAME DIR PROGRAM [ARGS...]\n");
		return 2;
	}
	limit = atof(argv[1]);
	name = argv[2];
	dir = argv[3];
	start = now();
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("# ksft-run: %s: fail (fork: %s) in 0.00s\n", name, strerror(errno));
		return 1;
	}
	if (pid == 0) {
		setpgid(0, 0);
		if (chdir(dir)) {
			printf("ksft-run: chdir %s: %s\n", dir, strerror(errno));
			_exit(127);
		}
		execv(argv[4], argv + 4);
		printf("ksft-run: exec %s/%s: %s\n", dir, argv[4], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			status = -1;
			break;
		}
		if (limit > 0 && now() - start > limit) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			kill(-pid, SIGKILL);
			printf("# ksft-run: %s: fail (timeout %gs) in %.2fs\n", name, limit,
			       now() - start);
			return 1;
		}
		usleep(20000);
	}
	/* Whatever the program left behind in its group goes with it. */
	kill(-pid, SIGKILL);
	if (status == -1) {
		snprintf(why, sizeof(why), "waitpid: %s", strerror(errno));
		res = "fail";
		code = 1;
	} else if (WIFEXITED(status)) {
		snprintf(why, sizeof(why), "exit %d", WEXITSTATUS(status));
		code = WEXITSTATUS(status) == 0 ? 0 : WEXITSTATUS(status) == 4 ? 4 : 1;
		res = code == 0 ? "pass" : code == 4 ? "skip" : "fail";
	} else {
		snprintf(why, sizeof(why), "signal %d", WTERMSIG(status));
		res = "fail";
		code = 1;
	}
	printf("# ksft-run: %s: %s (%s) in %.2fs\n", name, res, why, now() - start);
	return code;
}
