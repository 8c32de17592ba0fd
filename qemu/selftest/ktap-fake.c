// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * ktap-fake: a stand-in guest test program for checking the harness
 * itself (qemu/selftest.sh). It prints kselftest-style KTAP and behaves
 * as its first argument says:
 *
 *   pass   two passing results, exit 0
 *   fail   one pass, one "not ok", exit 1
 *   skip   one pass, one "# SKIP", exit 0
 *   short  plan 1..3 but only one result, exit 0
 *   hang   one result, then sleeps forever (for the timeout)
 *   crash  one result, then SIGSEGV
 *   echo   prints its remaining arguments and the cwd, exit 0
 *   exit N prints nothing, exits with status N
 *
 * Build: gcc -static -O2 -o ktap-fake ktap-fake.c
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "pass";
	char cwd[256];

	if (!strcmp(mode, "exit"))
		return argc > 2 ? atoi(argv[2]) : 0;
	if (!strcmp(mode, "echo")) {
		for (int i = 2; i < argc; i++)
			printf("arg[%d]=<%s>\n", i - 2, argv[i]);
		printf("cwd=%s\n", getcwd(cwd, sizeof(cwd)) ? cwd : "?");
		return 0;
	}
	printf("TAP version 13\n");
	printf("1..%d\n", !strcmp(mode, "short") ? 3 : 2);
	printf("# Starting tests (%s)\n", mode);
	printf("ok 1 fake.first\n");
	fflush(stdout);
	if (!strcmp(mode, "hang")) {
		fprintf(stderr, "# hanging now\n");
		for (;;)
			pause();
	}
	if (!strcmp(mode, "crash"))
		raise(SIGSEGV);
	if (!strcmp(mode, "fail")) {
		fprintf(stderr, "# fake.second: expected 1, got 2\n");
		printf("not ok 2 fake.second\n");
		printf("# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0 error:0\n");
		return 1;
	}
	if (!strcmp(mode, "skip")) {
		printf("ok 2 fake.second # SKIP not supported here\n");
		return 0;
	}
	if (!strcmp(mode, "pass"))
		printf("ok 2 fake.second\n");
	printf("# Totals: done\n");
	return 0;
}
