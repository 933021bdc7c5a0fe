// A request's params packed for JavaScript (plain C++: the listeners use it, and the fuzz
// harnesses unpack what it packs and compare it with the decoder's pairs).
//
// Handing JavaScript the params as an array of strings cost a string made through Node-API
// for every name and value (~50 for nginx's fastcgi_params and a browser's headers), the
// array built from them, and then a string-table lookup for each name as the environ stored
// it: about a fifth of a hello request's CPU. Packed, a request costs one string and a few
// ints in an Int32Array the listener shares with JavaScript: the bytes of every value, and of
// every name not in kParamNames, back to back; for each pair the name's number in kParamNames
// (JavaScript holds those names once, as property keys already) or -1, and where its name and
// its value end in the string. The first kPackHead ints say how many pairs, the FastCGI role,
// whether a name came twice (the environ must then merge, see src/gateway/environ.ts; without
// one it stores without looking first), and the last CONTENT_LENGTH as FastCGI's listener
// reads it.
//
// Cross-language contract: kParamNames and the layout below, with src/protocol/native-listener.ts
// (unpackParams); the names reach JavaScript from this table (binding.paramNames).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "status.h"

namespace tsgi {

// What nginx's fastcgi_params and uwsgi_params, Apache's ap_add_common_vars/ap_add_cgi_vars
// and browsers' usual request headers send: at most 64, so that one word marks those seen.
inline constexpr std::array<const char*, 64> kParamNames = {
    "QUERY_STRING", "REQUEST_METHOD", "CONTENT_TYPE", "CONTENT_LENGTH", "SCRIPT_NAME", "SCRIPT_FILENAME",
    "REQUEST_URI", "DOCUMENT_URI", "DOCUMENT_ROOT", "SERVER_PROTOCOL", "REQUEST_SCHEME", "HTTPS",
    "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "REMOTE_ADDR", "REMOTE_PORT", "REMOTE_USER", "SERVER_ADDR",
    "SERVER_PORT", "SERVER_NAME", "REDIRECT_STATUS", "PATH_INFO", "PATH_TRANSLATED", "AUTH_TYPE", "PATH",
    "SERVER_ADMIN", "SERVER_SIGNATURE", "CONTEXT_DOCUMENT_ROOT", "CONTEXT_PREFIX", "REMOTE_HOST", "FCGI_ROLE",
    "UNIQUE_ID", "HTTP_HOST", "HTTP_USER_AGENT", "HTTP_ACCEPT", "HTTP_ACCEPT_LANGUAGE", "HTTP_ACCEPT_ENCODING",
    "HTTP_CONNECTION", "HTTP_COOKIE", "HTTP_REFERER", "HTTP_CACHE_CONTROL", "HTTP_PRAGMA",
    "HTTP_UPGRADE_INSECURE_REQUESTS", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_REAL_IP", "HTTP_X_REQUEST_ID",
    "HTTP_AUTHORIZATION", "HTTP_ORIGIN", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_NONE_MATCH", "HTTP_RANGE",
    "HTTP_TRANSFER_ENCODING", "HTTP_EXPECT", "HTTP_SEC_FETCH_SITE", "HTTP_SEC_FETCH_MODE",
    "HTTP_SEC_FETCH_DEST", "HTTP_SEC_FETCH_USER", "HTTP_DNT", "HTTP_TE", "HTTP_X_REQUESTED_WITH",
};
inline constexpr int kContentLengthName = 3;

// The head of a packed request, then three ints a pair: name id or -1, name end, value end.
inline constexpr size_t kPackHead = 5;
enum PackSlot : size_t { kPackPairs = 0, kPackRole = 1, kPackFlags = 2, kPackLengthHigh = 3, kPackLengthLow = 4 };
inline constexpr int32_t kPackRepeated = 1;  // kPackFlags: some name came twice (or may have)
inline constexpr int32_t kPackKeepConn = 2;  // kPackFlags: FastCGI FCGI_KEEP_CONN (set by the listener, not pack_params)
inline constexpr size_t kCompared = 16;

class ParamNames {
 public:
  // The name's number in kParamNames, or -1.
  int find(const uint8_t* data, size_t size) const {
    if (size < 4 || size > kLongest) return -1;
    for (size_t slot = hash(data, size);; slot = (slot + 1) & kMask) {
      const int id = slots_[slot] - 1;
      if (id < 0) return -1;
      if (sizes_[id] == size && std::memcmp(kParamNames[id], data, size) == 0) return id;
    }
  }

  static const ParamNames& table() {
    static const ParamNames names;
    return names;
  }

 private:
  static constexpr size_t kSlots = 256;  // a quarter full: a lookup compares about one name
  static constexpr size_t kMask = kSlots - 1;
  static constexpr size_t kLongest = 64;

  ParamNames() {
    for (size_t id = 0; id < kParamNames.size(); id++) {
      const auto* name = reinterpret_cast<const uint8_t*>(kParamNames[id]);
      sizes_[id] = std::strlen(kParamNames[id]);
      size_t slot = hash(name, sizes_[id]);
      while (slots_[slot] != 0) slot = (slot + 1) & kMask;
      slots_[slot] = static_cast<uint8_t>(id + 1);
    }
  }

  // The length and three bytes tell the common names apart (most share a prefix).
  static size_t hash(const uint8_t* d, size_t n) {
    return (n * 29 + d[n - 1] * 7 + d[n / 2] * 13 + d[n - 3]) & kMask;
  }

  std::array<uint8_t, kSlots> slots_{};
  std::array<size_t, kParamNames.size()> sizes_{};
};

// CONTENT_LENGTH as FastCGI's listener reads it: 1 to 16 ASCII digits, else -1 (no length:
// the body ends with its stream).
inline int64_t pack_content_length(const Span& value) {
  uint64_t n = 0;
  return parse_decimal(value, 16, n) ? static_cast<int64_t>(n) : -1;
}

// Appends the request of `pairs` (name, value, name, …) to `bytes` (which the caller makes a
// string of, one per request: offsets start at 0) and its layout to `index`.
inline void pack_params(const std::vector<Span>& pairs, int32_t role, std::string& bytes, std::vector<int32_t>& index) {
  const ParamNames& names = ParamNames::table();
  bytes.clear();
  const size_t head = index.size();
  index.resize(head + kPackHead + 3 * (pairs.size() / 2));
  int32_t* out = index.data() + head + kPackHead;
  uint64_t seen = 0;
  bool repeated = false;
  int64_t length = -1;
  size_t unnamed = 0;  // names not in the table: each is compared with the names before it
  for (size_t i = 0; i + 1 < pairs.size(); i += 2, out += 3) {
    const Span& name = pairs[i];
    const Span& value = pairs[i + 1];
    const int id = names.find(name.data, name.size);
    if (id >= 0) {
      const uint64_t bit = uint64_t{1} << id;
      repeated = repeated || (seen & bit) != 0;
      seen |= bit;
      if (id == kContentLengthName) length = pack_content_length(value);
    } else {
      // Past kCompared of them, "maybe repeated" is the answer: a request of thousands of
      // small names must not cost a comparison of each with each.
      if (++unnamed > kCompared) repeated = true;
      for (size_t j = 0; j < i && !repeated; j += 2) {
        repeated = pairs[j].size == name.size && std::memcmp(pairs[j].data, name.data, name.size) == 0;
      }
      bytes.append(reinterpret_cast<const char*>(name.data), name.size);
    }
    out[0] = id;
    out[1] = static_cast<int32_t>(bytes.size());
    bytes.append(reinterpret_cast<const char*>(value.data), value.size);
    out[2] = static_cast<int32_t>(bytes.size());
  }
  int32_t* h = index.data() + head;
  h[kPackPairs] = static_cast<int32_t>(pairs.size() / 2);
  h[kPackRole] = role;
  h[kPackFlags] = repeated ? kPackRepeated : 0;
  h[kPackLengthHigh] = length < 0 ? -1 : static_cast<int32_t>(length >> 32);
  h[kPackLengthLow] = length < 0 ? 0 : static_cast<int32_t>(static_cast<uint32_t>(length & 0xffffffff));
}

}  // namespace tsgi
