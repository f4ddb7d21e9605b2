// Includes <asio/use_future.hpp> for the tests. g++ 12 at -O1 (the asan preset) reports a maybe-uninitialized inside
// that header (the promise_handler constructor, for a signature that carries a value); the diagnostic's location is
// Asio's header, so it is silenced for that header only, here, instead of around each test's include.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <asio/use_future.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
