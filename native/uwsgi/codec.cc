// uwsgi request decoder and encoder; the rules are in native/README.md, the format in codec.h.
#include "codec.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace tsgi::uwsgi {

namespace {

std::string format(const char* fmt, unsigned long long a, unsigned long long b = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  return buf;
}

uint16_t read_u16le(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

constexpr char kContentLength[] = "CONTENT_LENGTH";
constexpr size_t kContentLengthSize = sizeof kContentLength - 1;

// CONTENT_LENGTH as 1-16 ASCII digits no larger than kMaxContentLength; false otherwise.
bool parse_content_length(const Span& value, uint64_t& out) {
  uint64_t n = 0;
  if (!parse_decimal(value, kMaxContentLengthDigits, n) || n > kMaxContentLength) return false;
  out = n;
  return true;
}

}  // namespace

Decoder::Decoder(Limits limits) : limits_(limits) {}

Status Decoder::fail(Status status, uint64_t offset, std::string reason) {
  error_.status = status;
  error_.offset = offset;
  error_.reason = std::move(reason);
  return status;
}

Status Decoder::end() {
  if (error_.status != Status::kOk) return error_.status;
  if (state_ != State::kDone) {
    const char* where = state_ == State::kHeader ? "the packet header"
                        : state_ == State::kVars ? "the vars block"
                                                 : "the body";
    return fail(Status::kUwsgiTruncated, offset_,
                std::string("stream ended inside ") + where);
  }
  return Status::kOk;
}

Status Decoder::on_vars_complete(Sink& sink) {
  const auto* data = reinterpret_cast<const uint8_t*>(vars_.data());
  const size_t size = vars_.size();
  spans_.clear();
  bool have_length = false;
  uint64_t content_length = 0;
  size_t at = 0;
  while (at < size) {
    const size_t key_at = at;
    const uint64_t key_offset = kHeaderSize + key_at;
    if (size - at < 2) {
      return fail(Status::kUwsgiVarsMalformed, key_offset,
                  format("key length at byte %llu of a %llu-byte vars block is cut", at, size));
    }
    const size_t key_size = read_u16le(data + at);
    if (key_size > kMaxNameBytes) {
      return fail(Status::kUwsgiNameTooLong, key_offset, format("var name of %llu bytes", key_size));
    }
    at += 2;
    if (key_size > size - at) {
      return fail(Status::kUwsgiVarsMalformed, key_offset,
                  format("key of %llu bytes runs past the vars block end at byte %llu", key_size, size));
    }
    const Span key{data + at, key_size};
    at += key_size;
    if (size - at < 2) {
      return fail(Status::kUwsgiVarsMalformed, kHeaderSize + at,
                  format("value length at byte %llu of a %llu-byte vars block is cut", at, size));
    }
    const size_t value_size = read_u16le(data + at);
    if (value_size > size - at - 2) {
      return fail(Status::kUwsgiVarsMalformed, kHeaderSize + at,
                  format("value of %llu bytes runs past the vars block end at byte %llu", value_size,
                         size));
    }
    at += 2;
    const Span value{data + at, value_size};
    at += value_size;
    if (key.size == kContentLengthSize && std::memcmp(key.data, kContentLength, kContentLengthSize) == 0) {
      // An empty value is nginx's $content_length of a request without a body: 0.
      uint64_t n = 0;
      if (value.size > 0 && !parse_content_length(value, n)) {
        return fail(Status::kUwsgiContentLength, key_offset,
                    "CONTENT_LENGTH is not 1 to 16 digits no larger than 2^53-1");
      }
      if (have_length && n != content_length) {
        return fail(Status::kUwsgiContentLength, key_offset, "two CONTENT_LENGTH vars that disagree");
      }
      have_length = true;
      content_length = n;
    }
    spans_.push_back(key);
    spans_.push_back(value);
  }
  body_left_ = content_length;
  sink.on_request(header_[0], header_[3], spans_, content_length);
  if (body_left_ == 0) {
    state_ = State::kDone;
    sink.on_body_end();
  } else {
    state_ = State::kBody;
  }
  // The strings are made; the block is not needed any more.
  std::string().swap(vars_);
  return Status::kOk;
}

Status Decoder::push(const uint8_t* data, size_t size, Sink& sink) {
  if (error_.status != Status::kOk) return error_.status;
  const uint8_t* p = data;
  const uint8_t* const stop = data + size;
  while (p < stop) {
    switch (state_) {
      case State::kHeader: {
        const size_t take = std::min<size_t>(kHeaderSize - header_have_, stop - p);
        std::memcpy(header_ + header_have_, p, take);
        header_have_ += take;
        p += take;
        offset_ += take;
        if (header_have_ < kHeaderSize) break;
        if (header_[0] != 0) {
          return fail(Status::kUwsgiModifier, 0, format("modifier1 %llu (only 0 is served)", header_[0]));
        }
        datasize_ = read_u16le(header_ + 1);
        if (datasize_ > limits_.max_params) {
          return fail(Status::kUwsgiVarsTooLarge, 0,
                      format("vars block of %llu bytes exceeds max-params (%llu bytes)", datasize_,
                             limits_.max_params));
        }
        vars_.reserve(datasize_);
        state_ = State::kVars;
        if (datasize_ == 0) {
          Status s = on_vars_complete(sink);
          if (s != Status::kOk) return s;
        }
        break;
      }
      case State::kVars: {
        const size_t take = std::min<size_t>(datasize_ - vars_.size(), stop - p);
        vars_.append(reinterpret_cast<const char*>(p), take);
        p += take;
        offset_ += take;
        if (vars_.size() == datasize_) {
          Status s = on_vars_complete(sink);
          if (s != Status::kOk) return s;
        }
        break;
      }
      case State::kBody: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(body_left_, stop - p));
        sink.on_body(p, take);
        body_left_ -= take;
        p += take;
        offset_ += take;
        if (body_left_ == 0) {
          state_ = State::kDone;
          sink.on_body_end();
        }
        break;
      }
      case State::kDone:
        return fail(Status::kUwsgiTrailingData, offset_,
                    "bytes after the end of the request (one request per connection)");
    }
  }
  return Status::kOk;
}

bool encode_request(std::string& out, uint8_t modifier1, uint8_t modifier2, const Span* vars,
                    size_t count) {
  size_t datasize = 0;
  for (size_t i = 0; i < count; i++) {
    if (vars[i].size > 0xffff) return false;
    datasize += 2 + vars[i].size;
  }
  if (datasize > kMaxDatasize) return false;
  out.reserve(out.size() + kHeaderSize + datasize);
  out.push_back(static_cast<char>(modifier1));
  out.push_back(static_cast<char>(datasize & 0xff));
  out.push_back(static_cast<char>(datasize >> 8));
  out.push_back(static_cast<char>(modifier2));
  for (size_t i = 0; i < count; i++) {
    out.push_back(static_cast<char>(vars[i].size & 0xff));
    out.push_back(static_cast<char>(vars[i].size >> 8));
    out.append(reinterpret_cast<const char*>(vars[i].data), vars[i].size);
  }
  return true;
}

}  // namespace tsgi::uwsgi
