/*
 * Loader of bench/floor/floor.bpf.c: floor OBJ count|ring. Loads and attaches
 * the one program, prints "floor: attached" on stderr, then (ring) drains the
 * ring every 50 ms until SIGINT/SIGTERM, and prints on stdout the
 * transitions seen, the records read and the failed reservations:
 * "transitions N read N lost N". Links and programs go with the process.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static unsigned long long nread;

static void on_signal(int sig) { (void)sig; stop = 1; }

static int on_record(void *ctx, void *data, size_t size)
{
	(void)ctx; (void)data; (void)size;
	nread++;
	return 0;
}

static unsigned long long sum(int map_fd, __u32 key)
{
	int n = libbpf_num_possible_cpus();
	unsigned long long v[n > 0 ? n : 1], total = 0;

	if (n <= 0 || bpf_map_lookup_elem(map_fd, &key, v))
		return 0;
	for (int i = 0; i < n; i++)
		total += v[i];
	return total;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog, *want = NULL;
	struct bpf_link *link;
	struct ring_buffer *rb = NULL;
	int ring_mode, counts_fd;

	if (argc != 3 || (strcmp(argv[2], "count") && strcmp(argv[2], "ring"))) {
		fprintf(stderr, "usage: floor OBJ count|ring\n");
		return 2;
	}
	ring_mode = !strcmp(argv[2], "ring");
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "floor: open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	bpf_object__for_each_program(prog, obj) {
		int mine = !strcmp(bpf_program__name(prog), ring_mode ? "floor_ring" : "floor_count");

		bpf_program__set_autoload(prog, mine);
		if (mine)
			want = prog;
	}
	if (!want || bpf_object__load(obj)) {
		fprintf(stderr, "floor: load: %s\n", strerror(errno));
		return 1;
	}
	link = bpf_program__attach(want);
	if (!link) {
		fprintf(stderr, "floor: attach: %s\n", strerror(errno));
		return 1;
	}
	counts_fd = bpf_map__fd(bpf_object__find_map_by_name(obj, "counts"));
	if (ring_mode) {
		rb = ring_buffer__new(bpf_map__fd(bpf_object__find_map_by_name(obj, "ring")), on_record, NULL, NULL);
		if (!rb) {
			fprintf(stderr, "floor: ring: %s\n", strerror(errno));
			return 1;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fprintf(stderr, "floor: attached %s\n", bpf_program__name(want));
	while (!stop) {
		usleep(50000);
		if (rb)
			ring_buffer__consume(rb);
	}
	if (rb) {
		ring_buffer__consume(rb);
		ring_buffer__free(rb);
	}
	printf("transitions %llu read %llu lost %llu\n", sum(counts_fd, 0), nread, sum(counts_fd, 1));
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}
