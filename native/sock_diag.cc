#include "sock_diag.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bpf_error.h"

namespace tcptrace {

namespace {

struct DiagSocket {
  uint8_t family, state, timer, retrans;
  char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
  uint16_t sport, dport;
  uint32_t inode, uid, rqueue, wqueue, expires, ifindex;
  uint64_t cookie;
};

int OpenDiagSocket(int netns_pid, NativeError* err) {
  if (netns_pid <= 0) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) *err = MakeError("open netlink sock_diag socket", errno);
    return fd;
  }
  std::string path = "/proc/" + std::to_string(netns_pid) + "/ns/net";
  int nsfd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    *err = MakeError("open " + path, errno);
    return -1;
  }
  int fd = -1, e = 0;
  std::thread t([&] {
    if (setns(nsfd, CLONE_NEWNET) != 0) {
      e = errno;
      return;
    }
    fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) e = errno;
  });
  t.join();
  close(nsfd);
  if (fd < 0) *err = MakeError("enter network namespace of pid " + std::to_string(netns_pid), e);
  return fd;
}

bool Dump(int fd, uint8_t family, uint32_t states, std::vector<DiagSocket>* out, NativeError* err) {
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = 1;
  msg.req.sdiag_family = family;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = states;
  sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  if (sendto(fd, &msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0) {
    *err = MakeError("send sock_diag request", errno);
    return false;
  }
  std::vector<char> buf(64 * 1024);
  for (;;) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = MakeError("receive sock_diag reply", errno);
      return false;
    }
    for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) return true;
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        *err = MakeError("dump TCP sockets (sock_diag)", -e->error);
        return false;
      }
      auto* m = static_cast<inet_diag_msg*>(NLMSG_DATA(h));
      DiagSocket s = {};
      s.family = m->idiag_family;
      s.state = m->idiag_state;
      s.timer = m->idiag_timer;
      s.retrans = m->idiag_retrans;
      s.sport = ntohs(m->id.idiag_sport);
      s.dport = ntohs(m->id.idiag_dport);
      inet_ntop(m->idiag_family, m->id.idiag_src, s.src, sizeof(s.src));
      inet_ntop(m->idiag_family, m->id.idiag_dst, s.dst, sizeof(s.dst));
      s.inode = m->idiag_inode;
      s.uid = m->idiag_uid;
      s.rqueue = m->idiag_rqueue;
      s.wqueue = m->idiag_wqueue;
      s.expires = m->idiag_expires;
      s.ifindex = m->id.idiag_if;
      s.cookie = static_cast<uint64_t>(m->id.idiag_cookie[0]) |
                 (static_cast<uint64_t>(m->id.idiag_cookie[1]) << 32);
      out->push_back(s);
    }
  }
}

// sockDiag({netnsPid?: number, states?: number, families?: number[]}) -> object[]
Napi::Value SockDiag(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int netns_pid = 0;
  uint32_t states = 0xffffffffu;
  std::vector<uint8_t> families = {AF_INET, AF_INET6};
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    if (o.Get("netnsPid").IsNumber()) netns_pid = o.Get("netnsPid").As<Napi::Number>().Int32Value();
    if (o.Get("states").IsNumber()) states = o.Get("states").As<Napi::Number>().Uint32Value();
    if (o.Get("families").IsArray()) {
      families.clear();
      Napi::Array a = o.Get("families").As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) families.push_back(static_cast<uint8_t>(a.Get(i).As<Napi::Number>().Uint32Value()));
    }
  }
  NativeError err;
  int fd = OpenDiagSocket(netns_pid, &err);
  if (fd < 0) throw ToJsError(env, err);
  std::vector<DiagSocket> socks;
  for (uint8_t fam : families) {
    if (!Dump(fd, fam, states, &socks, &err)) {
      close(fd);
      throw ToJsError(env, err);
    }
  }
  close(fd);
  Napi::Array out = Napi::Array::New(env, socks.size());
  for (size_t i = 0; i < socks.size(); i++) {
    const DiagSocket& s = socks[i];
    Napi::Object r = Napi::Object::New(env);
    r.Set("family", s.family);
    r.Set("state", s.state);
    r.Set("src", s.src);
    r.Set("sport", s.sport);
    r.Set("dst", s.dst);
    r.Set("dport", s.dport);
    r.Set("inode", s.inode);
    r.Set("uid", s.uid);
    r.Set("rqueue", s.rqueue);
    r.Set("wqueue", s.wqueue);
    r.Set("timer", s.timer);
    r.Set("retrans", s.retrans);
    r.Set("expiresMs", s.expires);
    r.Set("ifindex", s.ifindex);
    r.Set("cookie", Napi::BigInt::New(env, s.cookie));
    out.Set(static_cast<uint32_t>(i), r);
  }
  return out;
}

}  // namespace

void InitSockDiag(Napi::Env env, Napi::Object exports) {
  exports.Set("sockDiag", Napi::Function::New(env, SockDiag, "sockDiag"));
}

}  // namespace tcptrace
