// uwsgi packet codec: an incremental decoder of one request (the 4-byte header, the vars
// block, the body by CONTENT_LENGTH) and the encoder of a request's header and vars.
//
// Wire format (uwsgi-docs Protocol.rst): modifier1 (u8), datasize (u16 little-endian),
// modifier2 (u8); then datasize bytes of vars, each {u16 LE key_size, key, u16 LE val_size,
// val}; then the body. modifier1 0 is "a WSGI request followed by the HTTP body": the only one
// we serve. The vars UWSGI_FILE, UWSGI_MODULE, ... are data here, never instructions.
//
// The rules, events and error offsets are a cross-language contract with the TypeScript
// oracle in test/oracle/uwsgi.ts: see native/README.md. Plain C++: no Node here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../status.h"

namespace tsgi::uwsgi {

constexpr size_t kHeaderSize = 4;
constexpr size_t kMaxDatasize = 0xffff;
// Limits; native/README.md gives the reason for each.
constexpr size_t kDefaultMaxParams = 64 * 1024;
constexpr size_t kMaxNameBytes = 8192;
// CONTENT_LENGTH must fit a JavaScript safe integer: the body is counted in JS numbers.
constexpr uint64_t kMaxContentLength = (uint64_t{1} << 53) - 1;
constexpr size_t kMaxContentLengthDigits = 16;

using tsgi::Span;

class Sink {
 public:
  virtual ~Sink() = default;
  // vars holds key0, value0, key1, value1, ... (valid during the call only)
  virtual void on_request(uint8_t modifier1, uint8_t modifier2, const std::vector<Span>& vars,
                          uint64_t content_length) = 0;
  virtual void on_body(const uint8_t* data, size_t size) = 0;
  virtual void on_body_end() = 0;
};

struct Limits {
  size_t max_params = kDefaultMaxParams;
};

class Decoder {
 public:
  explicit Decoder(Limits limits = {});

  Status push(const uint8_t* data, size_t size, Sink& sink);
  // The peer closed its side: kUwsgiTruncated unless the whole request arrived.
  Status end();

  const Error& error() const { return error_; }
  uint64_t offset() const { return offset_; }

 private:
  enum class State : uint8_t { kHeader, kVars, kBody, kDone };

  Status fail(Status status, uint64_t offset, std::string reason);
  Status on_vars_complete(Sink& sink);

  Limits limits_;
  Error error_;
  State state_ = State::kHeader;
  uint8_t header_[kHeaderSize] = {};
  size_t header_have_ = 0;
  uint64_t offset_ = 0;
  size_t datasize_ = 0;
  std::string vars_;
  std::vector<Span> spans_;
  uint64_t body_left_ = 0;
};

// Appends the header and vars of a request; vars holds key0, value0, ... Returns false (and
// appends nothing) when the vars block would not fit the 16-bit datasize.
bool encode_request(std::string& out, uint8_t modifier1, uint8_t modifier2, const Span* vars,
                    size_t count);

}  // namespace tsgi::uwsgi
