// Write-behind for recordings: start writeback of what was just written, wait
// for the range before it, and drop those pages from the page cache.
//
// Why: a recording under connection churn appends tens of MB a second. Left
// to the kernel, every byte stays in the page cache until memory pressure
// evicts it, so an hour of recording pushes the server's own file pages out,
// and every append lands on a page the cache never held (on a VM whose memory
// the hypervisor backs on first touch, that is a fault to the host per page:
// 0.27 GB/s here, against 3.1 GB/s on recycled pages). Writing back and
// dropping one flush behind keeps the recorder's cache footprint to about two
// flushes and makes appends reuse the pages it just dropped: the pattern of
// `dd oflag=nocache` and PostgreSQL's *_flush_after.
//
// Threading model: writeBehind() runs on the JS thread and queues one
// AsyncWorker on the libuv thread pool, which does the blocking calls; the
// worker holds its own dup() of the descriptor, so the file may be closed
// while it runs. The promise settles on the JS thread.
#pragma once

#include <napi.h>

namespace tcptrace {
void InitWriteBehind(Napi::Env env, Napi::Object exports);
}
