// Joins a read's body slices of one request into one (plain C++: the listeners use it, and the
// FastCGI fuzz harness holds it to its contract in place, under the decoder).
//
// A FastCGI front server may cut a body into small records (Apache: 8 KiB), so one read holds
// several STDIN records of a request, each its own slice between record headers. Handing each
// to JavaScript as a chunk costs a call, an object and an await in the application per 8 KiB.
// Instead, the bytes of a slice that follows the last one (same request, no event between) are
// moved up against it, over the headers and padding between them, inside the read's buffer:
// the caller's own, which no reader has seen yet. Slices come in stream order, so a move only
// writes over bytes the decoder is past; the decoder may go on reading the same buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace tsgi {

class BodyJoin {
 public:
  // A new read: nothing to join with.
  void reset() { open_ = false; }

  // A body slice of `request`: `size` bytes at offset `at` of the read's buffer `buf`.
  // `follows`: no other event came between the last slice and this one. True when it was
  // joined to the last slice (which now ends `size` bytes later: begin() and end()), false
  // when it starts a new slice.
  bool add(uint8_t* buf, uint32_t request, size_t at, size_t size, bool follows) {
    if (open_ && follows && request == request_ && at >= end_) {
      if (at != end_) std::memmove(buf + end_, buf + at, size);
      end_ += size;
      return true;
    }
    open_ = true;
    request_ = request;
    begin_ = at;
    end_ = at + size;
    return false;
  }

  bool open() const { return open_; }
  size_t begin() const { return begin_; }
  size_t end() const { return end_; }

 private:
  bool open_ = false;
  uint32_t request_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace tsgi
