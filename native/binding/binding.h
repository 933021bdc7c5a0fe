// Shared declarations of the binding (the only code that includes napi.h).
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>

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

// A JS string from bytes, one char per byte (latin1): lossless for any input.
Napi::Value byte_string(Napi::Env env, const uint8_t* data, size_t size);

void init_decoders(Napi::Env env, Napi::Object exports);
void init_encoders(Napi::Env env, Napi::Object exports);

}  // namespace tsgi::binding
