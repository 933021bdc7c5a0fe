// The FastCGI listener owned by native code (DESIGN §2), on stream_server.h's connections.
// A connection carries one request at a time from nginx (with or without FCGI_KEEP_CONN)
// and may multiplex several from other front servers. Everything that needs no application
// is answered here, in the same write as the read that asked: FCGI_GET_VALUES, unknown
// record types, unknown roles, FCGI_OVERLOADED, and the FCGI_END_REQUEST that answers
// FCGI_ABORT_REQUEST at once. JavaScript (src/protocol/fastcgi-native.ts) is called once per
// read with the requests whose params completed, their body chunks and ends, and the aborts;
// it answers with one `respond` call per write, framed here in STDOUT records that point at
// its bytes (writev: the body is not copied unless the kernel does not take it at once).
#include <array>

#include "../fastcgi/codec.h"
#include "stream_server.h"

namespace tsgi::binding {

namespace {

using fastcgi::kMaxRecordContent;

struct FcgiRequest {
  uint16_t id = 0;
  uint16_t role = 0;
  bool keep_conn = false;
  bool stdin_done = false;
};

struct FastCgiConn final : ConnBase, fastcgi::Sink {
  fastcgi::Decoder decoder;
  std::vector<FcgiRequest> requests;
  std::string control;                 // management answers of the read being decoded
  std::vector<FcgiRequest> ended_now;  // requests the read being decoded ended (aborts)
  const std::string* values = nullptr;  // the GET_VALUES answers, name → value pairs, encoded
  uint64_t idle_at = UINT64_MAX;        // stream offset when the last request ended (keep-conn)

  explicit FastCgiConn(fastcgi::Limits limits) : decoder(limits) {}

  FcgiRequest* request(uint16_t id) {
    for (auto& r : requests) {
      if (r.id == id) return &r;
    }
    return nullptr;
  }

  // Reads go to blocks of their own while some request's body is still coming.
  void update_want_body() {
    want_body = false;
    for (const auto& r : requests) want_body = want_body || !r.stdin_done;
  }

  void on_begin(uint16_t id, uint16_t role, uint8_t flags) override {
    if (role != fastcgi::FCGI_RESPONDER && role != fastcgi::FCGI_AUTHORIZER) {
      fastcgi::encode_end_request(control, id, 0, fastcgi::FCGI_UNKNOWN_ROLE);
      decoder.release(id);  // safe here: the decoder is done with the record
      add(kUnknownRole, id, role);
      return;
    }
    requests.push_back(FcgiRequest{id, role, (flags & fastcgi::FCGI_KEEP_CONN) != 0, false});
  }
  void on_overloaded(uint16_t id) override {
    fastcgi::encode_end_request(control, id, 0, fastcgi::FCGI_OVERLOADED);
    add(kOverloaded, id);
  }
  void on_params(uint16_t id, const std::vector<Span>& pairs) override {
    const FcgiRequest* r = request(id);
    if (!r) return;
    disarm_header();
    want_body = true;
    double at = 0;
    napi_value packed = params->add(env, pairs, r->role, at, r->keep_conn ? kPackKeepConn : 0);
    add(kParams, id, object(packed), at);
  }
  void on_stdin(uint16_t id, const uint8_t* data, size_t size) override {
    add_body(kStdin, id, data, size);
  }
  void on_stdin_end(uint16_t id) override {
    if (FcgiRequest* r = request(id)) r->stdin_done = true;
    update_want_body();
    add(kStdinEnd, id);
  }
  // FILTER requests are refused at BEGIN: DATA never belongs to an active request.
  void on_data(uint16_t, const uint8_t*, size_t) override {}
  void on_data_end(uint16_t) override {}
  void on_abort(uint16_t id) override {
    FcgiRequest* r = request(id);
    if (!r) return;
    fastcgi::encode_end_request(control, id, 0, fastcgi::FCGI_REQUEST_COMPLETE);
    ended_now.push_back(*r);
    requests.erase(requests.begin() + (r - requests.data()));
    decoder.release(id);  // safe here: the decoder is done with the record
    update_want_body();
    add(kAbort, id);
  }
  void on_get_values(const std::vector<Span>& pairs) override {
    // Answer the names we know, in the order asked (spec §4.1).
    std::string content;
    for (size_t i = 0; i + 1 < pairs.size(); i += 2) {
      const std::string name(reinterpret_cast<const char*>(pairs[i].data), pairs[i].size);
      for (size_t at = 0; at < values->size();) {
        const size_t nlen = static_cast<uint8_t>((*values)[at]);
        const size_t vlen = static_cast<uint8_t>((*values)[at + 1]);
        if (values->compare(at + 2, nlen, name) == 0 && nlen == name.size()) {
          content.append(*values, at, 2 + nlen + vlen);
          break;
        }
        at += 2 + nlen + vlen;
      }
    }
    if (content.empty()) {
      fastcgi::encode_stream_end(control, fastcgi::FCGI_GET_VALUES_RESULT, 0);
    } else {
      fastcgi::encode_stream(control, fastcgi::FCGI_GET_VALUES_RESULT, 0,
                             reinterpret_cast<const uint8_t*>(content.data()), content.size());
    }
  }
  void on_unknown_type(uint8_t type) override { fastcgi::encode_unknown_type(control, type); }
};

class FastCgiServer : public StreamServer<FastCgiServer, FastCgiConn> {
 public:
  static Napi::Function define(Napi::Env env) {
    auto methods = common_methods();
    methods.push_back(InstanceMethod<&FastCgiServer::respond>("respond"));
    return DefineClass(env, "FastCgiServer", methods);
  }

  // (fd, isPipe, headerTimeoutMs, maxConnections, onEvents, allow, maxParams, maxRequests)
  explicit FastCgiServer(const Napi::CallbackInfo& info) : StreamServer(info, "tsgi.fastcgi") {
    limits_.max_params = static_cast<size_t>(info[6].As<Napi::Number>().Int64Value());
    limits_.max_requests = static_cast<size_t>(info[7].As<Napi::Number>().Int64Value());
    // The GET_VALUES answers, as encoded pairs (every name and value is under 128 bytes).
    const int64_t max_conns = info[3].As<Napi::Number>().Int64Value();
    const std::pair<std::string, std::string> known[] = {
        {"FCGI_MAX_CONNS", std::to_string(max_conns)},
        {"FCGI_MAX_REQS", std::to_string(limits_.max_requests)},
        {"FCGI_MPXS_CONNS", "1"},
    };
    for (const auto& [name, value] : known) {
      values_.push_back(static_cast<char>(name.size()));
      values_.push_back(static_cast<char>(value.size()));
      values_ += name;
      values_ += value;
    }
  }

  FastCgiConn* make_conn() {
    auto* c = new FastCgiConn(limits_);
    c->values = &values_;
    return c;
  }

  const Error* consume(FastCgiConn* c, const uint8_t* data, size_t size) {
    const Status s = c->decoder.push(data, size, *c);
    if (!c->control.empty()) {
      uv_buf_t buf = uv_buf_init(c->control.data(), static_cast<unsigned>(c->control.size()));
      write(c, &buf, 1);
      c->control.clear();
    }
    for (const FcgiRequest& r : c->ended_now) request_ended(c, r);
    c->ended_now.clear();
    return s == Status::kOk ? nullptr : &c->decoder.error();
  }

  const Error* finish_input(FastCgiConn* c) {
    return c->decoder.end() != Status::kOk ? &c->decoder.error() : nullptr;
  }

  bool has_open(FastCgiConn* c) { return !c->requests.empty(); }
  bool idle(FastCgiConn* c) { return c->requests.empty(); }
  // A persistent connection that nothing was sent on since its last request: closing it is
  // routine (nginx closes idle upstream connections the same way), not worth a log line.
  bool between_requests(FastCgiConn* c) { return c->requests.empty() && c->decoder.offset() == c->idle_at; }

  // Before a cut (an exception after the head went out) on a unix socket, a record header of
  // version 0. There a close is all a cut can be (no reset exists), and nginx without
  // FCGI_KEEP_CONN takes the connection's end for the response's end; an invalid record makes
  // any FastCGI client drop the response as broken (nginx: "upstream sent unsupported FastCGI
  // protocol version: 0"). Responses are written in whole records, so this header starts a
  // record of its own. On TCP the reset says it.
  void mark_cut(FastCgiConn* c) {
    if (c->is_tcp) return;  // a reset says it, and nginx then still passes on what it got
    static char broken[fastcgi::kHeaderSize] = {};
    uv_buf_t buf = uv_buf_init(broken, sizeof broken);
    write(c, &buf, 1);
  }

 private:
  // A request's FCGI_END_REQUEST went out: without FCGI_KEEP_CONN the application closes the
  // connection (spec §3.5) once no request is left on it; a persistent one waits for the
  // next request within header-timeout, or, while the worker drains, goes to another worker.
  void request_ended(FastCgiConn* c, const FcgiRequest& r) {
    if (!c->requests.empty()) return;
    if (r.keep_conn && handoff_mode()) {
      c->idle_at = c->decoder.offset();  // a request boundary, as between_requests() knows it
      hand_off_after_response(c);
    } else if (!r.keep_conn || stopping()) {
      c->input_done = r.stdin_done;
      end_connection(c);
    } else {
      c->idle_at = c->decoder.offset();
      arm_header_timer(c);
    }
  }

  // respond(connId, requestId, head: string (latin1) | null, body: Uint8Array | string (UTF-8)
  // | null, end, appStatus): the head and body as FCGI_STDOUT, and with `end` the empty
  // STDOUT and FCGI_END_REQUEST (appStatus: the HTTP status). True while the caller may go
  // on writing, false when it should wait for DRAIN.
  Napi::Value respond(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    FastCgiConn* c = find(info[0]);
    const auto id = static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value());
    FcgiRequest* r = c && !c->ended && !c->cut ? c->request(id) : nullptr;
    if (!r) return Napi::Boolean::New(env, true);  // aborted, or the connection is gone

    thread_local std::string head;
    head.clear();
    if (info[2].IsString()) read_byte_string(env, info[2], head);
    std::string utf8;
    const char* body = nullptr;
    size_t body_size = 0;
    napi_value keep = nullptr;
    if (typed_bytes(env, info[3], body, body_size)) {
      keep = info[3];
    } else if (info[3].IsString()) {
      utf8 = info[3].As<Napi::String>().Utf8Value();
      body = utf8.data();
      body_size = utf8.size();
    }
    const bool end = info[4].ToBoolean();

    // Records of at most kMaxRecordContent bytes, each a header, the bytes in place (from
    // the head, the body or both) and its padding to 8.
    static const char kZeros[8] = {};
    const size_t total = head.size() + body_size;
    const size_t records = (total + kMaxRecordContent - 1) / kMaxRecordContent;
    thread_local std::vector<std::array<uint8_t, fastcgi::kHeaderSize>> headers;
    thread_local std::vector<uv_buf_t> bufs;
    thread_local std::string tail;
    headers.resize(records);
    bufs.clear();
    const char* pieces[2] = {head.data(), body};
    size_t left[2] = {head.size(), body_size};
    size_t piece = 0;
    for (size_t i = 0; i < records; i++) {
      const size_t len = std::min(kMaxRecordContent, total - i * kMaxRecordContent);
      const size_t pad = fastcgi::padding_for(len);
      fastcgi::put_header(headers[i].data(), fastcgi::FCGI_STDOUT, id, static_cast<uint16_t>(len), static_cast<uint8_t>(pad));
      bufs.push_back(uv_buf_init(reinterpret_cast<char*>(headers[i].data()), fastcgi::kHeaderSize));
      for (size_t need = len; need > 0;) {
        while (left[piece] == 0) piece++;
        const size_t take = std::min(need, left[piece]);
        bufs.push_back(uv_buf_init(const_cast<char*>(pieces[piece]), static_cast<unsigned>(take)));
        pieces[piece] += take;
        left[piece] -= take;
        need -= take;
      }
      if (pad > 0) bufs.push_back(uv_buf_init(const_cast<char*>(kZeros), static_cast<unsigned>(pad)));
    }
    tail.clear();
    if (end) {
      fastcgi::encode_stream_end(tail, fastcgi::FCGI_STDOUT, id);
      fastcgi::encode_end_request(tail, id, info[5].As<Napi::Number>().Uint32Value(), fastcgi::FCGI_REQUEST_COMPLETE);
      bufs.push_back(uv_buf_init(tail.data(), static_cast<unsigned>(tail.size())));
    }
    // In batches the kernel takes in one writev (IOV_MAX is 1024); write() keeps their order.
    constexpr size_t kBatch = 512;
    for (size_t at = 0; at < bufs.size(); at += kBatch) {
      if (!write(c, bufs.data() + at, static_cast<unsigned>(std::min(kBatch, bufs.size() - at)), keep, body, body_size)) {
        return Napi::Boolean::New(env, true);  // the connection failed: reading reports it
      }
    }
    if (!end) return Napi::Boolean::New(env, may_write_more(c));
    const FcgiRequest done = *r;
    c->requests.erase(c->requests.begin() + (r - c->requests.data()));
    c->decoder.release(id);
    c->update_want_body();
    request_ended(c, done);
    return Napi::Boolean::New(env, true);
  }

  fastcgi::Limits limits_;
  std::string values_;
};

}  // namespace

Napi::Function define_fastcgi_server(Napi::Env env) { return FastCgiServer::define(env); }

}  // namespace tsgi::binding
