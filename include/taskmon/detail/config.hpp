// Configuration shared by every taskmon header. Include it before any Asio header.
// SPDX-License-Identifier: MIT
#pragma once

#ifndef ASIO_STANDALONE
#define ASIO_STANDALONE 1
#endif

// A standard header first, so that Asio's configuration sees the standard library's. Asio 1.22 decides whether
// to allocate with std::aligned_alloc from _GLIBCXX_HAVE_ALIGNED_ALLOC, which only a standard header defines: a
// translation unit that reaches Asio's config.hpp before any standard header allocates with operator new, one
// that reaches it after allocates with aligned_alloc, and Asio's recycling allocator, shared by the whole
// program, then frees blocks of one kind with the other (AddressSanitizer: alloc-dealloc-mismatch). With this,
// every translation unit that includes taskmon first decides the same way.
#include <cstddef>

#include <asio/version.hpp>

// Asio before 1.26 detects clang's coroutine support only with libc++; with libstdc++ it leaves
// asio::awaitable undeclared. taskmon's CMake target defines this too; doing it here also serves pkg-config
// and plain -I builds, as long as taskmon is included before any other Asio header.
#if defined(__clang__) && !defined(ASIO_HAS_CO_AWAIT) && ASIO_VERSION < 102600 && defined(__cpp_impl_coroutine)
#if defined(ASIO_HPP) || defined(ASIO_DETAIL_CONFIG_HPP)
#error "taskmon: with clang and Asio < 1.26, include taskmon before Asio or define ASIO_HAS_CO_AWAIT=1"
#endif
#define ASIO_HAS_CO_AWAIT 1
#endif

#if ASIO_VERSION < 102200
#error "taskmon needs Asio 1.22 or newer"
#endif

#if !defined(__cpp_impl_coroutine) && !defined(_MSC_VER)
#error "taskmon needs C++20 coroutines: compile with -std=c++20 or later"
#endif
