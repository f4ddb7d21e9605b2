# ctest separate_compilation.nothing_instantiated: cmake -D NM=<nm> -D OBJECTS=<a;b> -P this file
# Fails if an object file of a translation unit built with TASKMON_SEPARATE_COMPILATION defines a member function
# of detail::MonitorState, a non-template member of BasicTaskMonitor or a member of detail::SupervisorState (or
# code instantiated for one of their lambdas): those must come from taskmon::compiled. The per-token parts of
# async_close & co. and the Supervisor's agent-typed part (TypedAgentBinding) may be defined.
# nm's output goes through grep: a test program's object file has tens of thousands of symbols, which CMake's
# regular expressions take minutes to walk.
find_program(GREP grep REQUIRED)
set(compiled_here "MonitorState<[^>]*>::[a-z_]|SupervisorState<[^>]*>::|BasicTaskMonitor<[^>]*>::(~?BasicTaskMonitor|[a-z_]+)\\(")
foreach(object IN LISTS OBJECTS)
    execute_process(COMMAND "${NM}" -C --defined-only "${object}"
        COMMAND "${GREP}" -E "${compiled_here}"
        OUTPUT_VARIABLE found RESULTS_VARIABLE rcs)
    list(GET rcs 0 nm_rc)
    if(NOT nm_rc EQUAL 0)
        message(FATAL_ERROR "${NM} failed on ${object}")
    endif()
    if(NOT found STREQUAL "")
        string(REGEX MATCHALL "[^\n]+" lines "${found}")
        list(LENGTH lines count)
        string(SUBSTRING "${found}" 0 2000 head)
        message("compiled here, expected from taskmon::compiled (the first of them):\n${head}")
        message(FATAL_ERROR "${object}: ${count} symbols of TaskMonitor or the Supervisor runtime compiled in a TASKMON_SEPARATE_COMPILATION unit")
    endif()
    message(STATUS "${object}: no TaskMonitor or Supervisor runtime code compiled here")
endforeach()
