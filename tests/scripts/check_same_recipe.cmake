# The worker-pool recipe is one text in three places: the lines between "// worker pool recipe: begin" and
# "// worker pool recipe: end" of the test and of the example are the same, and the cookbook shows exactly them as
# one ```cpp fragment block. Run by the ctest test cookbook_worker_pool.same_recipe:
#   cmake -D COOKBOOK=<markdown> -D "SOURCES=<file;file...>" -P check_same_recipe.cmake
cmake_minimum_required(VERSION 3.25)

set(begin_marker "// worker pool recipe: begin\n")
set(end_marker "// worker pool recipe: end\n")

# taskmon_recipe_of(<file> <out_text>): the text between the markers of <file>.
function(taskmon_recipe_of file out_text)
    file(READ "${file}" text)
    string(FIND "${text}" "${begin_marker}" begin)
    string(FIND "${text}" "${end_marker}" end)
    if(begin EQUAL -1 OR end EQUAL -1 OR end LESS begin)
        message(FATAL_ERROR "${file}: no recipe between '// worker pool recipe: begin' and '... end' lines")
    endif()
    string(LENGTH "${begin_marker}" marker_length)
    math(EXPR from "${begin} + ${marker_length}")
    math(EXPR length "${end} - ${from}")
    string(SUBSTRING "${text}" ${from} ${length} recipe)
    set(${out_text} "${recipe}" PARENT_SCOPE)
endfunction()

set(reference "")
set(reference_file "")
foreach(source IN LISTS SOURCES)
    taskmon_recipe_of("${source}" recipe)
    if(reference_file STREQUAL "")
        set(reference "${recipe}")
        set(reference_file "${source}")
    elseif(NOT recipe STREQUAL reference)
        message(FATAL_ERROR "the recipe in ${source} differs from the one in ${reference_file}")
    endif()
endforeach()

file(READ "${COOKBOOK}" markdown)
string(FIND "${markdown}" "\n```cpp fragment\n${reference}```\n" shown)
if(shown EQUAL -1)
    message(FATAL_ERROR "${COOKBOOK} does not show the recipe of ${reference_file} as one ```cpp fragment block")
endif()
message(STATUS "the recipe is the same in ${COOKBOOK} and ${SOURCES}")
