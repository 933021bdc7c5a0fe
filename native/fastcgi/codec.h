// FastCGI 1.0 record codec: an incremental decoder of what a web server sends, and the
// encoders for what an application answers (plus the web-server side, for clients and tests).
//
// Wire format (FastCGI 1.0 spec §3.3, §8): every record is an 8-byte header
//   version(=1) type requestIdB1 requestIdB0 contentLengthB1 contentLengthB0 paddingLength reserved
// followed by contentLength bytes of content and paddingLength bytes of padding. Name-value
// pairs (§3.4) carry each length in one byte (< 128) or four bytes big-endian with the high bit
// set. Streams (PARAMS, STDIN, DATA, STDOUT, STDERR) end with an empty record.
//
// The decoding rules, events and error offsets are a cross-language contract with the
// TypeScript oracle in test/oracle/fastcgi.ts: see native/README.md. Plain C++: no Node here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../status.h"

namespace tsgi::fastcgi {

// Record types, spec §8.
enum RecordType : uint8_t {
  FCGI_BEGIN_REQUEST = 1,
  FCGI_ABORT_REQUEST = 2,
  FCGI_END_REQUEST = 3,
  FCGI_PARAMS = 4,
  FCGI_STDIN = 5,
  FCGI_STDOUT = 6,
  FCGI_STDERR = 7,
  FCGI_DATA = 8,
  FCGI_GET_VALUES = 9,
  FCGI_GET_VALUES_RESULT = 10,
  FCGI_UNKNOWN_TYPE = 11,
  FCGI_MAXTYPE = FCGI_UNKNOWN_TYPE,
};

enum Role : uint16_t { FCGI_RESPONDER = 1, FCGI_AUTHORIZER = 2, FCGI_FILTER = 3 };
constexpr uint8_t FCGI_KEEP_CONN = 1;

enum ProtocolStatus : uint8_t {
  FCGI_REQUEST_COMPLETE = 0,
  FCGI_CANT_MPX_CONN = 1,
  FCGI_OVERLOADED = 2,
  FCGI_UNKNOWN_ROLE = 3,
};

constexpr size_t kHeaderSize = 8;
constexpr uint8_t kVersion1 = 1;
// The largest content we put in one record: the largest multiple of 8 that fits the 16-bit
// contentLength, so full records need no padding (PHP-FPM writes 0xfff8 too).
constexpr size_t kMaxRecordContent = 0xfff8;

// Limits; native/README.md gives the reason for each.
constexpr size_t kDefaultMaxParams = 64 * 1024;
constexpr size_t kMaxParamsCeiling = 1024 * 1024;
constexpr size_t kMaxNameBytes = 8192;
constexpr size_t kDefaultMaxRequests = 100;
constexpr size_t kMaxRequestsCeiling = 65535;

using tsgi::Span;

// Receives the decoder's events. Spans point into the caller's input (stdin/data) or into
// the decoder's own buffers (params): both are valid only during the call.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void on_begin(uint16_t id, uint16_t role, uint8_t flags) = 0;
  virtual void on_overloaded(uint16_t id) = 0;
  // pairs holds name0, value0, name1, value1, ...
  virtual void on_params(uint16_t id, const std::vector<Span>& pairs) = 0;
  virtual void on_stdin(uint16_t id, const uint8_t* data, size_t size) = 0;
  virtual void on_stdin_end(uint16_t id) = 0;
  virtual void on_data(uint16_t id, const uint8_t* data, size_t size) = 0;
  virtual void on_data_end(uint16_t id) = 0;
  virtual void on_abort(uint16_t id) = 0;
  virtual void on_get_values(const std::vector<Span>& pairs) = 0;
  virtual void on_unknown_type(uint8_t type) = 0;
};

struct Limits {
  size_t max_params = kDefaultMaxParams;
  size_t max_requests = kDefaultMaxRequests;
};

class Decoder {
 public:
  explicit Decoder(Limits limits = {});

  // Feeds the next bytes of the stream; events go to sink as they complete. Returns the error
  // that stopped the decoder (Status::kOk while it is healthy).
  Status push(const uint8_t* data, size_t size, Sink& sink);
  // The peer closed its side: kFcgiTruncated when the stream stopped inside a record.
  Status end();
  // The owner finished with a request (wrote FCGI_END_REQUEST): its id becomes inactive.
  void release(uint16_t id);

  const Error& error() const { return error_; }
  size_t active_requests() const { return requests_.size(); }
  uint64_t offset() const { return offset_; }

 private:
  struct Request {
    uint16_t id = 0;
    bool params_done = false;
    bool stdin_done = false;
    bool data_done = false;
    std::string params;
  };
  enum class State : uint8_t { kHeader, kContent, kPadding };
  // What the content of the current record is for.
  enum class Content : uint8_t { kSkip, kBegin, kGetValues, kParams, kStdin, kData };

  Status fail(Status status, uint64_t offset, std::string reason);
  Status on_header(Sink& sink);
  Status on_content_complete(Sink& sink);
  Request* find(uint16_t id);
  Status parse_pairs(const uint8_t* data, size_t size, std::vector<Span>& out);

  Limits limits_;
  Error error_;
  State state_ = State::kHeader;
  Content content_kind_ = Content::kSkip;
  uint8_t header_[kHeaderSize] = {};
  size_t header_have_ = 0;
  uint64_t offset_ = 0;         // bytes consumed since the stream began
  uint64_t record_offset_ = 0;  // where the current record's header began
  uint8_t type_ = 0;
  uint16_t id_ = 0;
  size_t content_left_ = 0;
  size_t padding_left_ = 0;
  std::string small_;           // BEGIN_REQUEST body / GET_VALUES content being gathered
  std::vector<Request> requests_;
  std::vector<Span> pairs_;     // reused between parses
};

// ---- Encoders. Each appends to out and returns the number of bytes it appended. ----

// A record header (spec §3.3) into h[0..7]; for framing that does not copy the content.
void put_header(uint8_t* h, uint8_t type, uint16_t id, uint16_t content, uint8_t padding);
// Padding bytes after `content` bytes, to a multiple of 8.
size_t padding_for(size_t content);

// Content of a stream record type (STDOUT, STDERR, STDIN, DATA, PARAMS, GET_VALUES...) cut in
// records of at most max_content bytes (rounded down to a multiple of 8, at least 8), each
// padded to 8. Empty content appends nothing: an empty record ends a stream.
size_t encode_stream(std::string& out, uint8_t type, uint16_t id, const uint8_t* data, size_t size,
                     size_t max_content = kMaxRecordContent);
// The empty record that ends a stream.
size_t encode_stream_end(std::string& out, uint8_t type, uint16_t id);
size_t encode_end_request(std::string& out, uint16_t id, uint32_t app_status, uint8_t protocol_status);
size_t encode_begin_request(std::string& out, uint16_t id, uint16_t role, uint8_t flags);
size_t encode_abort_request(std::string& out, uint16_t id);
size_t encode_unknown_type(std::string& out, uint8_t type);
// One name-value pair, spec §3.4 (no record header).
size_t encode_pair(std::string& out, const uint8_t* name, size_t name_size, const uint8_t* value,
                   size_t value_size);
// Exact size of encode_stream's output, to reserve once.
size_t stream_encoded_size(size_t size, size_t max_content = kMaxRecordContent);

}  // namespace tsgi::fastcgi
