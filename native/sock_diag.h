// TCP socket enumeration through netlink sock_diag (INET_DIAG), never /proc/net/tcp.
//
// sockDiag({netnsPid?, states?}) dumps IPv4 and IPv6 TCP sockets with their
// inode (joined to /proc/PID/fd in src/), queue lengths, uid and cookie. The
// dump also makes the kernel generate each socket's cookie, which is how the BPF
// side recognises sockets that predate attach (seeds map).
// With netnsPid, a helper thread joins that process's network namespace
// (setns affects only the calling thread) and opens the netlink socket there; a
// socket stays bound to the namespace it was created in.
// Thread affinity: JS thread (synchronous; a dump of 100k sockets takes ~100 ms).
#pragma once

#include <napi.h>

namespace tcptrace {
void InitSockDiag(Napi::Env env, Napi::Object exports);
}
