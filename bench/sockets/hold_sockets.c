/*
 * Holds many TCP connections open on loopback, for the agent's memory bench.
 *
 *   hold_sockets PORT N    listens on 127.0.0.1:PORT, forks a client that opens N
 *                          connections to it, accepts all N, and holds both ends
 *                          (2N sockets, N fds in each process); prints "held N"
 *                          once every connection is accepted; stopped by a signal
 *                          (the client child dies with it: PR_SET_PDEATHSIG)
 *
 * A process's fds are bounded by its RLIMIT_NOFILE (raised to the hard limit here),
 * so the bench runs as many pairs as it needs, each on a port of its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s PORT N\n", argv[0]);
		return 64;
	}
	int port = atoi(argv[1]);
	long n = atol(argv[2]);
	struct rlimit r;
	getrlimit(RLIMIT_NOFILE, &r);
	r.rlim_cur = r.rlim_max;
	setrlimit(RLIMIT_NOFILE, &r);
	if ((rlim_t)n + 16 > r.rlim_cur) {
		fprintf(stderr, "N %ld is over the fd limit %ld\n", n, (long)r.rlim_cur);
		return 64;
	}
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4096)) {
		perror("bind/listen");
		return 1;
	}
	pid_t child = fork();
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(lfd);
		for (long i = 0; i < n; i++) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
				fprintf(stderr, "connection %ld: %s\n", i, strerror(errno));
				_exit(1);
			}
		}
		pause();
		_exit(0);
	}
	for (long i = 0; i < n; i++) {
		if (accept(lfd, NULL, NULL) < 0) {
			perror("accept");
			return 1;
		}
	}
	printf("held %ld\n", n);
	fflush(stdout);
	pause();
	return 0;
}
