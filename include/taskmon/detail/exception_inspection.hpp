// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Reading the exception an exception_ptr holds without rethrowing it (internal).
#pragma once

#include <cstring>
#include <exception>
#include <type_traits>
#include <typeinfo>

// libstdc++ (g++, and clang on Linux): the Itanium C++ ABI's exception_ptr holds the address of the thrown object,
// exception_ptr::__cxa_exception_type() gives its type, and type_info::__do_catch() is the test, and the pointer
// adjustment, that a catch clause makes. Elsewhere classify_exit() and describe() rethrow to catch by type.
#if defined(__GLIBCXX__) && defined(__GXX_RTTI)
#define TASKMON_HAS_EXCEPTION_INSPECTION 1
#endif

namespace taskmon::detail {

#ifdef TASKMON_HAS_EXCEPTION_INSPECTION

/// What `catch (const T& e)` would bind `e` to if `error` were rethrown; null if that clause would not catch it.
/// Every instance's exit is classified (returned, failed, cancelled) and described ("type: what"): a rethrow to
/// do it by catching costs an unwind of its own (a restart of a coroutine that throws at once ran 20 % of its
/// instructions in it: 55,918 with it, 44,914 without; scripts/instructions, restart case).
template <typename T>
const T* caught_as(const std::exception_ptr& error) noexcept {
    // For a class type __do_catch takes the thrown object's address; a pointer type would need one more
    // dereference, as the catch machinery does, and is not supported.
    static_assert(std::is_class_v<T>, "caught_as<T>: T must be a class type");
    static_assert(sizeof(std::exception_ptr) == sizeof(void*), "libstdc++'s exception_ptr is one pointer");
    if (!error) {
        return nullptr;  // __cxa_exception_type() reads the exception's header: there must be one
    }
    const std::type_info* thrown = error.__cxa_exception_type();
    void* object = nullptr;
    std::memcpy(&object, &error, sizeof object);  // the thrown object's address
    if (!typeid(T).__do_catch(thrown, &object, 1)) {
        return nullptr;
    }
    return static_cast<const T*>(object);
}

#endif

}  // namespace taskmon::detail
