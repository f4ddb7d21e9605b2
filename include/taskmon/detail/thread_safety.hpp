// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Lock rules the compiler checks (internal): Clang's thread-safety analysis attributes, and a mutex and scoped
// locks that carry them. Under Clang with -Wthread-safety (the clang preset builds with it, as errors), reading a
// TASKMON_GUARDED_BY member or calling a TASKMON_REQUIRES function without the lock is a compile error; other
// compilers see plain std::mutex code.
#pragma once

#include <mutex>

#if defined(__clang__)
#define TASKMON_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define TASKMON_THREAD_ANNOTATION(x)
#endif

#define TASKMON_CAPABILITY(x) TASKMON_THREAD_ANNOTATION(capability(x))
#define TASKMON_SCOPED_CAPABILITY TASKMON_THREAD_ANNOTATION(scoped_lockable)
#define TASKMON_GUARDED_BY(x) TASKMON_THREAD_ANNOTATION(guarded_by(x))
#define TASKMON_REQUIRES(...) TASKMON_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define TASKMON_EXCLUDES(...) TASKMON_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define TASKMON_ACQUIRE(...) TASKMON_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define TASKMON_RELEASE(...) TASKMON_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TASKMON_RETURN_CAPABILITY(x) TASKMON_THREAD_ANNOTATION(lock_returned(x))
#define TASKMON_NO_THREAD_SAFETY_ANALYSIS TASKMON_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace taskmon::detail {

/// A std::mutex the analysis knows as a capability.
class TASKMON_CAPABILITY("mutex") Mutex {
public:
    void lock() TASKMON_ACQUIRE() { mutex_.lock(); }
    void unlock() TASKMON_RELEASE() { mutex_.unlock(); }

private:
    std::mutex mutex_;
};

/// std::lock_guard for Mutex: holds it for its scope.
class TASKMON_SCOPED_CAPABILITY MutexLock {
public:
    explicit MutexLock(Mutex& mutex) TASKMON_ACQUIRE(mutex) : mutex_{mutex} { mutex_.lock(); }
    ~MutexLock() TASKMON_RELEASE() { mutex_.unlock(); }
    MutexLock(const MutexLock&) = delete;
    MutexLock& operator=(const MutexLock&) = delete;

private:
    Mutex& mutex_;
};

/// std::unique_lock for Mutex, reduced to what the monitor needs: held from construction until unlock() (to call
/// user code) or the end of its scope.
class TASKMON_SCOPED_CAPABILITY UniqueMutexLock {
public:
    explicit UniqueMutexLock(Mutex& mutex) TASKMON_ACQUIRE(mutex) : mutex_{mutex} { mutex_.lock(); }
    ~UniqueMutexLock() TASKMON_RELEASE() {
        if (held_) {
            mutex_.unlock();
        }
    }
    UniqueMutexLock(const UniqueMutexLock&) = delete;
    UniqueMutexLock& operator=(const UniqueMutexLock&) = delete;

    void unlock() TASKMON_RELEASE() {
        held_ = false;
        mutex_.unlock();
    }

private:
    Mutex& mutex_;
    bool held_ = true;
};

}  // namespace taskmon::detail
