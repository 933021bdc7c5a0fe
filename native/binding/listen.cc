// Binds listening sockets for the master (DESIGN §4: "the master binds the sockets and hands
// them to the workers"): socket, bind, listen, and nothing else — the master never accepts.
// Workers receive the descriptors through their stdio table and listen on them (node:net) or
// hand them to the native uwsgi server. A bound-but-never-accepted socket is what Node's own
// API cannot make (a net.Server accepts as soon as it listens).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <uv.h>

#include "binding.h"

namespace tsgi::binding {

namespace {

// The message is the system's reason alone ("Address already in use"): the caller names the address.
Napi::Value fail(Napi::Env env, int err) {
  Napi::Error e = Napi::Error::New(env, std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
  return Napi::Value();
}

// bindTcp(host, port, backlog) -> { fd, port }
Napi::Value bind_tcp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string host = info[0].As<Napi::String>().Utf8Value();
  const std::string port = std::to_string(info[1].As<Napi::Number>().Uint32Value());
  const int backlog = info[2].As<Napi::Number>().Int32Value();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int gai = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) {
    Napi::Error::New(env, "cannot resolve " + host + ": " + gai_strerror(gai)).ThrowAsJavaScriptException();
    return Napi::Value();
  }
  int err = 0;
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    // CLOEXEC: a child gets the socket only where spawn maps it into its stdio table.
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err = errno;
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0) break;
    err = errno;
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) return fail(env, err);
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int bound = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                                : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("port", Napi::Number::New(env, bound));
  return out;
}

// bindUnix(path, backlog) -> { fd }
Napi::Value bind_unix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const int backlog = info[1].As<Napi::Number>().Int32Value();
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) return fail(env, ENAMETOOLONG);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(env, errno);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, backlog) != 0) {
    const int err = errno;
    ::close(fd);
    return fail(env, err);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  return out;
}

// peek(fd) -> 1 when a byte waits on a connected socket, 0 at its end (the peer closed), -1
// when nothing waits yet or on an error (errno in the latter case is not asked for): the
// master tells a front server's next request on a connection it holds from its close.
Napi::Value peek(const Napi::CallbackInfo& info) {
  char byte;
  const ssize_t n = ::recv(info[0].As<Napi::Number>().Int32Value(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return Napi::Number::New(info.Env(), n > 0 ? 1 : n == 0 ? 0 : -1);
}

// closeFd(fd)
Napi::Value close_fd(const Napi::CallbackInfo& info) {
  ::close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// new ReadableWatch(fd, onReadable): for `ondemand` sites, tells the master that a connection
// waits on a listening socket it never accepts on. One-shot: after each start() the callback
// fires once, when the socket is readable, and the watch stops before it runs (a readable
// socket stays readable until a worker accepts: a level-triggered poll left on would spin).
class ReadableWatch : public Napi::ObjectWrap<ReadableWatch> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ReadableWatch",
                       {InstanceMethod("start", &ReadableWatch::start), InstanceMethod("stop", &ReadableWatch::stop),
                        InstanceMethod("close", &ReadableWatch::close)});
  }

  ReadableWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ReadableWatch>(info) {
    Napi::Env env = info.Env();
    poll_ = new Poll;
    poll_->owner = this;
    poll_->callback = Napi::Persistent(info[1].As<Napi::Function>());
    napi_async_init(env, nullptr, Napi::String::New(env, "ReadableWatch"), &poll_->async);
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    if (const int rc = uv_poll_init(loop, &poll_->handle, info[0].As<Napi::Number>().Int32Value()); rc != 0) {
      napi_async_destroy(env, poll_->async);
      delete poll_;
      poll_ = nullptr;
      Napi::Error::New(env, std::string("cannot watch the socket: ") + uv_strerror(rc)).ThrowAsJavaScriptException();
      return;
    }
    poll_->handle.data = poll_;
  }

  ~ReadableWatch() override { release(); }

 private:
  struct Poll {
    uv_poll_t handle;
    ReadableWatch* owner = nullptr;
    Napi::FunctionReference callback;
    napi_async_context async = nullptr;
    bool started = false;
  };

  Napi::Value start(const Napi::CallbackInfo& info) {
    if (poll_ && !poll_->started && uv_poll_start(&poll_->handle, UV_READABLE, on_readable) == 0) {
      poll_->started = true;
      Ref();  // alive while it may call back
    }
    return info.Env().Undefined();
  }

  Napi::Value stop(const Napi::CallbackInfo& info) {
    halt();
    return info.Env().Undefined();
  }

  Napi::Value close(const Napi::CallbackInfo& info) {
    release();
    return info.Env().Undefined();
  }

  void halt() {
    if (!poll_ || !poll_->started) return;
    uv_poll_stop(&poll_->handle);
    poll_->started = false;
    Unref();
  }

  void release() {
    if (!poll_) return;
    halt();
    napi_async_destroy(Env(), poll_->async);
    poll_->async = nullptr;
    poll_->owner = nullptr;
    poll_->callback.Reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_->handle), [](uv_handle_t* h) { delete static_cast<Poll*>(h->data); });
    poll_ = nullptr;
  }

  static void on_readable(uv_poll_t* handle, int status, int /*events*/) {
    auto* p = static_cast<Poll*>(handle->data);
    ReadableWatch* self = p->owner;
    if (!self) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::Object receiver = self->Value();  // held here: halt() may drop the last reference
    self->halt();
    napi_value arg = Napi::Number::New(env, status);
    napi_value result;
    napi_make_callback(env, p->async, receiver, p->callback.Value(), 1, &arg, &result);
  }

  Poll* poll_ = nullptr;
};

}  // namespace

void init_listen(Napi::Env env, Napi::Object exports) {
  exports.Set("ReadableWatch", ReadableWatch::Define(env));
  exports.Set("bindTcp", Napi::Function::New<bind_tcp>(env));
  exports.Set("bindUnix", Napi::Function::New<bind_unix>(env));
  exports.Set("closeFd", Napi::Function::New<close_fd>(env));
  exports.Set("peek", Napi::Function::New<peek>(env));
}

}  // namespace tsgi::binding
