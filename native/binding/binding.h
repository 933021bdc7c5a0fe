// Shared declarations of the binding (the only code that includes napi.h).
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <string>
#include <vector>

#include "../status.h"

namespace tsgi::binding {

// Event kinds of a decoder push, as src/native.ts documents them (four slots an event).
// Cross-language contract: exported by name as `events`; src/native.ts reads them.
enum Event : uint32_t {
  kBegin = 1,
  kParams = 2,
  kStdin = 3,
  kStdinEnd = 4,
  kData = 5,
  kDataEnd = 6,
  kAbort = 7,
  kGetValues = 8,
  kUnknownType = 9,
  kOverloaded = 10,
  kRequest = 11,
  kBody = 12,
  kBodyEnd = 13,
  kError = 255,
};

// Per-environment data of the addon (napi instance data).
struct AddonData {
  // Array.of: building an array in one call lets V8 allocate it once, where n
  // napi_set_element calls each take the generic keyed-store path (measured: half of a
  // push's cost for a 35-param request).
  Napi::FunctionReference array_of;
};

// A JS array of `values` (built with Array.of up to a size where argument passing stays cheap).
napi_value make_array(Napi::Env env, const std::vector<napi_value>& values);

// A JS string from bytes, one char per byte (latin1): lossless for any input.
Napi::Value byte_string(Napi::Env env, const uint8_t* data, size_t size);

// The bytes of a byte string (one byte per char), into `out` (replaced).
void read_byte_string(napi_env env, napi_value value, std::string& out);

// The bytes of a typed array (a Buffer), in place: false when `value` is not one. One
// Node-API call where node-addon-api's Uint8Array makes two (a respond per chunk asks).
bool typed_bytes(napi_env env, napi_value value, const char*& data, size_t& size);

// An object of named numbers (event kinds, limits, a layout's slots), as the binding exports them.
Napi::Object number_table(Napi::Env env, std::initializer_list<std::pair<const char*, double>> entries);

// [name0, value0, name1, …] as one JS array of byte strings.
napi_value pairs_array(Napi::Env env, const std::vector<Span>& pairs);

void init_decoders(Napi::Env env, Napi::Object exports);
void init_encoders(Napi::Env env, Napi::Object exports);
// The native listeners (stream_server.h) and their event kinds.
void init_servers(Napi::Env env, Napi::Object exports);
Napi::Function define_uwsgi_server(Napi::Env env);
Napi::Function define_fastcgi_server(Napi::Env env);
void init_listen(Napi::Env env, Napi::Object exports);
void init_process(Napi::Env env, Napi::Object exports);

}  // namespace tsgi::binding
