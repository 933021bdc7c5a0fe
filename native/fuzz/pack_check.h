// Holds param_pack.h to its contract for the fuzz harnesses: a request's pairs, packed, then
// unpacked as src/protocol/native-listener.ts unpacks them, give the pairs back byte for byte;
// the "repeated" flag is set whenever a name comes twice (and, with at most kCompared names
// outside the table, only then); the length is the last CONTENT_LENGTH's, read as FastCGI's
// listener reads it.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "../param_pack.h"
#include "fuzz_input.h"

namespace tsgi::fuzz {

TSGI_FUZZ_UNCOVERED inline int64_t reference_length(const std::string& v) {
  if (v.empty() || v.size() > 16) return -1;
  int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

TSGI_FUZZ_UNCOVERED inline void check_packed(const std::vector<Span>& pairs) {
  std::string bytes;
  std::vector<int32_t> index = {7, 7, 7};  // a layout after others': offsets are its own
  pack_params(pairs, 2, bytes, index);
  const int32_t* h = index.data() + 3;
  const size_t n = pairs.size() / 2;
  TSGI_FUZZ_CHECK(index.size() == 3 + kPackHead + 3 * n, "packed layout of the wrong size");
  TSGI_FUZZ_CHECK(h[kPackPairs] == static_cast<int32_t>(n) && h[kPackRole] == 2, "packed head: pairs or role");
  std::set<std::string> names;
  bool repeated = false;
  size_t unnamed = 0;
  int64_t length = -1;
  size_t pos = 0;
  for (size_t i = 0; i < n; i++) {
    const std::string name(reinterpret_cast<const char*>(pairs[2 * i].data), pairs[2 * i].size);
    const std::string value(reinterpret_cast<const char*>(pairs[2 * i + 1].data), pairs[2 * i + 1].size);
    const int32_t* p = h + kPackHead + 3 * i;
    const int32_t id = p[0];
    const auto name_end = static_cast<size_t>(p[1]);
    const auto value_end = static_cast<size_t>(p[2]);
    TSGI_FUZZ_CHECK(id >= -1 && id < static_cast<int32_t>(kParamNames.size()), "packed name id out of range");
    TSGI_FUZZ_CHECK(pos <= name_end && name_end <= value_end && value_end <= bytes.size(), "packed offsets out of order");
    const std::string unpacked = id >= 0 ? std::string(kParamNames[id]) : bytes.substr(pos, name_end - pos);
    TSGI_FUZZ_CHECK(unpacked == name, "packed name differs");
    TSGI_FUZZ_CHECK(id >= 0 || name_end > pos || name.empty(), "an unknown name left out");
    TSGI_FUZZ_CHECK(bytes.compare(name_end, value_end - name_end, value) == 0 && value_end - name_end == value.size(),
                    "packed value differs");
    if (id < 0) {
      // A name of the table is always found.
      for (const char* known : kParamNames) TSGI_FUZZ_CHECK(name != known, "a name of the table not found");
      unnamed++;
    }
    repeated = repeated || !names.insert(name).second;
    if (name == "CONTENT_LENGTH") length = reference_length(value);
    pos = value_end;
  }
  TSGI_FUZZ_CHECK(pos == bytes.size(), "packed bytes beyond the last value");
  const bool flagged = (h[kPackFlags] & kPackRepeated) != 0;
  TSGI_FUZZ_CHECK(!repeated || flagged, "a repeated name not flagged");
  TSGI_FUZZ_CHECK(repeated || !flagged || unnamed > kCompared, "flagged repeated without a repeat");
  const int64_t packed_length =
      h[kPackLengthHigh] < 0 ? -1 : (int64_t{h[kPackLengthHigh]} << 32) + static_cast<uint32_t>(h[kPackLengthLow]);
  TSGI_FUZZ_CHECK(packed_length == length, "packed CONTENT_LENGTH differs");
}

}  // namespace tsgi::fuzz
