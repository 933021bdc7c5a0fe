// Process-wide tuning a worker applies once at start. glibc returns freed memory at the top
// of the heap to the kernel as soon as 128 KiB of it is free; a worker streaming request
// bodies frees its 64 KiB read buffers in bursts (each garbage collection), so with that
// default it gives pages back and faults them in again many times a second (measured on a
// 1 MiB POST: a fifth of the worker's CPU in page faults). A larger trim threshold keeps that
// much free memory for the next reads, as a long-running server wants.
//
// And the master's two dealings with systemd (src/daemon/systemd.ts), which Node cannot do
// itself: a datagram to NOTIFY_SOCKET (sd_notify(3): Node has no unix datagram sockets), and
// what a descriptor inherited through socket activation is (sd_listen_fds(3)), so the master
// can match it to a `listen` entry. Both only report: a status or a reason, never a throw.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>  // defines __GLIBC__ where the C library is glibc
#include <cstring>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "binding.h"

namespace tsgi::binding {

namespace {

// mallocTrimThreshold(bytes) -> whether it was applied (false where the C library is not glibc).
Napi::Value malloc_trim_threshold(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  const int bytes = info[0].As<Napi::Number>().Int32Value();
  return Napi::Boolean::New(info.Env(), mallopt(M_TRIM_THRESHOLD, bytes) == 1);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

// notify(path, message) -> null, or the system's reason ("Connection refused"). One datagram
// on AF_UNIX SOCK_DGRAM to `path`; a leading '@' names the abstract namespace (the '@' becomes
// the leading NUL byte and the address length counts the name, not the whole sun_path).
Napi::Value notify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const std::string message = info[1].As<Napi::String>().Utf8Value();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() < 2 || path.size() >= sizeof addr.sun_path || (path[0] != '/' && path[0] != '@')) {
    return Napi::String::New(env, "not a unix socket path (absolute, or @abstract) of at most " + std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  if (path[0] == '@') {
    addr.sun_path[0] = '\0';
  } else {
    len += 1;  // the terminating NUL, as for any path socket
  }
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::String::New(env, std::strerror(errno));
  const ssize_t sent = sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len);
  const int err = errno;
  ::close(fd);
  if (sent < 0) return Napi::String::New(env, std::strerror(err));
  if (static_cast<size_t>(sent) != message.size()) return Napi::String::New(env, "the datagram was cut short");
  return env.Null();
}

// socketAddress(fd) -> { listening, stream, family: "unix"|"inet"|"inet6"|"other", path | host, port }
// or { error }. Also marks the descriptor close-on-exec (sd_listen_fds(3) does the same), so
// a worker gets it only where the master maps it into the worker's stdio table.
Napi::Value socket_address(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Object out = Napi::Object::New(env);
  const auto fail = [&](int err) {
    out.Set("error", Napi::String::New(env, std::strerror(err)));
    return out;
  };
  const int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) return fail(errno);
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return fail(errno);
  int type = 0;
  int accepting = 0;
  socklen_t optlen = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &optlen) != 0) return fail(errno);
  optlen = sizeof accepting;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &optlen) != 0) return fail(errno);
  out.Set("stream", Napi::Boolean::New(env, type == SOCK_STREAM));
  out.Set("listening", Napi::Boolean::New(env, accepting != 0));
  char host[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    out.Set("family", Napi::String::New(env, "inet"));
    out.Set("host", Napi::String::New(env, host));
    out.Set("port", Napi::Number::New(env, ntohs(in->sin_port)));
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    out.Set("family", Napi::String::New(env, "inet6"));
    out.Set("host", Napi::String::New(env, host));
    out.Set("port", Napi::Number::New(env, ntohs(in6->sin6_port)));
  } else if (addr.ss_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&addr);
    const size_t offset = offsetof(sockaddr_un, sun_path);
    size_t n = len > offset ? std::min<size_t>(len - offset, sizeof un->sun_path) : 0;
    std::string path(un->sun_path, n);
    if (!path.empty() && path[0] == '\0') {
      path[0] = '@';  // abstract: the name is every byte of the length
    } else {
      path = std::string(path.c_str());  // up to the first NUL
    }
    out.Set("family", Napi::String::New(env, "unix"));
    out.Set("path", Napi::String::New(env, path));
  } else {
    out.Set("family", Napi::String::New(env, "other"));
  }
  return out;
}

}  // namespace

void init_process(Napi::Env env, Napi::Object exports) {
  exports.Set("mallocTrimThreshold", Napi::Function::New<malloc_trim_threshold>(env));
  exports.Set("notify", Napi::Function::New<notify>(env));
  exports.Set("socketAddress", Napi::Function::New<socket_address>(env));
}

}  // namespace tsgi::binding
