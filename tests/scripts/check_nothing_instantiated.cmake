# ctest separate_compilation.nothing_instantiated: cmake -D NM=<nm> -D OBJECTS=<a;b> -P this file
# Fails if an object file of a translation unit built with TASKMON_SEPARATE_COMPILATION defines a member function
# of detail::MonitorState, a non-template member of BasicTaskMonitor or a member of detail::SupervisorState (or
# code instantiated for one of their lambdas): those must come from taskmon::compiled. The per-token parts of
# async_close & co. and the Supervisor's agent-typed part (TypedAgentBinding) may be defined.
foreach(object IN LISTS OBJECTS)
    execute_process(COMMAND "${NM}" -C --defined-only "${object}"
        OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "${NM} failed on ${object}")
    endif()
    string(REPLACE "\n" ";" lines "${symbols}")
    set(found 0)
    foreach(line IN LISTS lines)
        if(line MATCHES "MonitorState<[^>]*>::[a-z_]" OR line MATCHES "SupervisorState<[^>]*>::"
           OR line MATCHES "BasicTaskMonitor<[^>]*>::(~?BasicTaskMonitor|[a-z_]+)\\(")
            math(EXPR found "${found} + 1")
            if(found LESS_EQUAL 5)
                message("compiled here, expected from taskmon::compiled: ${line}")
            endif()
        endif()
    endforeach()
    if(found GREATER 0)
        message(FATAL_ERROR "${object}: ${found} symbols of TaskMonitor or the Supervisor runtime compiled in a TASKMON_SEPARATE_COMPILATION unit")
    endif()
    message(STATUS "${object}: no TaskMonitor or Supervisor runtime code compiled here")
endforeach()
