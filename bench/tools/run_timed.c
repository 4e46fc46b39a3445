// SPDX-License-Identifier: Apache-2.0
/* Runs one command and reports how long it took and its peak RSS, for the CNI benchmark.
 *   run_timed COMMAND [ARGS...]   -> "MICROSECONDS PEAK_RSS_KIB EXIT_STATUS" on stderr
 * stdin and stdout pass to the command; its stderr is discarded.
 *
 * Why not time it from Python: a child's peak RSS (ru_maxrss) starts from the memory of the
 * process that forked it, so a child of a 15 MB interpreter never reports less than 15 MB. Forked
 * from this small process, the figure is the command's own. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: run_timed COMMAND [ARGS...]\n");
		return 2;
	}
	int report = dup(STDERR_FILENO);
	long long start = now_us();
	pid_t child = fork();

	if (child == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, STDERR_FILENO);
		execvp(argv[1], argv + 1);
		_exit(127);
	}
	int status = 0;
	struct rusage usage;

	if (child < 0 || wait4(child, &status, 0, &usage) < 0) {
		perror("run_timed");
		return 2;
	}
	long long elapsed = now_us() - start;

	dprintf(report, "%lld %ld %d\n", elapsed, usage.ru_maxrss, WIFEXITED(status) ? WEXITSTATUS(status) : 128);
	return 0;
}
