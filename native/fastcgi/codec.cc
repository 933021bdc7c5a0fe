// FastCGI record decoder and encoders; the rules are in native/README.md, the format in codec.h.
#include "codec.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace tsgi::fastcgi {

namespace {

std::string format(const char* fmt, unsigned long long a, unsigned long long b = 0,
                   unsigned long long c = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, fmt, a, b, c);
  return buf;
}

// Stream records the web server sends, as opposed to the ones an application writes.
bool written_by_applications(uint8_t type) {
  return type == FCGI_END_REQUEST || type == FCGI_STDOUT || type == FCGI_STDERR ||
         type == FCGI_GET_VALUES_RESULT || type == FCGI_UNKNOWN_TYPE;
}

}  // namespace

Decoder::Decoder(Limits limits) : limits_(limits) {}

Status Decoder::fail(Status status, uint64_t offset, std::string reason) {
  error_.status = status;
  error_.offset = offset;
  error_.reason = std::move(reason);
  return status;
}

Decoder::Request* Decoder::find(uint16_t id) {
  for (auto& r : requests_) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

void Decoder::release(uint16_t id) {
  auto it = std::find_if(requests_.begin(), requests_.end(),
                         [id](const Request& r) { return r.id == id; });
  // An inactive id: nothing to release (nor a half-read BEGIN_REQUEST of it to skip: its id
  // becomes active only once that record is complete).
  if (it == requests_.end()) return;
  // A record of this id may be half read: the rest of its content is skipped like any
  // record of an inactive id.
  if (id == id_ && state_ == State::kContent) content_kind_ = Content::kSkip;
  requests_.erase(it);
}

Status Decoder::end() {
  if (error_.status != Status::kOk) return error_.status;
  if (state_ != State::kHeader || header_have_ != 0) {
    return fail(Status::kFcgiTruncated, offset_,
                format("stream ended inside the record that began at byte %llu",
                       static_cast<unsigned long long>(record_offset_)));
  }
  return Status::kOk;
}

// Decides what the record is for, from its header alone (rules 1-16 of native/README.md).
Status Decoder::on_header(Sink& sink) {
  const uint8_t* h = header_;
  type_ = h[1];
  id_ = static_cast<uint16_t>(h[2] << 8 | h[3]);
  content_left_ = static_cast<size_t>(h[4] << 8 | h[5]);
  padding_left_ = h[6];
  content_kind_ = Content::kSkip;
  small_.clear();

  if (h[0] != kVersion1) {
    return fail(Status::kFcgiVersion, record_offset_, format("record version %llu", h[0]));
  }
  if (written_by_applications(type_)) {
    return fail(Status::kFcgiUnexpectedRecord, record_offset_,
                format("record type %llu is written by applications, not web servers", type_));
  }
  if (type_ == 0 || type_ > FCGI_MAXTYPE) {
    sink.on_unknown_type(type_);
    return Status::kOk;
  }
  if (type_ == FCGI_GET_VALUES) {
    if (id_ != 0) {
      return fail(Status::kFcgiUnexpectedRecord, record_offset_,
                  format("FCGI_GET_VALUES with request id %llu (management records use 0)", id_));
    }
    content_kind_ = Content::kGetValues;
    small_.reserve(content_left_);
    return Status::kOk;
  }
  if (id_ == 0) {
    return fail(Status::kFcgiUnexpectedRecord, record_offset_,
                format("record type %llu with request id 0", type_));
  }
  Request* req = find(id_);
  if (type_ == FCGI_BEGIN_REQUEST) {
    if (content_left_ != 8) {
      return fail(Status::kFcgiBeginBody, record_offset_,
                  format("FCGI_BEGIN_REQUEST body of %llu bytes", content_left_));
    }
    if (req) {
      return fail(Status::kFcgiDuplicateRequest, record_offset_,
                  format("FCGI_BEGIN_REQUEST for active request id %llu", id_));
    }
    content_kind_ = Content::kBegin;
    return Status::kOk;
  }
  if (!req) return Status::kOk;  // records for inactive ids are ignored (spec §3.3)

  switch (type_) {
    case FCGI_ABORT_REQUEST:
      sink.on_abort(id_);
      return Status::kOk;
    case FCGI_PARAMS:
      if (req->params_done) {
        return fail(Status::kFcgiUnexpectedRecord, record_offset_,
                    format("FCGI_PARAMS after the params stream of request %llu ended", id_));
      }
      if (req->params.size() + content_left_ > limits_.max_params) {
        return fail(Status::kFcgiParamsTooLarge, record_offset_,
                    format("params of request %llu exceed max-params (%llu bytes)", id_,
                           limits_.max_params));
      }
      content_kind_ = Content::kParams;
      if (content_left_ == 0) return on_content_complete(sink);
      return Status::kOk;
    case FCGI_STDIN:
    case FCGI_DATA: {
      const bool is_stdin = type_ == FCGI_STDIN;
      const char* name = is_stdin ? "FCGI_STDIN" : "FCGI_DATA";
      if (!req->params_done) {
        return fail(Status::kFcgiUnexpectedRecord, record_offset_,
                    std::string(name) + " before the params stream ended");
      }
      if (is_stdin ? req->stdin_done : req->data_done) {
        return fail(Status::kFcgiUnexpectedRecord, record_offset_,
                    std::string(name) + " after its stream ended");
      }
      content_kind_ = is_stdin ? Content::kStdin : Content::kData;
      if (content_left_ == 0) {
        if (is_stdin) {
          req->stdin_done = true;
          sink.on_stdin_end(id_);
        } else {
          req->data_done = true;
          sink.on_data_end(id_);
        }
      }
      return Status::kOk;
    }
    default:
      return Status::kOk;  // unreachable: every type 1..11 is handled above
  }
}

Status Decoder::parse_pairs(const uint8_t* data, size_t size, std::vector<Span>& out) {
  out.clear();
  size_t at = 0;
  auto read_length = [&](size_t& length) -> bool {
    if (at >= size) return false;
    if ((data[at] & 0x80) == 0) {
      length = data[at];
      at += 1;
      return true;
    }
    if (size - at < 4) return false;
    length = (static_cast<size_t>(data[at] & 0x7f) << 24) | (static_cast<size_t>(data[at + 1]) << 16) |
             (static_cast<size_t>(data[at + 2]) << 8) | data[at + 3];
    at += 4;
    return true;
  };
  while (at < size) {
    const size_t pair_at = at;
    size_t name_len = 0;
    size_t value_len = 0;
    if (!read_length(name_len)) {
      return fail(Status::kFcgiParamsMalformed, record_offset_,
                  format("name length at byte %llu of a %llu-byte params block is cut", pair_at, size));
    }
    if (name_len > kMaxNameBytes) {
      return fail(Status::kFcgiNameTooLong, record_offset_,
                  format("param name of %llu bytes at byte %llu of the params block", name_len, pair_at));
    }
    if (!read_length(value_len)) {
      return fail(Status::kFcgiParamsMalformed, record_offset_,
                  format("value length of the pair at byte %llu of a %llu-byte params block is cut",
                         pair_at, size));
    }
    if (name_len > size - at || value_len > size - at - name_len) {
      return fail(Status::kFcgiParamsMalformed, record_offset_,
                  format("pair at byte %llu of a %llu-byte params block claims %llu bytes", pair_at,
                         size, static_cast<unsigned long long>(name_len) + value_len));
    }
    out.push_back(Span{data + at, name_len});
    at += name_len;
    out.push_back(Span{data + at, value_len});
    at += value_len;
  }
  return Status::kOk;
}

Status Decoder::on_content_complete(Sink& sink) {
  switch (content_kind_) {
    case Content::kBegin: {
      const auto* b = reinterpret_cast<const uint8_t*>(small_.data());
      if (requests_.size() >= limits_.max_requests) {
        sink.on_overloaded(id_);
        return Status::kOk;
      }
      requests_.emplace_back();
      requests_.back().id = id_;
      sink.on_begin(id_, static_cast<uint16_t>(b[0] << 8 | b[1]), b[2]);
      return Status::kOk;
    }
    case Content::kGetValues: {
      Status s = parse_pairs(reinterpret_cast<const uint8_t*>(small_.data()), small_.size(), pairs_);
      if (s != Status::kOk) return s;
      sink.on_get_values(pairs_);
      return Status::kOk;
    }
    case Content::kParams: {
      // Reached from the empty PARAMS record that ends the stream.
      Request* req = find(id_);
      req->params_done = true;
      Status s = parse_pairs(reinterpret_cast<const uint8_t*>(req->params.data()), req->params.size(),
                             pairs_);
      if (s != Status::kOk) return s;
      sink.on_params(id_, pairs_);
      // The block is not needed once the strings are made.
      std::string().swap(req->params);
      return Status::kOk;
    }
    default:
      return Status::kOk;
  }
}

Status Decoder::push(const uint8_t* data, size_t size, Sink& sink) {
  if (error_.status != Status::kOk) return error_.status;
  const uint8_t* p = data;
  const uint8_t* const stop = data + size;
  while (p < stop) {
    switch (state_) {
      case State::kHeader: {
        if (header_have_ == 0) record_offset_ = offset_;
        const size_t take = std::min<size_t>(kHeaderSize - header_have_, stop - p);
        std::memcpy(header_ + header_have_, p, take);
        header_have_ += take;
        p += take;
        offset_ += take;
        if (header_have_ < kHeaderSize) break;
        header_have_ = 0;
        Status s = on_header(sink);
        if (s != Status::kOk) return s;
        if (content_left_ > 0) {
          state_ = State::kContent;
        } else {
          state_ = padding_left_ > 0 ? State::kPadding : State::kHeader;
          if (content_kind_ == Content::kBegin || content_kind_ == Content::kGetValues) {
            s = on_content_complete(sink);
            if (s != Status::kOk) return s;
          }
        }
        break;
      }
      case State::kContent: {
        const size_t take = std::min<size_t>(content_left_, stop - p);
        switch (content_kind_) {
          case Content::kStdin:
            sink.on_stdin(id_, p, take);
            break;
          case Content::kData:
            sink.on_data(id_, p, take);
            break;
          case Content::kParams:
            find(id_)->params.append(reinterpret_cast<const char*>(p), take);
            break;
          case Content::kBegin:
          case Content::kGetValues:
            small_.append(reinterpret_cast<const char*>(p), take);
            break;
          case Content::kSkip:
            break;
        }
        content_left_ -= take;
        p += take;
        offset_ += take;
        if (content_left_ > 0) break;
        state_ = padding_left_ > 0 ? State::kPadding : State::kHeader;
        if (content_kind_ == Content::kBegin || content_kind_ == Content::kGetValues) {
          Status s = on_content_complete(sink);
          if (s != Status::kOk) return s;
        }
        break;
      }
      case State::kPadding: {
        const size_t take = std::min<size_t>(padding_left_, stop - p);
        padding_left_ -= take;
        p += take;
        offset_ += take;
        if (padding_left_ == 0) state_ = State::kHeader;
        break;
      }
    }
  }
  return Status::kOk;
}

// ---- encoders ----

void put_header(uint8_t* h, uint8_t type, uint16_t id, uint16_t content, uint8_t padding) {
  h[0] = kVersion1;
  h[1] = type;
  h[2] = static_cast<uint8_t>(id >> 8);
  h[3] = static_cast<uint8_t>(id);
  h[4] = static_cast<uint8_t>(content >> 8);
  h[5] = static_cast<uint8_t>(content);
  h[6] = padding;
  h[7] = 0;
}

size_t padding_for(size_t content) { return (8 - content % 8) % 8; }

size_t stream_encoded_size(size_t size, size_t max_content) {
  max_content &= ~size_t{7};
  const size_t full = size / max_content;
  const size_t rest = size % max_content;
  return full * (kHeaderSize + max_content) + (rest ? kHeaderSize + rest + padding_for(rest) : 0);
}

size_t encode_stream(std::string& out, uint8_t type, uint16_t id, const uint8_t* data, size_t size,
                     size_t max_content) {
  max_content &= ~size_t{7};
  const size_t total = stream_encoded_size(size, max_content);
  const size_t start = out.size();
  out.resize(start + total);
  auto* w = reinterpret_cast<uint8_t*>(&out[start]);
  while (size > 0) {
    const size_t n = std::min(size, max_content);
    const size_t pad = padding_for(n);
    put_header(w, type, id, static_cast<uint16_t>(n), static_cast<uint8_t>(pad));
    std::memcpy(w + kHeaderSize, data, n);
    std::memset(w + kHeaderSize + n, 0, pad);
    w += kHeaderSize + n + pad;
    data += n;
    size -= n;
  }
  return total;
}

size_t encode_stream_end(std::string& out, uint8_t type, uint16_t id) {
  uint8_t h[kHeaderSize];
  put_header(h, type, id, 0, 0);
  out.append(reinterpret_cast<const char*>(h), sizeof h);
  return sizeof h;
}

size_t encode_end_request(std::string& out, uint16_t id, uint32_t app_status, uint8_t protocol_status) {
  uint8_t r[16] = {};
  put_header(r, FCGI_END_REQUEST, id, 8, 0);
  r[8] = static_cast<uint8_t>(app_status >> 24);
  r[9] = static_cast<uint8_t>(app_status >> 16);
  r[10] = static_cast<uint8_t>(app_status >> 8);
  r[11] = static_cast<uint8_t>(app_status);
  r[12] = protocol_status;
  out.append(reinterpret_cast<const char*>(r), sizeof r);
  return sizeof r;
}

size_t encode_begin_request(std::string& out, uint16_t id, uint16_t role, uint8_t flags) {
  uint8_t r[16] = {};
  put_header(r, FCGI_BEGIN_REQUEST, id, 8, 0);
  r[8] = static_cast<uint8_t>(role >> 8);
  r[9] = static_cast<uint8_t>(role);
  r[10] = flags;
  out.append(reinterpret_cast<const char*>(r), sizeof r);
  return sizeof r;
}

size_t encode_abort_request(std::string& out, uint16_t id) {
  return encode_stream_end(out, FCGI_ABORT_REQUEST, id);
}

size_t encode_unknown_type(std::string& out, uint8_t type) {
  uint8_t r[16] = {};
  put_header(r, FCGI_UNKNOWN_TYPE, 0, 8, 0);
  r[8] = type;
  out.append(reinterpret_cast<const char*>(r), sizeof r);
  return sizeof r;
}

size_t encode_pair(std::string& out, const uint8_t* name, size_t name_size, const uint8_t* value,
                   size_t value_size) {
  const size_t start = out.size();
  auto put_length = [&out](size_t n) {
    if (n < 128) {
      out.push_back(static_cast<char>(n));
    } else {
      out.push_back(static_cast<char>(((n >> 24) & 0x7f) | 0x80));
      out.push_back(static_cast<char>(n >> 16));
      out.push_back(static_cast<char>(n >> 8));
      out.push_back(static_cast<char>(n));
    }
  };
  put_length(name_size);
  put_length(value_size);
  out.append(reinterpret_cast<const char*>(name), name_size);
  out.append(reinterpret_cast<const char*>(value), value_size);
  return out.size() - start;
}

}  // namespace tsgi::fastcgi
