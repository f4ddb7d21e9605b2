// The compiled part of the separately compiled mode, for the find_package consumer check: an installed taskmon's
// user includes this header in one .cpp and defines TASKMON_SEPARATE_COMPILATION everywhere.
#include <taskmon/separate_compilation.hpp>
