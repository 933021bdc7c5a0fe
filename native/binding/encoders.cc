// The encoders as JavaScript functions. Arguments were checked by src/native.ts; content is a
// Uint8Array (used in place) or a string (sent as UTF-8), pair strings are byte strings
// (latin1). Each call returns one Buffer holding every record it framed.
#include <string>
#include <vector>

#include "../fastcgi/codec.h"
#include "../uwsgi/codec.h"
#include "binding.h"

namespace tsgi::binding {

namespace {

// Content given as a Uint8Array or a string, without copying the former.
struct Bytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::string utf8;
};

void read_bytes(Napi::Value value, Bytes& out) {
  if (value.IsTypedArray()) {
    Napi::Uint8Array bytes = value.As<Napi::Uint8Array>();
    out.data = bytes.Data();
    out.size = bytes.ByteLength();
  } else if (value.IsString()) {
    out.utf8 = value.As<Napi::String>().Utf8Value();
    out.data = reinterpret_cast<const uint8_t*>(out.utf8.data());
    out.size = out.utf8.size();
  }
}

// Byte strings of a flat list, one byte per char.
std::vector<std::string> read_byte_strings(Napi::Array list) {
  std::vector<std::string> out(list.Length());
  Napi::Env env = list.Env();
  for (uint32_t i = 0; i < out.size(); i++) read_byte_string(env, list.Get(i), out[i]);
  return out;
}

Napi::Value to_buffer(Napi::Env env, const std::string& bytes) {
  return Napi::Buffer<char>::Copy(env, bytes.data(), bytes.size());
}

uint32_t u32(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Uint32Value(); }

Napi::Value encode_stream(const Napi::CallbackInfo& info) {
  Bytes content;
  read_bytes(info[2], content);
  std::string out;
  fastcgi::encode_stream(out, static_cast<uint8_t>(u32(info, 0)), static_cast<uint16_t>(u32(info, 1)),
                         content.data, content.size, u32(info, 3));
  return to_buffer(info.Env(), out);
}

Napi::Value encode_stream_end(const Napi::CallbackInfo& info) {
  std::string out;
  fastcgi::encode_stream_end(out, static_cast<uint8_t>(u32(info, 0)), static_cast<uint16_t>(u32(info, 1)));
  return to_buffer(info.Env(), out);
}

Napi::Value encode_end_request(const Napi::CallbackInfo& info) {
  std::string out;
  fastcgi::encode_end_request(out, static_cast<uint16_t>(u32(info, 0)), u32(info, 1),
                              static_cast<uint8_t>(u32(info, 2)));
  return to_buffer(info.Env(), out);
}

Napi::Value encode_begin_request(const Napi::CallbackInfo& info) {
  std::string out;
  fastcgi::encode_begin_request(out, static_cast<uint16_t>(u32(info, 0)), static_cast<uint16_t>(u32(info, 1)),
                                static_cast<uint8_t>(u32(info, 2)));
  return to_buffer(info.Env(), out);
}

Napi::Value encode_abort_request(const Napi::CallbackInfo& info) {
  std::string out;
  fastcgi::encode_abort_request(out, static_cast<uint16_t>(u32(info, 0)));
  return to_buffer(info.Env(), out);
}

Napi::Value encode_unknown_type(const Napi::CallbackInfo& info) {
  std::string out;
  fastcgi::encode_unknown_type(out, static_cast<uint8_t>(u32(info, 0)));
  return to_buffer(info.Env(), out);
}

Napi::Value encode_pairs(const Napi::CallbackInfo& info) {
  std::vector<std::string> strings = read_byte_strings(info[0].As<Napi::Array>());
  std::string out;
  for (size_t i = 0; i + 1 < strings.size(); i += 2) {
    const auto& name = strings[i];
    const auto& value = strings[i + 1];
    fastcgi::encode_pair(out, reinterpret_cast<const uint8_t*>(name.data()), name.size(),
                         reinterpret_cast<const uint8_t*>(value.data()), value.size());
  }
  return to_buffer(info.Env(), out);
}

// (id, data | null, end, appStatus, head?): the response hot path, one buffer per write.
// `head` (a byte string: the CGI head of the first write) goes before `data` in the same
// records, so JavaScript never concatenates them.
Napi::Value frame_response(const Napi::CallbackInfo& info) {
  const auto id = static_cast<uint16_t>(u32(info, 0));
  Bytes content;
  read_bytes(info[1], content);
  const bool end = info[2].ToBoolean();
  thread_local std::string joined;
  if (info.Length() > 4 && info[4].IsString()) {
    read_byte_string(info.Env(), info[4], joined);
    joined.append(reinterpret_cast<const char*>(content.data), content.size);
    content.data = reinterpret_cast<const uint8_t*>(joined.data());
    content.size = joined.size();
  }
  thread_local std::string out;
  out.clear();
  fastcgi::encode_stream(out, fastcgi::FCGI_STDOUT, id, content.data, content.size);
  if (end) {
    fastcgi::encode_stream_end(out, fastcgi::FCGI_STDOUT, id);
    fastcgi::encode_end_request(out, id, u32(info, 3), fastcgi::FCGI_REQUEST_COMPLETE);
  }
  return to_buffer(info.Env(), out);
}

Napi::Value uwsgi_encode_request(const Napi::CallbackInfo& info) {
  std::vector<std::string> strings = read_byte_strings(info[0].As<Napi::Array>());
  std::vector<Span> spans;
  spans.reserve(strings.size());
  for (const auto& s : strings) spans.push_back(Span{reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  std::string out;
  if (!uwsgi::encode_request(out, static_cast<uint8_t>(u32(info, 1)), static_cast<uint8_t>(u32(info, 2)),
                             spans.data(), spans.size())) {
    Napi::RangeError::New(info.Env(), "uwsgi vars do not fit the 16-bit datasize").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  return to_buffer(info.Env(), out);
}

}  // namespace

void init_encoders(Napi::Env env, Napi::Object exports) {
  exports.Set("fcgiEncodeStream", Napi::Function::New<encode_stream>(env));
  exports.Set("fcgiEncodeStreamEnd", Napi::Function::New<encode_stream_end>(env));
  exports.Set("fcgiEncodeEndRequest", Napi::Function::New<encode_end_request>(env));
  exports.Set("fcgiEncodeBeginRequest", Napi::Function::New<encode_begin_request>(env));
  exports.Set("fcgiEncodeAbortRequest", Napi::Function::New<encode_abort_request>(env));
  exports.Set("fcgiEncodeUnknownType", Napi::Function::New<encode_unknown_type>(env));
  exports.Set("fcgiEncodePairs", Napi::Function::New<encode_pairs>(env));
  exports.Set("fcgiFrameResponse", Napi::Function::New<frame_response>(env));
  exports.Set("uwsgiEncodeRequest", Napi::Function::New<uwsgi_encode_request>(env));
}

}  // namespace tsgi::binding
