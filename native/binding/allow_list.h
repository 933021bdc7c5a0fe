// The `allow` list of a TCP listener (DESIGN §4): which peers may connect, checked at accept.
// Plain C++ over socket addresses; no napi.h.
//
// Cross-language contract with src/daemon/allow.ts (NETWORK_BYTES, AllowList.packed()): a
// list is n networks of 17 bytes each, 16 address bytes then the prefix length (0–128), IPv4
// as IPv4-mapped IPv6 (::ffff:a.b.c.d, prefix 96 + n). An IPv4 peer is compared in that
// form, so an IPv4 client of a dual-stack `::` listener (which reports it as ::ffff:a.b.c.d)
// and of a `0.0.0.0` listener matches the same entries. JavaScript checked the bytes.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace tsgi::binding {

class AllowList {
 public:
  static constexpr size_t kNetworkBytes = 17;

  // No list (null from JavaScript): everyone may connect, and nothing is checked.
  AllowList() = default;
  AllowList(const uint8_t* data, size_t size) : everyone_(false) {
    for (size_t at = 0; at + kNetworkBytes <= size; at += kNetworkBytes) {
      Network n;
      std::memcpy(n.bytes, data + at, 16);
      n.prefix = data[at + 16] > 128 ? 128 : data[at + 16];
      networks_.push_back(n);
    }
  }

  bool everyone() const { return everyone_; }

  // Whether the peer at `addr` may connect; an address of another family (never for TCP) may not.
  bool has(const sockaddr_storage& addr) const {
    if (everyone_) return true;
    uint8_t bytes[16];
    if (addr.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
      std::memset(bytes, 0, 10);
      bytes[10] = bytes[11] = 0xff;
      std::memcpy(bytes + 12, &a->sin_addr, 4);
    } else if (addr.ss_family == AF_INET6) {
      std::memcpy(bytes, &reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr, 16);
    } else {
      return false;
    }
    for (const Network& n : networks_) {
      if (n.matches(bytes)) return true;
    }
    return false;
  }

 private:
  struct Network {
    uint8_t bytes[16];
    uint8_t prefix;

    bool matches(const uint8_t* addr) const {
      const size_t full = prefix / 8;
      if (std::memcmp(bytes, addr, full) != 0) return false;
      const unsigned rest = prefix % 8;
      if (rest == 0) return true;
      const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
      return (bytes[full] & mask) == (addr[full] & mask);
    }
  };

  std::vector<Network> networks_;
  bool everyone_ = true;
};

}  // namespace tsgi::binding
