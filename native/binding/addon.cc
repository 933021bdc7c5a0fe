// Registers the binding's parts with Node; nothing else lives here.
#include "binding.h"
#include "stream_server.h"

namespace tsgi::binding {

void init_servers(Napi::Env env, Napi::Object exports) {
  exports.Set("UwsgiServer", define_uwsgi_server(env));
  exports.Set("FastCgiServer", define_fastcgi_server(env));
  exports.Set("serverEvents", number_table(env, {
                                 {"CLOSE", kClose},
                                 {"DRAIN", kDrain},
                                 {"TIMEOUT", kTimeout},
                                 {"UNKNOWN_ROLE", kUnknownRole},
                                 {"CHUNK", kChunk},
                                 {"REFUSED", kRefused},
                                 {"HANDOFF", kHandoff},
                             }));
  // The names a listener's packed params number (param_pack.h), and the layout's head.
  Napi::Array names = Napi::Array::New(env, kParamNames.size());
  for (uint32_t i = 0; i < kParamNames.size(); i++) names.Set(i, Napi::String::New(env, kParamNames[i]));
  exports.Set("paramNames", names);
  Napi::Object pack = number_table(env, {
      {"HEAD", kPackHead},
      {"PAIRS", kPackPairs},
      {"ROLE", kPackRole},
      {"FLAGS", kPackFlags},
      {"LENGTH_HIGH", kPackLengthHigh},
      {"LENGTH_LOW", kPackLengthLow},
      {"REPEATED", kPackRepeated},
      {"KEEP_CONN", kPackKeepConn},
  });
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
