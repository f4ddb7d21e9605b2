// A fresh directory for one benchmark's files, removed with them: under $TASKMON_BENCH_DIR when set (to measure
// a chosen disk), else the system's temporary directory. Shared by the run journal benchmarks.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

#include <stdlib.h>  // mkdtemp (POSIX)

namespace taskmon_bench {

class BenchDir {
public:
    /// `prefix` names the directory (`<prefix>-XXXXXX`), so that a leftover says which benchmark made it.
    explicit BenchDir(const std::string& prefix) {
        const char* base = std::getenv("TASKMON_BENCH_DIR");
        const std::filesystem::path root =
            base != nullptr ? std::filesystem::path{base} : std::filesystem::temp_directory_path();
        std::string pattern = (root / (prefix + "-XXXXXX")).string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
        path_ = pattern;
    }
    BenchDir(const BenchDir&) = delete;
    BenchDir& operator=(const BenchDir&) = delete;
    ~BenchDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

}  // namespace taskmon_bench
