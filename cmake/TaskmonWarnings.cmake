# Warnings for taskmon's own targets (tests, examples, benchmarks). Our headers must compile cleanly under
# these with g++ and clang++; dependencies come from system include paths and are not warned about.
include_guard(GLOBAL)

function(taskmon_set_warnings target)
    target_compile_options(${target} PRIVATE
        $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-Wall -Wextra -Wpedantic>
        $<$<CXX_COMPILER_ID:MSVC>:/W4>
        # Clang checks the lock rules written in the headers (taskmon/detail/thread_safety.hpp): with TASKMON_WERROR
        # (the presets), touching state a mutex guards without holding it fails the clang build.
        $<$<CXX_COMPILER_ID:Clang,AppleClang>:-Wthread-safety>)
    if(TASKMON_WERROR)
        target_compile_options(${target} PRIVATE
            $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-Werror>
            $<$<CXX_COMPILER_ID:MSVC>:/WX>)
    endif()
endfunction()
