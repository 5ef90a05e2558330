/*
 * Kernel-matrix fixture: a TCP server that accepts through io_uring
 * (IORING_OP_ACCEPT), so no accept()/accept4() syscall ever returns the new
 * socket. Only a hook on inet_csk_accept (fexit or kretprobe: attach modes
 * fentry and kprobe) can see these accepts; the syscall-exit hooks of the other
 * modes cannot. Listens on 127.0.0.1 (port 0 = any), prints "PORT <n>", then
 * for each connection: reads the request, answers "ok\n" and closes. Runs until
 * killed. Raw syscalls, no liburing; works from 5.5 (IORING_OP_ACCEPT) on.
 *
 * The accept is submitted only once the listener is readable, so it completes
 * inline, inside io_uring_enter(), in this process's own context (as it would
 * when the kernel retries it from task_work after a poll wake-up).
 */
#include <arpa/inet.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

struct ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int ring_init(struct ring *r)
{
	struct io_uring_params p;
	void *sq, *cq;

	memset(&p, 0, sizeof(p));
	r->fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (r->fd < 0)
		return -1;
	sq = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -1;
	r->sq_tail = (unsigned *)((char *)sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)((char *)sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)((char *)sq + p.sq_off.array);
	r->cq_head = (unsigned *)((char *)cq + p.cq_off.head);
	r->cq_tail = (unsigned *)((char *)cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)((char *)cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)((char *)cq + p.cq_off.cqes);
	return 0;
}

/* One IORING_OP_ACCEPT, submitted and waited for: the new fd, or -errno. */
static int uring_accept(struct ring *r, int lfd)
{
	unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask, head;
	struct io_uring_sqe *sqe = &r->sqes[idx];
	int res;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_ACCEPT;
	sqe->fd = lfd;
	sqe->accept_flags = SOCK_CLOEXEC;
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return -1;
	head = *r->cq_head;
	while (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		; /* GETEVENTS with min_complete 1 returned: the CQE is there */
	res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	struct ring r;
	int one = 1, lfd;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(argc > 1 ? atoi(argv[1]) : 0);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 128)) {
		perror("bind/listen");
		return 1;
	}
	if (ring_init(&r)) {
		perror("io_uring_setup");
		return 2;
	}
	getsockname(lfd, (struct sockaddr *)&a, &len);
	printf("PORT %d\n", ntohs(a.sin_port));
	fflush(stdout);
	for (;;) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		static const char ok[] = "ok\n";
		char buf[64];
		int fd;

		if (poll(&pfd, 1, -1) <= 0)
			continue;
		fd = uring_accept(&r, lfd);
		if (fd < 0) {
			fprintf(stderr, "io_uring accept: %s\n", strerror(-fd));
			continue;
		}
		if (read(fd, buf, sizeof(buf)) > 0 && write(fd, ok, sizeof(ok) - 1) < 0)
			perror("write");
		close(fd);
	}
}
