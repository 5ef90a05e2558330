// Tracepoint ids without depending on a mounted tracefs.
//
// Plain tracepoint programs attach through perf_event_open(PERF_TYPE_TRACEPOINT),
// which needs the event's numeric id, and the kernel only publishes ids in
// tracefs. A fresh machine may have neither /sys/kernel/tracing nor debugfs
// mounted, and tcptrace must not change the host's mounts. So when no tracefs
// is mounted, a short-lived thread unshares its mount namespace, mounts tracefs
// privately, reads the ids and exits: nothing is left behind.
// Thread affinity: any thread (spawns and joins its own helper thread).
#pragma once

#include <string>

namespace tcptrace {

// Where tracefs is mounted for this process, or "" if nowhere.
std::string MountedTracefs();

// Id of tracepoint category/name, or -errno with *why filled in.
long TracepointId(const std::string& category, const std::string& name, std::string* why);

// Opens a tracepoint perf event on CPU 0 (BPF runs for the tracepoint on every CPU).
int OpenTracepointEvent(long id);

}  // namespace tcptrace
