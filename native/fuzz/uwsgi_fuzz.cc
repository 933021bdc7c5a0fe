// libFuzzer harness of the uwsgi codec (native/uwsgi): a split-invariance oracle for the
// decoder and a round trip of encode_request through it. The decoder contract it holds the
// codec to is native/README.md; `npm run fuzz` (scripts/fuzz.mjs) builds and runs it.
//
// Input layout (committed seeds in native/fuzz/corpus/uwsgi/ follow it):
//   byte 0   choices: bits 0-1 maxParams (default, 1-256, 1-65281 by 256, 1 MiB), bits 2-3 the
//            split mode (fuzz_input.h), bit 7 run the encoder round trip too when the seed's
//            low 3 bits are 0
//   byte 1   the number the small limit is made from
//   2-3      seed of the split points and of the round trip
//   4-       the stream, as a web server would send it
#include <string>
#include <vector>

#include "../fastcgi/codec.h"  // kMaxParamsCeiling: one bound for both codecs, as the binding has
#include "../uwsgi/codec.h"
#include "fuzz_input.h"
#include "pack_check.h"

namespace {

using namespace tsgi;
using namespace tsgi::uwsgi;
using tsgi::fuzz::Input;
using tsgi::fuzz::Rng;

struct Log {
  bool have_request = false;
  uint8_t modifier1 = 0;
  uint8_t modifier2 = 0;
  std::vector<std::string> vars;
  uint64_t content_length = 0;
  std::string body;  // BODY chunks joined
  int body_ends = 0;

  TSGI_FUZZ_UNCOVERED bool operator==(const Log& o) const {
    return have_request == o.have_request && modifier1 == o.modifier1 && modifier2 == o.modifier2 &&
           vars == o.vars && content_length == o.content_length && body == o.body && body_ends == o.body_ends;
  }
};

class Recorder final : public Sink {
 public:
  Log log;
  size_t events = 0;  // every callback, to see that a dead decoder or end() emits none
  const uint8_t* chunk = nullptr;
  size_t chunk_size = 0;

  TSGI_FUZZ_UNCOVERED void on_request(uint8_t modifier1, uint8_t modifier2, const std::vector<Span>& vars,
                                      uint64_t content_length) override {
    TSGI_FUZZ_CHECK(!log.have_request, "two REQUEST events");
    TSGI_FUZZ_CHECK(vars.size() % 2 == 0, "vars list of odd length");
    TSGI_FUZZ_CHECK(content_length <= kMaxContentLength, "contentLength above 2^53-1");
    tsgi::fuzz::check_packed(vars);  // as the listener hands them to JavaScript
    events++;
    log.have_request = true;
    log.modifier1 = modifier1;
    log.modifier2 = modifier2;
    for (const Span& s : vars) log.vars.emplace_back(reinterpret_cast<const char*>(s.data), s.size);
    log.content_length = content_length;
  }
  TSGI_FUZZ_UNCOVERED void on_body(const uint8_t* data, size_t size) override {
    TSGI_FUZZ_CHECK(log.have_request && log.body_ends == 0, "BODY outside a request's body");
    TSGI_FUZZ_CHECK(size > 0, "empty BODY event");
    TSGI_FUZZ_CHECK(data >= chunk && data + size <= chunk + chunk_size, "body span outside the pushed chunk");
    events++;
    log.body.append(reinterpret_cast<const char*>(data), size);
    TSGI_FUZZ_CHECK(log.body.size() <= log.content_length, "more body than CONTENT_LENGTH");
  }
  TSGI_FUZZ_UNCOVERED void on_body_end() override {
    TSGI_FUZZ_CHECK(log.have_request && log.body_ends == 0, "BODY_END twice or before REQUEST");
    TSGI_FUZZ_CHECK(log.body.size() == log.content_length, "BODY_END before CONTENT_LENGTH bytes");
    events++;
    log.body_ends++;
  }
};

struct Outcome : tsgi::fuzz::Ending {
  Log log;
};

// Pushes the stream in the given chunk lengths, then ends it. The round trip skips `copy`:
// its inputs are our encoders'.
TSGI_FUZZ_UNCOVERED Outcome decode(Limits limits, const uint8_t* data, size_t size, const std::vector<size_t>& lengths,
                                   bool copy = true) {
  Decoder decoder(limits);
  Recorder sink;
  Outcome out;
  static_cast<tsgi::fuzz::Ending&>(out) = tsgi::fuzz::run_decoder(
      decoder, sink, data, size, lengths, copy, [&] { return sink.events; },
      [&](Status end_status) TSGI_FUZZ_UNCOVERED {
        if (sink.log.body_ends == 1) {
          TSGI_FUZZ_CHECK(end_status == Status::kOk, "end() after BODY_END failed");
        } else {
          TSGI_FUZZ_CHECK(end_status == Status::kUwsgiTruncated, "end() before BODY_END is not TRUNCATED");
          TSGI_FUZZ_CHECK(decoder.error().offset == size, "TRUNCATED offset is not the stream length");
        }
      });
  out.log = std::move(sink.log);
  return out;
}

// Header and vars by encode_request, then a body: decoded back, the same request must come out.
TSGI_FUZZ_UNCOVERED void round_trip(Rng& rng) {
  std::vector<std::string> strings;
  size_t datasize = 0;
  const size_t count = rng.below(16);
  for (size_t i = 0; i < count; i++) {
    auto length = [&](bool key) -> size_t {
      switch (rng.below(64)) {
        case 0:
          return key ? kMaxNameBytes - rng.below(2) : 4000 + rng.below(30000);
        case 1:
          return 200 + rng.below(300);  // across the low byte of the u16 length
        default:
          return rng.below(40);
      }
    };
    std::string key = tsgi::fuzz::random_bytes(rng, length(true));
    if (key == "CONTENT_LENGTH") key += "_";  // CONTENT_LENGTH is placed below, with the body
    strings.push_back(std::move(key));
    strings.push_back(tsgi::fuzz::random_bytes(rng, length(false)));
    datasize += 4 + strings[strings.size() - 2].size() + strings.back().size();
  }
  std::string body;
  const int cl = static_cast<int>(rng.below(4));  // absent, empty, the body's length, twice the same
  if (cl >= 2) body = tsgi::fuzz::random_bytes(rng, rng.chance(32) ? 70000 + rng.below(30000) : rng.below(300));
  const std::string cl_value = cl == 1 ? std::string() : std::to_string(body.size());
  for (int i = 0; i < (cl == 3 ? 2 : cl == 0 ? 0 : 1); i++) {
    const size_t at = 2 * rng.below(strings.size() / 2 + 1);
    strings.insert(strings.begin() + static_cast<ptrdiff_t>(at), {"CONTENT_LENGTH", cl_value});
    datasize += 4 + 14 + cl_value.size();
  }
  std::vector<Span> spans;
  for (const std::string& s : strings) spans.push_back(Span{reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  const uint8_t modifier2 = static_cast<uint8_t>(rng.next());
  std::string stream = "x";  // encode_request appends: keep a byte in front to see that it does
  const bool ok = encode_request(stream, 0, modifier2, spans.data(), spans.size());
  TSGI_FUZZ_CHECK(stream[0] == 'x', "encode_request overwrote what was in front");
  stream.erase(0, 1);
  if (datasize > kMaxDatasize) {
    TSGI_FUZZ_CHECK(!ok && stream.empty(), "encode_request accepted vars past the 16-bit datasize");
    return;
  }
  TSGI_FUZZ_CHECK(ok && stream.size() == kHeaderSize + datasize, "encode_request's size");
  stream += body;

  const auto* data = reinterpret_cast<const uint8_t*>(stream.data());
  const size_t size = stream.size();
  const Outcome out = decode(Limits{}, data, size, tsgi::fuzz::round_trip_splits(size, rng), false);
  TSGI_FUZZ_CHECK(out.status == Status::kOk && out.end_status == Status::kOk, "round trip failed to decode");
  TSGI_FUZZ_CHECK(out.log.modifier1 == 0 && out.log.modifier2 == modifier2, "round trip: modifiers");
  TSGI_FUZZ_CHECK(out.log.vars == strings, "round trip: vars differ");
  TSGI_FUZZ_CHECK(out.log.content_length == body.size() && out.log.body == body, "round trip: body differs");
  TSGI_FUZZ_CHECK(out.log.body_ends == 1, "round trip: no BODY_END");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t choices = in.u8();
  const uint8_t small = in.u8();
  Limits limits;
  switch (choices & 3) {
    case 0: limits.max_params = kDefaultMaxParams; break;
    case 1: limits.max_params = 1 + small; break;
    case 2: limits.max_params = 1 + 256 * size_t{small}; break;
    default: limits.max_params = tsgi::fastcgi::kMaxParamsCeiling; break;
  }
  const uint16_t seed = in.u16();
  const uint8_t* stream = in.rest();
  const size_t stream_size = in.rest_size();

  const Outcome whole = decode(limits, stream, stream_size, std::vector<size_t>{stream_size});
  Rng rng(seed ^ static_cast<uint64_t>(stream_size) << 16);
  const Outcome split = decode(limits, stream, stream_size, tsgi::fuzz::choose_splits(stream_size, choices >> 2 & 3, rng));
  TSGI_FUZZ_CHECK(whole.log == split.log, "split changed the events");
  tsgi::fuzz::expect_same_ending(whole, split);

  if ((choices & 0x80) && (seed & 7) == 0) round_trip(rng);
  return 0;
}
