// SPDX-License-Identifier: Apache-2.0
/* connect() rate for the socket LB benchmark.
 *   connect_rate server PORT              accepts and closes connections until killed
 *   connect_rate client ADDRESS PORT MS   connects for MS milliseconds; prints connects per second
 * The client closes with an RST (SO_LINGER 0), so no TIME_WAIT exhausts its ports. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
	if (argc == 3 && !strcmp(argv[1], "server")) {
		int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
		struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) || listen(s, 4096))
			return perror("listen"), 1;
		printf("ready\n");
		fflush(stdout);
		for (;;) {
			int c = accept(s, NULL, NULL);
			if (c >= 0)
				close(c);
		}
	}
	if (argc != 5 || strcmp(argv[1], "client"))
		return fprintf(stderr, "usage: connect_rate server PORT | client ADDRESS PORT MS\n"), 2;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
	inet_pton(AF_INET, argv[2], &addr.sin_addr);
	struct linger abort_close = { .l_onoff = 1, .l_linger = 0 };
	double end = now() + atoi(argv[4]) / 1000.0, start = now();
	long connects = 0, failures = 0;
	while (now() < end) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(c, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			connects++;
		else
			failures++;
		setsockopt(c, SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close));
		close(c);
	}
	printf("%.0f %ld\n", connects / (now() - start), failures);
	return 0;
}
