// What both libFuzzer harnesses share: reading choices off the front of the fuzz input, a
// seeded generator for the choices the input does not spell out, and the chunking of a
// stream into the splits the split-invariance oracle compares with the whole stream.
// Header-only so each harness is one clang++ command (scripts/fuzz.mjs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <sanitizer/asan_interface.h>

#include "../status.h"

// The harness's own code is not what we fuzz: its branches left uninstrumented, libFuzzer keeps
// no input for reaching a harness path, and the round trips cost a third of the time they did.
#define TSGI_FUZZ_UNCOVERED __attribute__((no_sanitize("coverage")))

namespace tsgi::fuzz {

// Fails the run with a message libFuzzer shows above the stack trace.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "tsgi fuzz oracle: %s\n", what);
  std::abort();
}

#define TSGI_FUZZ_CHECK(cond, what) \
  do {                              \
    if (!(cond)) ::tsgi::fuzz::fail(what); \
  } while (0)

// Reads bytes off the front of the input; past the end it yields zeros, so any input is valid.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t u8() { return at_ < size_ ? data_[at_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() << 8 | u8()); }
  uint32_t u32() { return static_cast<uint32_t>(u16()) << 16 | u16(); }
  const uint8_t* rest() const { return data_ + (at_ < size_ ? at_ : size_); }
  size_t rest_size() const { return at_ < size_ ? size_ - at_ : 0; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

// xorshift64*: deterministic from its seed, so a crash input replays exactly.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9e3779b97f4a7c15ULL + 1) {}
  TSGI_FUZZ_UNCOVERED uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545f4914f6cdd1dULL;
  }
  // Uniform enough in [0, n); n > 0.
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
  bool chance(unsigned one_in) { return below(one_in) == 0; }

 private:
  uint64_t state_;
};

// Chunk lengths covering `size` bytes; every length is >= 1. The modes reach the cases that
// break incremental decoders: one byte at a time (half of every header and length prefix),
// small random cuts, large random cuts, and a few cuts only.
TSGI_FUZZ_UNCOVERED inline std::vector<size_t> choose_splits(size_t size, uint8_t mode, Rng& rng) {
  std::vector<size_t> lengths;
  size_t at = 0;
  auto add = [&](size_t n) {
    if (n == 0) n = 1;
    if (n > size - at) n = size - at;
    lengths.push_back(n);
    at += n;
  };
  switch (mode % 4) {
    case 0:
      while (at < size) add(size <= 8192 ? 1 : 1 + rng.below(4));
      break;
    case 1:
      while (at < size) add(1 + rng.below(16));
      break;
    case 2:
      while (at < size) add(1 + rng.below(1024));
      break;
    default: {
      const size_t cuts = 1 + rng.below(3);
      for (size_t i = 0; i < cuts && at < size; i++) add(1 + rng.below(size - at));
      if (at < size) add(size - at);
      break;
    }
  }
  return lengths;
}

// Random bytes from the generator, for the encoder round trips.
// The splits of a round trip's stream: small cuts only on small streams (byte by byte
// through 100 KiB costs a second an input).
TSGI_FUZZ_UNCOVERED inline std::vector<size_t> round_trip_splits(size_t size, Rng& rng) {
  const auto mode = static_cast<uint8_t>(size <= 1024 ? rng.below(4) : size <= 16384 ? 1 + rng.below(3) : 2 + rng.below(2));
  return choose_splits(size, mode, rng);
}

TSGI_FUZZ_UNCOVERED inline std::string random_bytes(Rng& rng, size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t r = rng.next();
    for (size_t j = 0; j < 8 && i + j < n; j++) out[i + j] = static_cast<char>(r >> (8 * j));
  }
  return out;
}

// The stream in one heap block of which only the chunk being pushed is addressable, so ASan
// sees a read past the chunk (or a read of an earlier chunk through a kept pointer).
// Poisoning costs a shadow write per chunk, where a heap block per chunk cost a stack trace.
// Without `poison` it only hands the caller's bytes through.
class ChunkedCopy {
 public:
  ChunkedCopy(const uint8_t* data, size_t size, bool poison) : data_(data), size_(size), poison_(poison && size > 0) {
    if (!poison_) return;
    owned_.reset(new uint8_t[size]);
    std::memcpy(owned_.get(), data, size);
    data_ = owned_.get();
    ASAN_POISON_MEMORY_REGION(data_, size);
  }
  ~ChunkedCopy() {
    if (poison_) ASAN_UNPOISON_MEMORY_REGION(owned_.get(), size_);
  }
  const uint8_t* data() const { return data_; }
  // The chunk [at, at + n) becomes readable until hide().
  const uint8_t* expose(size_t at, size_t n) const {
    if (poison_) ASAN_UNPOISON_MEMORY_REGION(data_ + at, n);
    return data_ + at;
  }
  void hide(size_t at, size_t n) const {
    if (poison_) ASAN_POISON_MEMORY_REGION(data_ + at, n);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  bool poison_;
  std::unique_ptr<uint8_t[]> owned_;
};

// What a decode ends with, whichever the codec.
struct Ending {
  Status status = Status::kOk;  // after the last push
  Status end_status = Status::kOk;
  uint64_t error_offset = 0;
  uint64_t offset = 0;
};

// Pushes the stream into `decoder` in the given chunk lengths (the sink sees each chunk as
// `chunk`/`chunk_size`; `events()` counts what it recorded), then ends it, checking what
// every decoder promises: a dead decoder answers every push with its error and nothing else,
// push's status is error()'s, a healthy decoder counts every byte, end() emits nothing,
// keeps an earlier error and answers the same twice, and no error lies past the stream.
// `healthy_end(end_status)` checks the codec's own rule for ending a healthy stream. The
// round trip skips `copy`: its inputs are our encoders'.
template <class Decoder, class Sink, class Events, class HealthyEnd>
TSGI_FUZZ_UNCOVERED Ending run_decoder(Decoder& decoder, Sink& sink, const uint8_t* data, size_t size,
                                       const std::vector<size_t>& lengths, bool copy, Events events,
                                       HealthyEnd healthy_end) {
  Ending out;
  size_t at = 0;
  const ChunkedCopy stream(data, size, copy);
  for (size_t n : lengths) {
    const uint8_t* chunk = stream.expose(at, n);
    sink.chunk = chunk;
    sink.chunk_size = n;
    const size_t events_before = events();
    const Status was = out.status;
    out.status = decoder.push(chunk, n, sink);
    if (was != Status::kOk) {
      TSGI_FUZZ_CHECK(out.status == was, "a push after an error changed the status");
      TSGI_FUZZ_CHECK(events() == events_before, "a push after an error emitted events");
    }
    TSGI_FUZZ_CHECK(out.status == decoder.error().status, "push's status differs from error()");
    stream.hide(at, n);
    at += n;
  }
  TSGI_FUZZ_CHECK(at == size, "split lengths do not cover the stream");
  if (out.status == Status::kOk) {
    TSGI_FUZZ_CHECK(decoder.offset() == size, "a healthy decoder did not count every byte");
  }
  const size_t events_before_end = events();
  out.end_status = decoder.end();
  TSGI_FUZZ_CHECK(events() == events_before_end, "end() emitted events");
  if (out.status != Status::kOk) {
    TSGI_FUZZ_CHECK(out.end_status == out.status, "end() after an error changed the status");
  } else {
    healthy_end(out.end_status);
  }
  TSGI_FUZZ_CHECK(decoder.end() == out.end_status, "a second end() differs");
  out.error_offset = decoder.error().offset;
  TSGI_FUZZ_CHECK(out.error_offset <= size, "error offset past the stream end");
  out.offset = decoder.offset();
  return out;
}

// The parts of two decodes of one stream that no split may change.
TSGI_FUZZ_UNCOVERED inline void expect_same_ending(const Ending& whole, const Ending& split) {
  TSGI_FUZZ_CHECK(whole.status == split.status, "split changed the error status");
  TSGI_FUZZ_CHECK(whole.end_status == split.end_status, "split changed end()'s status");
  TSGI_FUZZ_CHECK(whole.error_offset == split.error_offset, "split changed the error offset");
  TSGI_FUZZ_CHECK(whole.offset == split.offset, "split changed where the decoder stopped");
}

}  // namespace tsgi::fuzz
