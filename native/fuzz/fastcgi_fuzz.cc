// libFuzzer harness of the FastCGI codec (native/fastcgi): a split-invariance oracle for the
// decoder and a round trip of the encoders through it. The decoder contract it holds the codec
// to is native/README.md; `npm run fuzz` (scripts/fuzz.mjs) builds and runs it.
//
// Input layout (committed seeds in native/fuzz/corpus/fastcgi/ follow it):
//   byte 0   choices: bits 0-1 maxParams (default, 1-256, 64-16384, ceiling), bits 2-3
//            maxRequests (default, 1, 1-4, ceiling), bit 4 release ids on STDIN_END, bits 5-6
//            the split mode (fuzz_input.h), bit 7 run the encoder round trip too when the
//            seed's low 3 bits are 0 (a round trip costs ten decodes: 1 input in 16 pays it)
//   byte 1   the number the small limits are made from
//   2-5      which STDIN_ENDs release their id (bit k % 32 for the k-th STDIN_END)
//   6-7      seed of the split points and of the round trip
//   8-       the stream, as a web server would send it
#include <set>
#include <string>
#include <vector>

#include "../body_join.h"
#include "../fastcgi/codec.h"
#include "fuzz_input.h"
#include "pack_check.h"

namespace {

using namespace tsgi;
using namespace tsgi::fastcgi;
using tsgi::fuzz::Input;
using tsgi::fuzz::Rng;

enum Kind : uint8_t {
  kBegin,
  kOverloaded,
  kParams,
  kStdin,
  kStdinEnd,
  kData,
  kDataEnd,
  kAbort,
  kGetValues,
  kUnknownType,
};

struct Event {
  Kind kind;
  uint32_t id = 0;
  uint32_t a = 0;  // role, or record type
  uint32_t b = 0;  // flags
  std::string bytes;
  std::vector<std::string> pairs;

  TSGI_FUZZ_UNCOVERED bool operator==(const Event& o) const {
    return kind == o.kind && id == o.id && a == o.a && b == o.b && bytes == o.bytes && pairs == o.pairs;
  }
};

// Records events with adjacent STDIN/DATA chunks of one id joined (the split-independent log),
// checks the per-event rules, and releases ids on STDIN_END when the input says so: from inside
// the callback, so the release happens at the same stream position whatever the split.
class Recorder final : public Sink {
 public:
  Recorder(Decoder& decoder, size_t max_requests, bool release, uint32_t release_mask)
      : decoder_(decoder), max_requests_(max_requests), release_(release), release_mask_(release_mask) {}

  std::vector<Event> log;
  // The chunk being pushed: STDIN/DATA spans must point into it.
  const uint8_t* chunk = nullptr;
  size_t chunk_size = 0;
  // Join each chunk's body slices in place as the listeners do (body_join.h), in the buffer
  // the decoder reads: its events must not change, and each joined slice must hold exactly
  // the bytes of the slices it joined.
  bool join = false;

  TSGI_FUZZ_UNCOVERED void on_begin(uint16_t id, uint16_t role, uint8_t flags) override {
    TSGI_FUZZ_CHECK(id != 0, "BEGIN with id 0");
    TSGI_FUZZ_CHECK(decoder_.active_requests() <= max_requests_, "more active requests than maxRequests");
    log.push_back(Event{kBegin, id, role, flags, {}, {}});
  }
  TSGI_FUZZ_UNCOVERED void on_overloaded(uint16_t id) override {
    TSGI_FUZZ_CHECK(decoder_.active_requests() >= max_requests_, "OVERLOADED below maxRequests");
    log.push_back(Event{kOverloaded, id, 0, 0, {}, {}});
  }
  TSGI_FUZZ_UNCOVERED void on_params(uint16_t id, const std::vector<Span>& pairs) override {
    tsgi::fuzz::check_packed(pairs);  // as the listener hands them to JavaScript
    log.push_back(Event{kParams, id, 0, 0, {}, strings(pairs)});
  }
  TSGI_FUZZ_UNCOVERED void on_stdin(uint16_t id, const uint8_t* data, size_t size) override { body(kStdin, id, data, size); }
  TSGI_FUZZ_UNCOVERED void on_stdin_end(uint16_t id) override {
    log.push_back(Event{kStdinEnd, id, 0, 0, {}, {}});
    const bool release = release_ && (release_mask_ >> (stdin_ends_++ % 32) & 1);
    if (release) {
      const size_t before = decoder_.active_requests();
      decoder_.release(id);
      TSGI_FUZZ_CHECK(decoder_.active_requests() + 1 == before, "release of an active id did not free it");
    }
  }
  TSGI_FUZZ_UNCOVERED void on_data(uint16_t id, const uint8_t* data, size_t size) override { body(kData, id, data, size); }
  TSGI_FUZZ_UNCOVERED void on_data_end(uint16_t id) override { log.push_back(Event{kDataEnd, id, 0, 0, {}, {}}); }
  TSGI_FUZZ_UNCOVERED void on_abort(uint16_t id) override { log.push_back(Event{kAbort, id, 0, 0, {}, {}}); }
  TSGI_FUZZ_UNCOVERED void on_get_values(const std::vector<Span>& pairs) override {
    log.push_back(Event{kGetValues, 0, 0, 0, {}, strings(pairs)});
  }
  TSGI_FUZZ_UNCOVERED void on_unknown_type(uint8_t type) override {
    TSGI_FUZZ_CHECK(type == 0 || type > FCGI_MAXTYPE, "UNKNOWN_TYPE for a known type");
    log.push_back(Event{kUnknownType, 0, type, 0, {}, {}});
  }

 private:
  TSGI_FUZZ_UNCOVERED static std::vector<std::string> strings(const std::vector<Span>& spans) {
    TSGI_FUZZ_CHECK(spans.size() % 2 == 0, "pairs list of odd length");
    std::vector<std::string> out;
    out.reserve(spans.size());
    for (const Span& s : spans) {
      TSGI_FUZZ_CHECK(s.size == 0 || s.data != nullptr, "null span");
      out.emplace_back(reinterpret_cast<const char*>(s.data), s.size);
    }
    return out;
  }
  TSGI_FUZZ_UNCOVERED void body(Kind kind, uint16_t id, const uint8_t* data, size_t size) {
    TSGI_FUZZ_CHECK(size > 0, "empty STDIN/DATA event");
    TSGI_FUZZ_CHECK(data >= chunk && data + size <= chunk + chunk_size, "body span outside the pushed chunk");
    // Read before the join: its move may write over the front of this slice's own bytes
    // (when the slice is longer than the header and padding it is moved across).
    std::string bytes(reinterpret_cast<const char*>(data), size);
    if (join) join_in_place(kind, id, data, bytes);
    if (!log.empty() && log.back().kind == kind && log.back().id == id) {
      log.back().bytes += bytes;
    } else {
      log.push_back(Event{kind, id, 0, 0, std::move(bytes), {}});
    }
    join_events_ = log.size();
  }

  // The listener's join: a slice of the same kind and id that follows the last one of this
  // chunk (no event between) is moved up against it.
  TSGI_FUZZ_UNCOVERED void join_in_place(Kind kind, uint16_t id, const uint8_t* data, const std::string& piece) {
    const size_t size = piece.size();
    if (chunk != join_chunk_) {
      join_chunk_ = chunk;
      join_.reset();
      joined_.clear();
    }
    auto* buf = const_cast<uint8_t*>(chunk);  // the ChunkedCopy's own bytes (decode with copy)
    const size_t at = static_cast<size_t>(data - chunk);
    const bool follows = join_.open() && log.size() == join_events_ && join_kind_ == kind;
    if (join_.open()) TSGI_FUZZ_CHECK(at >= join_.end(), "a body slice before the end of the last one");
    if (join_.add(buf, id, at, size, follows)) {
      joined_ += piece;
    } else {
      // The slice before is final: all of it still holds what it joined.
      if (!joined_.empty()) {
        TSGI_FUZZ_CHECK(std::memcmp(buf + last_begin_, joined_.data(), joined_.size()) == 0,
                        "a joined slice was overwritten by a later one");
      }
      joined_ = piece;
      last_begin_ = join_.begin();
    }
    join_kind_ = kind;
    TSGI_FUZZ_CHECK(join_.end() - join_.begin() == joined_.size(), "a joined slice's length is not its slices' sum");
    TSGI_FUZZ_CHECK(std::memcmp(buf + join_.end() - size, piece.data(), size) == 0,
                    "a joined slice does not end with the bytes of the slice joined to it");
  }

  BodyJoin join_;
  const uint8_t* join_chunk_ = nullptr;
  Kind join_kind_ = kStdin;
  size_t join_events_ = 0;  // the log's size after the last body event
  size_t last_begin_ = 0;
  std::string joined_;
  Decoder& decoder_;
  size_t max_requests_;
  bool release_;
  uint32_t release_mask_;
  uint32_t stdin_ends_ = 0;
};

struct Outcome : tsgi::fuzz::Ending {
  std::vector<Event> log;
  size_t active = 0;
};

struct Setup {
  Limits limits;
  bool release = false;
  uint32_t release_mask = 0;
};

// Pushes the stream in the given chunk lengths, then ends it. The round trip skips `copy`:
// its inputs are our encoders'.
TSGI_FUZZ_UNCOVERED Outcome decode(const Setup& setup, const uint8_t* data, size_t size, const std::vector<size_t>& lengths,
                                   bool copy = true, bool join = false) {
  Decoder decoder(setup.limits);
  Recorder sink(decoder, setup.limits.max_requests, setup.release, setup.release_mask);
  sink.join = join && copy;
  Outcome out;
  static_cast<tsgi::fuzz::Ending&>(out) = tsgi::fuzz::run_decoder(
      decoder, sink, data, size, lengths, copy, [&] { return sink.log.size(); },
      [&](Status end_status) TSGI_FUZZ_UNCOVERED {
        if (end_status == Status::kOk) return;
        TSGI_FUZZ_CHECK(end_status == Status::kFcgiTruncated, "end() failed with a status other than TRUNCATED");
        TSGI_FUZZ_CHECK(decoder.error().offset == size, "TRUNCATED offset is not the stream length");
      });
  out.active = decoder.active_requests();
  TSGI_FUZZ_CHECK(out.active <= setup.limits.max_requests, "more active requests than maxRequests");
  out.log = std::move(sink.log);
  return out;
}

TSGI_FUZZ_UNCOVERED void expect_same(const Outcome& whole, const Outcome& split) {
  TSGI_FUZZ_CHECK(whole.log.size() == split.log.size(), "split changed the number of events");
  for (size_t i = 0; i < whole.log.size(); i++) {
    TSGI_FUZZ_CHECK(whole.log[i] == split.log[i], "split changed an event");
  }
  tsgi::fuzz::expect_same_ending(whole, split);
  TSGI_FUZZ_CHECK(whole.active == split.active, "split changed the active request count");
}

// ---- encoder round trip ----

// One record as an application-side reader sees it.
struct Record {
  uint8_t type;
  uint16_t id;
  std::string content;
  uint8_t padding;
};

TSGI_FUZZ_UNCOVERED std::vector<Record> walk_records(const std::string& bytes) {
  std::vector<Record> out;
  size_t at = 0;
  while (at < bytes.size()) {
    TSGI_FUZZ_CHECK(bytes.size() - at >= kHeaderSize, "encoder output ends inside a header");
    const auto* h = reinterpret_cast<const uint8_t*>(bytes.data() + at);
    TSGI_FUZZ_CHECK(h[0] == kVersion1 && h[7] == 0, "encoder wrote a bad version or reserved byte");
    const size_t content = static_cast<size_t>(h[4] << 8 | h[5]);
    const size_t padding = h[6];
    TSGI_FUZZ_CHECK(bytes.size() - at - kHeaderSize >= content + padding, "encoder output ends inside a record");
    out.push_back(Record{h[1], static_cast<uint16_t>(h[2] << 8 | h[3]), bytes.substr(at + kHeaderSize, content),
                         static_cast<uint8_t>(padding)});
    for (size_t i = 0; i < padding; i++) {
      TSGI_FUZZ_CHECK(bytes[at + kHeaderSize + content + i] == 0, "padding is not zeros");
    }
    at += kHeaderSize + content + padding;
  }
  return out;
}

// encode_stream against its own documentation, read back by walk_records.
TSGI_FUZZ_UNCOVERED std::string checked_stream(uint8_t type, uint16_t id, const std::string& content, size_t max_content) {
  std::string out = "x";  // encoders append: keep a byte in front to see that they do
  const size_t n = encode_stream(out, type, id, reinterpret_cast<const uint8_t*>(content.data()), content.size(),
                                 max_content);
  TSGI_FUZZ_CHECK(n == out.size() - 1, "encode_stream's return is not what it appended");
  TSGI_FUZZ_CHECK(n == stream_encoded_size(content.size(), max_content), "stream_encoded_size disagrees");
  TSGI_FUZZ_CHECK(out[0] == 'x', "encode_stream overwrote what was in front");
  out.erase(0, 1);
  std::string joined;
  const size_t cap = max_content & ~size_t{7};
  for (const Record& r : walk_records(out)) {
    TSGI_FUZZ_CHECK(r.type == type && r.id == id, "encode_stream record of the wrong type or id");
    TSGI_FUZZ_CHECK(!r.content.empty(), "encode_stream wrote an empty record");
    TSGI_FUZZ_CHECK(r.content.size() <= cap, "encode_stream record above max_content");
    TSGI_FUZZ_CHECK((r.content.size() + r.padding) % 8 == 0 && r.padding < 8, "record not padded to 8");
    joined += r.content;
  }
  TSGI_FUZZ_CHECK(joined == content, "encode_stream lost or changed content");
  return out;
}

TSGI_FUZZ_UNCOVERED std::string random_pairs(Rng& rng, std::vector<std::string>& list, size_t budget) {
  std::string block;
  const size_t count = rng.below(12);
  for (size_t i = 0; i < count; i++) {
    auto length = [&](bool name) -> size_t {
      switch (rng.below(64)) {
        case 0:
          return name ? kMaxNameBytes - rng.below(2) : 1000 + rng.below(3000);
        case 1:
        case 2:
        case 3:
          return 120 + rng.below(200);  // across the 1-byte/4-byte length boundary
        default:
          return rng.below(40);
      }
    };
    const std::string name = tsgi::fuzz::random_bytes(rng, length(true));
    const std::string value = tsgi::fuzz::random_bytes(rng, length(false));
    if (block.size() + name.size() + value.size() + 8 > budget) break;
    const size_t n = encode_pair(block, reinterpret_cast<const uint8_t*>(name.data()), name.size(),
                                 reinterpret_cast<const uint8_t*>(value.data()), value.size());
    TSGI_FUZZ_CHECK(n == (name.size() < 128 ? 1 : 4) + (value.size() < 128 ? 1 : 4) + name.size() + value.size(),
                    "encode_pair's return is not its size");
    list.push_back(name);
    list.push_back(value);
  }
  return block;
}

// A part of the round-trip stream and the events it must produce.
struct Unit {
  std::string bytes;
  std::vector<Event> events;
};

// Requests (and management records) encoded with our encoders, decoded back at a random
// split. Multiplexed: distinct ids interleaved, nothing released. Keep-conn: one id reused,
// released on each STDIN_END.
TSGI_FUZZ_UNCOVERED void round_trip(Rng& rng) {
  const bool keep_conn = rng.chance(2);
  size_t max_content;
  switch (rng.below(4)) {
    case 0:
      max_content = kMaxRecordContent;
      break;
    case 1:
      max_content = 8 + rng.below(0xffff - 8);
      break;
    default:
      max_content = 8 + rng.below(64);
      break;
  }
  const size_t requests = 1 + rng.below(4);
  std::vector<std::vector<Unit>> lanes(requests + 1);  // the last lane: management records
  std::set<uint16_t> ids;
  for (size_t r = 0; r < requests; r++) {
    uint16_t id = 1;
    if (!keep_conn) {
      do id = static_cast<uint16_t>(1 + rng.below(0xffff)); while (!ids.insert(id).second);
    }
    auto& lane = lanes[keep_conn ? 0 : r];
    const uint16_t role = static_cast<uint16_t>(rng.below(5) == 0 ? rng.next() : 1 + rng.below(3));
    const uint8_t flags = static_cast<uint8_t>(rng.next());
    Unit begin;
    encode_begin_request(begin.bytes, id, role, flags);
    begin.events.push_back(Event{kBegin, id, role, flags, {}, {}});
    lane.push_back(std::move(begin));

    Event params{kParams, id, 0, 0, {}, {}};
    const std::string block = random_pairs(rng, params.pairs, kMaxParamsCeiling);
    // The params stream in one or two encode_stream calls: records of a stream may be cut anywhere.
    const size_t cut = block.empty() ? 0 : rng.below(block.size() + 1);
    for (const std::string& part : {block.substr(0, cut), block.substr(cut)}) {
      Unit u;
      u.bytes = checked_stream(FCGI_PARAMS, id, part, max_content);
      lane.push_back(std::move(u));
    }
    Unit params_end;
    encode_stream_end(params_end.bytes, FCGI_PARAMS, id);
    params_end.events.push_back(std::move(params));
    lane.push_back(std::move(params_end));

    if (rng.chance(4)) {
      Unit abort;
      encode_abort_request(abort.bytes, id);
      abort.events.push_back(Event{kAbort, id, 0, 0, {}, {}});
      lane.push_back(std::move(abort));
    }
    // DATA before STDIN: in keep-conn the id is released on STDIN_END, and DATA after it is skipped.
    for (Kind kind : {kData, kStdin}) {
      if (kind == kData && !rng.chance(3)) continue;
      const uint8_t type = kind == kData ? FCGI_DATA : FCGI_STDIN;
      const size_t size = rng.chance(256) ? 0xfff8 + rng.below(70000) : rng.below(300);
      const std::string content = tsgi::fuzz::random_bytes(rng, size);
      if (!content.empty()) {
        Unit u;
        u.bytes = checked_stream(type, id, content, max_content);
        u.events.push_back(Event{kind, id, 0, 0, content, {}});
        lane.push_back(std::move(u));
      }
      Unit end;
      encode_stream_end(end.bytes, type, id);
      end.events.push_back(Event{kind == kData ? kDataEnd : kStdinEnd, id, 0, 0, {}, {}});
      lane.push_back(std::move(end));
    }
  }
  // Management records, interleaved with the requests at record boundaries.
  auto& management = lanes[requests];
  for (size_t i = rng.below(3); i > 0; i--) {
    Unit u;
    if (rng.chance(2)) {
      Event ev{kGetValues, 0, 0, 0, {}, {}};
      const std::string block = random_pairs(rng, ev.pairs, kMaxRecordContent);
      if (block.empty()) {
        encode_stream_end(u.bytes, FCGI_GET_VALUES, 0);
      } else {
        u.bytes = checked_stream(FCGI_GET_VALUES, 0, block, kMaxRecordContent);  // one record
      }
      u.events.push_back(std::move(ev));
    } else {
      const uint8_t type = static_cast<uint8_t>(rng.chance(2) ? 0 : 12 + rng.below(244));
      const std::string content = tsgi::fuzz::random_bytes(rng, rng.below(100));
      if (content.empty()) {
        encode_stream_end(u.bytes, type, static_cast<uint16_t>(rng.next()));
        u.events.push_back(Event{kUnknownType, 0, type, 0, {}, {}});
      } else {
        u.bytes = checked_stream(type, static_cast<uint16_t>(rng.next()), content, max_content);
        for (size_t n = walk_records(u.bytes).size(); n > 0; n--) {
          u.events.push_back(Event{kUnknownType, 0, type, 0, {}, {}});
        }
      }
    }
    management.push_back(std::move(u));
  }

  std::string stream;
  std::vector<Event> expected;
  std::vector<size_t> next(lanes.size(), 0);
  for (;;) {
    std::vector<size_t> open;
    for (size_t l = 0; l < lanes.size(); l++) {
      if (next[l] < lanes[l].size()) open.push_back(l);
    }
    if (open.empty()) break;
    const size_t l = open[rng.below(open.size())];
    Unit& u = lanes[l][next[l]++];
    stream += u.bytes;
    for (Event& ev : u.events) expected.push_back(std::move(ev));
  }

  Setup setup;
  setup.limits.max_params = kMaxParamsCeiling;
  setup.limits.max_requests = requests;
  setup.release = keep_conn;
  setup.release_mask = 0xffffffff;
  const auto* data = reinterpret_cast<const uint8_t*>(stream.data());
  const size_t size = stream.size();
  const Outcome out = decode(setup, data, size, tsgi::fuzz::round_trip_splits(size, rng), false);
  TSGI_FUZZ_CHECK(out.status == Status::kOk && out.end_status == Status::kOk, "round trip failed to decode");
  TSGI_FUZZ_CHECK(out.log.size() == expected.size(), "round trip: wrong number of events");
  for (size_t i = 0; i < expected.size(); i++) {
    TSGI_FUZZ_CHECK(out.log[i] == expected[i], "round trip: an event differs from what was encoded");
  }
  TSGI_FUZZ_CHECK(out.active == (keep_conn ? 0 : requests), "round trip: wrong active count at the end");
}

// The records only applications write: no decoder reads them, so read them back by hand.
TSGI_FUZZ_UNCOVERED void check_application_records(Rng& rng) {
  const uint16_t id = static_cast<uint16_t>(rng.next());
  const uint32_t app_status = static_cast<uint32_t>(rng.next());
  const uint8_t protocol_status = static_cast<uint8_t>(rng.below(4));
  std::string out;
  TSGI_FUZZ_CHECK(encode_end_request(out, id, app_status, protocol_status) == 16, "END_REQUEST is not 16 bytes");
  const uint8_t type = static_cast<uint8_t>(rng.next());
  TSGI_FUZZ_CHECK(encode_unknown_type(out, type) == 16, "UNKNOWN_TYPE is not 16 bytes");
  const std::vector<Record> records = walk_records(out);
  TSGI_FUZZ_CHECK(records.size() == 2, "END_REQUEST + UNKNOWN_TYPE are not two records");
  const auto& end = records[0];
  const auto* b = reinterpret_cast<const uint8_t*>(end.content.data());
  TSGI_FUZZ_CHECK(end.type == FCGI_END_REQUEST && end.id == id && end.content.size() == 8, "END_REQUEST header");
  TSGI_FUZZ_CHECK((uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3]) == app_status &&
                      b[4] == protocol_status && !b[5] && !b[6] && !b[7],
                  "END_REQUEST body");
  const auto& unknown = records[1];
  TSGI_FUZZ_CHECK(unknown.type == FCGI_UNKNOWN_TYPE && unknown.id == 0 && unknown.content.size() == 8 &&
                      static_cast<uint8_t>(unknown.content[0]) == type &&
                      unknown.content.substr(1) == std::string(7, '\0'),
                  "UNKNOWN_TYPE record");
  const std::string content = tsgi::fuzz::random_bytes(rng, rng.below(200));
  checked_stream(rng.chance(2) ? FCGI_STDOUT : FCGI_STDERR, id, content, 8 + rng.below(100));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t choices = in.u8();
  const uint8_t small = in.u8();
  Setup setup;
  switch (choices & 3) {
    case 0: setup.limits.max_params = kDefaultMaxParams; break;
    case 1: setup.limits.max_params = 1 + small; break;
    case 2: setup.limits.max_params = 64 + 64 * size_t{small}; break;
    default: setup.limits.max_params = kMaxParamsCeiling; break;
  }
  switch (choices >> 2 & 3) {
    case 0: setup.limits.max_requests = kDefaultMaxRequests; break;
    case 1: setup.limits.max_requests = 1; break;
    case 2: setup.limits.max_requests = 1 + (small & 3); break;
    default: setup.limits.max_requests = kMaxRequestsCeiling; break;
  }
  setup.release = choices >> 4 & 1;
  setup.release_mask = in.u32();
  const uint16_t seed = in.u16();
  const uint8_t split_mode = choices >> 5 & 3;
  const uint8_t* stream = in.rest();
  const size_t stream_size = in.rest_size();

  const Outcome whole = decode(setup, stream, stream_size, std::vector<size_t>{stream_size});
  Rng rng(seed ^ static_cast<uint64_t>(stream_size) << 16);
  // The split decode also joins its body slices in place, as the listeners do.
  const Outcome split = decode(setup, stream, stream_size, tsgi::fuzz::choose_splits(stream_size, split_mode, rng), true, true);
  expect_same(whole, split);

  if ((choices & 0x80) && (seed & 7) == 0) {
    round_trip(rng);
    check_application_records(rng);
  }
  return 0;
}
