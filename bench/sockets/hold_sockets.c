/*
 * Holds many TCP connections open on loopback, for the agent's memory bench:
 *   hold_sockets server PORT0 NPORTS        listens on NPORTS ports from PORT0, accepts
 *                                           and holds every connection; prints "accepted N"
 *                                           every 50,000
 *   hold_sockets client PORT0 NPORTS N      opens N connections round-robin over the
 *                                           ports (each destination has its own ephemeral
 *                                           range) and holds them; prints "connected N"
 * Both raise RLIMIT_NOFILE to fs.nr_open first. Stopped by a signal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static void raise_nofile(void)
{
	long nr = 1048576;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");
	if (f) {
		if (fscanf(f, "%ld", &nr) != 1)
			nr = 1048576;
		fclose(f);
	}
	struct rlimit r = { (rlim_t)nr, (rlim_t)nr };
	if (setrlimit(RLIMIT_NOFILE, &r))
		perror("setrlimit");
}

static struct sockaddr_in addr(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s server PORT0 NPORTS | client PORT0 NPORTS N\n", argv[0]);
		return 64;
	}
	raise_nofile();
	int port0 = atoi(argv[2]), nports = atoi(argv[3]);
	if (nports < 1 || nports > 256)
		return 64;
	if (strcmp(argv[1], "server") == 0) {
		struct pollfd p[256];
		for (int i = 0; i < nports; i++) {
			int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
			struct sockaddr_in a = addr(port0 + i);
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096)) {
				perror("bind/listen");
				return 1;
			}
			p[i].fd = fd;
			p[i].events = POLLIN;
		}
		printf("listening\n");
		fflush(stdout);
		long n = 0;
		for (;;) {
			if (poll(p, nports, -1) < 0 && errno != EINTR)
				return 1;
			for (int i = 0; i < nports; i++) {
				if (!(p[i].revents & POLLIN))
					continue;
				for (int k = 0; k < 64; k++) {
					int c = accept4(p[i].fd, NULL, NULL, SOCK_NONBLOCK);
					if (c < 0)
						break;
					if (++n % 50000 == 0) {
						printf("accepted %ld\n", n);
						fflush(stdout);
					}
				}
			}
		}
	}
	long want = atol(argv[4]), n = 0;
	for (; n < want; n++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = addr(port0 + (int)(n % nports));
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
			fprintf(stderr, "connection %ld: %s\n", n, strerror(errno));
			break;
		}
	}
	printf("connected %ld\n", n);
	fflush(stdout);
	pause();
	return 0;
}
