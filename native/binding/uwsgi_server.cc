// The uwsgi listener owned by native code (DESIGN §2): a uwsgi connection carries one request,
// and a net.Socket per connection costs more CPU than the whole request. The connection's
// life is stream_server.h's; this file decodes each read (the request with its vars, body
// chunks, the end) and writes the response: an HTTP head and body, in one `respond` call per
// write. The request logic (environ, application, logging) is src/protocol/uwsgi-native.ts.
#include "../uwsgi/codec.h"
#include "stream_server.h"

namespace tsgi::binding {

namespace {

struct UwsgiConn final : ConnBase, uwsgi::Sink {
  uwsgi::Decoder decoder;
  bool got_request = false;

  explicit UwsgiConn(uwsgi::Limits limits) : decoder(limits) {}

  // The request: [1] its body's length (the codec's: 0 without CONTENT_LENGTH), [2] and [3]
  // its vars packed (SharedParams). The modifiers are the codec's to check, not JavaScript's.
  void on_request(uint8_t, uint8_t, const std::vector<Span>& vars, uint64_t content_length) override {
    got_request = true;
    want_body = true;
    disarm_header();
    double at = 0;
    napi_value packed = params->add(env, vars, 0, at);
    add(kRequest, static_cast<double>(content_length), object(packed), at);
  }
  void on_body(const uint8_t* data, size_t size) override {
    add_body(kBody, 0, data, size);
  }
  void on_body_end() override {
    input_done = true;
    want_body = false;
    add(kBodyEnd);
  }
};

class UwsgiServer : public StreamServer<UwsgiServer, UwsgiConn> {
 public:
  static Napi::Function define(Napi::Env env) {
    auto methods = common_methods();
    methods.push_back(InstanceMethod<&UwsgiServer::respond>("respond"));
    return DefineClass(env, "UwsgiServer", methods);
  }

  // (fd, isPipe, headerTimeoutMs, maxConnections, onEvents, allow, maxParams)
  explicit UwsgiServer(const Napi::CallbackInfo& info) : StreamServer(info, "tsgi.uwsgi") {
    limits_.max_params = static_cast<size_t>(info[6].As<Napi::Number>().Int64Value());
  }

  UwsgiConn* make_conn() { return new UwsgiConn(limits_); }

  const Error* consume(UwsgiConn* c, const uint8_t* data, size_t size) {
    return c->decoder.push(data, size, *c) == Status::kOk ? nullptr : &c->decoder.error();
  }

  // A connection closed before sending anything is no error (a health check, a port scan).
  const Error* finish_input(UwsgiConn* c) {
    return c->decoder.end() != Status::kOk && c->decoder.offset() > 0 ? &c->decoder.error() : nullptr;
  }

  bool has_open(UwsgiConn* c) { return c->got_request && !c->ended && !c->cut; }
  // A connection still sending its request is given its header timeout, even at stop.
  bool idle(UwsgiConn*) { return false; }
  bool between_requests(UwsgiConn*) { return false; }  // one request a connection
  // uwsgi has no in-band way to say "broken": the reset (TCP) or a short Content-Length does.
  void mark_cut(UwsgiConn*) {}

 private:
  // respond(connId, head: string (latin1) | null, body: Uint8Array | string (UTF-8) | null, end):
  // true while the caller may go on writing, false when it should wait for DRAIN.
  Napi::Value respond(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    UwsgiConn* c = find(info[0]);
    if (!c || c->ended || c->cut) return Napi::Boolean::New(env, true);
    std::string head;
    if (info[1].IsString()) read_byte_string(env, info[1], head);
    std::string utf8;
    uv_buf_t bufs[2];
    unsigned n = 0;
    if (!head.empty()) bufs[n++] = uv_buf_init(head.data(), static_cast<unsigned>(head.size()));
    napi_value keep = nullptr;
    const char* keep_data = nullptr;
    size_t keep_size = 0;
    if (typed_bytes(env, info[2], keep_data, keep_size)) {
      keep = info[2];
      if (keep_size > 0) bufs[n++] = uv_buf_init(const_cast<char*>(keep_data), static_cast<unsigned>(keep_size));
    } else if (info[2].IsString()) {
      utf8 = info[2].As<Napi::String>().Utf8Value();
      if (!utf8.empty()) bufs[n++] = uv_buf_init(utf8.data(), static_cast<unsigned>(utf8.size()));
    }
    if (!write(c, bufs, n, keep, keep_data, keep_size)) return Napi::Boolean::New(env, true);
    if (info[3].ToBoolean()) {
      end_connection(c);
      return Napi::Boolean::New(env, true);
    }
    return Napi::Boolean::New(env, may_write_more(c));
  }

  uwsgi::Limits limits_;
};

}  // namespace

Napi::Function define_uwsgi_server(Napi::Env env) { return UwsgiServer::define(env); }

}  // namespace tsgi::binding
