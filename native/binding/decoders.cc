// The decoders as JavaScript classes: one push per socket read returns every event of that
// read as one flat array (four slots an event, layout in src/native.ts), params as one array
// of strings, body bytes as offsets into the pushed chunk (no copy). Bad input is an ERROR
// event, never a throw.
#include <string>

#include "../fastcgi/codec.h"
#include "../status.h"
#include "../uwsgi/codec.h"
#include "binding.h"

namespace tsgi::binding {

Napi::Value byte_string(Napi::Env env, const uint8_t* data, size_t size) {
  napi_value out;
  napi_status s = napi_create_string_latin1(env, reinterpret_cast<const char*>(data), size, &out);
  NAPI_THROW_IF_FAILED(env, s, Napi::Value());
  return Napi::Value(env, out);
}

void read_byte_string(napi_env env, napi_value value, std::string& out) {
  size_t len = 0;
  napi_get_value_string_latin1(env, value, nullptr, 0, &len);
  out.resize(len + 1);
  napi_get_value_string_latin1(env, value, out.data(), len + 1, &len);
  out.resize(len);
}

bool typed_bytes(napi_env env, napi_value value, const char*& data, size_t& size) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return false;
  napi_typedarray_type type = napi_uint8_array;
  size_t length = 0;
  void* bytes = nullptr;
  if (napi_get_typedarray_info(env, value, &type, &length, &bytes, nullptr, nullptr) != napi_ok) return false;
  size_t element = 1;
  switch (type) {
    case napi_int16_array:
    case napi_uint16_array:
      element = 2;
      break;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      element = 4;
      break;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      element = 8;
      break;
    default:
      break;
  }
  data = static_cast<const char*>(bytes);
  size = length * element;
  return true;
}

Napi::Object number_table(Napi::Env env, std::initializer_list<std::pair<const char*, double>> entries) {
  Napi::Object table = Napi::Object::New(env);
  for (const auto& [name, value] : entries) table.Set(name, Napi::Number::New(env, value));
  return table;
}

napi_value pairs_array(Napi::Env env, const std::vector<Span>& pairs) {
  std::vector<napi_value> values(pairs.size());
  for (size_t i = 0; i < pairs.size(); i++) values[i] = byte_string(env, pairs[i].data, pairs[i].size);
  return make_array(env, values);
}

napi_value make_array(Napi::Env env, const std::vector<napi_value>& values) {
  napi_value out;
  if (values.size() <= 16384) {
    Napi::Function of = env.GetInstanceData<AddonData>()->array_of.Value();
    napi_status s = napi_call_function(env, env.Undefined(), of, values.size(), values.data(), &out);
    NAPI_THROW_IF_FAILED(env, s, nullptr);
    return out;
  }
  napi_create_array_with_length(env, values.size(), &out);
  for (uint32_t i = 0; i < values.size(); i++) napi_set_element(env, out, i, values[i]);
  return out;
}

namespace {

// Gathers a push's events as the codec reports them; one JS array is made at the end.
class EventList {
 public:
  EventList(Napi::Env env, const uint8_t* base) : env_(env), base_(base) {}

  void add(uint32_t kind, Napi::Value a, Napi::Value b, Napi::Value c) {
    slots_.push_back(Napi::Number::New(env_, kind));
    slots_.push_back(a);
    slots_.push_back(b);
    slots_.push_back(c);
  }
  void add(uint32_t kind, double a, double b, double c) {
    add(kind, num(a), num(b), num(c));
  }
  Napi::Value num(double v) { return Napi::Number::New(env_, v); }
  Napi::Value strings(const std::vector<Span>& spans) { return Napi::Value(env_, pairs_array(env_, spans)); }
  // Offset of a body slice in the chunk given to this push.
  double offset_of(const uint8_t* p) const { return static_cast<double>(p - base_); }
  void error(const Error& e) {
    add(kError, num(static_cast<double>(e.status)), num(static_cast<double>(e.offset)),
        Napi::String::New(env_, e.reason));
  }
  Napi::Value result() const { return Napi::Value(env_, make_array(env_, slots_)); }

 protected:
  Napi::Env env_;
  const uint8_t* base_;
  std::vector<napi_value> slots_;
};

class FastCgiEvents final : public EventList, public fastcgi::Sink {
 public:
  using EventList::EventList;
  void on_begin(uint16_t id, uint16_t role, uint8_t flags) override { add(kBegin, id, role, flags); }
  void on_overloaded(uint16_t id) override { add(kOverloaded, id, 0, 0); }
  void on_params(uint16_t id, const std::vector<Span>& pairs) override {
    add(kParams, num(id), strings(pairs), num(0));
  }
  void on_stdin(uint16_t id, const uint8_t* data, size_t size) override {
    add(kStdin, id, offset_of(data), static_cast<double>(size));
  }
  void on_stdin_end(uint16_t id) override { add(kStdinEnd, id, 0, 0); }
  void on_data(uint16_t id, const uint8_t* data, size_t size) override {
    add(kData, id, offset_of(data), static_cast<double>(size));
  }
  void on_data_end(uint16_t id) override { add(kDataEnd, id, 0, 0); }
  void on_abort(uint16_t id) override { add(kAbort, id, 0, 0); }
  void on_get_values(const std::vector<Span>& pairs) override {
    add(kGetValues, num(0), strings(pairs), num(0));
  }
  void on_unknown_type(uint8_t type) override { add(kUnknownType, 0, type, 0); }
};

class UwsgiEvents final : public EventList, public uwsgi::Sink {
 public:
  using EventList::EventList;
  void on_request(uint8_t modifier1, uint8_t modifier2, const std::vector<Span>& vars,
                  uint64_t content_length) override {
    add(kRequest, num(modifier1 + 256.0 * modifier2), strings(vars), num(static_cast<double>(content_length)));
  }
  void on_body(const uint8_t* data, size_t size) override {
    add(kBody, 0, offset_of(data), static_cast<double>(size));
  }
  void on_body_end() override { add(kBodyEnd, 0, 0, 0); }
};

// The chunk of a push: any Uint8Array (a Buffer is one).
bool chunk_of(const Napi::CallbackInfo& info, const uint8_t*& data, size_t& size) {
  if (info.Length() < 1 || !info[0].IsTypedArray()) return false;
  Napi::TypedArray array = info[0].As<Napi::TypedArray>();
  if (array.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array bytes = array.As<Napi::Uint8Array>();
  data = bytes.Data();
  size = bytes.ByteLength();
  return true;
}

class FastCgiDecoder : public Napi::ObjectWrap<FastCgiDecoder> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "FastCgiDecoder",
                       {InstanceMethod<&FastCgiDecoder::push>("push"),
                        InstanceMethod<&FastCgiDecoder::end>("end"),
                        InstanceMethod<&FastCgiDecoder::release>("release"),
                        InstanceAccessor<&FastCgiDecoder::active_requests>("activeRequests")});
  }

  // (maxParams, maxRequests): checked by src/native.ts.
  explicit FastCgiDecoder(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FastCgiDecoder>(info),
        decoder_(fastcgi::Limits{static_cast<size_t>(info[0].As<Napi::Number>().Int64Value()),
                                 static_cast<size_t>(info[1].As<Napi::Number>().Int64Value())}) {}

 private:
  Napi::Value push(const Napi::CallbackInfo& info) {
    const uint8_t* data = nullptr;
    size_t size = 0;
    if (!chunk_of(info, data, size)) {
      Napi::TypeError::New(info.Env(), "push takes a Uint8Array").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    FastCgiEvents events(info.Env(), data);
    if (decoder_.push(data, size, events) != Status::kOk) events.error(decoder_.error());
    return events.result();
  }
  Napi::Value end(const Napi::CallbackInfo& info) {
    FastCgiEvents events(info.Env(), nullptr);
    if (decoder_.end() != Status::kOk) events.error(decoder_.error());
    return events.result();
  }
  Napi::Value release(const Napi::CallbackInfo& info) {
    decoder_.release(static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value()));
    return info.Env().Undefined();
  }
  Napi::Value active_requests(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(decoder_.active_requests()));
  }

  fastcgi::Decoder decoder_;
};

class UwsgiDecoder : public Napi::ObjectWrap<UwsgiDecoder> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "UwsgiDecoder",
                       {InstanceMethod<&UwsgiDecoder::push>("push"), InstanceMethod<&UwsgiDecoder::end>("end")});
  }

  // (maxParams): checked by src/native.ts.
  explicit UwsgiDecoder(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<UwsgiDecoder>(info),
        decoder_(uwsgi::Limits{static_cast<size_t>(info[0].As<Napi::Number>().Int64Value())}) {}

 private:
  Napi::Value push(const Napi::CallbackInfo& info) {
    const uint8_t* data = nullptr;
    size_t size = 0;
    if (!chunk_of(info, data, size)) {
      Napi::TypeError::New(info.Env(), "push takes a Uint8Array").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    UwsgiEvents events(info.Env(), data);
    if (decoder_.push(data, size, events) != Status::kOk) events.error(decoder_.error());
    return events.result();
  }
  Napi::Value end(const Napi::CallbackInfo& info) {
    UwsgiEvents events(info.Env(), nullptr);
    if (decoder_.end() != Status::kOk) events.error(decoder_.error());
    return events.result();
  }

  uwsgi::Decoder decoder_;
};

}  // namespace

void init_decoders(Napi::Env env, Napi::Object exports) {
  exports.Set("FastCgiDecoder", FastCgiDecoder::define(env));
  exports.Set("UwsgiDecoder", UwsgiDecoder::define(env));

  Napi::Object events = number_table(env, {
      {"BEGIN", kBegin},           {"PARAMS", kParams},   {"STDIN", kStdin},     {"STDIN_END", kStdinEnd},
      {"DATA", kData},             {"DATA_END", kDataEnd}, {"ABORT", kAbort},     {"GET_VALUES", kGetValues},
      {"UNKNOWN_TYPE", kUnknownType}, {"OVERLOADED", kOverloaded}, {"REQUEST", kRequest}, {"BODY", kBody},
      {"BODY_END", kBodyEnd},      {"ERROR", kError},
  });
  exports.Set("events", events);

  Napi::Array statuses = Napi::Array::New(env);
  uint32_t i = 0;
#define TSGI_STATUS_NAME(id, name) statuses.Set(i++, Napi::String::New(env, name));
  TSGI_STATUS_LIST(TSGI_STATUS_NAME)
#undef TSGI_STATUS_NAME
  exports.Set("statuses", statuses);

  Napi::Object limits = number_table(env, {
      {"defaultMaxParams", fastcgi::kDefaultMaxParams},
      {"maxParamsCeiling", fastcgi::kMaxParamsCeiling},
      {"maxNameBytes", fastcgi::kMaxNameBytes},
      {"defaultMaxRequests", fastcgi::kDefaultMaxRequests},
      {"maxRequestsCeiling", fastcgi::kMaxRequestsCeiling},
      {"maxRecordContent", fastcgi::kMaxRecordContent},
  });
  exports.Set("limits", limits);
}

}  // namespace tsgi::binding
