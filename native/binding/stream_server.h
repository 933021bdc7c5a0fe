// What the native listeners (uwsgi_server.cc, fastcgi_server.cc) share: a listening socket
// on Node's own libuv loop, its connections, and their life — accept, one read buffer, the
// header timeout, writes with backpressure, the lingering close after the last response and
// the reset that cuts one. A net.Socket per connection costs more CPU than a whole request
// (issue 4), so the bytes never become JavaScript objects: each read is decoded here and
// JavaScript is called once with every event of it; each write is one call the other way.
//
// A protocol derives `StreamServer<Self, Conn>` (CRTP) with a `Conn` deriving `ConnBase`,
// and provides:
//   Conn* make_conn();                                     a connection's decoder state
//   const Error* consume(Conn*, const uint8_t*, size_t);   decode a read; add its events
//   const Error* finish_input(Conn*);                      the peer closed: truncated?
//   bool has_open(Conn*);                                  JavaScript holds a request on it
//   bool idle(Conn*);                                      no request on it (closed at stop)
//   bool between_requests(Conn*);                          idle after a request, nothing half-sent
//   void mark_cut(Conn*);                                  before a cut: bytes that say "broken"
// and its own `respond`, framing its protocol and ending with write() / end_connection().
//
// Cross-language contract with src/protocol/*-native.ts: the event kinds (four slots an
// event, as the decoders' pushes) and every method's arguments.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "../body_join.h"
#include "../param_pack.h"
#include "../status.h"
#include "allow_list.h"
#include "binding.h"

namespace tsgi::binding {

constexpr size_t kReadSize = 64 * 1024;
// Bytes queued in libuv past which a write asks the caller to wait for DRAIN.
constexpr size_t kHighWater = 64 * 1024;
// How long a cut waits for the front server to read what was sent before the reset.
constexpr uint64_t kCutDelayMs = 50;

enum ServerEvent : uint32_t {
  kClose = 20,        // the peer went away while a request was open ([1] bytes queued for it
                      // that never reached the kernel)
  kDrain = 21,        // the write queue fell under the high-water mark
  kTimeout = 22,      // no complete request head within header-timeout; the connection is closed
                      // ([1] 1 when it was a persistent connection idle between requests)
  kUnknownRole = 23,  // FastCGI: a request of a role we do not play was refused ([1] id, [2] role)
  kChunk = 24,        // the bytes of this read ([2] a Buffer, [3] its length): the body events
                      // after it ([2] offset, [3] length) are slices of it
  kRefused = 25,      // a TCP peer not in `allow` was closed at accept (connection id 0; the peer
                      // as the third argument; [1] how many more were refused since the last
                      // REFUSED, unreported; [2] the listener's own address, "HOST:PORT")
  kHandoff = 26,      // close(keepIdle, handoff): a persistent connection between requests left
                      // this process ([1] a duplicate of its socket, JavaScript's to pass on to
                      // another worker, which adopt()s it, or to close)
};

// At most one REFUSED a listener per this many milliseconds: a peer retrying in a loop
// costs an accept and a close each time, not a log line.
constexpr uint64_t kRefusedReportMs = 1000;

// A typed array JavaScript gets with every callback, filled from `values`: the same one for the
// server's life, unless a callback needs more room (then a larger one). A callback made while
// another is still running (JavaScript's call led to it) gets an array of its own, so that the
// one the outer callback is reading does not change under it.
template <typename T>
class SharedArray {
 public:
  napi_value fill(Napi::Env env, const std::vector<T>& values, bool nested) {
    if (nested) {
      auto own = Napi::TypedArrayOf<T>::New(env, std::max<size_t>(values.size(), 1));
      if (!values.empty()) std::memcpy(own.Data(), values.data(), values.size() * sizeof(T));
      return own;
    }
    if (array_.IsEmpty() || capacity_ < values.size()) {
      capacity_ = std::max<size_t>(capacity_ * 2, std::max<size_t>(values.size(), 4096));
      auto view = Napi::TypedArrayOf<T>::New(env, capacity_);
      data_ = view.Data();
      array_ = Napi::Persistent(view);
    }
    if (!values.empty()) std::memcpy(data_, values.data(), values.size() * sizeof(T));
    return array_.Value();
  }

 private:
  Napi::Reference<Napi::TypedArrayOf<T>> array_;
  T* data_ = nullptr;
  size_t capacity_ = 0;
};

// The events of one callback: four numbers each, the kind first; an event that carries an
// object (a string, a Buffer) holds its index in `objects` in that slot.
struct Events {
  std::vector<double> slots;
  std::vector<napi_value> objects;
  bool empty() const { return slots.empty(); }
  void clear() {
    slots.clear();
    objects.clear();
  }
};

// The params of the requests one callback announces, packed (param_pack.h): a string each,
// and their layouts in an Int32Array that JavaScript gets with every callback (its last
// argument) and reads while it handles the events; the same array for the server's life,
// unless a callback needs more room (then a larger one, holding the earlier layouts too).
class SharedParams {
 public:
  // A request's params: their string, and where their layout starts in the array. `flags`
  // are the listener's own (kPackKeepConn), added to the layout's.
  napi_value add(Napi::Env env, const std::vector<Span>& pairs, int32_t role, double& at, int32_t flags = 0) {
    const size_t start = index_.size();
    at = static_cast<double>(start);
    pack_params(pairs, role, bytes_, index_);
    index_[start + kPackFlags] |= flags;
    return byte_string(env, reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size());
  }

  // The array, holding every layout added since the last clear().
  napi_value array(Napi::Env env, bool nested) { return array_.fill(env, index_, nested); }

  void clear() { index_.clear(); }

 private:
  std::string bytes_;
  std::vector<int32_t> index_;
  SharedArray<int32_t> array_;
};

union Stream {
  uv_tcp_t tcp;
  uv_pipe_t pipe;
  uv_stream_t stream;
  uv_handle_t handle;
};

struct ConnBase {
  Stream io;
  uv_timer_t timer;  // header timeout, then the lingering close or the cut
  // When the header timeout is due (the loop's time, ms), 0 while it is not armed. Arming and
  // disarming set this and leave a running timer alone: a timer that fires early starts
  // again for what is left, one that fires disarmed does nothing (a keep-alive connection
  // disarms and arms once a request: two changes of libuv's timer heap it no longer makes).
  uint64_t header_due = 0;
  // Disarms the header timeout (the request's head is complete).
  void disarm_header() { header_due = 0; }
  void* server = nullptr;
  uint32_t id = 0;
  bool is_tcp = true;
  bool input_done = false;  // nothing more will be read: a plain close after the response
  bool ended = false;       // the connection's last response was written: linger, then close
  bool cut = false;
  bool cut_marked = false;  // the protocol's mark of a broken response was written (start_cut)
  bool closing = false;
  bool broken = false;  // a write failed: the connection is closed on the next turn of the loop
  bool handing_off = false;  // its response is written: hand the connection off once it is in the kernel
  bool want_drain = false;
  // A body is expected: reads go to a block of their own, handed to JavaScript as is.
  bool want_body = false;
  int open_handles = 0;
  size_t queued = 0;
  size_t lost = 0;  // bytes of a write that failed (broken)
  Events* slots = nullptr;                   // the events of the callback being handled
  SharedParams* params = nullptr;            // the server's: where a request's params are packed
  Napi::Env env = nullptr;
  // The read being decoded: where it is, the block of its own it may have been read into (a
  // JavaScript Buffer not yet given away, held by `block_ref`), and the Buffer holding the
  // read once a body slice needed one.
  const uint8_t* read_base = nullptr;
  size_t read_size = 0;
  uint8_t* read_block = nullptr;
  napi_ref block_ref = nullptr;
  napi_value read_chunk = nullptr;
  uint8_t* chunk_data = nullptr;  // read_chunk's bytes
  // The last body event of this read (its slot in `slots`) and the slice of read_chunk it
  // announces: a body slice of the same request right after it joins it (add_body).
  size_t body_slot = SIZE_MAX;
  BodyJoin body_join;

  // A Buffer to read the next body bytes into: allocated as node:net allocates its reads
  // (uninitialized, its memory known to the garbage collector), so handing it over costs no copy.
  void make_block(size_t size) {
    Napi::HandleScope scope(env);
    void* data = nullptr;
    napi_value buffer;
    if (napi_create_buffer(env, size, &data, &buffer) != napi_ok) return;
    if (napi_create_reference(env, buffer, 1, &block_ref) != napi_ok) return;
    read_block = static_cast<uint8_t*>(data);
  }
  void drop_block() {
    if (block_ref != nullptr) napi_delete_reference(env, block_ref);
    block_ref = nullptr;
    read_block = nullptr;
  }

  // Offset of a body slice in this read's Buffer (made on the first slice: the block itself,
  // or a copy of the server's shared read buffer), announced by a CHUNK event.
  double body_offset(const uint8_t* data) {
    if (read_chunk == nullptr) {
      if (read_block != nullptr && read_base == read_block) {
        napi_get_reference_value(env, block_ref, &read_chunk);
        chunk_data = read_block;
        drop_block();  // the Buffer is JavaScript's now
      } else {
        auto copy = Napi::Buffer<uint8_t>::Copy(env, read_base, read_size);
        read_chunk = copy;
        chunk_data = copy.Data();
      }
      add(kChunk, 0, object(read_chunk), static_cast<double>(read_size));
    }
    return static_cast<double>(data - read_base);
  }

  // A body event for `size` bytes at `data` in this read; a slice of the same request right
  // after the last one joins it (body_join.h: Apache's 8 KiB FastCGI records of one read reach
  // JavaScript as one chunk, not one each).
  void add_body(uint32_t kind, uint32_t request, const uint8_t* data, size_t size) {
    const auto at = static_cast<size_t>(body_offset(data));
    const bool follows = body_slot != SIZE_MAX && body_slot + 4 == slots->slots.size();
    if (body_join.add(chunk_data, request, at, size, follows)) {
      slots->slots.back() = static_cast<double>(body_join.end() - body_join.begin());
      return;
    }
    add(kind, request, static_cast<double>(at), static_cast<double>(size));
    body_slot = slots->slots.size() - 4;
  }

  void add(uint32_t kind, double a = 0, double b = 0, double c = 0) {
    // Four push_backs, not an insert of a list: GCC 12 warns a false -Wstringop-overflow on
    // the insert inlined where the vector is known empty (on_header_timeout).
    std::vector<double>& s = slots->slots;
    s.push_back(static_cast<double>(kind));
    s.push_back(a);
    s.push_back(b);
    s.push_back(c);
  }
  // An object an event carries: its index in the callback's objects, for the event's slot.
  double object(napi_value value) {
    slots->objects.push_back(value);
    return static_cast<double>(slots->objects.size() - 1);
  }
};

template <class Derived, class Conn>
class StreamServer : public Napi::ObjectWrap<Derived> {
 public:
  using Wrap = Napi::ObjectWrap<Derived>;
  using Method = Napi::Value (Derived::*)(const Napi::CallbackInfo&);

  // The methods every listener has, for the derived class's DefineClass.
  static std::vector<typename Wrap::PropertyDescriptor> common_methods() {
    return {
        Wrap::InstanceMethod("cut", static_cast<Method>(&StreamServer::cut_js)),
        Wrap::InstanceMethod("pause", static_cast<Method>(&StreamServer::pause)),
        Wrap::InstanceMethod("close", static_cast<Method>(&StreamServer::close)),
        Wrap::InstanceMethod("pauseAccept", static_cast<Method>(&StreamServer::pause_accept)),
        Wrap::InstanceMethod("peer", static_cast<Method>(&StreamServer::peer)),
        Wrap::InstanceMethod("adopt", static_cast<Method>(&StreamServer::adopt)),
        Wrap::InstanceAccessor("connections", static_cast<Method>(&StreamServer::connections), nullptr),
    };
  }

  // (fd, isPipe, headerTimeoutMs, maxConnections, onEvents, allow, …the protocol's limits):
  // checked by src/native.ts. `fd` is a listening socket; it is duplicated, so the caller may
  // close its own (but must keep it open to resume accepting after pauseAccept). `allow`: the
  // packed networks of allow_list.h, or null for every peer (unix sockets are never filtered).
  StreamServer(const Napi::CallbackInfo& info, const char* resource) : Wrap(info) {
    Napi::Env env = info.Env();
    listen_fd_ = info[0].As<Napi::Number>().Int32Value();
    is_pipe_ = info[1].ToBoolean();
    header_timeout_ms_ = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
    max_connections_ = static_cast<size_t>(info[3].As<Napi::Number>().Int64Value());
    on_events_ = Napi::Persistent(info[4].As<Napi::Function>());
    if (info[5].IsTypedArray() && !is_pipe_) {
      Napi::Uint8Array networks = info[5].As<Napi::Uint8Array>();
      allow_ = AllowList(networks.Data(), networks.ByteLength());
    }
    napi_get_uv_event_loop(env, &loop_);
    napi_async_init(env, nullptr, Napi::String::New(env, resource), &async_);
    if (const int rc = open_listener(); rc != 0) {
      Napi::Error::New(env, std::string(resource) + " listener: " + uv_strerror(rc)).ThrowAsJavaScriptException();
      return;
    }
    this->Ref();  // alive while listening or serving; released in maybe_unref()
  }

  // ---- for the protocol ----

  // Writes what the kernel takes at once (writev) and queues the rest; the order of successive
  // calls is kept. Queued bytes inside [keep_data, +keep_size) stay where they are, in the
  // JavaScript value `keep`, which a reference holds until libuv wrote them (as a Buffer given
  // to socket.write); the others are copied. Returns false when the connection failed and
  // was closed.
  bool write(Conn* c, const uv_buf_t* bufs, unsigned count, napi_value keep = nullptr, const char* keep_data = nullptr,
             size_t keep_size = 0) {
    if (c->closing || c->broken) return false;
    size_t total = 0;
    for (unsigned i = 0; i < count; i++) total += bufs[i].len;
    if (total == 0) return true;
    size_t done = 0;
    if (c->queued == 0) {
      const int n = uv_try_write(&c->io.stream, bufs, count);
      if (n > 0) done = static_cast<size_t>(n);
    }
    if (done == total) return true;
    auto* w = new WriteReq;
    w->size = total - done;
    std::vector<uv_buf_t> rest;
    size_t copied = 0;
    bool kept = false;
    const auto in_keep = [&](const char* base, size_t len) {
      return keep != nullptr && base >= keep_data && base + len <= keep_data + keep_size;
    };
    for (int pass = 0; pass < 2; pass++) {  // sizes the copy once, then fills it
      size_t skip = done;
      size_t at = 0;
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
        if (in_keep(base, len)) {
          if (pass == 1) {
            rest.push_back(uv_buf_init(const_cast<char*>(base), static_cast<unsigned>(len)));
            kept = true;
          }
          continue;
        }
        if (pass == 0) {
          copied += len;
          continue;
        }
        std::memcpy(w->data.get() + at, base, len);
        if (!rest.empty() && rest.back().base + rest.back().len == w->data.get() + at) rest.back().len += static_cast<unsigned>(len);
        else rest.push_back(uv_buf_init(w->data.get() + at, static_cast<unsigned>(len)));
        at += len;
      }
      if (pass == 0 && copied > 0) w->data.reset(new char[copied]);
    }
    if (kept) napi_create_reference(c->env, keep, 1, &w->keep);
    w->req.data = c;
    c->queued += w->size;
    if (uv_write(&w->req, &c->io.stream, rest.data(), static_cast<unsigned>(rest.size()), on_write) != 0) {
      c->queued -= w->size;
      const size_t lost = w->size;
      release(c, w);
      break_soon(c, lost);
      return false;
    }
    return true;
  }

  // After a write that does not end the connection: true while the caller may go on writing,
  // false when it should wait for DRAIN.
  bool may_write_more(Conn* c) {
    if (c->broken) return false;  // the CLOSE that follows ends the wait
    if (c->closing || c->queued < kHighWater) return true;
    c->want_drain = true;
    return false;
  }

  // The connection's last response is written: close once it is in the kernel.
  void end_connection(Conn* c) {
    if (c->closing || c->ended || c->cut) return;
    c->ended = true;
    if (c->queued == 0) linger(c);
  }

  // Draining with handoff: the connection's response is written; once it is in the kernel the
  // connection goes to another worker instead of being closed (see close()).
  bool handoff_mode() const { return handoff_; }
  void hand_off_after_response(Conn* c) {
    if (c->closing || c->ended || c->cut) return;
    c->handing_off = true;
    if (c->queued == 0) hand_off_soon(c);
  }

  // The header timeout runs from now (a new connection, or a persistent one fallen idle).
  void arm_header_timer(Conn* c) {
    if (header_timeout_ms_ <= 0 || c->closing) return;
    c->header_due = uv_now(loop_) + static_cast<uint64_t>(header_timeout_ms_);
    // Running already (armed before, or disarmed since and not yet fired): it fires at or
    // before the new due time and starts again for the rest.
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&c->timer))) uv_timer_start(&c->timer, on_header_timeout, header_timeout_ms_, 0);
  }

  void add_error(Conn* c, const Error& e) {
    c->add(kError, static_cast<double>(e.status), static_cast<double>(e.offset),
           c->object(Napi::String::New(this->Env(), e.reason)));
  }

  Conn* find(const Napi::Value& id) {
    auto it = conns_.find(id.As<Napi::Number>().Uint32Value());
    return it == conns_.end() ? nullptr : it->second;
  }

  bool stopping() const { return stopping_; }

 private:
  Derived* self() { return static_cast<Derived*>(this); }
  static StreamServer* owner(ConnBase* c) { return static_cast<StreamServer*>(c->server); }

  static void on_connection(uv_stream_t* listener, int status) {
    auto* self = static_cast<StreamServer*>(listener->data);
    if (status < 0 || self == nullptr) return;
    Conn* c = self->new_conn();
    if (uv_accept(listener, &c->io.stream) != 0 ||
        (self->max_connections_ > 0 && self->conns_.size() >= self->max_connections_)) {
      self->destroy(c, false);
      return;
    }
    // One getpeername per accept, on the stack; none when every peer is allowed.
    if (c->is_tcp && !self->allow_.everyone()) {
      sockaddr_storage addr{};
      int len = sizeof addr;
      if (uv_tcp_getpeername(&c->io.tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || !self->allow_.has(addr)) {
        self->refuse(c);
        return;
      }
    }
    self->serve_conn(c);
  }

  // A connection's state and handles, before its socket is accepted or adopted.
  Conn* new_conn() {
    Conn* c = self()->make_conn();
    c->server = this;
    c->params = &params_;
    c->id = ++next_id_;
    c->is_tcp = !is_pipe_;
    c->env = this->Env();
    if (is_pipe_) uv_pipe_init(loop_, &c->io.pipe, 0);
    else uv_tcp_init(loop_, &c->io.tcp);
    c->io.handle.data = c;
    c->open_handles++;
    uv_timer_init(loop_, &c->timer);
    c->timer.data = c;
    c->open_handles++;
    return c;
  }

  void serve_conn(Conn* c) {
    if (c->is_tcp) uv_tcp_nodelay(&c->io.tcp, 1);
    conns_.emplace(c->id, c);
    arm_header_timer(c);
    uv_read_start(&c->io.stream, on_alloc, on_read);
    read_at_once(c);
  }

  // Closes a peer not in `allow` at once, and tells JavaScript (rate-limited: kRefusedReportMs).
  void refuse(Conn* c) {
    refused_++;
    const uint64_t now = uv_now(loop_);
    if (reported_refusal_ && now - last_refusal_report_ < kRefusedReportMs) {
      destroy(c, false);
      return;
    }
    reported_refusal_ = true;
    last_refusal_report_ = now;
    const double more = static_cast<double>(refused_ - 1);
    refused_ = 0;
    const std::string peer = peer_of(c);
    Napi::HandleScope scope(this->Env());
    Events slots;
    c->slots = &slots;
    c->add(kRefused, more, c->object(Napi::String::New(this->Env(), local_of(c))), 0);
    c->slots = nullptr;
    destroy(c, false);
    emit(0, slots, peer);
  }

  // A front server writes its request right after connecting, so it is usually there when the
  // connection is accepted: read it now instead of on the next turn of the loop. A request
  // answered before the loop polls again never has its socket added to epoll.
  void read_at_once(Conn* c) {
    uv_os_fd_t fd;
    if (uv_fileno(&c->io.handle, &fd) != 0) return;
    ssize_t n;
    do n = ::read(fd, read_buffer_, kReadSize);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // libuv reads it when it comes
    uv_buf_t buf = uv_buf_init(read_buffer_, kReadSize);
    on_read(&c->io.stream, n > 0 ? n : n == 0 ? UV_EOF : -errno, &buf);
  }

  static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(handle->data);
    // While a body is expected each read gets a block that becomes the Buffer JavaScript
    // reads the body from (no copy); otherwise the server's one buffer, from which the codecs
    // copy what they keep.
    // (Not while draining what follows the last response: those bytes are dropped.)
    const bool own = c->want_body && !c->ended && !c->cut;
    if (own && c->read_block == nullptr) c->make_block(kReadSize);
    *buf = own && c->read_block != nullptr ? uv_buf_init(reinterpret_cast<char*>(c->read_block), kReadSize)
                                           : uv_buf_init(owner(c)->read_buffer_, kReadSize);
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(stream->data);
    StreamServer* self = owner(c);
    if (nread <= 0 || c->ended || c->cut) c->drop_block();  // nothing to decode in it
    if (nread == 0) return;
    if (nread > 0 && (c->ended || c->cut)) return;
    Napi::HandleScope scope(self->Env());
    // One list for every read: a read made while a callback runs (adopt() reads at once) finds
    // the outer read's events already copied out for JavaScript, and its callback, nested,
    // gets arrays of its own.
    Events& slots = self->read_events_;
    slots.clear();
    c->slots = &slots;
    c->read_base = reinterpret_cast<const uint8_t*>(buf->base);
    c->read_size = nread > 0 ? static_cast<size_t>(nread) : 0;
    c->read_chunk = nullptr;
    c->body_slot = SIZE_MAX;
    c->body_join.reset();
    bool close_now = false;
    bool with_peer = false;
    if (nread > 0) {
      if (const Error* e = self->self()->consume(c, reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread))) {
        self->add_error(c, *e);
        close_now = with_peer = true;
      }
    } else {
      close_now = true;
      if (c->ended) {
        // The front server closed after our last response: the lingering close is over.
      } else if (const Error* e = self->self()->finish_input(c)) {
        self->add_error(c, *e);
        with_peer = true;
      } else if (self->self()->has_open(c)) {
        c->add(kClose, static_cast<double>(c->queued));
      }
    }
    c->slots = nullptr;
    c->read_chunk = nullptr;
    // A block no body slice needed is kept for the next read.
    self->settle(c, slots, close_now, with_peer, false);
  }

  static void on_header_timeout(uv_timer_t* timer) {
    auto* c = static_cast<Conn*>(timer->data);
    StreamServer* self = owner(c);
    if (c->closing || c->header_due == 0) return;
    const uint64_t now = uv_now(self->loop_);
    if (now < c->header_due) {
      uv_timer_start(&c->timer, on_header_timeout, c->header_due - now, 0);
      return;
    }
    c->header_due = 0;
    Napi::HandleScope scope(self->Env());
    Events slots;
    c->slots = &slots;
    c->add(kTimeout, self->self()->between_requests(c) ? 1 : 0);
    c->slots = nullptr;
    self->settle(c, slots, true, true, false);
  }

  // Closes if asked, then hands the events to JavaScript (after the close: a callback that
  // writes to this connection finds it gone).
  void settle(Conn* c, const Events& slots, bool close_now, bool with_peer, bool reset) {
    const uint32_t id = c->id;
    std::string peer = with_peer ? peer_of(c) : std::string();
    if (close_now) destroy(c, reset);
    if (!slots.empty()) emit(id, slots, peer);
  }

  std::string peer_of(ConnBase* c) {
    if (!c->is_tcp) return "unix socket";
    sockaddr_storage addr{};
    int len = sizeof addr;
    if (uv_tcp_getpeername(&c->io.tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown peer";
    return address_text(addr);
  }

  // The listener's own address as the connection reached it: "127.0.0.1:9000".
  std::string local_of(ConnBase* c) {
    sockaddr_storage addr{};
    int len = sizeof addr;
    if (uv_tcp_getsockname(&c->io.tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown address";
    return address_text(addr);
  }

  static std::string address_text(const sockaddr_storage& addr) {
    char ip[64] = {};
    if (addr.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
      uv_ip6_name(a, ip, sizeof ip);
      return std::string("[") + ip + "]:" + std::to_string(ntohs(a->sin6_port));
    }
    auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    uv_ip4_name(a, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(a->sin_port));
  }

  // Calls JavaScript once with the events of one callback (microtasks run after it, as for
  // any I/O callback: MakeCallback).
  void emit(uint32_t id, const Events& events, const std::string& peer) {
    Napi::Env env = this->Env();
    const bool nested = emitting_ > 0;
    napi_value objects = env.Undefined();
    if (!events.objects.empty()) {
      napi_create_array_with_length(env, events.objects.size(), &objects);
      for (uint32_t i = 0; i < events.objects.size(); i++) napi_set_element(env, objects, i, events.objects[i]);
    }
    // (connection, events, their slot count, the objects they carry, peer, params layouts)
    napi_value args[6] = {Napi::Number::New(env, id), events_.fill(env, events.slots, nested),
                          Napi::Number::New(env, static_cast<double>(events.slots.size())), objects,
                          peer.empty() ? env.Undefined() : Napi::String::New(env, peer), params_.array(env, nested)};
    napi_value result;
    emitting_++;
    napi_status s = napi_make_callback(env, async_, this->Value(), on_events_.Value(), 6, args, &result);
    // A callback may lead to another (JavaScript closes a connection): the layouts stay until
    // the outermost has returned.
    if (--emitting_ == 0) params_.clear();
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
    if (--c->open_handles > 0) return;
    c->drop_block();
    delete c;
  }

  // The last response is out: half-close, then read and drop until the front server closes
  // (at most header-timeout), so an unread body is drained, never reset.
  void linger(Conn* c) {
    // The whole request was read and the response is in the kernel: a plain close sends the
    // FIN after it (no unread bytes, so no reset), and saves the shutdown and the wait.
    if (c->input_done) {
      destroy(c, false);
      return;
    }
    // Reading may have been paused for an unread body: it must flow to be drained.
    uv_read_start(&c->io.stream, on_alloc, on_read);
    // The FIN goes now, in the same turn as the response's last bytes (uv_shutdown would wait
    // for the next turn of the loop): a front server that keeps connections (nginx's keepalive
    // cache, FastCGI keep-conn) then most likely reads both at once and drops the connection,
    // instead of caching it and sending the next request into a close.
    uv_os_fd_t fd;
    if (uv_fileno(&c->io.handle, &fd) != 0 || ::shutdown(fd, SHUT_WR) != 0) {
      destroy(c, false);
      return;
    }
    const uint64_t ms = header_timeout_ms_ > 0 ? header_timeout_ms_ : 10000;
    uv_timer_start(&c->timer, [](uv_timer_t* t) {
      auto* conn = static_cast<Conn*>(t->data);
      owner(conn)->destroy(conn, false);
    }, ms, 0);
  }

  // Cut after the front server read what was sent: a reset (TCP) says "not complete". The
  // protocol's mark of a broken response (mark_cut) goes after the same delay, never in the
  // same read as the response's last bytes (nginx with keep-conn then drops the response
  // whole), and the close waits until the kernel took it. Any other request still open on the
  // connection (FastCGI multiplexing) is told it is gone.
  void start_cut(Conn* c) {
    uv_read_stop(&c->io.stream);
    uv_timer_start(&c->timer, [](uv_timer_t* t) {
      auto* conn = static_cast<Conn*>(t->data);
      StreamServer* self = owner(conn);
      if (!conn->cut_marked) {
        conn->cut_marked = true;
        self->self()->mark_cut(conn);
        if (conn->queued > 0) return;  // after_write finishes the cut
      }
      self->finish_cut(conn);
    }, kCutDelayMs, 0);
  }

  void finish_cut(Conn* c) {
    if (c->closing) return;
    Napi::HandleScope scope(this->Env());
    Events slots;
    c->slots = &slots;
    if (self()->has_open(c)) c->add(kClose, static_cast<double>(c->queued));
    c->slots = nullptr;
    settle(c, slots, true, false, true);
  }

  // A write failed (the peer is gone) while a request may be open on the connection: close it
  // and tell JavaScript, also when reading is paused for body backpressure (no read would
  // report the loss then). `lost`: bytes of the failed write.
  void fail(Conn* c, size_t lost) {
    if (c->closing) return;
    Napi::HandleScope scope(this->Env());
    Events slots;
    c->slots = &slots;
    if (self()->has_open(c)) c->add(kClose, static_cast<double>(c->queued + lost));
    c->slots = nullptr;
    settle(c, slots, true, false, false);
  }

  // The same from inside a JavaScript call (respond): the CLOSE goes out on the next turn of
  // the loop, never into the middle of the caller's send.
  void break_soon(Conn* c, size_t lost) {
    if (c->broken || c->closing) return;
    c->broken = true;
    c->lost = lost;
    uv_read_stop(&c->io.stream);
    uv_timer_start(&c->timer, [](uv_timer_t* t) {
      auto* conn = static_cast<Conn*>(t->data);
      owner(conn)->fail(conn, conn->lost);
    }, 0, 0);
  }

  // ---- handing a connection off ----

  // On the next turn of the loop (never inside the JavaScript call that wrote the response).
  void hand_off_soon(Conn* c) {
    uv_timer_start(&c->timer, [](uv_timer_t* t) {
      auto* conn = static_cast<Conn*>(t->data);
      owner(conn)->hand_off(conn);
    }, 0, 0);
  }

  // The connection leaves this process whole: reading stops at a request boundary (nothing of
  // the next request decoded, nothing queued), so every byte the front server sends from now on
  // waits in the kernel for the worker that adopts the socket. JavaScript gets a duplicate of
  // it; closing ours sends nothing. A connection not at a boundary (the next request began) is
  // served here first, and handed off after that response.
  void hand_off(Conn* c) {
    c->handing_off = false;
    if (c->closing || c->ended || c->cut || c->broken || c->queued > 0 || self()->has_open(c)) return;
    if (!self()->between_requests(c)) {
      // Bytes of a request that is not complete yet: it is served, and the connection handed
      // off after its response; a stray partial record ends at header-timeout, as any.
      arm_header_timer(c);
      return;
    }
    uv_read_stop(&c->io.stream);
    uv_os_fd_t fd;
    const int copy = uv_fileno(&c->io.handle, &fd) == 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (copy < 0) {
      end_connection(c);
      return;
    }
    Napi::HandleScope scope(this->Env());
    Events slots;
    c->slots = &slots;
    c->add(kHandoff, static_cast<double>(copy));
    c->slots = nullptr;
    settle(c, slots, true, false, false);
  }

  // adopt(fd): serve a connected socket another worker of the site handed off (its duplicate:
  // the caller closes its own). False when this listener stopped or is full.
  Napi::Value adopt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int fd = info[0].As<Napi::Number>().Int32Value();
    if (stopping_ || (max_connections_ > 0 && conns_.size() >= max_connections_)) return Napi::Boolean::New(env, false);
    const int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) return Napi::Boolean::New(env, false);
    Conn* c = new_conn();
    const int rc = is_pipe_ ? uv_pipe_open(&c->io.pipe, own) : uv_tcp_open(&c->io.tcp, own);
    if (rc != 0) {
      ::close(own);
      destroy(c, false);
      return Napi::Boolean::New(env, false);
    }
    serve_conn(c);
    return Napi::Boolean::New(env, true);
  }

  // ---- writes ----

  struct WriteReq {
    uv_write_t req;
    std::unique_ptr<char[]> data;  // the copied part of the queued bytes
    napi_ref keep = nullptr;       // the JavaScript value holding the others
    size_t size;
  };

  static void release(Conn* c, WriteReq* w) {
    if (w->keep != nullptr) napi_delete_reference(c->env, w->keep);
    delete w;
  }

  static void on_write(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<WriteReq*>(req);
    auto* c = static_cast<Conn*>(req->data);
    const size_t w_size = w->size;
    c->queued -= w_size;
    release(c, w);
    if (c->closing) return;
    if (status < 0) {
      // The peer is gone. After the last response (or a cut) there is nothing to report.
      if (c->ended || c->cut) owner(c)->destroy(c, false);
      else owner(c)->fail(c, w_size);
      return;
    }
    owner(c)->after_write(c);
  }

  void after_write(Conn* c) {
    if (c->queued > 0) return;
    if (c->cut) {
      if (c->cut_marked) finish_cut(c);
      else start_cut(c);
      return;
    }
    if (c->ended) {
      linger(c);
      return;
    }
    if (c->handing_off) {
      hand_off_soon(c);
      return;
    }
    if (c->want_drain) {
      c->want_drain = false;
      Napi::HandleScope scope(this->Env());
      Events slots;
      c->slots = &slots;
      c->add(kDrain);
      c->slots = nullptr;
      emit(c->id, slots, std::string());
    }
  }

  // ---- JavaScript methods ----

  // cut(connId): end the connection's response without a clean end.
  Napi::Value cut_js(const Napi::CallbackInfo& info) {
    Conn* c = find(info[0]);
    if (c && !c->ended && !c->cut && !c->broken) {
      c->cut = true;
      if (c->queued == 0) start_cut(c);
    }
    return info.Env().Undefined();
  }

  // pause(connId, paused): stop or resume reading the connection (request-body backpressure).
  Napi::Value pause(const Napi::CallbackInfo& info) {
    Conn* c = find(info[0]);
    if (c && !c->ended && !c->cut) {
      if (info[1].ToBoolean()) uv_read_stop(&c->io.stream);
      else uv_read_start(&c->io.stream, on_alloc, on_read);
    }
    return info.Env().Undefined();
  }

  // Accepts on a duplicate of the listening socket: closing the duplicate stops this process
  // accepting while the socket itself (and its queue of connections, which the group's other
  // workers keep accepting from) stays open.
  int open_listener() {
    // The listener lives on the heap: libuv may call back after a failed open.
    listener_ = new Stream{};
    const int dup_fd = dup(listen_fd_);
    int rc = dup_fd < 0 ? -errno : 0;
    if (rc == 0) rc = is_pipe_ ? uv_pipe_init(loop_, &listener_->pipe, 0) : uv_tcp_init(loop_, &listener_->tcp);
    if (rc != 0) {
      if (dup_fd >= 0) ::close(dup_fd);
      delete listener_;
      listener_ = nullptr;
      return rc;
    }
    listener_->handle.data = this;
    rc = is_pipe_ ? uv_pipe_open(&listener_->pipe, dup_fd) : uv_tcp_open(&listener_->tcp, dup_fd);
    if (rc != 0) ::close(dup_fd);
    if (rc == 0) rc = uv_listen(&listener_->stream, 511, on_connection);
    if (rc != 0) {
      close_listener();
      return rc;
    }
    listener_open_ = true;
    return 0;
  }

  void close_listener() {
    listener_open_ = false;
    listener_->handle.data = nullptr;
    uv_close(&listener_->handle, [](uv_handle_t* h) { delete reinterpret_cast<Stream*>(h); });
    listener_ = nullptr;
  }

  // pauseAccept(paused): stop or resume accepting new connections (the worker is at its
  // `concurrency`); the connections wait in the socket's queue for another worker, or for this
  // one to resume. False when accepting could not resume (the error is in the log line of
  // the caller).
  Napi::Value pause_accept(const Napi::CallbackInfo& info) {
    const bool paused = info[0].ToBoolean();
    int rc = 0;
    if (!stopping_) {
      if (paused && listener_open_) close_listener();
      else if (!paused && !listener_open_) rc = open_listener();
    }
    return Napi::Boolean::New(info.Env(), rc == 0);
  }

  // close(keepIdle = false, handoff = false): stop accepting; requests on accepted connections
  // are served, and connections with no request on them (or once their last one ends) are
  // closed. With keepIdle, idle persistent connections stay open and each closes after its
  // next response: a front server may be sending a request on one this instant (nginx's
  // keepalive cache), and closing it under that request loses it. With handoff too, a
  // persistent connection between requests (at once, or after its response) is handed to
  // JavaScript (HANDOFF) to pass to another worker: it is never closed under the front server.
  // A later close() ends the ones still idle.
  Napi::Value close(const Napi::CallbackInfo& info) {
    stopping_ = true;
    if (listener_open_) close_listener();
    if (info.Length() > 0 && info[0].ToBoolean()) {
      if (info.Length() > 1 && info[1].ToBoolean()) {
        handoff_ = true;
        for (auto& [id, c] : conns_) {
          if (self()->between_requests(c)) hand_off_after_response(c);
        }
      }
      return info.Env().Undefined();
    }
    handoff_ = false;
    std::vector<Conn*> idle;
    for (auto& [id, c] : conns_) {
      if (self()->idle(c)) idle.push_back(c);
    }
    for (Conn* c : idle) end_connection(c);
    maybe_unref();
    return info.Env().Undefined();
  }

  // peer(connId): "127.0.0.1:51234" for the log lines about a request ("" once it is gone).
  Napi::Value peer(const Napi::CallbackInfo& info) {
    Conn* c = find(info[0]);
    return Napi::String::New(info.Env(), c ? peer_of(c) : std::string());
  }

  Napi::Value connections(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(conns_.size()));
  }

  void maybe_unref() {
    if (stopping_ && !listener_open_ && conns_.empty() && !unrefed_) {
      unrefed_ = true;
      this->Unref();
    }
  }

  uv_loop_t* loop_ = nullptr;
  int listen_fd_ = -1;
  Stream* listener_ = nullptr;
  bool listener_open_ = false;
  bool unrefed_ = false;
  bool is_pipe_ = false;
  bool stopping_ = false;
  bool handoff_ = false;
  uint64_t header_timeout_ms_ = 10000;
  size_t max_connections_ = 0;
  AllowList allow_;
  uint64_t refused_ = 0;  // since the last REFUSED
  uint64_t last_refusal_report_ = 0;
  bool reported_refusal_ = false;
  uint32_t next_id_ = 0;
  std::unordered_map<uint32_t, Conn*> conns_;
  Napi::FunctionReference on_events_;
  SharedParams params_;
  SharedArray<double> events_;
  Events read_events_;
  int emitting_ = 0;
  napi_async_context async_ = nullptr;
  char read_buffer_[kReadSize];
};

}  // namespace tsgi::binding
