// Registers the binding's parts with Node; nothing else lives here.
#include "binding.h"

namespace {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new tsgi::binding::AddonData();
  data->array_of = Napi::Persistent(env.Global().Get("Array").As<Napi::Object>().Get("of").As<Napi::Function>());
  env.SetInstanceData(data);
  tsgi::binding::init_decoders(env, exports);
  tsgi::binding::init_encoders(env, exports);
  tsgi::binding::init_servers(env, exports);
  tsgi::binding::init_listen(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(tsgi, init)
