// Registers the binding's parts with Node; nothing else lives here.
#include "binding.h"
#include "stream_server.h"

namespace tsgi::binding {

void init_servers(Napi::Env env, Napi::Object exports) {
  exports.Set("UwsgiServer", define_uwsgi_server(env));
  exports.Set("FastCgiServer", define_fastcgi_server(env));
  Napi::Object kinds = Napi::Object::New(env);
  kinds.Set("CLOSE", Napi::Number::New(env, kClose));
  kinds.Set("DRAIN", Napi::Number::New(env, kDrain));
  kinds.Set("TIMEOUT", Napi::Number::New(env, kTimeout));
  kinds.Set("UNKNOWN_ROLE", Napi::Number::New(env, kUnknownRole));
  kinds.Set("CHUNK", Napi::Number::New(env, kChunk));
  kinds.Set("REFUSED", Napi::Number::New(env, kRefused));
  kinds.Set("HANDOFF", Napi::Number::New(env, kHandoff));
  exports.Set("serverEvents", kinds);
  // The names a listener's packed params number (param_pack.h), and the layout's head.
  Napi::Array names = Napi::Array::New(env, kParamNames.size());
  for (uint32_t i = 0; i < kParamNames.size(); i++) names.Set(i, Napi::String::New(env, kParamNames[i]));
  exports.Set("paramNames", names);
  Napi::Object pack = Napi::Object::New(env);
  pack.Set("HEAD", Napi::Number::New(env, kPackHead));
  pack.Set("PAIRS", Napi::Number::New(env, kPackPairs));
  pack.Set("ROLE", Napi::Number::New(env, kPackRole));
  pack.Set("FLAGS", Napi::Number::New(env, kPackFlags));
  pack.Set("LENGTH_HIGH", Napi::Number::New(env, kPackLengthHigh));
  pack.Set("LENGTH_LOW", Napi::Number::New(env, kPackLengthLow));
  pack.Set("REPEATED", Napi::Number::New(env, kPackRepeated));
  exports.Set("paramPack", pack);
}

}  // namespace tsgi::binding

namespace {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new tsgi::binding::AddonData();
  data->array_of = Napi::Persistent(env.Global().Get("Array").As<Napi::Object>().Get("of").As<Napi::Function>());
  env.SetInstanceData(data);
  tsgi::binding::init_decoders(env, exports);
  tsgi::binding::init_encoders(env, exports);
  tsgi::binding::init_servers(env, exports);
  tsgi::binding::init_listen(env, exports);
  tsgi::binding::init_process(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(tsgi, init)
