// The uwsgi listener owned by native code (DESIGN §2): a uwsgi connection carries one request,
// and a net.Socket per connection costs more CPU than the whole request. Here libuv accepts,
// reads and writes on Node's own loop; the codec decodes each read; JavaScript is called once
// per read with every event of it (the request with its vars, body chunks, the end) and
// answers with one `respond` call per write. The request logic (environ, application,
// logging) stays in src/protocol/uwsgi-native.ts; this file owns only the bytes and the
// connection's life: header timeout, backpressure, the lingering close after a response and
// the reset that cuts one.
//
// Cross-language contract with src/protocol/uwsgi-native.ts: the event kinds below (four
// slots an event, as the decoders' pushes) and the arguments of `respond`.
#include <arpa/inet.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "../uwsgi/codec.h"
#include "binding.h"

namespace tsgi::binding {

namespace {

constexpr size_t kReadSize = 64 * 1024;
// Bytes queued in libuv past which `respond` asks the caller to wait for DRAIN.
constexpr size_t kHighWater = 64 * 1024;
// How long a cut waits for the front server to read what was sent before the reset.
constexpr uint64_t kCutDelayMs = 50;

enum ServerEvent : uint32_t {
  kClose = 20,    // the peer went away before the response ended
  kDrain = 21,    // the write queue fell under the high-water mark
  kTimeout = 22,  // no complete request head within header-timeout; the connection is closed
};

class UwsgiServer;

union Stream {
  uv_tcp_t tcp;
  uv_pipe_t pipe;
  uv_stream_t stream;
  uv_handle_t handle;
};

struct Conn final : uwsgi::Sink {
  Stream io;
  uv_timer_t timer;
  UwsgiServer* server = nullptr;
  uint32_t id = 0;
  bool is_tcp = true;
  uwsgi::Decoder decoder;
  bool got_request = false;
  bool body_done = false;  // the whole request arrived: nothing more will be read
  bool ended = false;    // the response's last write was made
  bool cut = false;
  bool closing = false;
  bool want_drain = false;
  int open_handles = 0;
  size_t queued = 0;
  std::vector<napi_value>* slots = nullptr;  // the events of the read being decoded
  Napi::Env env = nullptr;

  explicit Conn(uwsgi::Limits limits) : decoder(limits) {}

  void add(uint32_t kind, napi_value a, napi_value b, napi_value c) {
    slots->push_back(Napi::Number::New(env, kind));
    slots->push_back(a);
    slots->push_back(b);
    slots->push_back(c);
  }
  napi_value num(double v) { return Napi::Number::New(env, v); }

  void on_request(uint8_t modifier1, uint8_t modifier2, const std::vector<Span>& vars,
                  uint64_t content_length) override {
    got_request = true;
    uv_timer_stop(&timer);
    std::vector<napi_value> values(vars.size());
    for (size_t i = 0; i < vars.size(); i++) values[i] = byte_string(env, vars[i].data, vars[i].size);
    add(kRequest, num(modifier1 + 256.0 * modifier2), make_array(env, values), num(static_cast<double>(content_length)));
  }
  void on_body(const uint8_t* data, size_t size) override {
    // Copied: the read buffer is the server's, reused by the next read.
    add(kBody, num(0), Napi::Buffer<uint8_t>::Copy(env, data, size), num(static_cast<double>(size)));
  }
  void on_body_end() override {
    body_done = true;
    add(kBodyEnd, num(0), num(0), num(0));
  }
};

class UwsgiServer : public Napi::ObjectWrap<UwsgiServer> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "UwsgiServer",
                       {InstanceMethod<&UwsgiServer::respond>("respond"), InstanceMethod<&UwsgiServer::cut_js>("cut"),
                        InstanceMethod<&UwsgiServer::pause>("pause"), InstanceMethod<&UwsgiServer::close>("close"),
                        InstanceMethod<&UwsgiServer::peer>("peer"),
                        InstanceAccessor<&UwsgiServer::connections>("connections")});
  }

  // (fd, isPipe, maxParams, headerTimeoutMs, maxConnections, onEvents): checked by
  // src/protocol/uwsgi-native.ts. `fd` is a listening socket; it is duplicated, so the
  // caller may close its own.
  explicit UwsgiServer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UwsgiServer>(info) {
    Napi::Env env = info.Env();
    const int fd = info[0].As<Napi::Number>().Int32Value();
    is_pipe_ = info[1].ToBoolean();
    limits_.max_params = static_cast<size_t>(info[2].As<Napi::Number>().Int64Value());
    header_timeout_ms_ = static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value());
    max_connections_ = static_cast<size_t>(info[4].As<Napi::Number>().Int64Value());
    on_events_ = Napi::Persistent(info[5].As<Napi::Function>());
    napi_get_uv_event_loop(env, &loop_);
    napi_value name = Napi::String::New(env, "tsgi.uwsgi");
    napi_async_init(env, nullptr, name, &async_);

    // The listener lives on the heap: libuv may call back after a failed construction.
    listener_ = new Stream{};
    const int dup_fd = dup(fd);
    int rc = dup_fd < 0 ? -errno : 0;
    if (rc == 0) rc = is_pipe_ ? uv_pipe_init(loop_, &listener_->pipe, 0) : uv_tcp_init(loop_, &listener_->tcp);
    if (rc != 0) {
      if (dup_fd >= 0) ::close(dup_fd);
      delete listener_;
      listener_ = nullptr;
    } else {
      listener_->handle.data = this;
      rc = is_pipe_ ? uv_pipe_open(&listener_->pipe, dup_fd) : uv_tcp_open(&listener_->tcp, dup_fd);
      if (rc != 0) ::close(dup_fd);
      if (rc == 0) rc = uv_listen(&listener_->stream, 511, on_connection);
      if (rc != 0) {
        close_listener();
      } else {
        listener_open_ = true;
      }
    }
    if (rc != 0) {
      Napi::Error::New(env, std::string("native uwsgi listener: ") + uv_strerror(rc)).ThrowAsJavaScriptException();
      return;
    }
    Ref();  // alive while listening or serving; released in maybe_unref()
  }

 private:
  friend struct Conn;

  static void on_connection(uv_stream_t* listener, int status) {
    auto* self = static_cast<UwsgiServer*>(listener->data);
    if (status < 0 || self == nullptr) return;
    auto* c = new Conn(self->limits_);
    c->server = self;
    c->id = ++self->next_id_;
    c->is_tcp = !self->is_pipe_;
    c->env = self->Env();
    if (self->is_pipe_) uv_pipe_init(self->loop_, &c->io.pipe, 0);
    else uv_tcp_init(self->loop_, &c->io.tcp);
    c->io.handle.data = c;
    c->open_handles++;
    uv_timer_init(self->loop_, &c->timer);
    c->timer.data = c;
    c->open_handles++;
    if (uv_accept(listener, &c->io.stream) != 0 ||
        (self->max_connections_ > 0 && self->conns_.size() >= self->max_connections_)) {
      self->destroy(c, false);
      return;
    }
    if (c->is_tcp) uv_tcp_nodelay(&c->io.tcp, 1);
    self->conns_.emplace(c->id, c);
    if (self->header_timeout_ms_ > 0) uv_timer_start(&c->timer, on_header_timeout, self->header_timeout_ms_, 0);
    uv_read_start(&c->io.stream, on_alloc, on_read);
  }

  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(handle->data);
    // One buffer for every read: the codec copies the vars and on_body copies the body.
    *buf = uv_buf_init(c->server->read_buffer_, kReadSize);
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(stream->data);
    UwsgiServer* self = c->server;
    if (nread == 0) return;
    if (nread > 0 && (c->ended || c->cut)) return;  // draining what follows a response
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    std::vector<napi_value> slots;
    c->slots = &slots;
    bool close_now = false;
    bool with_peer = false;
    if (nread > 0) {
      if (c->decoder.push(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread), *c) !=
          Status::kOk) {
        self->add_error(*c, c->decoder.error());
        close_now = with_peer = true;
      }
    } else {
      close_now = true;
      if (c->ended) {
        // The front server closed after our response: the lingering close is over.
      } else if (c->decoder.end() != Status::kOk && c->decoder.offset() > 0) {
        self->add_error(*c, c->decoder.error());
        with_peer = true;
      } else if (c->got_request) {
        c->add(kClose, c->num(0), c->num(0), c->num(0));
      }
    }
    c->slots = nullptr;
    const uint32_t id = c->id;
    std::string peer = with_peer ? self->peer_of(*c) : std::string();
    if (close_now) self->destroy(c, false);
    if (!slots.empty()) self->emit(id, slots, peer);
  }

  static void on_header_timeout(uv_timer_t* timer) {
    auto* c = static_cast<Conn*>(timer->data);
    UwsgiServer* self = c->server;
    if (c->got_request || c->closing) return;
    Napi::HandleScope scope(self->Env());
    std::vector<napi_value> slots;
    c->slots = &slots;
    c->add(kTimeout, c->num(0), c->num(0), c->num(0));
    c->slots = nullptr;
    const uint32_t id = c->id;
    std::string peer = self->peer_of(*c);
    self->destroy(c, false);
    self->emit(id, slots, peer);
  }

  void add_error(Conn& c, const Error& e) {
    c.add(kError, c.num(static_cast<double>(e.status)), c.num(static_cast<double>(e.offset)),
          Napi::String::New(Env(), e.reason));
  }

  std::string peer_of(Conn& c) {
    if (!c.is_tcp) return "unix socket";
    sockaddr_storage addr{};
    int len = sizeof addr;
    if (uv_tcp_getpeername(&c.io.tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown peer";
    char ip[64] = {};
    int port = 0;
    if (addr.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      uv_ip6_name(a, ip, sizeof ip);
      port = ntohs(a->sin6_port);
      return std::string("[") + ip + "]:" + std::to_string(port);
    }
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    uv_ip4_name(a, ip, sizeof ip);
    port = ntohs(a->sin_port);
    return std::string(ip) + ":" + std::to_string(port);
  }

  // Calls JavaScript once with the events of one read (microtasks run after it, as for any
  // I/O callback: MakeCallback).
  void emit(uint32_t id, const std::vector<napi_value>& slots, const std::string& peer) {
    Napi::Env env = Env();
    napi_value args[3] = {Napi::Number::New(env, id), make_array(env, slots),
                          peer.empty() ? env.Undefined() : Napi::String::New(env, peer)};
    napi_value result;
    napi_status s = napi_make_callback(env, async_, Value(), on_events_.Value(), 3, args, &result);
    if (s == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }

  // ---- the connection's end ----

  // Closes at once (an error, a timeout, the peer gone, the lingering close done).
  void destroy(Conn* c, bool reset) {
    if (c->closing) return;
    c->closing = true;
    conns_.erase(c->id);
    uv_timer_stop(&c->timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), on_handle_closed);
    if (reset && c->is_tcp) {
      if (uv_tcp_close_reset(&c->io.tcp, on_handle_closed) != 0) uv_close(&c->io.handle, on_handle_closed);
    } else {
      uv_close(&c->io.handle, on_handle_closed);
    }
    maybe_unref();
  }

  static void on_handle_closed(uv_handle_t* handle) {
    auto* c = static_cast<Conn*>(handle->data);
    if (--c->open_handles == 0) delete c;
  }

  // The response is out: half-close, then read and drop until the front server closes (at
  // most header-timeout), so an unread body is drained, never reset.
  void linger(Conn* c) {
    // The whole request was read and the response is in the kernel: a plain close sends the
    // FIN after it (no unread bytes, so no reset), and saves the shutdown and the wait.
    if (c->body_done) {
      destroy(c, false);
      return;
    }
    // Reading may have been paused for an unread body: it must flow to be drained.
    uv_read_start(&c->io.stream, on_alloc, on_read);
    auto* req = new uv_shutdown_t;
    req->data = c;
    if (uv_shutdown(req, &c->io.stream, [](uv_shutdown_t* r, int) { delete r; }) != 0) {
      delete req;
      destroy(c, false);
      return;
    }
    const uint64_t ms = header_timeout_ms_ > 0 ? header_timeout_ms_ : 10000;
    uv_timer_start(&c->timer, [](uv_timer_t* t) {
      auto* conn = static_cast<Conn*>(t->data);
      conn->server->destroy(conn, false);
    }, ms, 0);
  }

  // Cut after the front server read what was sent: a reset (TCP) says "not complete".
  void start_cut(Conn* c) {
    uv_read_stop(&c->io.stream);
    uv_timer_start(&c->timer, [](uv_timer_t* t) {
      auto* conn = static_cast<Conn*>(t->data);
      conn->server->destroy(conn, true);
    }, kCutDelayMs, 0);
  }

  // ---- writes ----

  struct WriteReq {
    uv_write_t req;
    std::unique_ptr<char[]> data;
    size_t size;
  };

  static void on_write(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<WriteReq*>(req);
    auto* c = static_cast<Conn*>(req->data);
    c->queued -= w->size;
    delete w;
    if (c->closing) return;
    if (status < 0) {
      // The peer is gone; reading reports it (or the request already ended).
      if (c->ended || c->cut) c->server->destroy(c, false);
      return;
    }
    c->server->after_write(c);
  }

  void after_write(Conn* c) {
    if (c->queued > 0) return;
    if (c->cut) {
      start_cut(c);
      return;
    }
    if (c->ended) {
      linger(c);
      return;
    }
    if (c->want_drain) {
      c->want_drain = false;
      Napi::HandleScope scope(Env());
      std::vector<napi_value> slots;
      c->slots = &slots;
      c->add(kDrain, c->num(0), c->num(0), c->num(0));
      c->slots = nullptr;
      emit(c->id, slots, std::string());
    }
  }

  // Writes what libuv takes at once, queues a copy of the rest.
  void write(Conn* c, const uv_buf_t* bufs, unsigned count) {
    size_t total = 0;
    for (unsigned i = 0; i < count; i++) total += bufs[i].len;
    if (total == 0) return;
    size_t done = 0;
    if (c->queued == 0) {
      const int n = uv_try_write(&c->io.stream, bufs, count);
      if (n > 0) done = static_cast<size_t>(n);
    }
    if (done == total) return;
    auto* w = new WriteReq;
    w->size = total - done;
    w->data.reset(new char[w->size]);
    size_t at = 0;
    size_t skip = done;
    for (unsigned i = 0; i < count; i++) {
      size_t len = bufs[i].len;
      const char* base = bufs[i].base;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      base += skip;
      len -= skip;
      skip = 0;
      std::memcpy(w->data.get() + at, base, len);
      at += len;
    }
    w->req.data = c;
    uv_buf_t rest = uv_buf_init(w->data.get(), static_cast<unsigned>(w->size));
    c->queued += w->size;
    if (uv_write(&w->req, &c->io.stream, &rest, 1, on_write) != 0) {
      c->queued -= w->size;
      delete w;
      destroy(c, false);
    }
  }

  // respond(connId, head: string (latin1) | null, body: Uint8Array | string (UTF-8) | null, end):
  // true while the caller may go on writing, false when it should wait for DRAIN.
  Napi::Value respond(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto it = conns_.find(info[0].As<Napi::Number>().Uint32Value());
    if (it == conns_.end() || it->second->ended || it->second->cut) return Napi::Boolean::New(env, true);
    Conn* c = it->second;
    std::string head;
    if (info[1].IsString()) {
      size_t len = 0;
      napi_get_value_string_latin1(env, info[1], nullptr, 0, &len);
      head.resize(len + 1);
      napi_get_value_string_latin1(env, info[1], head.data(), len + 1, &len);
      head.resize(len);
    }
    std::string utf8;
    uv_buf_t bufs[2];
    unsigned n = 0;
    if (!head.empty()) bufs[n++] = uv_buf_init(head.data(), static_cast<unsigned>(head.size()));
    if (info[2].IsTypedArray()) {
      Napi::Uint8Array body = info[2].As<Napi::Uint8Array>();
      if (body.ByteLength() > 0) bufs[n++] = uv_buf_init(reinterpret_cast<char*>(body.Data()), static_cast<unsigned>(body.ByteLength()));
    } else if (info[2].IsString()) {
      utf8 = info[2].As<Napi::String>().Utf8Value();
      if (!utf8.empty()) bufs[n++] = uv_buf_init(utf8.data(), static_cast<unsigned>(utf8.size()));
    }
    write(c, bufs, n);
    if (c->closing) return Napi::Boolean::New(env, true);
    if (info[3].ToBoolean()) {
      c->ended = true;
      if (c->queued == 0) linger(c);
      return Napi::Boolean::New(env, true);
    }
    if (c->queued >= kHighWater) {
      c->want_drain = true;
      return Napi::Boolean::New(env, false);
    }
    return Napi::Boolean::New(env, true);
  }

  // cut(connId): end the response without a clean end.
  Napi::Value cut_js(const Napi::CallbackInfo& info) {
    auto it = conns_.find(info[0].As<Napi::Number>().Uint32Value());
    if (it != conns_.end() && !it->second->ended && !it->second->cut) {
      Conn* c = it->second;
      c->cut = true;
      if (c->queued == 0) start_cut(c);
    }
    return info.Env().Undefined();
  }

  // pause(connId, paused): stop or resume reading the connection (request-body backpressure).
  Napi::Value pause(const Napi::CallbackInfo& info) {
    auto it = conns_.find(info[0].As<Napi::Number>().Uint32Value());
    if (it != conns_.end() && !it->second->ended && !it->second->cut) {
      if (info[1].ToBoolean()) uv_read_stop(&it->second->io.stream);
      else uv_read_start(&it->second->io.stream, on_alloc, on_read);
    }
    return info.Env().Undefined();
  }

  void close_listener() {
    listener_->handle.data = nullptr;
    uv_close(&listener_->handle, [](uv_handle_t* h) { delete reinterpret_cast<Stream*>(h); });
    listener_ = nullptr;
  }

  // close(): stop accepting; connections already accepted are served.
  Napi::Value close(const Napi::CallbackInfo& info) {
    if (listener_open_) {
      listener_open_ = false;
      close_listener();
      maybe_unref();
    }
    return info.Env().Undefined();
  }

  // peer(connId): "127.0.0.1:51234" for the log lines about a request ("" once it is gone).
  Napi::Value peer(const Napi::CallbackInfo& info) {
    auto it = conns_.find(info[0].As<Napi::Number>().Uint32Value());
    return Napi::String::New(info.Env(), it == conns_.end() ? std::string() : peer_of(*it->second));
  }

  Napi::Value connections(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(conns_.size()));
  }

  void maybe_unref() {
    if (!listener_open_ && conns_.empty() && !unrefed_) {
      unrefed_ = true;
      Unref();
    }
  }

  uv_loop_t* loop_ = nullptr;
  Stream* listener_ = nullptr;
  bool listener_open_ = false;
  bool unrefed_ = false;
  bool is_pipe_ = false;
  uwsgi::Limits limits_;
  uint64_t header_timeout_ms_ = 10000;
  size_t max_connections_ = 0;
  uint32_t next_id_ = 0;
  std::unordered_map<uint32_t, Conn*> conns_;
  Napi::FunctionReference on_events_;
  napi_async_context async_ = nullptr;
  char read_buffer_[kReadSize];
};

}  // namespace

void init_servers(Napi::Env env, Napi::Object exports) {
  exports.Set("UwsgiServer", UwsgiServer::define(env));
  Napi::Object kinds = Napi::Object::New(env);
  kinds.Set("CLOSE", Napi::Number::New(env, kClose));
  kinds.Set("DRAIN", Napi::Number::New(env, kDrain));
  kinds.Set("TIMEOUT", Napi::Number::New(env, kTimeout));
  exports.Set("serverEvents", kinds);
}

}  // namespace tsgi::binding
