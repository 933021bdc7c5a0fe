// Decoder statuses shared by both codecs, and the error they travel in.
//
// Cross-language contract: the binding exports these names in this order, and src/errors.ts
// maps each name to its TSGI_ERR_* code (test/unit/errors.test.ts checks that every name has
// one). Add a status at the end, never in the middle.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tsgi {

#define TSGI_STATUS_LIST(X)    \
  X(kOk, "OK")                 \
  X(kFcgiVersion, "FCGI_VERSION") \
  X(kFcgiUnexpectedRecord, "FCGI_UNEXPECTED_RECORD") \
  X(kFcgiBeginBody, "FCGI_BEGIN_BODY") \
  X(kFcgiDuplicateRequest, "FCGI_DUPLICATE_REQUEST") \
  X(kFcgiParamsTooLarge, "FCGI_PARAMS_TOO_LARGE") \
  X(kFcgiParamsMalformed, "FCGI_PARAMS_MALFORMED") \
  X(kFcgiNameTooLong, "FCGI_NAME_TOO_LONG") \
  X(kFcgiTruncated, "FCGI_TRUNCATED") \
  X(kUwsgiModifier, "UWSGI_MODIFIER") \
  X(kUwsgiVarsTooLarge, "UWSGI_VARS_TOO_LARGE") \
  X(kUwsgiVarsMalformed, "UWSGI_VARS_MALFORMED") \
  X(kUwsgiNameTooLong, "UWSGI_NAME_TOO_LONG") \
  X(kUwsgiContentLength, "UWSGI_CONTENT_LENGTH") \
  X(kUwsgiTrailingData, "UWSGI_TRAILING_DATA") \
  X(kUwsgiTruncated, "UWSGI_TRUNCATED")

enum class Status : uint8_t {
#define TSGI_STATUS_ENUM(id, name) id,
  TSGI_STATUS_LIST(TSGI_STATUS_ENUM)
#undef TSGI_STATUS_ENUM
};

inline const char* status_name(Status status) {
  switch (status) {
#define TSGI_STATUS_CASE(id, name) \
  case Status::id:                 \
    return name;
    TSGI_STATUS_LIST(TSGI_STATUS_CASE)
#undef TSGI_STATUS_CASE
  }
  return "UNKNOWN";
}

// A byte range: into the caller's input or into a decoder's own buffer.
struct Span {
  const uint8_t* data;
  size_t size;
};

// `value` as a decimal of 1 to `max_digits` ASCII digits (CONTENT_LENGTH); false otherwise.
inline bool parse_decimal(const Span& value, size_t max_digits, uint64_t& out) {
  if (value.size == 0 || value.size > max_digits) return false;
  uint64_t n = 0;
  for (size_t i = 0; i < value.size; i++) {
    const uint8_t c = value.data[i];
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  out = n;
  return true;
}

struct Error {
  Status status = Status::kOk;
  uint64_t offset = 0;   // absolute position in the connection's stream
  std::string reason;    // short, for the log line; never contains request data
};

}  // namespace tsgi
