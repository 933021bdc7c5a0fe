// Process-wide tuning a worker applies once at start. glibc returns freed memory at the top
// of the heap to the kernel as soon as 128 KiB of it is free; a worker streaming request
// bodies frees its 64 KiB read buffers in bursts (each garbage collection), so with that
// default it gives pages back and faults them in again many times a second (measured on a
// 1 MiB POST: a fifth of the worker's CPU in page faults). A larger trim threshold keeps that
// much free memory for the next reads, as a long-running server wants.
#include <cstddef>  // defines __GLIBC__ where the C library is glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "binding.h"

namespace tsgi::binding {

namespace {

// mallocTrimThreshold(bytes) -> whether it was applied (false where the C library is not glibc).
Napi::Value malloc_trim_threshold(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  const int bytes = info[0].As<Napi::Number>().Int32Value();
  return Napi::Boolean::New(info.Env(), mallopt(M_TRIM_THRESHOLD, bytes) == 1);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

}  // namespace

void init_process(Napi::Env env, Napi::Object exports) {
  exports.Set("mallocTrimThreshold", Napi::Function::New<malloc_trim_threshold>(env));
}

}  // namespace tsgi::binding
